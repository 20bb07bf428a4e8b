// SPDX-License-Identifier: MIT
// The Asio driver: callbacks on a private io_context that each blocking call runs until its
// condition holds. One read and one write are kept in flight together while a call waits.
#include "tandem/net/connection.hpp"

#include "tandem/net/deflate.hpp"
#include "tls_p.hpp"
#include "tunnel_p.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <functional>
#include <optional>

namespace tandem::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using generic_socket = asio::generic::stream_protocol::socket;
using clock = std::chrono::steady_clock;

const char* to_string(step s) {
    switch (s) {
        case step::none:
            return "none";
        case step::resolve:
            return "resolve";
        case step::connect:
            return "connect";
        case step::spawn:
            return "spawn";
        case step::tls_handshake:
            return "TLS handshake";
        case step::tls_verify:
            return "TLS verification";
        case step::io:
            return "I/O";
    }
    return "?";
}

namespace {

void set_failure(failure* why, step s, std::string message) {
    if (why) {
        why->step = s;
        why->message = std::move(message);
    }
}

bool loopback_address(const asio::ip::address& a) {
    if (a.is_v4()) return (a.to_v4().to_uint() >> 24) == 127;
    auto v6 = a.to_v6();
    if (v6.is_loopback()) return true;
    if (v6.is_v4_mapped())
        return (asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_uint() >> 24) == 127;
    return false;
}

// End of stream from either layer reads as the server closing the session.
error_code normalise(const error_code& ec) {
    if (ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::broken_pipe)
        return errc::connection_closed;
    return ec;
}

}  // namespace

struct connection::impl {
    transport_config cfg;
    asio::io_context io;  // first member: destroyed last, after every socket
    generic_socket sock{io};
    std::unique_ptr<tls_engine> tls;  // between the compression and the socket
    std::unique_ptr<deflater> def;
    std::unique_ptr<inflater> inf;
    std::optional<tunnel_child> child;
    bool is_loopback = false;
    std::string peer_name;

    std::string inq;      // received, decompressed, not yet read()
    std::string zin;      // received, still compressed: inflated as read() asks for more
    std::string outq;     // written by the caller, not yet compressed or handed to the socket
    std::string writing;  // on the wire now
    std::string sealing;  // compressed, to be encrypted (COMPRESS inside TLS)
    std::array<char, 64 * 1024> rbuf{};
    bool reading = false;
    bool write_busy = false;
    error_code read_error, write_error;
    std::uint64_t progress = 0;  // bumped by every completed read or write
    counters stats;

    explicit impl(const transport_config& c) : cfg(c) {}
    ~impl() { shut(); }

    void start_read() {
        if (reading || read_error || !sock.is_open()) return;
        reading = true;
        sock.async_read_some(asio::buffer(rbuf), [this](const error_code& ec, std::size_t n) {
            reading = false;
            ++progress;
            if (n > 0) {
                stats.wire_in += n;
                if (tls)
                    tls->put_input({rbuf.data(), n});
                else
                    received(rbuf.data(), n);
            }
            if (tls) decrypt();
            if (ec && !read_error) read_error = normalise(ec);
        });
    }

    // Plain text from the socket or from the TLS engine.
    void received(const char* data, std::size_t n) {
        if (inf) {
            zin.append(data, n);
        } else {
            inq.append(data, n);
            stats.plain_in += n;
        }
    }

    // Everything that the input so far decrypts to. What the engine answers by itself (a
    // TLS 1.3 KeyUpdate) goes out with the next write.
    void decrypt() {
        std::string& sink = inf ? zin : inq;
        const std::size_t before = sink.size();
        const int status = tls->read(sink);
        if (!inf) stats.plain_in += sink.size() - before;
        if (status == TANDEM_TLS_CLOSED && !read_error) read_error = errc::connection_closed;
        if (status != TANDEM_TLS_WANT_INPUT && status != TANDEM_TLS_CLOSED && !read_error)
            read_error = errc::tls_failed;
    }

