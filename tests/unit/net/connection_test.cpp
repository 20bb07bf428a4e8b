// SPDX-License-Identifier: MIT
// The transport over a socketpair: the peer is a plain blocking thread.
#include "tandem/net/connection.hpp"
#include "tandem/net/deflate.hpp"
// src/ is not on the include path of the tests; the private header is reached from here.
#include "../../../src/net/tunnel_p.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace tandem::net {
namespace {

using namespace std::chrono_literals;

struct socket_pair {
    int ours = -1, theirs = -1;
    socket_pair() {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
            ours = fds[0];
            theirs = fds[1];
        }
    }
    ~socket_pair() {
        if (theirs >= 0) ::close(theirs);
    }
};

bool write_all(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string read_exactly(int fd, std::size_t size) {
    std::string out;
    char buf[65536];
    while (out.size() < size) {
        ssize_t n = ::read(fd, buf, std::min(sizeof buf, size - out.size()));
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

std::string pattern(std::size_t n, char base) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(base + i % 23);
    return s;
}

std::unique_ptr<connection> adopt(int fd, std::chrono::milliseconds timeout = 5s) {
    transport_config cfg;
    cfg.read_timeout = timeout;
    auto c = connection::adopt(fd, cfg);
    if (!c) return nullptr;
    return std::move(*c);
}

TEST(connection, echoes_bytes_and_reports_a_loopback_peer) {
    socket_pair sp;
    auto c = adopt(sp.ours);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->loopback());
    EXPECT_FALSE(c->encrypted());
    c->write("a1 NOOP\r\n");
    ASSERT_TRUE(c->flush());
    EXPECT_EQ(read_exactly(sp.theirs, 9), "a1 NOOP\r\n");
    write_all(sp.theirs, "a1 OK done\r\n");
    std::string got;
    while (got.size() < 12) {
        auto r = c->read();
        ASSERT_TRUE(r) << r.error().message();
        got += *r;
    }
    EXPECT_EQ(got, "a1 OK done\r\n");
}

// A server that answers while the client is still sending must not deadlock the client:
// both sides write 8 MB before reading anything, far more than the socket buffers hold.
TEST(connection, writes_and_reads_concurrently_without_deadlock) {
    socket_pair sp;
    auto c = adopt(sp.ours, 20s);
    ASSERT_TRUE(c);
    const std::size_t size = 8 * 1024 * 1024;
    std::string to_server = pattern(size, 'A');
    std::string to_client = pattern(size, 'a');
    std::string server_got;
    std::thread server([&] {
        write_all(sp.theirs, to_client);
        server_got = read_exactly(sp.theirs, size);
    });
    c->write(to_server);
    auto f = c->flush();
    ASSERT_TRUE(f) << f.error().message();
    std::string got;
    while (got.size() < size) {
        auto r = c->read();
        ASSERT_TRUE(r) << r.error().message();
        got += *r;
    }
    server.join();
    EXPECT_EQ(server_got, to_server);
    EXPECT_EQ(got, to_client);
    auto t = c->traffic();
    EXPECT_EQ(t.wire_out, size);
    EXPECT_EQ(t.wire_in, size);
}

TEST(connection, read_timeout_is_errc_timeout_and_the_connection_stays_usable) {
    socket_pair sp;
    auto c = adopt(sp.ours);
    ASSERT_TRUE(c);
    auto start = std::chrono::steady_clock::now();
    auto r = c->read(150ms);
    auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::timeout);
    EXPECT_GE(waited, 140ms);
    EXPECT_LT(waited, 2s);
    write_all(sp.theirs, "* OK late\r\n");
    auto again = c->read(2s);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(*again, "* OK late\r\n");
}

TEST(connection, end_of_stream_is_connection_closed) {
    socket_pair sp;
    auto c = adopt(sp.ours);
    ASSERT_TRUE(c);
    write_all(sp.theirs, "* BYE\r\n");
    ::close(sp.theirs);
    sp.theirs = -1;
    auto first = c->read();
    ASSERT_TRUE(first);
    std::string got = *first;
    result<std::string> r = std::string();
    while ((r = c->read())) got += *r;
    EXPECT_EQ(got, "* BYE\r\n");
    EXPECT_EQ(r.error(), errc::connection_closed);
}

TEST(connection, compress_both_ways_and_takes_back_unread_compressed_bytes) {
    socket_pair sp;
    auto c = adopt(sp.ours);
    ASSERT_TRUE(c);
    deflater server_out;
    inflater server_in;
    // The tagged OK and, in the same segment, the first compressed bytes (RFC 4978 3:
    // compression starts right after the CRLF of the OK).
    std::string first = "c1 OK DEFLATE active\r\n";
    std::string compressed;
    server_out.compress("* OK still there\r\n", compressed);
    write_all(sp.theirs, first + compressed);
    std::string got;
    while (got.size() < first.size() + compressed.size()) {
        auto r = c->read();
        ASSERT_TRUE(r);
        got += *r;
    }
    ASSERT_EQ(got.substr(0, first.size()), first);
    ASSERT_TRUE(c->start_compress(std::string_view(got).substr(first.size())));
    EXPECT_TRUE(c->compressed());
    auto r = c->read();
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, "* OK still there\r\n");

    // A large batch leaves compressed and arrives whole.
    std::string big;
    for (int i = 0; i < 20000; ++i) big += "a" + std::to_string(i) + " NOOP\r\n";
    c->write(big);
    std::string server_plain;
    std::thread server([&] {
        char buf[65536];
        while (server_plain.size() < big.size()) {
            ssize_t n = ::read(sp.theirs, buf, sizeof buf);
            if (n <= 0) break;
            if (!server_in.decompress({buf, static_cast<std::size_t>(n)}, server_plain)) break;
        }
    });
    ASSERT_TRUE(c->flush());
    server.join();
    EXPECT_EQ(server_plain, big);
    auto t = c->traffic();
    EXPECT_LT(t.wire_out, t.plain_out / 3);
}

