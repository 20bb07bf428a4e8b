// SPDX-License-Identifier: MIT
// The TLS engine of one connection: the module tandem-tls.so (tls_module_p.hpp), loaded
// once per process at the first TLS connection. No OpenSSL here: connection.cpp moves
// the engine's bytes to and from the socket.
#pragma once

#include "tls_module_p.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace tandem::net {

class tls_engine {
  public:
    // Loads the module (TANDEM_TLS_MODULE, else lib/tandem/tandem-tls.so beside the
    // program's bin/ directory, else the one installed with it) and starts an engine;
    // nullptr and `message` when the module cannot be loaded.
    static std::unique_ptr<tls_engine> create(const tandem_tls_settings& settings,
                                              std::string& message);
    ~tls_engine();
    tls_engine(const tls_engine&) = delete;
    tls_engine& operator=(const tls_engine&) = delete;

    // tandem_tls_status values, as tandem_tls_api says.
    int handshake() { return api_->handshake(tls_); }
    void put_input(std::string_view bytes) { api_->put_input(tls_, bytes.data(), bytes.size()); }
    int write(std::string_view plain) { return api_->write(tls_, plain.data(), plain.size()); }
    // Appends every byte that the input so far decrypts to: WANT_INPUT (all taken),
    // CLOSED or FAILED.
    int read(std::string& plain);
    bool has_output() const { return api_->output_size(tls_) > 0; }
    // Appends the bytes to send.
    void take_output(std::string& wire);
    std::string message() const { return api_->message(tls_); }

  private:
    tls_engine(const tandem_tls_api* api, tandem_tls* tls) : api_(api), tls_(tls) {}
    const tandem_tls_api* api_;
    tandem_tls* tls_;
};

}  // namespace tandem::net