    // Inflates what was received, up to a bound, so that a highly compressible body still
    // reaches the reader in pieces.
    static constexpr std::size_t max_inflated = 256 * 1024;
    void inflate_pending() {
        if (!inf || zin.empty() || inq.size() >= max_inflated) return;
        std::size_t before = inq.size();
        auto used = inf->decompress(zin, inq, max_inflated - inq.size());
        if (!used) {
            read_error = used.error();
            zin.clear();
            return;
        }
        zin.erase(0, *used);
        stats.plain_in += inq.size() - before;
    }

    void start_write() {
        if (write_busy || write_error || !sock.is_open()) return;
        if (outq.empty() && !(tls && tls->has_output())) return;
        writing.clear();
        if (tls) {
            if (!outq.empty() && !seal()) return;
            tls->take_output(writing);
        } else if (def) {
            def->compress(outq, writing);
        } else {
            writing.swap(outq);
        }
        outq.clear();
        write_busy = true;
        auto done = [this](const error_code& ec, std::size_t n) {
            write_busy = false;
            ++progress;
            stats.wire_out += n;
            if (ec) write_error = normalise(ec);
        };
        asio::async_write(sock, asio::buffer(writing), done);
    }

    // Encrypts the queued output (compressed first, under COMPRESS).
    bool seal() {
        int status;
        if (def) {
            sealing.clear();
            def->compress(outq, sealing);
            status = tls->write(sealing);
        } else {
            status = tls->write(outq);
        }
        outq.clear();
        if (status == TANDEM_TLS_OK) return true;
        write_error = errc::tls_failed;
        return false;
    }

