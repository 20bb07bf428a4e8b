// SPDX-License-Identifier: MIT
// tandem-tls.so (tls_module_p.hpp): the TLS layer in plain OpenSSL, over two memory BIOs
// that the program fills and empties. Certificate checks: trust anchors, host name and
// SNI, the SHA-256 pin, and a message that says what was wrong.
//
// No C++ library here (no std::string, no new, no function-local statics): the program
// links its own statically, and the module must not bring a second one.
#include "../tls_module_p.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct tandem_tls {
    SSL_CTX* ctx;
    SSL* ssl;
    BIO* in;   // from the server: the program writes, OpenSSL reads
    BIO* out;  // to the server: OpenSSL writes, the program reads
    char host[256];
    unsigned char pin[32];
    bool pinned;
    int setup_status;  // OK, or what the first handshake() returns
    bool refused;      // the verify callback refused the chain or the name
    char message[1536];
};

namespace {

// Appends to t->message, cut at its end.
void say(tandem_tls* t, const char* format, ...) {
    std::size_t used = std::strlen(t->message);
    if (used + 1 >= sizeof t->message) return;
    va_list args;
    va_start(args, format);
    std::vsnprintf(t->message + used, sizeof t->message - used, format, args);
    va_end(args);
}

void say_openssl_error(tandem_tls* t) {
    unsigned long e = ERR_get_error();
    if (e == 0) {
        say(t, "unknown OpenSSL error");
        return;
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    say(t, "%s", buf);
}

bool is_ip_literal(const char* host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

// "sha256:AB:CD:..." as connection.cpp's format_fingerprint writes it.
void say_fingerprint(tandem_tls* t, const unsigned char* digest, unsigned len) {
    say(t, "sha256:");
    for (unsigned i = 0; i < len; ++i) say(t, i ? ":%02X" : "%02X", digest[i]);
}

bool sha256_of(X509* cert, unsigned char (&md)[EVP_MAX_MD_SIZE], unsigned* len) {
    return X509_digest(cert, EVP_sha256(), md, len) == 1;
}

// "subject CN=..., names a.example, b.example, sha256:AB:..."
void say_certificate(tandem_tls* t, X509* cert) {
    say(t, "subject ");
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        char* data = nullptr;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0) say(t, "%.*s", static_cast<int>(n), data);
        BIO_free(bio);
    }
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (names) {
        bool first = true;
        for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
            if (gn->type == GEN_DNS) {
                const ASN1_IA5STRING* s = gn->d.dNSName;
                say(t, "%s%.*s", first ? ", names " : ", ", ASN1_STRING_length(s),
                    reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)));
                first = false;
            } else if (gn->type == GEN_IPADD) {
                const ASN1_OCTET_STRING* s = gn->d.iPAddress;
                char buf[64];
                int family = ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6;
                if (inet_ntop(family, ASN1_STRING_get0_data(s), buf, sizeof buf)) {
                    say(t, "%s%s", first ? ", names " : ", ", buf);
                    first = false;
                }
            }
        }
        GENERAL_NAMES_free(names);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (sha256_of(cert, md, &len)) {
        say(t, ", ");
        say_fingerprint(t, md, len);
    }
}

int verify_callback(int preverified, X509_STORE_CTX* store) {
    if (preverified) return 1;
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* t = ssl ? static_cast<tandem_tls*>(SSL_get_app_data(ssl)) : nullptr;
    if (t && !t->refused) {
        t->refused = true;
        t->message[0] = '\0';
        // The leaf is what the user recognises (and can pin), whichever link failed.
        say(t, "certificate verification failed for %s: %s", t->host,
            X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
        if (X509* leaf = X509_STORE_CTX_get0_cert(store)) {
            say(t, " (");
            say_certificate(t, leaf);
            say(t, ")");
        }
    }
    return 0;
}

// Trust anchors and protocol floor: the CA file, or the system store, or nothing (a pin).
bool configure(tandem_tls* t, const tandem_tls_settings* s) {
    // RFC 8997 / RFC 9051 11.1: TLS 1.2 at least. No renegotiation: an IMAP server has no
    // use for it, and the engine then never needs input to write.
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION);
    if (t->pinned || !s->verify) {
        // A pin replaces the CA check (the system store is not even loaded);
        // tls-insecure-skip-verify trusts whatever answers.
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, nullptr);
        return true;
    }
    if (s->ca_file[0] != '\0') {
        if (SSL_CTX_load_verify_locations(t->ctx, s->ca_file, nullptr) != 1) {
            say(t, "cannot load CA file %s: ", s->ca_file);
            say_openssl_error(t);
            return false;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        say(t, "cannot load the system CA store: ");
        say_openssl_error(t);
        return false;
    }
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, nullptr);
    return true;
}

// Per connection: SNI, the host name to verify, the callback that records a refusal.
bool attach(tandem_tls* t, bool verify) {
    const bool ip = is_ip_literal(t->host);
    // RFC 6066 3: SNI carries DNS names only, never an address literal.
    if (!ip && t->host[0] != '\0' && SSL_set_tlsext_host_name(t->ssl, t->host) != 1) {
        say(t, "cannot set SNI %s: ", t->host);
        say_openssl_error(t);
        return false;
    }
    if (t->pinned || !verify) return true;
    SSL_set_app_data(t->ssl, t);
    X509_VERIFY_PARAM* param = SSL_get0_param(t->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int rc = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, t->host)
                : X509_VERIFY_PARAM_set1_host(param, t->host, std::strlen(t->host));
    if (rc != 1) {
        say(t, "cannot set the host name to verify: %s", t->host);
        return false;
    }
    SSL_set_verify(t->ssl, SSL_VERIFY_PEER, verify_callback);
    return true;
}

