// SPDX-License-Identifier: MIT
#include "support/fault_proxy.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tandem::test {

namespace {

constexpr std::size_t record_limit = 1 << 20;
// A side whose outgoing buffer holds this much is not read until it drains.
constexpr std::size_t pending_limit = 1 << 18;

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
}

void set_nonblocking(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

std::string upper(std::string s) {
    for (char& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}

// The words of a command line: tag and command name, upper case.
std::pair<std::string, std::string> tag_and_command(const std::string& line) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) return {};
    auto rest = line.substr(sp + 1);
    auto end = rest.find_first_of(" \r\n");
    return {line.substr(0, sp), upper(rest.substr(0, end))};
}

// Removes the word STARTTLS from a CAPABILITY line, keeping everything else as it was.
std::string strip_word(const std::string& line, bool& changed) {
    std::string u = upper(line);
    if (u.find("CAPABILITY") == std::string::npos) return line;
    std::string out;
    std::size_t i = 0;
    while (i < line.size()) {
        auto at = u.find(" STARTTLS", i);
        if (at == std::string::npos) break;
        auto after = at + 9;
        bool word_end = after >= u.size() || u[after] == ' ' || u[after] == ']' ||
                        u[after] == '\r' || u[after] == '\n';
        out += line.substr(i, at - i);
        if (!word_end) out += line.substr(at, 9);
        if (word_end) changed = true;
        i = after;
    }
    out += line.substr(i);
    return out;
}

}  // namespace

struct fault_proxy::impl {
    struct conn {
        int c = -1;  // client
        int s = -1;  // server; -1 while held without an upstream
        std::string to_c, to_s;
        // Client bytes held back (fault::late) with the time each piece is due at the server.
        std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> held;
        bool late = false;  // fault::late's command came
        bool c_eof = false, s_eof = false;
        std::string c_line;  // the client's current line, for the commands we watch
        std::string s_line;  // a server line held back until complete (strip, inject)
        bool raw = false;    // past STARTTLS: no more line processing
        std::string starttls_tag;
        bool logout = false;
        std::size_t record = 0;
        bool dead = false;
    };

    std::uint16_t upstream;
    int listen_fd = -1;
    int wake[2] = {-1, -1};
    std::atomic<bool> stop{false};
    std::thread thread;

    mutable std::mutex mutex;
    fault_plan plan;
    bool fired = false;
    bool fired_mid_session = false;
    bool stripped = false;
    bool injected = false;
    std::size_t connections = 0;
    std::atomic<std::size_t> open{0};  // in `conns` and not dead
    std::uint64_t forwarded[2] = {0, 0};
    std::vector<std::pair<std::string, std::string>> records;  // client, server

    std::vector<std::unique_ptr<conn>> conns;  // the thread's own

    void poke() {
        char x = 1;
        [[maybe_unused]] auto n = ::write(wake[1], &x, 1);
    }

    void close_conn(conn& k) {
        if (!k.dead) --open;
        if (k.c >= 0) ::close(k.c);
        if (k.s >= 0) ::close(k.s);
        k.c = k.s = -1;
        k.dead = true;
    }

    // Under the lock. A cut delivers what came before it (best effort: the sockets' buffers
    // take it), then the network goes down.
    void fire(conn& k) {
        fired = true;
        if (plan.what == fault::cut) {
            fired_mid_session = fired_mid_session || !k.logout;
            for (auto& other : conns) {
                if (other->dead) continue;
                flush(other->c, other->to_c);
                if (other->s >= 0) flush(other->s, other->to_s);
                close_conn(*other);
            }
        }
    }

    bool network_down() const { return fired && plan.what == fault::cut; }
    bool stalled() const { return fired && plan.what == fault::stall; }

    // Under the lock: `data` read from one side goes on to the other, up to the byte where
    // the fault fires.
    void forward(conn& k, direction d, std::string data) {
        auto& to = d == direction::client_to_server ? k.to_s : k.to_c;
        auto& n = forwarded[static_cast<int>(d)];
        const bool late = plan.what == fault::late && (k.late || plan.command.empty());
        if (d == direction::client_to_server && (late || !k.held.empty())) {
            auto due = std::chrono::steady_clock::now();
            if (late) due += plan.delay;
            if (!k.held.empty()) due = std::max(due, k.held.back().first);
            n += data.size();
            k.held.emplace_back(due, std::move(data));
            return;
        }
        if ((plan.what != fault::cut && plan.what != fault::stall) || plan.dir != d || fired ||
            n + data.size() <= plan.after) {
            n += data.size();
            to += data;
            return;
        }
        auto keep = static_cast<std::size_t>(plan.after - n);
        n += keep;
        to += data.substr(0, keep);
        fire(k);
    }