    // Runs the io_context until `done()` or `inactivity` passes without any progress.
    // Returns false on timeout. The caller decides which I/O to keep in flight.
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds inactivity,
                   bool keep_io = true) {
        auto deadline = clock::now() + inactivity;
        while (!done()) {
            if (keep_io) {
                start_read();
                start_write();
            }
            std::uint64_t before = progress;
            if (io.run_one_until(deadline) == 0 && io.stopped()) io.restart();
            if (progress != before)
                deadline = clock::now() + inactivity;
            else if (clock::now() >= deadline && !done())
                return false;
        }
        return true;
    }

    // Runs until every handler in flight has completed (after a cancel or a close).
    void drain() {
        if (io.stopped()) io.restart();
        io.poll();
        while (reading || write_busy) {
            if (io.run_one_for(std::chrono::seconds(5)) == 0) break;
        }
        if (io.stopped()) io.restart();
    }

    void shut() {
        error_code ignored;
        if (sock.is_open()) {
            sock.shutdown(asio::socket_base::shutdown_both, ignored);
            sock.close(ignored);
        }
        if (child) {
            child->terminate();
            child.reset();
        }
    }

    // The client handshake, the certificate's verification and the pin. The engine says
    // what it needs; its output is sent and input read until it is done.
    result<void> handshake(failure* why) {
        const std::string& name = cfg.tls_server_name.empty() ? cfg.host : cfg.tls_server_name;
        std::vector<unsigned char> pin;
        if (!cfg.fingerprint.empty()) {
            auto parsed = parse_fingerprint(cfg.fingerprint);
            if (!parsed) {
                set_failure(why, step::tls_verify,
                            "invalid certificate fingerprint (want sha256:AB:CD:... with 32 "
                            "bytes)");
                return errc::invalid_argument;
            }
            pin = std::move(*parsed);
        }
        const tandem_tls_settings settings{name.c_str(), cfg.ca_file.c_str(),
                                           pin.empty() ? nullptr : pin.data(), cfg.verify};
        std::string message;
        tls = tls_engine::create(settings, message);
        if (!tls) {
            set_failure(why, step::tls_handshake, message);
            return errc::tls_failed;
        }
        for (;;) {
            const int status = tls->handshake();
            if (tls->has_output()) {
                if (auto sent = exchange(name, why, false); !sent) return sent.error();
            }
            if (status == TANDEM_TLS_OK) break;
            if (status == TANDEM_TLS_REFUSED) {
                set_failure(why, step::tls_verify, tls->message());
                return errc::tls_failed;
            }
            if (status != TANDEM_TLS_WANT_INPUT) {
                set_failure(why, step::tls_handshake,
                            "TLS handshake with " + name + " failed: " + tls->message());
                return errc::tls_failed;
            }
            if (auto got = exchange(name, why, true); !got) return got.error();
        }
        // The server's first bytes (the greeting) may have come with its last handshake
        // message.
        decrypt();
        return {};
    }

    // One step of the handshake: sends the engine's output, or reads once into it.
    result<void> exchange(const std::string& name, failure* why, bool input) {
        bool done = false;
        error_code xec;
        if (input) {
            sock.async_read_some(asio::buffer(rbuf), [&](const error_code& ec, std::size_t n) {
                done = true;
                xec = ec;
                stats.wire_in += n;
                if (n > 0) tls->put_input({rbuf.data(), n});
            });
        } else {
            writing.clear();
            tls->take_output(writing);
            asio::async_write(sock, asio::buffer(writing),
                              [&](const error_code& ec, std::size_t n) {
                                  done = true;
                                  xec = ec;
                                  stats.wire_out += n;
                              });
        }
        if (!run_until([&] { return done; }, cfg.connect_timeout, false)) {
            error_code ignored;
            sock.close(ignored);
            drain_flag(done);
            set_failure(why, step::tls_handshake, "TLS handshake with " + name + " timed out");
            return errc::timeout;
        }
        if (xec) {
            set_failure(why, step::tls_handshake,
                        "TLS handshake with " + name + " failed: " + normalise(xec).message());
            return errc::tls_failed;
        }
        return {};
    }

    void drain_flag(bool& done) {
        if (io.stopped()) io.restart();
        while (!done) {
            if (io.run_one_for(std::chrono::seconds(5)) == 0) break;
        }
        if (io.stopped()) io.restart();
    }

    result<void> dial(failure* why) {
        tcp::resolver resolver(io);
        bool done = false;
        error_code rec;
        tcp::resolver::results_type endpoints;
        // An address needs no resolver: Asio's asynchronous one starts a thread of its own
        // for getaddrinfo, a few hundred microseconds before the first byte can go out.
        error_code not_address;
        if (auto addr = asio::ip::make_address(cfg.host, not_address); !not_address) {
            endpoints = tcp::resolver::results_type::create(tcp::endpoint(addr, cfg.port), cfg.host,
                                                            std::to_string(cfg.port));
            done = true;
        } else {
            resolver.async_resolve(cfg.host, std::to_string(cfg.port),
                                   [&](const error_code& ec, tcp::resolver::results_type r) {
                                       done = true;
                                       rec = ec;
                                       endpoints = std::move(r);
                                   });
        }
        if (!run_until([&] { return done; }, cfg.connect_timeout, false)) {
            resolver.cancel();
            drain_flag(done);
            set_failure(why, step::resolve, "resolving " + cfg.host + " timed out");
            return errc::timeout;
        }
        if (rec) {
            set_failure(why, step::resolve, "cannot resolve " + cfg.host + ": " + rec.message());
            return rec;
        }
        tcp::socket s(io);
        done = false;
        error_code cec;
        tcp::endpoint connected;
        asio::async_connect(s, endpoints, [&](const error_code& ec, const tcp::endpoint& ep) {
            done = true;
            cec = ec;
            connected = ep;
        });
        if (!run_until([&] { return done; }, cfg.connect_timeout, false)) {
            error_code ignored;
            s.close(ignored);
            drain_flag(done);
            set_failure(
                why, step::connect,
                "connecting to " + cfg.host + ":" + std::to_string(cfg.port) + " timed out");
            return errc::timeout;
        }
        if (cec) {
            set_failure(why, step::connect,
                        "cannot connect to " + cfg.host + ":" + std::to_string(cfg.port) + ": " +
                            cec.message());
            return cec;
        }
        is_loopback = loopback_address(connected.address());
        peer_name = cfg.host + ":" + std::to_string(cfg.port) + " (" +
                    connected.address().to_string() + ")";
        sock = generic_socket(std::move(s));
        return {};
    }

    result<void> spawn(failure* why) {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
            error_code ec(errno, boost::system::system_category());
            set_failure(why, step::spawn, "socketpair: " + ec.message());
            return ec;
        }
        auto c = tunnel_child::start(cfg.tunnel, fds[1]);
        ::close(fds[1]);
        if (!c) {
            ::close(fds[0]);
            set_failure(why, step::spawn,
                        "cannot run tunnel " + cfg.tunnel.front() + ": " + c.error().message());
            return c.error();
        }
        child.emplace(std::move(*c));
        error_code ec;
        sock.assign(asio::generic::stream_protocol(AF_UNIX, 0), fds[0], ec);
        if (ec) {
            ::close(fds[0]);
            set_failure(why, step::spawn, "tunnel socket: " + ec.message());
            return ec;
        }
        is_loopback = true;
        peer_name = "tunnel: " + cfg.tunnel.front();
        return {};
    }
};