int check_pin(tandem_tls* t) {
    if (!t->pinned) return TANDEM_TLS_OK;
    t->message[0] = '\0';
    X509* cert = SSL_get1_peer_certificate(t->ssl);
    if (!cert) {
        say(t, "%s sent no certificate to compare with the pinned fingerprint", t->host);
        return TANDEM_TLS_REFUSED;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    int status = TANDEM_TLS_OK;
    if (!sha256_of(cert, md, &len) || len != sizeof t->pin ||
        std::memcmp(md, t->pin, sizeof t->pin) != 0) {
        say(t, "certificate of %s does not match the pinned fingerprint ", t->host);
        say_fingerprint(t, t->pin, sizeof t->pin);
        say(t, " (");
        say_certificate(t, cert);
        say(t, ")");
        status = TANDEM_TLS_REFUSED;
    }
    X509_free(cert);
    return status;
}

tandem_tls* create(const tandem_tls_settings* s) {
    auto* t = static_cast<tandem_tls*>(std::calloc(1, sizeof(tandem_tls)));
    if (!t) return nullptr;
    std::snprintf(t->host, sizeof t->host, "%s", s->host);
    if (s->pin) {
        std::memcpy(t->pin, s->pin, sizeof t->pin);
        t->pinned = true;
    }
    if (std::strlen(s->host) >= sizeof t->host) {
        say(t, "host name too long for TLS: %.64s...", s->host);
        t->setup_status = TANDEM_TLS_FAILED;
        return t;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx && !configure(t, s)) {
        t->setup_status = TANDEM_TLS_REFUSED;
        return t;
    }
    if (t->ctx) t->ssl = SSL_new(t->ctx);
    if (t->ssl) {
        t->in = BIO_new(BIO_s_mem());
        t->out = BIO_new(BIO_s_mem());
    }
    if (!t->in || !t->out) {
        say(t, "cannot set up TLS: ");
        say_openssl_error(t);
        t->setup_status = TANDEM_TLS_FAILED;
        return t;
    }
    // An empty input BIO means "not yet", never end of stream.
    BIO_set_mem_eof_return(t->in, -1);
    SSL_set_bio(t->ssl, t->in, t->out);  // the SSL owns both now
    SSL_set_connect_state(t->ssl);
    if (!attach(t, s->verify != 0)) t->setup_status = TANDEM_TLS_FAILED;
    return t;
}

void destroy(tandem_tls* t) {
    if (!t) return;
    if (t->ssl) {
        SSL_free(t->ssl);
    } else {
        BIO_free(t->in);
        BIO_free(t->out);
    }
    SSL_CTX_free(t->ctx);
    std::free(t);
}

// Whatever failed: the verify callback's refusal, or OpenSSL's error queue.
int failed(tandem_tls* t, int ssl_error) {
    if (t->refused) return TANDEM_TLS_REFUSED;
    t->message[0] = '\0';
    if (ssl_error == SSL_ERROR_SSL || ERR_peek_error() != 0)
        say_openssl_error(t);
    else
        say(t, "TLS error %d", ssl_error);
    return TANDEM_TLS_FAILED;
}

int handshake(tandem_tls* t) {
    if (t->setup_status != TANDEM_TLS_OK) return t->setup_status;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) return check_pin(t);
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return TANDEM_TLS_WANT_INPUT;
    return failed(t, e);
}

void put_input(tandem_tls* t, const char* data, std::size_t size) {
    while (size > 0) {
        const int n = BIO_write(t->in, data, size > INT_MAX ? INT_MAX : static_cast<int>(size));
        if (n <= 0) return;  // no memory: the record is then short, and reading fails
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

int write(tandem_tls* t, const char* data, std::size_t size) {
    ERR_clear_error();
    while (size > 0) {
        const int n = SSL_write(t->ssl, data, size > INT_MAX ? INT_MAX : static_cast<int>(size));
        if (n <= 0) return failed(t, SSL_get_error(t->ssl, n));
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return TANDEM_TLS_OK;
}

int read(tandem_tls* t, char* out, std::size_t size, std::size_t* got) {
    *got = 0;
    ERR_clear_error();
    const int n = SSL_read(t->ssl, out, size > INT_MAX ? INT_MAX : static_cast<int>(size));
    if (n > 0) {
        *got = static_cast<std::size_t>(n);
        return TANDEM_TLS_OK;
    }
    const int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ) return TANDEM_TLS_WANT_INPUT;
    if (e == SSL_ERROR_ZERO_RETURN) return TANDEM_TLS_CLOSED;
    return failed(t, e);
}

std::size_t output_size(tandem_tls* t) {
    return BIO_ctrl_pending(t->out);
}

std::size_t take_output(tandem_tls* t, char* out, std::size_t size) {
    const int n = BIO_read(t->out, out, size > INT_MAX ? INT_MAX : static_cast<int>(size));
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

const char* message(tandem_tls* t) {
    return t->message;
}

constexpr tandem_tls_api api{TANDEM_TLS_ABI, create, destroy,     handshake,   put_input,
                             write,          read,   output_size, take_output, message};

}  // namespace

extern "C" __attribute__((visibility("default"))) const tandem_tls_api* tandem_tls_module() {
    return &api;
}