// 8 MB of one byte compress to a few KB: the reader must still get them in bounded pieces.
TEST(connection, highly_compressible_input_comes_out_in_bounded_pieces) {
    socket_pair sp;
    auto c = adopt(sp.ours);
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->start_compress());
    deflater server_out;
    std::string wire;
    const std::size_t size = 8 * 1024 * 1024;
    server_out.compress(std::string(size, 'x'), wire);
    ASSERT_LT(wire.size(), 64u * 1024);
    write_all(sp.theirs, wire);
    std::size_t total = 0, largest = 0, reads = 0;
    while (total < size) {
        auto r = c->read();
        ASSERT_TRUE(r) << r.error().message();
        ASSERT_EQ(r->find_first_not_of('x'), std::string::npos);
        total += r->size();
        largest = std::max(largest, r->size());
        ++reads;
    }
    EXPECT_EQ(total, size);
    EXPECT_LE(largest, 256u * 1024);
    EXPECT_GE(reads, 32u);
}

TEST(connection, tunnel_runs_a_child_over_a_socketpair_and_reaps_it) {
    transport_config cfg;
    cfg.tunnel = {"/bin/sh", "-c", "read line; echo \"got $line\"; exec cat"};
    cfg.read_timeout = 5s;
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_TRUE(c) << why.message;
    EXPECT_TRUE((*c)->loopback());
    EXPECT_EQ((*c)->peer(), "tunnel: /bin/sh");
    (*c)->write("hello\r\n");
    std::string got;
    while (got.find('\n') == std::string::npos) {
        auto r = (*c)->read();
        ASSERT_TRUE(r) << r.error().message();
        got += *r;
    }
    EXPECT_EQ(got, "got hello\r\n");
    (*c)->close();
    // The child is gone: no zombie left with our process as parent.
    int status;
    EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
}

// The child ends on EOF (a server's imap process after LOGOUT), or after SIGTERM when it
// ignores EOF; either way it is reaped: no zombie, no process left.
TEST(tunnel_child, ends_on_eof_or_on_sigterm_and_is_always_reaped) {
    for (const char* script : {"cat >/dev/null", "exec sleep 30"}) {
        SCOPED_TRACE(script);
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        auto child = tunnel_child::start({"/bin/sh", "-c", script}, sv[1]);
        ::close(sv[1]);
        ASSERT_TRUE(child);
        const pid_t pid = child->pid();
        ASSERT_GT(pid, 0);
        ::close(sv[0]);  // EOF for the child
        child->terminate();
        EXPECT_EQ(child->pid(), -1);
        int status;
        EXPECT_EQ(::waitpid(pid, &status, WNOHANG), -1) << "reaped already";
        EXPECT_EQ(::kill(pid, 0), -1) << "no such process any more";
    }
}

TEST(connection, tunnel_that_cannot_start_reports_the_spawn_step) {
    transport_config cfg;
    cfg.tunnel = {"/nonexistent/tandem-no-such-program"};
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(why.step, step::spawn);
    EXPECT_NE(why.message.find("/nonexistent/tandem-no-such-program"), std::string::npos);
}

TEST(connection, resolve_and_connect_errors_are_told_apart) {
    transport_config cfg;
    cfg.tls = tls_mode::none;
    cfg.host = "no-such-host.invalid";  // RFC 6761: never resolves
    cfg.port = 143;
    cfg.connect_timeout = 5s;
    failure why;
    auto c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(why.step, step::resolve);
    EXPECT_NE(why.message.find("no-such-host.invalid"), std::string::npos);

    // A port nobody listens on: bind one, then close it.
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    cfg.host = "127.0.0.1";
    cfg.port = ntohs(a.sin_port);
    why = {};
    c = connection::open(cfg, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(why.step, step::connect);
    EXPECT_EQ(c.error(), boost::system::errc::connection_refused);
}

TEST(fingerprint, parses_the_forms_people_paste) {
    std::string hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    auto a = parse_fingerprint(hex);
    ASSERT_TRUE(a);
    ASSERT_EQ(a->size(), 32u);
    EXPECT_EQ((*a)[1], 0x11);
    EXPECT_EQ((*a)[31], 0xff);
    std::string colons = format_fingerprint(*a);
    EXPECT_EQ(colons.substr(0, 16), "sha256:00:11:22:");
    auto b = parse_fingerprint(colons);
    ASSERT_TRUE(b);
    EXPECT_EQ(*a, *b);
    EXPECT_FALSE(parse_fingerprint(hex.substr(2)));  // 31 bytes
    EXPECT_FALSE(parse_fingerprint(hex + "0"));      // odd digit count
    EXPECT_FALSE(parse_fingerprint("sha256:zz" + hex.substr(2)));
    EXPECT_FALSE(parse_fingerprint("0:0" + hex.substr(2)));  // colon inside a byte
}

}  // namespace
}  // namespace tandem::net