connection::connection(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
connection::~connection() = default;

result<std::unique_ptr<connection>> connection::open(const transport_config& config, failure* why) {
    auto p = std::make_unique<impl>(config);
    if (!config.tunnel.empty()) {
        if (auto r = p->spawn(why); !r) return r.error();
    } else {
        if (config.host.empty()) {
            set_failure(why, step::resolve, "no host name given");
            return errc::invalid_argument;
        }
        if (auto r = p->dial(why); !r) return r.error();
        if (config.tls == tls_mode::implicit) {
            if (auto r = p->handshake(why); !r) return r.error();
        }
    }
    return std::unique_ptr<connection>(new connection(std::move(p)));
}

result<std::unique_ptr<connection>> connection::adopt(int fd, const transport_config& config) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return error_code(errno, boost::system::system_category());
    auto p = std::make_unique<impl>(config);
    error_code ec;
    p->sock.assign(asio::generic::stream_protocol(ss.ss_family, 0), fd, ec);
    if (ec) return ec;
    p->is_loopback = ss.ss_family == AF_UNIX;
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        asio::ip::tcp::endpoint ep;
        socklen_t plen = static_cast<socklen_t>(ep.capacity());
        if (::getpeername(fd, ep.data(), &plen) == 0) {
            ep.resize(plen);
            p->is_loopback = loopback_address(ep.address());
        }
    }
    p->peer_name = "fd " + std::to_string(fd);
    return std::unique_ptr<connection>(new connection(std::move(p)));
}

void connection::write(std::string_view bytes) {
    impl_->outq.append(bytes);
    impl_->stats.plain_out += bytes.size();
}

std::size_t connection::pending_output() const {
    return impl_->outq.size() + (impl_->write_busy ? impl_->writing.size() : 0);
}

result<void> connection::flush() {
    return flush(impl_->cfg.read_timeout);
}

result<void> connection::flush(std::chrono::milliseconds inactivity) {
    auto& p = *impl_;
    bool ok =
        p.run_until([&] { return p.write_error || (p.outq.empty() && !p.write_busy); }, inactivity);
    if (p.write_error) return p.write_error;
    if (!ok) return errc::timeout;
    return {};
}

result<std::string> connection::read() {
    return read(impl_->cfg.read_timeout);
}

result<std::string> connection::read(std::chrono::milliseconds timeout) {
    auto& p = *impl_;
    bool ok = p.run_until(
        [&] {
            p.inflate_pending();
            return !p.inq.empty() || p.read_error || p.write_error;
        },
        timeout);
    if (!p.inq.empty()) {
        std::string out;
        out.swap(p.inq);
        return out;
    }
    if (p.read_error) return p.read_error;
    if (p.write_error) return p.write_error;
    if (!ok) return errc::timeout;
    return errc::connection_closed;
}

