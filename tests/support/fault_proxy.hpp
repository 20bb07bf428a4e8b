// SPDX-License-Identifier: MIT
// A TCP proxy for fault tests: 127.0.0.1 at a free port, every connection relayed to
// 127.0.0.1:<upstream> (Dovecot's plain port), with a fault applied as planned:
//
//     tandem::test::fault_proxy proxy(server.imap_port());
//     proxy.set({.what = fault::cut, .dir = direction::server_to_client, .after = 5000});
//     ... point the client at 127.0.0.1:proxy.port() ...
//     EXPECT_TRUE(proxy.fired());
//
// One thread relays every connection (poll, non-blocking sockets); the test's thread plans
// the fault between runs and reads what went through. Counters and records start again at
// each set().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace tandem::test {

enum class direction { client_to_server, server_to_client };

enum class fault {
    pass,
    // After `after` bytes in `dir` (counted over all connections), the next byte is not
    // forwarded: every connection is closed there and then, and connections made later are
    // closed as soon as they are accepted (the network is down until the next set()).
    cut,
    // After `after` bytes in `dir`, nothing more is forwarded either way and nothing is
    // closed: connections stay open and silent; later connections are accepted and held.
    stall,
    // Every read is at most `chunk` bytes and is followed by a pause of `delay`.
    slow,
    // What a client sends from its first `command` on (every byte when empty) reaches the
    // server `delay` after the proxy read it, even once the client is gone and after a later
    // set(): the bytes a killed client had on their way, which a server goes on acting upon
    // (the connection closes once they are delivered).
    late,
    // A man in the middle: the word STARTTLS is removed from every server line that holds
    // CAPABILITY (the greeting's code and CAPABILITY responses).
    strip_starttls,
    // A man in the middle: `inject` is sent to the client right after the server's tagged
    // answer to STARTTLS, in the same write, before the TLS handshake (RFC 3207 section 5's
    // warning, the class of CVE-2011-0411 turned towards the client).
    inject_before_tls,
};

struct fault_plan {
    fault what = fault::pass;
    direction dir = direction::server_to_client;
    std::uint64_t after = 0;                                     // cut, stall
    std::size_t chunk = 256;                                     // slow
    std::chrono::milliseconds delay{0};                          // slow, late
    std::string inject = "* BYE [ALERT] INJECTED-BY-PROXY\r\n";  // inject_before_tls
    std::string command;                                         // late

    static fault_plan cut_after(direction d, std::uint64_t bytes) {
        fault_plan p;
        p.what = fault::cut;
        p.dir = d;
        p.after = bytes;
        return p;
    }
    static fault_plan stall_after(direction d, std::uint64_t bytes) {
        fault_plan p = cut_after(d, bytes);
        p.what = fault::stall;
        return p;
    }
    static fault_plan slow(std::size_t chunk, std::chrono::milliseconds delay) {
        fault_plan p;
        p.what = fault::slow;
        p.chunk = chunk;
        p.delay = delay;
        return p;
    }
    static fault_plan late(std::chrono::milliseconds delay, std::string from_command = {}) {
        fault_plan p;
        p.what = fault::late;
        p.delay = delay;
        p.command = std::move(from_command);
        return p;
    }
    static fault_plan only(fault what) {
        fault_plan p;
        p.what = what;
        return p;
    }
};

class fault_proxy {
  public:
    // Listens at once; throws std::runtime_error when it cannot.
    explicit fault_proxy(std::uint16_t upstream_port, fault_plan plan = {});
    // Closes every connection and stops the thread.
    ~fault_proxy();
    fault_proxy(const fault_proxy&) = delete;
    fault_proxy& operator=(const fault_proxy&) = delete;

    std::uint16_t port() const;

    // The fault for what goes through from now on (open connections included); clears the
    // counters, the records and the fired state.
    void set(fault_plan plan);

    // Whether the cut or the stall happened.
    bool fired() const;
    // Whether the cut hit a connection whose client had not yet sent LOGOUT: the client
    // lost a command or an answer that it waits for, so its run cannot have succeeded.
    // (The proxy reads the protocol: the client must not use COMPRESS.)
    bool fired_mid_session() const;
    // Whether a STARTTLS word was removed, the bytes were injected.
    bool stripped() const;
    bool injected() const;
    std::size_t connections() const;         // accepted
    std::size_t open_connections() const;    // still relayed (or holding late bytes)
    std::uint64_t bytes(direction d) const;  // forwarded
    // What the clients sent (forwarded or not) and what the server sent, the first MiB of
    // each connection, connections one after the other in the order they were accepted.
    std::string client_bytes() const;
    std::string server_bytes() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace tandem::test
