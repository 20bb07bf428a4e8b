// SPDX-License-Identifier: MIT
#include "support/fake_imap_server.hpp"

#include <cerrno>
#include <cstring>
#include <regex>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tandem::test {

namespace {

int loopback_socket() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    return fd;
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
}

const char* kind_name(fake_imap_server::step::kind k) {
    using kind = fake_imap_server::step::kind;
    switch (k) {
        case kind::send:
            return "send";
        case kind::send_raw:
            return "send_raw";
        case kind::expect:
            return "expect";
        case kind::expect_bytes:
            return "expect_bytes";
        case kind::close:
            return "close";
        case kind::accept:
            return "accept";
        case kind::wait:
            return "wait";
        case kind::stall:
            return "stall";
    }
    return "?";
}

}  // namespace

fake_imap_server::fake_imap_server(std::vector<step> script)
    : script_(std::move(script)), vars_(10) {
    listen_fd_ = loopback_socket();
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto addr = loopback(0);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 8) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error(std::string("fake_imap_server: listen: ") + std::strerror(errno));
    }
    port_ = ntohs(addr.sin_port);
    if (::pipe2(wake_, O_CLOEXEC) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error("fake_imap_server: pipe2 failed");
    }
    thread_ = std::thread([this] { run(); });
}

fake_imap_server::~fake_imap_server() {
    (void)!::write(wake_[1], "x", 1);
    thread_.join();
    close_connection();
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
}

void fake_imap_server::close_connection() {
    if (conn_fd_ >= 0) ::close(conn_fd_);
    conn_fd_ = -1;
    buffer_.clear();
}

void fake_imap_server::fail(std::string what) {
    std::lock_guard lock(mutex_);
    errors_.push_back("step " + std::to_string(position_ + 1) + " (" +
                      kind_name(script_[position_].what) + "): " + std::move(what));
}

