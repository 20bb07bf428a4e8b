// SPDX-License-Identifier: MIT
#include "tandem/util/fs.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

namespace tandem::fs {
namespace {

error_code last_error() {
    return error_code(errno, boost::system::generic_category());
}

// Retries a call that EINTR interrupted (a signal for the progress display, say).
template <class F>
auto no_eintr(F f) {
    for (;;) {
        auto r = f();
        if (r >= 0 || errno != EINTR) return r;
    }
}

result<void> write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = no_eintr([&] { return ::write(fd, data.data(), data.size()); });
        if (n < 0) return last_error();
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    off_t off = 0;
    for (;;) {
        ssize_t n = no_eintr([&] { return ::pread(fd, buf, sizeof buf, off); });
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        off += n;
        if (out.size() > 64 * 1024) break;  // a holder line is short; never read a huge file
    }
    return out;
}

std::optional<lock_holder> parse_holder(std::string_view text) {
    // "<pid>\n<command>\n"
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    lock_holder h;
    auto pid_text = text.substr(0, nl);
    auto [p, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), h.pid);
    if (ec != std::errc() || p != pid_text.data() + pid_text.size() || h.pid <= 0)
        return std::nullopt;
    auto rest = text.substr(nl + 1);
    if (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
    h.command = std::string(rest);
    return h;
}

}  // namespace

unique_fd& unique_fd::operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
}

void unique_fd::reset(int fd) {
    // close(2) is not retried on EINTR: on Linux the descriptor is gone either way.
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

int unique_fd::close() {
    int fd = release();
    if (fd < 0) return 0;
    // Linux releases the descriptor even when close() fails, so EINTR must not be retried.
    return ::close(fd) == 0 ? 0 : errno;
}

result<void> fsync_fd(int fd) {
    if (no_eintr([&] { return ::fsync(fd); }) != 0) return last_error();
    return {};
}

result<void> fsync_file(const std::filesystem::path& file) {
    unique_fd fd(no_eintr([&] { return ::open(file.c_str(), O_RDONLY | O_CLOEXEC); }));
    if (!fd) return last_error();
    return fsync_fd(fd.get());
}

result<void> fsync_dir(const std::filesystem::path& dir) {
    unique_fd fd(no_eintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
    if (!fd) return last_error();
    return fsync_fd(fd.get());
}

result<void> create_private_dir(const std::filesystem::path& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return make_error_code(std::errc::not_a_directory);
        return {};
    }
    if (errno != ENOENT) return last_error();
    auto parent = dir.parent_path();
    if (!parent.empty() && parent != dir) {
        if (auto r = create_private_dir(parent); !r) return r;
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return last_error();
    return {};
}

result<unique_fd> create_exclusive(const std::filesystem::path& file, mode_t mode) {
    unique_fd fd(no_eintr(
        [&] { return ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode); }));
    if (!fd) return last_error();
    // The umask may only take bits away; fchmod makes the mode exact when it was stricter.
    if (::fchmod(fd.get(), mode) != 0) return last_error();
    return fd;
}

result<void> write_file_atomic(const std::filesystem::path& file, std::string_view content,
                               mode_t mode) {
    auto dir = file.parent_path();
    if (dir.empty()) dir = ".";
    std::random_device rd;
    for (int attempt = 0;; ++attempt) {
        auto tmp = file;
        tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
        auto fd = create_exclusive(tmp, mode);
        if (!fd) {
            if (fd.error() == std::errc::file_exists && attempt < 8) continue;
            return fd.error();
        }
        auto r = write_all(fd->get(), content);
        if (r) r = fsync_fd(fd->get());
        fd->reset();
        if (r && ::rename(tmp.c_str(), file.c_str()) != 0) r = last_error();
        if (!r) {
            ::unlink(tmp.c_str());
            return r;
        }
        return fsync_dir(dir);
    }
}

std::string lock_holder::describe() const {
    if (pid <= 0) return "an unknown process";
    std::string s = "pid " + std::to_string(pid);
    if (!command.empty()) s += " (" + command + ")";
    return s;
}

lock_file::~lock_file() {
    release();
}

lock_file& lock_file::operator=(lock_file&& o) noexcept {
    if (this != &o) {
        release();
        fd_ = std::move(o.fd_);
        path_ = std::move(o.path_);
    }
    return *this;
}

void lock_file::release() {
    if (!fd_) return;
    // Emptied while still locked, so that nobody reads a dead holder's name; the
    // next holder rewrites it anyway.
    [[maybe_unused]] int r = ::ftruncate(fd_.get(), 0);
    ::flock(fd_.get(), LOCK_UN);
    fd_.reset();
}

namespace {

constexpr std::chrono::seconds dead_holder_grace{2};

// The lock is held, and the process that wrote itself into the file is gone.
bool holder_is_dead(int fd) {
    const auto holder = parse_holder(read_all(fd));
    return holder && holder->pid > 0 && ::kill(holder->pid, 0) != 0 && errno == ESRCH;
}

}  // namespace

result<lock_file> lock_file::acquire(const std::filesystem::path& file,
                                     std::chrono::milliseconds wait, lock_holder* holder) {
    unique_fd fd(no_eintr(
        [&] { return ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600); }));
    if (!fd) return last_error();
    auto deadline = std::chrono::steady_clock::now() + wait;
    bool waited_for_the_dead = false;
    for (;;) {
        if (no_eintr([&] { return ::flock(fd.get(), LOCK_EX | LOCK_NB); }) == 0) break;
        if (errno != EWOULDBLOCK) return last_error();
        if (std::chrono::steady_clock::now() >= deadline && !waited_for_the_dead &&
            holder_is_dead(fd.get())) {
            // The lock belongs to the open file, which a child started in the moment
            // before its parent was killed shares until it closes its copy (the Maildir
            // store's closer does so first thing, once it runs): a run started right after
            // found the lock held by the dead run. Such a child lets go within moments.
            waited_for_the_dead = true;
            deadline = std::chrono::steady_clock::now() + dead_holder_grace;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            if (holder) {
                // The holder writes its name just after it locks: give it a moment.
                for (int i = 0; i < 20; ++i) {
                    if (auto h = parse_holder(read_all(fd.get()))) {
                        *holder = *h;
                        break;
                    }
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                }
            }
            return make_error_code(std::errc::resource_unavailable_try_again);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::string text = std::to_string(::getpid()) + "\n" + current_command_line() + "\n";
    if (::ftruncate(fd.get(), 0) != 0) return last_error();
    if (::lseek(fd.get(), 0, SEEK_SET) < 0) return last_error();
    if (auto r = write_all(fd.get(), text); !r) return r.error();
    return lock_file(std::move(fd), file);
}

std::optional<lock_holder> lock_file::read_holder(const std::filesystem::path& file) {
    unique_fd fd(no_eintr([&] { return ::open(file.c_str(), O_RDONLY | O_CLOEXEC); }));
    if (!fd) return std::nullopt;
    return parse_holder(read_all(fd.get()));
}

std::string current_command_line() {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!raw.empty() && raw.back() == '\0') raw.pop_back();
    for (char& c : raw) {
        if (c == '\0' || c == '\n') c = ' ';
    }
    return raw;
}

}  // namespace tandem::fs
