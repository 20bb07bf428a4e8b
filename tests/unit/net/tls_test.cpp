// SPDX-License-Identifier: MIT
// TLS, STARTTLS and certificate checks against a small OpenSSL server on 127.0.0.1.
#include "tandem/net/connection.hpp"

#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace tandem::net {
namespace {

using namespace std::chrono_literals;

// Two CAs; a server certificate from the first for DNS:localhost only.
class pki {
  public:
    pki() {
        make_ca("ca");
        make_ca("other");
        run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", path("server.key"), "-out", path("server.csr"), "-subj",
             "/CN=localhost"});
        std::ofstream(dir_ / "ext") << "subjectAltName=DNS:localhost\n";
        run({"openssl", "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey",
             path("ca.key"), "-CAcreateserial", "-out", path("server.pem"), "-days", "2",
             "-extfile", path("ext")});
        auto fp = test::run_process(
            {"openssl", "x509", "-in", path("server.pem"), "-noout", "-fingerprint", "-sha256"});
        // "sha256 Fingerprint=AB:CD:..."
        auto eq = fp.output.find('=');
        fingerprint_ = fp.output.substr(eq + 1, 95);
    }
    std::string path(std::string_view name) const { return (dir_ / name).string(); }
    const std::string& fingerprint() const { return fingerprint_; }

  private:
    void run(const std::vector<std::string>& argv) {
        auto r = test::run_process(argv);
        if (!r.ok()) throw std::runtime_error(r.output);
    }
    void make_ca(const std::string& name) {
        run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", path(name + ".key"), "-out", path(name + ".pem"), "-subj",
             "/CN=tandem test " + name, "-days", "2"});
    }
    test::temp_dir dir_{"tandem-tls"};
    std::string fingerprint_;
};

const pki& certificates() {
    static pki p;
    return p;
}

// One connection: optionally a plain-text prologue, then TLS; echoes a greeting.
class tls_server {
  public:
    struct script {
        std::string plain_before;  // sent in clear before the handshake (STARTTLS)
        std::string injected;      // sent in clear a moment later, before the handshake
        std::string greeting = "* OK secure\r\n";
        std::string cert = "server";  // "other": the self-signed CA certificate
    };

    explicit tls_server(script s) : script_(std::move(s)) {
        ::signal(SIGPIPE, SIG_IGN);  // SSL_write to a client that hung up
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        ::listen(listener_, 1);
        thread_ = std::thread([this] { serve(); });
    }
    ~tls_server() {
        ::shutdown(listener_, SHUT_RDWR);
        thread_.join();
        ::close(listener_);
    }
    std::uint16_t port() const { return port_; }
    bool handshake_ok() const { return handshake_ok_; }

  private:
    void serve() {
        int fd = ::accept(listener_, nullptr, nullptr);
        if (fd < 0) return;
        if (!script_.plain_before.empty()) {
            ::send(fd, script_.plain_before.data(), script_.plain_before.size(), MSG_NOSIGNAL);
            if (!script_.injected.empty()) {
                std::this_thread::sleep_for(100ms);
                ::send(fd, script_.injected.data(), script_.injected.size(), MSG_NOSIGNAL);
            }
        }
        SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
        SSL_CTX_use_certificate_file(ctx, certificates().path(script_.cert + ".pem").c_str(),
                                     SSL_FILETYPE_PEM);
        SSL_CTX_use_PrivateKey_file(ctx, certificates().path(script_.cert + ".key").c_str(),
                                    SSL_FILETYPE_PEM);
        SSL* ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            handshake_ok_ = true;
            SSL_write(ssl, script_.greeting.data(), static_cast<int>(script_.greeting.size()));
            char buf[256];
            SSL_read(ssl, buf, sizeof buf);  // until the client closes
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        ::close(fd);
    }

    script script_;
    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
    bool handshake_ok_ = false;
};

transport_config config_for(const tls_server& s, std::string host = "localhost") {
    transport_config cfg;
    cfg.host = std::move(host);
    cfg.port = s.port();
    cfg.tls = tls_mode::implicit;
    cfg.ca_file = certificates().path("ca.pem");
    cfg.connect_timeout = 5s;
    cfg.read_timeout = 5s;
    return cfg;
}

std::string read_line(connection& c) {
    std::string got;
    while (got.find('\n') == std::string::npos) {
        auto r = c.read();
        if (!r) return "error: " + r.error().message();
        got += *r;
    }
    return got;
}

TEST(tls, implicit_tls_with_the_configured_ca) {
    tls_server server({});
    failure why;
    auto c = connection::open(config_for(server), &why);
    ASSERT_TRUE(c) << why.message;
    EXPECT_TRUE((*c)->encrypted());
    EXPECT_TRUE((*c)->loopback());
    EXPECT_EQ(read_line(**c), "* OK secure\r\n");
}

