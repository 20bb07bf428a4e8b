// SPDX-License-Identifier: MIT
// The TLS layer's module, tandem-tls.so: OpenSSL as a sans-I/O engine over memory BIOs,
// loaded at the first TLS connection (tls_engine in tls_p.hpp). A run over plain TCP or a
// tunnel never maps libssl and libcrypto: linked into the program, their relocations and
// symbol lookups alone cost 1.8 MB of RSS at every start.
//
// A C interface, so that the module needs neither Asio nor the C++ runtime of the program
// (which links libstdc++ statically): the program moves the bytes, the module encrypts,
// decrypts and verifies.
#pragma once

#include <cstddef>

extern "C" {

// Raised whenever a function below changes; the program refuses a module of another one.
#define TANDEM_TLS_ABI 1

struct tandem_tls_settings {
    const char* host;          // the name to send as SNI and to verify ("" for none)
    const char* ca_file;       // trust anchors in PEM; "" for the system store
    const unsigned char* pin;  // the SHA-256 of the certificate (32 bytes), or null
    int verify;                // 0: no chain nor name check (a pin is still compared)
};

enum tandem_tls_status {
    TANDEM_TLS_OK = 0,          // done (handshake), bytes given (read)
    TANDEM_TLS_WANT_INPUT = 1,  // more bytes from the server are needed first
    TANDEM_TLS_CLOSED = 2,      // the server closed the TLS session (close_notify)
    TANDEM_TLS_FAILED = 3,      // a protocol or setup error: message() says which
    TANDEM_TLS_REFUSED = 4,     // the certificate was refused: message() says why
};

struct tandem_tls;

struct tandem_tls_api {
    int abi;  // TANDEM_TLS_ABI
    // Null only without memory. A setup that failed (a CA file that cannot be read, an
    // invalid SNI name) is reported by the first handshake().
    tandem_tls* (*create)(const tandem_tls_settings* settings);
    void (*destroy)(tandem_tls* tls);
    // Drives the client handshake; after OK the certificate was verified and the pin
    // compared. Whatever it returns, output may be waiting.
    int (*handshake)(tandem_tls* tls);
    // Bytes received from the server, all of them taken.
    void (*put_input)(tandem_tls* tls, const char* data, std::size_t size);
    // Encrypts all of `size` bytes into the output: OK or FAILED.
    int (*write)(tandem_tls* tls, const char* data, std::size_t size);
    // Decrypts into `out`: OK with *got > 0, WANT_INPUT, CLOSED or FAILED.
    int (*read)(tandem_tls* tls, char* out, std::size_t size, std::size_t* got);
    // Bytes to send to the server (records, alerts, handshake messages).
    std::size_t (*output_size)(tandem_tls* tls);
    std::size_t (*take_output)(tandem_tls* tls, char* out, std::size_t size);
    // One line for a person about the last FAILED or REFUSED.
    const char* (*message)(tandem_tls* tls);
};

// The module's one exported symbol.
const tandem_tls_api* tandem_tls_module();
typedef const tandem_tls_api* (*tandem_tls_module_fn)();
}
