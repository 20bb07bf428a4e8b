// SPDX-License-Identifier: MIT
// A byte stream to an IMAP server: plain TCP, implicit TLS, STARTTLS, or a tunnel command
// over a socketpair, with optional COMPRESS=DEFLATE (RFC 4978). Asio and OpenSSL stay
// behind the pimpl; each connection owns its own io_context and is used from one thread.
//
// The calls block, but inside every call that waits (read, flush) the queued output is
// written while input is read, so a large pipelined flight can never deadlock against a
// server that is writing back.
#pragma once

#include "tandem/util/error.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::net {

enum class tls_mode {
    implicit,  // TLS from the first byte (port 993, RFC 8314)
    starttls,  // plain first; the session calls start_tls() after the tagged OK to STARTTLS
    none,      // plain text: only when the configuration says so explicitly
};

struct transport_config {
    std::string host;
    std::uint16_t port = 993;
    tls_mode tls = tls_mode::implicit;
    // A command to run instead of connecting (`/usr/lib/dovecot/imap -c CONF`, `ssh host ...`).
    // Its stdin and stdout are one end of a socketpair; tls is ignored. Killed on close.
    std::vector<std::string> tunnel;
    // Trust anchors: a PEM file; empty means the system store. With a CA file or a pin the
    // system store is not loaded at all (it costs 20-35 ms).
    std::string ca_file;
    // `sha256:AB:CD:...` or plain hex: the SHA-256 of the server certificate (DER). When set,
    // it replaces CA and host-name verification.
    std::string fingerprint;
    // Name to verify and to send as SNI; empty means `host`.
    std::string tls_server_name;
    // False (`tls-insecure-skip-verify`): the certificate chain and the host name are not
    // checked, so any certificate, self-signed ones too, is accepted. A fingerprint, when
    // set, is still compared.
    bool verify = true;
    std::chrono::milliseconds connect_timeout{30'000};  // resolve + connect + TLS handshake
    std::chrono::milliseconds read_timeout{120'000};    // no byte in either direction this long
};

// Where opening (or upgrading) failed, for a `check-config --connect` that reports each step.
enum class step { none, resolve, connect, spawn, tls_handshake, tls_verify, io };
const char* to_string(step s);

struct failure {
    net::step step = step::none;
    std::string message;  // one line for a person: host, reason, certificate names...
};

class connection {
  public:
    // Resolves, connects (trying each address) and, for implicit TLS, completes the handshake
    // and the verification; or spawns the tunnel. On failure `why` (when given) says at which
    // step and why. Errors: the resolver's and the socket's codes, errc::timeout,
    // errc::tls_failed.
    static result<std::unique_ptr<connection>> open(const transport_config& config,
                                                    failure* why = nullptr);
    // Adopts an already connected stream socket (a socketpair end, a TCP socket): for tests
    // and for callers that made the socket themselves. `config` supplies TLS settings for a
    // later start_tls() and the timeouts.
    static result<std::unique_ptr<connection>> adopt(int fd, const transport_config& config);

    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Queues bytes; nothing is sent until the next read() or flush().
    void write(std::string_view bytes);
    // Bytes queued and not yet handed to the socket (after compression, if any).
    std::size_t pending_output() const;
    // Sends everything queued, reading whatever arrives meanwhile into the input buffer.
    // errc::timeout when neither direction made progress for the read timeout.
    result<void> flush();
    result<void> flush(std::chrono::milliseconds inactivity);

    // Returns the input received so far (at least one byte), writing queued output meanwhile.
    // Waits up to the read timeout (or `timeout`) for the first byte: errc::timeout then, and
    // the connection stays usable. EOF is errc::connection_closed.
    result<std::string> read();
    result<std::string> read(std::chrono::milliseconds timeout);
    // Bytes already received and not yet returned by read().
    std::size_t buffered_input() const;

    // STARTTLS: after the tagged OK was read. Every input byte already received and not read
    // is discarded (RFC 9051 6.2.1: response injection before the handshake), then the
    // handshake runs with the configuration's verification.
    result<void> start_tls(failure* why = nullptr);
    // COMPRESS=DEFLATE: after the tagged OK was read. `unread_input` gives back the bytes
    // that followed the OK line and were not consumed (they are already compressed).
    result<void> start_compress(std::string_view unread_input = {});

    bool encrypted() const;
    bool compressed() const;
    // A loopback address (127.0.0.0/8, ::1) or a tunnel: where compression gains nothing.
    bool loopback() const;
    // The kernel's smoothed round-trip time of a TCP connection (TCP_INFO's tcpi_rtt);
    // nullopt for a tunnel or another kind of socket.
    std::optional<std::chrono::microseconds> round_trip() const;
    // "imap.example.org:993 (203.0.113.5)", or "tunnel: /usr/lib/dovecot/imap".
    std::string peer() const;
    // Bytes on the wire / before compression, both directions, for statistics and tests.
    struct counters {
        std::uint64_t wire_in = 0, wire_out = 0, plain_in = 0, plain_out = 0;
    };
    counters traffic() const;

    // Closes the socket; a tunnel child gets EOF, then SIGTERM, and is reaped. Idempotent.
    void close();

    struct impl;

  private:
    explicit connection(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

// Parses `sha256:AB:CD:...`, `AB:CD...` or plain hex into 32 bytes; errc::invalid_argument.
result<std::vector<unsigned char>> parse_fingerprint(std::string_view text);
// `sha256:AB:CD:...` (upper-case hex, colons): the form error messages and pins use.
std::string format_fingerprint(const std::vector<unsigned char>& digest);

}  // namespace tandem::net