std::size_t connection::buffered_input() const {
    return impl_->inq.size() + impl_->zin.size();
}

result<void> connection::start_tls(failure* why) {
    auto& p = *impl_;
    if (p.tls || p.child) {
        set_failure(why, step::tls_handshake, "STARTTLS on a connection that cannot take it");
        return errc::invalid_argument;
    }
    if (p.write_busy || !p.outq.empty()) {
        // RFC 9051 6.2.1: nothing may follow STARTTLS before the handshake.
        set_failure(why, step::tls_handshake, "output queued behind STARTTLS");
        return errc::invalid_argument;
    }
    if (p.reading) {
        error_code ignored;
        p.sock.cancel(ignored);
        p.drain();
    }
    if (p.read_error) {
        set_failure(why, step::io,
                    "connection lost before the TLS handshake: " + p.read_error.message());
        return p.read_error;
    }
    // Response injection (CERT VU#555316): whatever arrived in plain text after the tagged OK
    // was not sent by the server we are about to authenticate.
    p.inq.clear();
    error_code ec;
    for (std::size_t n = p.sock.available(ec); !ec && n > 0; n = p.sock.available(ec))
        p.sock.read_some(asio::buffer(p.rbuf.data(), std::min(n, p.rbuf.size())), ec);
    return p.handshake(why);
}

result<void> connection::start_compress(std::string_view unread_input) {
    auto& p = *impl_;
    if (p.def) return errc::invalid_argument;
    p.def = std::make_unique<deflater>();
    p.inf = std::make_unique<inflater>();
    // Everything after the tagged OK is compressed already (RFC 4978 section 3): both the
    // caller's unconsumed bytes and what was received but not read yet.
    std::string raw(unread_input);
    raw += p.inq;
    p.stats.plain_in -= std::min<std::uint64_t>(p.stats.plain_in, raw.size());
    p.inq.clear();
    p.zin = std::move(raw);
    p.inflate_pending();
    if (p.read_error) return p.read_error;
    return {};
}

bool connection::encrypted() const {
    return impl_->tls != nullptr;
}
bool connection::compressed() const {
    return impl_->def != nullptr;
}
bool connection::loopback() const {
    return impl_->is_loopback;
}
std::optional<std::chrono::microseconds> connection::round_trip() const {
    tcp_info info{};
    socklen_t length = sizeof info;
    if (::getsockopt(impl_->sock.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &length) != 0)
        return std::nullopt;  // a socketpair (tunnel): EOPNOTSUPP
    return std::chrono::microseconds(info.tcpi_rtt);
}
std::string connection::peer() const {
    return impl_->peer_name;
}
connection::counters connection::traffic() const {
    return impl_->stats;
}

void connection::close() {
    impl_->shut();
}

result<std::vector<unsigned char>> parse_fingerprint(std::string_view text) {
    if (text.size() > 7 && (text.substr(0, 7) == "sha256:" || text.substr(0, 7) == "SHA256:"))
        text.remove_prefix(7);
    std::vector<unsigned char> out;
    int nibble = -1;
    for (char c : text) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else if (c == ':' && nibble < 0)
            continue;
        else
            return errc::invalid_argument;
        if (nibble < 0) {
            nibble = v;
        } else {
            out.push_back(static_cast<unsigned char>(nibble << 4 | v));
            nibble = -1;
        }
    }
    if (nibble >= 0 || out.size() != 32) return errc::invalid_argument;
    return out;
}

std::string format_fingerprint(const std::vector<unsigned char>& digest) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string s = "sha256:";
    for (std::size_t i = 0; i < digest.size(); ++i) {
        if (i) s += ':';
        s += hex[digest[i] >> 4];
        s += hex[digest[i] & 15];
    }
    return s;
}

}  // namespace tandem::net