    void from_client(conn& k, std::string data) {
        std::lock_guard lock(mutex);
        auto& rec = records[k.record].first;
        if (rec.size() < record_limit) rec += data.substr(0, record_limit - rec.size());
        if (k.s < 0 || stalled() || network_down()) return;
        if (!k.raw) {
            k.c_line += data;
            std::size_t eol;
            while ((eol = k.c_line.find("\r\n")) != std::string::npos) {
                auto [tag, command] = tag_and_command(k.c_line.substr(0, eol));
                if (command == "STARTTLS") k.starttls_tag = tag;
                if (command == "LOGOUT") k.logout = true;
                if (plan.what == fault::late && command == plan.command) k.late = true;
                k.c_line.erase(0, eol + 2);
            }
            if (k.c_line.size() > 4096) k.c_line.erase(0, k.c_line.size() - 64);
        }
        forward(k, direction::client_to_server, std::move(data));
    }

    void from_server(conn& k, std::string data) {
        std::lock_guard lock(mutex);
        auto& rec = records[k.record].second;
        if (rec.size() < record_limit) rec += data.substr(0, record_limit - rec.size());
        if (stalled() || network_down()) return;
        bool lines =
            !k.raw && (plan.what == fault::strip_starttls || plan.what == fault::inject_before_tls);
        if (lines) {
            k.s_line += data;
            std::string out;
            std::size_t eol;
            while (!k.raw && (eol = k.s_line.find("\r\n")) != std::string::npos) {
                auto line = k.s_line.substr(0, eol + 2);
                k.s_line.erase(0, eol + 2);
                if (plan.what == fault::strip_starttls) {
                    out += strip_word(line, stripped);
                } else {
                    out += line;
                    if (!k.starttls_tag.empty() && line.rfind(k.starttls_tag + " ", 0) == 0) {
                        out += plan.inject;
                        injected = true;
                        k.raw = true;
                    }
                }
            }
            if (k.raw) {
                out += k.s_line;
                k.s_line.clear();
            }
            data = std::move(out);
        }
        forward(k, direction::server_to_client, std::move(data));
    }

    void accept_one() {
        int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return;
        auto k = std::make_unique<conn>();
        k->c = fd;
        {
            std::lock_guard lock(mutex);
            ++connections;
            records.emplace_back();
            k->record = records.size() - 1;
            if (network_down()) {
                ::close(fd);
                return;
            }
            if (stalled()) {
                conns.push_back(std::move(k));
                ++open;
                return;
            }
        }
        int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        auto addr = loopback(upstream);
        if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            if (s >= 0) ::close(s);
            ::close(fd);
            return;
        }
        set_nonblocking(s);
        int one = 1;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        k->s = s;
        conns.push_back(std::move(k));
        ++open;
    }

    // Reads once from `fd`; "" and `eof` set at end of file or on an error.
    static std::string read_some(int fd, std::size_t max, bool& eof) {
        std::string buf(max, '\0');
        auto n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n > 0) {
            buf.resize(static_cast<std::size_t>(n));
            return buf;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) eof = true;
        return {};
    }

    static bool flush(int fd, std::string& pending) {
        while (!pending.empty()) {
            auto n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
            if (n > 0) {
                pending.erase(0, static_cast<std::size_t>(n));
                continue;
            }
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
        }
        return true;
    }

    // Moves the held client bytes that are due to the server's queue; returns the time until
    // the next ones are (at most `cap`).
    static std::chrono::milliseconds release_due(conn& k, std::chrono::milliseconds cap) {
        const auto now = std::chrono::steady_clock::now();
        while (!k.held.empty() && k.held.front().first <= now) {
            k.to_s += k.held.front().second;
            k.held.pop_front();
        }
        if (k.held.empty()) return cap;
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(k.held.front().first - now);
        return std::min(cap, wait);
    }

    void run() {
        while (!stop) {
            std::chrono::milliseconds timeout{200};
            {
                std::lock_guard lock(mutex);
                for (auto& k : conns)
                    if (!k->dead) timeout = release_due(*k, timeout);
            }
            std::vector<pollfd> fds{{wake[0], POLLIN, 0}, {listen_fd, POLLIN, 0}};
            for (auto& k : conns) {
                short ce = 0, se = 0;
                if (!k->c_eof && k->to_s.size() < pending_limit) ce |= POLLIN;
                if (!k->to_c.empty()) ce |= POLLOUT;
                if (k->s >= 0) {
                    if (!k->s_eof && k->to_c.size() < pending_limit) se |= POLLIN;
                    if (!k->to_s.empty()) se |= POLLOUT;
                }
                fds.push_back({k->c, ce, 0});
                fds.push_back({k->s, se, 0});  // a negative fd is ignored by poll
            }
            if (::poll(fds.data(), fds.size(), static_cast<int>(timeout.count())) < 0 &&
                errno != EINTR)
                break;
            if (fds[0].revents & POLLIN) {
                char buf[64];
                while (::read(wake[0], buf, sizeof buf) > 0) {
                }
            }
            if (stop) break;
            if (fds[1].revents & POLLIN) accept_one();

            fault_plan p;
            {
                std::lock_guard lock(mutex);
                p = plan;
            }
            bool slow = p.what == fault::slow;
            std::size_t max = slow ? std::max<std::size_t>(1, p.chunk) : 65536;
            // Connections accepted in this pass have no entry in fds yet.
            std::size_t polled = (fds.size() - 2) / 2;
            for (std::size_t i = 0; i < polled && i < conns.size(); ++i) {
                auto& k = *conns[i];
                if (k.dead) continue;
                auto cr = fds[2 + 2 * i].revents;
                auto sr = fds[3 + 2 * i].revents;
                if (cr & (POLLIN | POLLHUP | POLLERR)) {
                    auto data = read_some(k.c, max, k.c_eof);
                    if (!data.empty()) {
                        from_client(k, std::move(data));
                        if (slow) std::this_thread::sleep_for(p.delay);
                    }
                }
                if (k.dead) continue;
                if (k.s >= 0 && (sr & (POLLIN | POLLHUP | POLLERR))) {
                    auto data = read_some(k.s, max, k.s_eof);
                    if (!data.empty()) {
                        from_server(k, std::move(data));
                        if (slow) std::this_thread::sleep_for(p.delay);
                    }
                }
                if (k.dead) continue;
                // A client that is gone takes no more answers; what it sent still goes on.
                if (!flush(k.c, k.to_c)) {
                    k.c_eof = true;
                    k.to_c.clear();
                }
                bool ok = k.s < 0 || flush(k.s, k.to_s);
                // One side ended: what it sent is delivered, then both go.
                bool ended = (k.c_eof && k.to_s.empty() && k.held.empty()) ||
                             (k.s_eof && k.to_c.empty()) || (k.s < 0 && k.c_eof);
                if (!ok || ended) close_conn(k);
            }
            {
                std::lock_guard lock(mutex);
                conns.erase(std::remove_if(conns.begin(), conns.end(),
                                           [](const auto& k) { return k->dead; }),
                            conns.end());
            }
        }
        std::lock_guard lock(mutex);
        for (auto& k : conns) close_conn(*k);
        conns.clear();
    }
};