bool fake_imap_server::fill() {
    pollfd p[2] = {{conn_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    for (;;) {
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (p[1].revents) return false;
        break;
    }
    char buf[16384];
    ssize_t n = ::recv(conn_fd_, buf, sizeof buf, 0);
    std::lock_guard lock(mutex_);
    if (n <= 0) {
        client_closed_ = true;
        return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    received_.append(buf, static_cast<std::size_t>(n));
    return true;
}

bool fake_imap_server::read_line(std::string& line) {
    std::size_t eol;
    while ((eol = buffer_.find('\n')) == std::string::npos)
        if (!fill()) return false;
    line = buffer_.substr(0, eol);
    buffer_.erase(0, eol + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::lock_guard lock(mutex_);
    lines_.push_back(line);
    return true;
}

bool fake_imap_server::read_bytes(std::size_t n, std::string& bytes) {
    while (buffer_.size() < n)
        if (!fill()) return false;
    bytes = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return true;
}

bool fake_imap_server::send_all(std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(conn_fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string fake_imap_server::substitute(const std::string& text) const {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '$' && text.compare(i + 1, 3, "tag") == 0) {
            out += vars_[0];
            i += 3;
        } else if (text[i] == '$' && i + 1 < text.size() && text[i + 1] >= '1' &&
                   text[i + 1] <= '9') {
            out += vars_[static_cast<std::size_t>(text[i + 1] - '0')];
            ++i;
        } else {
            out += text[i];
        }
    }
    return out;
}

void fake_imap_server::run() {
    auto accept_one = [this]() -> bool {
        close_connection();
        pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        while (::poll(p, 2, -1) < 0)
            if (errno != EINTR) return false;
        if (p[1].revents) return false;
        conn_fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        return conn_fd_ >= 0;
    };
    auto finish = [this](bool completed) {
        std::lock_guard lock(mutex_);
        if (completed) position_ = script_.size();
        done_ = completed;
        done_cv_.notify_all();
    };

    if (!accept_one()) return finish(false);
    static const std::regex logout_command(R"(^\S+ LOGOUT$)", std::regex::icase);
    bool logged_out = false;
    for (std::size_t i = 0; i < script_.size(); ++i) {
        {
            std::lock_guard lock(mutex_);
            position_ = i;
        }
        const step& s = script_[i];
        switch (s.what) {
            case step::kind::send:
            case step::kind::send_raw: {
                std::string data = substitute(s.text);
                if (s.what == step::kind::send) data += "\r\n";
                if (conn_fd_ < 0 || !send_all(data)) {
                    // A client may close as soon as its LOGOUT is out (tandem does): the
                    // BYE and the OK then have no one to go to, and the script is done.
                    if (logged_out) {
                        close_connection();
                        return finish(true);
                    }
                    fail("cannot send: " + data);
                    close_connection();
                    return finish(false);
                }
                break;
            }
            case step::kind::expect: {
                std::string line;
                if (conn_fd_ < 0 || !read_line(line)) {
                    fail("the connection ended before a line matching: " + s.text);
                    close_connection();
                    return finish(false);
                }
                logged_out = logged_out || std::regex_search(line, logout_command);
                std::smatch m;
                if (!std::regex_match(line, m, std::regex(s.text))) {
                    fail("\"" + line + "\" does not match: " + s.text);
                    close_connection();
                    return finish(false);
                }
                // An empty line ends a command after its literal: the command's tag stays.
                if (!line.empty()) vars_[0] = line.substr(0, line.find(' '));
                if (m.size() > 1)
                    for (std::size_t g = 1; g < vars_.size(); ++g)
                        vars_[g] = g < m.size() ? m[g].str() : "";
                break;
            }
            case step::kind::expect_bytes: {
                std::string bytes;
                if (conn_fd_ < 0 || !read_bytes(s.count, bytes)) {
                    fail("the connection ended before " + std::to_string(s.count) + " bytes");
                    close_connection();
                    return finish(false);
                }
                break;
            }
            case step::kind::close:
                close_connection();
                break;
            case step::kind::accept:
                if (!accept_one()) return finish(false);
                break;
            case step::kind::wait: {
                pollfd p{wake_[0], POLLIN, 0};
                if (::poll(&p, 1, static_cast<int>(s.duration.count())) > 0) return finish(false);
                break;
            }
            case step::kind::stall: {
                // Lines still count as received; the stall ends when the client gives up.
                if (conn_fd_ >= 0) {
                    std::string line;
                    while (read_line(line)) {
                    }
                    std::lock_guard lock(mutex_);
                    if (!client_closed_) {  // woken by the destructor
                        done_cv_.notify_all();
                        return;
                    }
                }
                break;
            }
        }
    }
    finish(true);
}

::testing::AssertionResult fake_imap_server::finished(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    done_cv_.wait_for(lock, timeout, [this] { return done_ || !errors_.empty(); });
    auto details = [this] {
        std::string s = "\nreceived:\n" + received_;
        for (const auto& e : errors_) s += "\nerror: " + e;
        return s;
    };
    if (!errors_.empty()) return ::testing::AssertionFailure() << "the script failed" << details();
    if (!done_)
        return ::testing::AssertionFailure()
               << "the script is still at step " << position_ + 1 << " of " << script_.size()
               << " (" << kind_name(script_[std::min(position_, script_.size() - 1)].what) << ")"
               << details();
    return ::testing::AssertionSuccess();
}

std::string fake_imap_server::received() const {
    std::lock_guard lock(mutex_);
    return received_;
}

std::vector<std::string> fake_imap_server::received_lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
}

std::vector<std::string> fake_imap_server::errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
}

bool fake_imap_server::client_closed() const {
    std::lock_guard lock(mutex_);
    return client_closed_;
}

tcp_line_client::tcp_line_client(std::uint16_t port, std::string_view host) {
    fd_ = loopback_socket();
    auto addr = loopback(port);
    if (::inet_pton(AF_INET, std::string(host).c_str(), &addr.sin_addr) != 1 ||
        ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int e = errno;
        ::close(fd_);
        throw std::runtime_error("tcp_line_client: connect to port " + std::to_string(port) + ": " +
                                 std::strerror(e));
    }
}

tcp_line_client::~tcp_line_client() {
    close();
}

void tcp_line_client::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool tcp_line_client::send(std::string_view bytes) {
    while (!bytes.empty()) {
        if (fd_ < 0) return false;
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::optional<std::string> tcp_line_client::read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t eol;
    while ((eol = buffer_.find('\n')) == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (fd_ < 0 || left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return std::nullopt;
        char buf[16384];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return std::nullopt;
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
    std::string line = buffer_.substr(0, eol);
    buffer_.erase(0, eol + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

bool tcp_line_client::closed_by_peer(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (fd_ < 0 || left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return false;
        char buf[16384];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
        if (n < 0) return false;
    }
}

}  // namespace tandem::test
