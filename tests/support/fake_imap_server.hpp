// SPDX-License-Identifier: MIT
// A scripted IMAP server for the faults that Dovecot cannot show: a dropped connection, a
// malformed or missing answer, a stall. Plain TCP on 127.0.0.1 only (tests that need TLS use
// the Dovecot fixture). After Dovecot's test-imapc-client (expect, then send) and KIMAP's
// fakeserver transcripts.
//
//     using fis = tandem::test::fake_imap_server;
//     fis server({fis::send("* OK [CAPABILITY IMAP4rev1] ready"),
//                 fis::expect(R"((\S+) LOGIN .*)"),          // the tag is kept as $tag
//                 fis::send("$tag NO [AUTHENTICATIONFAILED] no"),
//                 fis::close()});
//     ... connect the client to 127.0.0.1:server.port() ...
//     EXPECT_TRUE(server.finished());   // the whole script ran, every line matched
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tandem::test {

class fake_imap_server {
  public:
    struct step {
        enum class kind { send, send_raw, expect, expect_bytes, close, accept, wait, stall };
        kind what;
        std::string text;  // send: the line or bytes; expect: the regular expression
        std::size_t count = 0;
        std::chrono::milliseconds duration{0};
    };

    // Sends `line` and CRLF. "$tag" becomes the tag of the last line that matched an expect,
    // "$1".."$9" its capture groups.
    static step send(std::string line) { return {step::kind::send, std::move(line)}; }
    // Sends `bytes` as they are (after the same substitutions); no CRLF is added.
    static step send_raw(std::string bytes) { return {step::kind::send_raw, std::move(bytes)}; }
    // Reads one line (without its CRLF) and checks that the whole line matches `regex`
    // (ECMAScript). The first word of the line becomes $tag (an empty line, the end of a
    // command after a literal, keeps it); the groups of a regex that has some become $1..$9.
    // A mismatch fails the script: it is recorded and the connection is closed.
    static step expect(std::string regex) { return {step::kind::expect, std::move(regex)}; }
    // Reads exactly `n` bytes (a literal that the client sends after a continuation).
    static step expect_bytes(std::size_t n) { return {step::kind::expect_bytes, {}, n}; }
    // Closes the connection.
    static step close() { return {step::kind::close, {}}; }
    // Waits for the next connection (the first one is accepted before the first step).
    static step accept() { return {step::kind::accept, {}}; }
    // Sleeps.
    static step wait(std::chrono::milliseconds ms) { return {step::kind::wait, {}, 0, ms}; }
    // Holds the connection open and silent until the client closes it or the server is
    // destroyed; what the client sends meanwhile is recorded.
    static step stall() { return {step::kind::stall, {}}; }

    // Listens on 127.0.0.1 at a free port and runs the script in a thread of its own.
    explicit fake_imap_server(std::vector<step> script);
    // Stops the script wherever it is and closes the sockets.
    ~fake_imap_server();
    fake_imap_server(const fake_imap_server&) = delete;
    fake_imap_server& operator=(const fake_imap_server&) = delete;

    std::uint16_t port() const { return port_; }

    // Waits up to `timeout` for the script to end; success when it ran to its end with no
    // mismatch, else a failure that says where it stopped and what it received.
    ::testing::AssertionResult finished(
        std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Every byte received from clients so far.
    std::string received() const;
    // The lines received (without CRLF), from the expect steps and the stall.
    std::vector<std::string> received_lines() const;
    // The mismatches and socket errors so far.
    std::vector<std::string> errors() const;
    // Whether the client closed the connection (seen by a read that got end of file).
    bool client_closed() const;

  private:
    void run();
    bool read_line(std::string& line);
    bool read_bytes(std::size_t n, std::string& bytes);
    bool fill();  // false on end of file, error or shutdown
    bool send_all(std::string_view data);
    std::string substitute(const std::string& text) const;
    void fail(std::string what);
    void close_connection();

    std::vector<step> script_;
    int listen_fd_ = -1;
    int conn_fd_ = -1;
    int wake_[2] = {-1, -1};  // a pipe that the destructor writes to end any wait
    std::uint16_t port_ = 0;
    std::string buffer_;
    std::vector<std::string> vars_;  // $tag, $1..$9

    mutable std::mutex mutex_;
    std::condition_variable done_cv_;
    bool done_ = false;
    bool client_closed_ = false;
    std::size_t position_ = 0;
    std::string received_;
    std::vector<std::string> lines_;
    std::vector<std::string> errors_;
    std::thread thread_;
};

// A blocking line client over plain TCP for tests of the test tools (fake server, Dovecot's
// plain port): no IMAP knowledge.
class tcp_line_client {
  public:
    // Throws std::runtime_error when the connection fails.
    explicit tcp_line_client(std::uint16_t port, std::string_view host = "127.0.0.1");
    ~tcp_line_client();
    tcp_line_client(const tcp_line_client&) = delete;
    tcp_line_client& operator=(const tcp_line_client&) = delete;

    bool send(std::string_view bytes);
    bool send_line(std::string_view line) { return send(std::string(line) + "\r\n"); }
    // The next line without CRLF; nullopt on end of file or timeout.
    std::optional<std::string> read_line(
        std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // True when the server closed the connection within `timeout` (unread data is skipped).
    bool closed_by_peer(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    void close();

  private:
    int fd_ = -1;
    std::string buffer_;
};

}  // namespace tandem::test