fault_proxy::fault_proxy(std::uint16_t upstream_port, fault_plan plan)
    : impl_(std::make_unique<impl>()) {
    impl_->upstream = upstream_port;
    impl_->plan = std::move(plan);
    impl_->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (impl_->listen_fd < 0)
        throw std::runtime_error(std::string("fault_proxy: socket: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(impl_->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto addr = loopback(0);
    if (::bind(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(impl_->listen_fd, 64) != 0) {
        ::close(impl_->listen_fd);
        throw std::runtime_error(std::string("fault_proxy: listen: ") + std::strerror(errno));
    }
    if (::pipe2(impl_->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        ::close(impl_->listen_fd);
        throw std::runtime_error("fault_proxy: pipe2 failed");
    }
    impl_->thread = std::thread([this] { impl_->run(); });
}

fault_proxy::~fault_proxy() {
    impl_->stop = true;
    impl_->poke();
    impl_->thread.join();
    ::close(impl_->listen_fd);
    ::close(impl_->wake[0]);
    ::close(impl_->wake[1]);
}

std::uint16_t fault_proxy::port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    ::getsockname(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
}

void fault_proxy::set(fault_plan plan) {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->plan = std::move(plan);
        impl_->fired = impl_->fired_mid_session = impl_->stripped = impl_->injected = false;
        impl_->connections = 0;
        impl_->forwarded[0] = impl_->forwarded[1] = 0;
        // Connections still open keep writing into their own records.
        for (auto& r : impl_->records) r = {};
    }
    impl_->poke();
}

bool fault_proxy::fired() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->fired;
}
bool fault_proxy::fired_mid_session() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->fired_mid_session;
}
bool fault_proxy::stripped() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->stripped;
}
bool fault_proxy::injected() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->injected;
}
std::size_t fault_proxy::connections() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->connections;
}
std::size_t fault_proxy::open_connections() const {
    return impl_->open;
}
std::uint64_t fault_proxy::bytes(direction d) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->forwarded[static_cast<int>(d)];
}
std::string fault_proxy::client_bytes() const {
    std::lock_guard lock(impl_->mutex);
    std::string out;
    for (const auto& r : impl_->records) out += r.first;
    return out;
}
std::string fault_proxy::server_bytes() const {
    std::lock_guard lock(impl_->mutex);
    std::string out;
    for (const auto& r : impl_->records) out += r.second;
    return out;
}

}  // namespace tandem::test
