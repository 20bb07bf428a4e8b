// SPDX-License-Identifier: MIT
#include "tls_p.hpp"

#include "tandem/net/connection.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace tandem::net {

namespace {

int verifier_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string openssl_error() {
    unsigned long e = ERR_get_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

}  // namespace

tls_verifier::tls_verifier(std::string host, std::string ca_file, std::string fingerprint,
                           bool verify)
    : host_(std::move(host)), ca_file_(std::move(ca_file)), verify_(verify) {
    if (!fingerprint.empty()) {
        pinned_ = true;
        if (auto p = parse_fingerprint(fingerprint)) pin_ = std::move(*p);
    }
}

result<void> tls_verifier::configure(SSL_CTX* ctx) {
    // RFC 8997 / RFC 9051 11.1: TLS 1.2 at least.
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (pinned_) {
        if (pin_.size() != 32) {
            message_ = "invalid certificate fingerprint (want sha256:AB:CD:... with 32 bytes)";
            return errc::invalid_argument;
        }
        // The pin replaces the CA check; the system store is not even loaded.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        return {};
    }
    if (!verify_) {
        // tls-insecure-skip-verify: the user chose to trust whatever answers.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        return {};
    }
    if (!ca_file_.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file_.c_str(), nullptr) != 1) {
            message_ = "cannot load CA file " + ca_file_ + ": " + openssl_error();
            return errc::tls_failed;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        message_ = "cannot load the system CA store: " + openssl_error();
        return errc::tls_failed;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    return {};
}

result<void> tls_verifier::attach(SSL* ssl) {
    bool ip = is_ip_literal(host_);
    // RFC 6066 3: SNI carries DNS names only, never an address literal.
    if (!ip && !host_.empty() && SSL_set_tlsext_host_name(ssl, host_.c_str()) != 1) {
        message_ = "cannot set SNI " + host_ + ": " + openssl_error();
        return errc::tls_failed;
    }
    if (pinned_ || !verify_) return {};
    SSL_set_ex_data(ssl, verifier_index(), this);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int rc = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host_.c_str())
                : X509_VERIFY_PARAM_set1_host(param, host_.c_str(), host_.size());
    if (rc != 1) {
        message_ = "cannot set the host name to verify: " + host_;
        return errc::tls_failed;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, &tls_verifier::verify_callback);
    return {};
}

int tls_verifier::verify_callback(int preverified, X509_STORE_CTX* store) {
    if (preverified) return 1;
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = ssl ? static_cast<tls_verifier*>(SSL_get_ex_data(ssl, verifier_index())) : nullptr;
    if (self && !self->failed_) {
        self->failed_ = true;
        int err = X509_STORE_CTX_get_error(store);
        // The leaf is what the user recognises (and can pin), whichever link failed.
        X509* leaf = X509_STORE_CTX_get0_cert(store);
        self->message_ = "certificate verification failed for " + self->host_ + ": " +
                         X509_verify_cert_error_string(err);
        if (leaf) self->message_ += " (" + describe(leaf) + ")";
    }
    return 0;
}

result<void> tls_verifier::check_pin(SSL* ssl) {
    if (!pinned_) return {};
    std::unique_ptr<X509, decltype(&X509_free)> cert(SSL_get1_peer_certificate(ssl), X509_free);
    if (!cert) {
        failed_ = true;
        message_ = host_ + " sent no certificate to compare with the pinned fingerprint";
        return errc::tls_failed;
    }
    if (sha256(cert.get()) != pin_) {
        failed_ = true;
        message_ = "certificate of " + host_ + " does not match the pinned fingerprint " +
                   format_fingerprint(pin_) + " (" + describe(cert.get()) + ")";
        return errc::tls_failed;
    }
    return {};
}

std::vector<unsigned char> tls_verifier::sha256(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
    return {md, md + len};
}

std::string tls_verifier::describe(X509* cert) {
    std::string out = "subject ";
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        char* data = nullptr;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0) out.append(data, static_cast<std::size_t>(n));
        BIO_free(bio);
    }
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (names) {
        std::string list;
        for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
            if (gn->type == GEN_DNS) {
                const ASN1_IA5STRING* s = gn->d.dNSName;
                if (!list.empty()) list += ", ";
                list.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                            static_cast<std::size_t>(ASN1_STRING_length(s)));
            } else if (gn->type == GEN_IPADD) {
                const ASN1_OCTET_STRING* s = gn->d.iPAddress;
                char buf[64];
                int family = ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6;
                if (inet_ntop(family, ASN1_STRING_get0_data(s), buf, sizeof buf)) {
                    if (!list.empty()) list += ", ";
                    list += buf;
                }
            }
        }
        GENERAL_NAMES_free(names);
        if (!list.empty()) out += ", names " + list;
    }
    out += ", " + format_fingerprint(sha256(cert));
    return out;
}

}  // namespace tandem::net