TEST(tls, certificate_from_another_ca_is_refused_with_names_and_fingerprint) {
    tls_server server({});
    auto cfg = config_for(server);
    cfg.ca_file = certificates().path("other.pem");
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), errc::tls_failed);
    EXPECT_EQ(why.step, step::tls_verify);
    EXPECT_NE(why.message.find("localhost"), std::string::npos) << why.message;
    EXPECT_NE(why.message.find("unable to get local issuer certificate"), std::string::npos)
        << why.message;
    EXPECT_NE(why.message.find("CN=localhost"), std::string::npos) << why.message;
    EXPECT_NE(why.message.find("sha256:" + certificates().fingerprint()), std::string::npos)
        << why.message;
}

TEST(tls, host_name_must_match_the_certificate) {
    tls_server server({});
    // The certificate names DNS:localhost only.
    auto cfg = config_for(server, "127.0.0.1");
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), errc::tls_failed);
    EXPECT_EQ(why.step, step::tls_verify);
    EXPECT_NE(why.message.find("mismatch"), std::string::npos) << why.message;
    EXPECT_NE(why.message.find("127.0.0.1"), std::string::npos) << why.message;
}

TEST(tls, a_matching_pin_replaces_ca_and_name_checks) {
    tls_server server({});
    auto cfg = config_for(server, "127.0.0.1");
    cfg.ca_file.clear();
    cfg.fingerprint = "sha256:" + certificates().fingerprint();
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_TRUE(c) << why.message;
    EXPECT_EQ(read_line(**c), "* OK secure\r\n");
}

TEST(tls, a_wrong_pin_is_refused) {
    tls_server server({});
    auto cfg = config_for(server);
    cfg.ca_file.clear();
    cfg.fingerprint = std::string(64, 'a');
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), errc::tls_failed);
    EXPECT_EQ(why.step, step::tls_verify);
    EXPECT_NE(why.message.find("does not match the pinned fingerprint"), std::string::npos)
        << why.message;
    EXPECT_NE(why.message.find(certificates().fingerprint()), std::string::npos) << why.message;
}

tls_server::script self_signed() {
    tls_server::script s;
    s.cert = "other";
    return s;
}

TEST(tls, a_self_signed_certificate_is_refused_by_default) {
    tls_server server(self_signed());
    auto cfg = config_for(server);
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), errc::tls_failed);
    EXPECT_EQ(why.step, step::tls_verify);
    EXPECT_NE(why.message.find("CN=tandem test other"), std::string::npos) << why.message;
}

TEST(tls, skipping_verification_accepts_a_self_signed_certificate_and_any_name) {
    tls_server server(self_signed());
    // Neither the CA file nor the address matches: only the switch lets it through.
    auto cfg = config_for(server, "127.0.0.1");
    cfg.verify = false;
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_TRUE(c) << why.message;
    EXPECT_TRUE((*c)->encrypted());
    EXPECT_EQ(read_line(**c), "* OK secure\r\n");
    EXPECT_TRUE(server.handshake_ok());
}

TEST(tls, skipping_verification_still_compares_a_pin) {
    tls_server server(self_signed());
    auto cfg = config_for(server);
    cfg.verify = false;
    cfg.fingerprint = std::string(64, 'a');
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(why.step, step::tls_verify);
    EXPECT_NE(why.message.find("does not match the pinned fingerprint"), std::string::npos)
        << why.message;
}

TEST(tls, starttls_discards_plain_bytes_received_before_the_handshake) {
    // The OK line, then injected plain text that arrives before the handshake starts.
    tls_server server({"a1 OK Begin TLS\r\n", "* OK [ALERT] injected\r\n"});
    auto cfg = config_for(server);
    cfg.tls = tls_mode::starttls;
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_TRUE(c) << why.message;
    EXPECT_FALSE((*c)->encrypted());
    std::string plain = read_line(**c);
    ASSERT_EQ(plain, "a1 OK Begin TLS\r\n");
    std::this_thread::sleep_for(300ms);  // the injected line is surely in the socket now
    ASSERT_TRUE((*c)->start_tls(&why)) << why.message;
    EXPECT_TRUE((*c)->encrypted());
    EXPECT_EQ(read_line(**c), "* OK secure\r\n");
    EXPECT_TRUE(server.handshake_ok());
}

TEST(tls, starttls_refuses_output_queued_behind_it) {
    tls_server server({"a1 OK Begin TLS\r\n", ""});
    auto cfg = config_for(server);
    cfg.tls = tls_mode::starttls;
    auto c = connection::open(cfg);
    ASSERT_TRUE(c);
    read_line(**c);
    (*c)->write("a2 LOGIN x y\r\n");
    failure why;
    auto r = (*c)->start_tls(&why);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::invalid_argument);
    (*c)->close();
}

}  // namespace
}  // namespace tandem::net
