// SPDX-License-Identifier: MIT
// Certificate verification for the TLS layer, in plain OpenSSL (no Asio): trust anchors,
// host name and SNI, the SHA-256 pin, and a message that says what was wrong.
#pragma once

#include "tandem/util/error.hpp"

#include <string>
#include <vector>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct x509_st X509;
typedef struct x509_store_ctx_st X509_STORE_CTX;

namespace tandem::net {

class tls_verifier {
  public:
    // verify = false: no chain nor name check (a pin, when given, is still compared).
    tls_verifier(std::string host, std::string ca_file, std::string fingerprint,
                 bool verify = true);

    // Trust anchors and protocol floor: the CA file, or the system store, or nothing (a pin).
    result<void> configure(SSL_CTX* ctx);
    // Per connection: SNI, host-name check, the verify callback that records the failure.
    result<void> attach(SSL* ssl);
    // After the handshake: compare the pin, if there is one.
    result<void> check_pin(SSL* ssl);

    bool failed() const { return failed_; }
    const std::string& message() const { return message_; }

    // "subject CN=..., names a.example, b.example, sha256:AB:..."
    static std::string describe(X509* cert);
    static std::vector<unsigned char> sha256(X509* cert);

  private:
    static int verify_callback(int preverified, X509_STORE_CTX* store);

    std::string host_;
    std::string ca_file_;
    std::vector<unsigned char> pin_;
    bool pinned_ = false;
    bool verify_ = true;
    bool failed_ = false;
    std::string message_;
};

}  // namespace tandem::net
