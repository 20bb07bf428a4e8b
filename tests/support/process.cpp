// SPDX-License-Identifier: MIT
#include "support/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tandem::test {

namespace {

using clock_type = std::chrono::steady_clock;

void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

[[noreturn]] void child_fail(const char* what) {
    // Only async-signal-safe calls between fork and exec: the test process has threads.
    (void)!::write(2, what, std::strlen(what));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
}

}  // namespace

child_process::child_process(const std::vector<std::string>& argv, const child_options& options) {
    if (argv.empty()) throw std::invalid_argument("child_process: empty argv");
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    int in_pipe[2] = {-1, -1};
    int out_pipe[2] = {-1, -1};
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int err_file = -1;
    if (options.in == child_stream::pipe && ::pipe2(in_pipe, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe2 failed");
    if (options.out == child_stream::pipe && ::pipe2(out_pipe, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe2 failed");
    if (options.err == child_stream::file) {
        err_file =
            ::open(options.stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (err_file < 0) throw std::runtime_error("cannot open " + options.stderr_file.string());
    }
    const pid_t parent = ::getpid();

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    if (pid_ == 0) {
        if (::prctl(PR_SET_PDEATHSIG, options.death_signal) != 0) child_fail("prctl failed");
        // The parent may have died between fork and prctl.
        if (::getppid() != parent) ::_exit(127);
        auto stream_fd = [&](child_stream s, int pipe_end, int own) {
            switch (s) {
                case child_stream::inherit:
                    return own;
                case child_stream::pipe:
                    return pipe_end;
                case child_stream::null:
                    return null_fd;
                case child_stream::file:
                    return err_file;
                case child_stream::stdout_:
                    return 1;
            }
            return null_fd;
        };
        int in_fd = stream_fd(options.in, in_pipe[0], 0);
        int out_fd = stream_fd(options.out, out_pipe[1], 1);
        if (in_fd != 0 && ::dup2(in_fd, 0) < 0) child_fail("dup2 stdin failed");
        if (out_fd != 1 && ::dup2(out_fd, 1) < 0) child_fail("dup2 stdout failed");
        int err_fd = stream_fd(options.err, -1, 2);
        if (err_fd != 2 && ::dup2(err_fd, 2) < 0) child_fail("dup2 stderr failed");
        // Signals blocked or ignored by the test runner would be inherited through exec.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        ::execvp(args[0], args.data());
        child_fail("exec failed");
    }
    close_fd(null_fd);
    close_fd(err_file);
    if (options.in == child_stream::pipe) {
        ::close(in_pipe[0]);
        in_ = in_pipe[1];
    }
    if (options.out == child_stream::pipe) {
        ::close(out_pipe[1]);
        out_ = out_pipe[0];
    }
}

child_process::~child_process() {
    close_fd(in_);
    stop(std::chrono::seconds(5));
    close_fd(out_);
}

bool child_process::write(std::string_view data) {
    // A child that closed its stdin would kill the whole test program with SIGPIPE: block it
    // in this thread for the write, and swallow the one that the write raised.
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    bool ok = in_ >= 0;
    while (ok && !data.empty()) {
        ssize_t n = ::write(in_, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) {
                timespec zero{0, 0};
                ::sigtimedwait(&pipe_set, nullptr, &zero);
            }
            ok = false;
            break;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
    return ok;
}

void child_process::close_stdin() {
    close_fd(in_);
}

std::optional<std::string> child_process::read_some(std::chrono::milliseconds timeout) {
    if (out_ < 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r < 0 && errno == EINTR) return std::string();
    if (r == 0) return std::string();
    char buf[65536];
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
}

std::string child_process::read_all(std::chrono::milliseconds timeout) {
    std::string all;
    const auto deadline = clock_type::now() + timeout;
    while (clock_type::now() < deadline) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        auto chunk = read_some(left);
        if (!chunk) break;
        all += *chunk;
    }
    return all;
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    if (pid_ <= 0) return std::nullopt;
    const auto deadline = clock_type::now() + timeout;
    for (auto pause = std::chrono::milliseconds(1);;
         pause = std::min(pause * 2, std::chrono::milliseconds(20))) {
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno == ECHILD)) {
            status_ = r == pid_ ? status : -1;
            return status_;
        }
        if (clock_type::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(pause);
    }
}

bool child_process::running() {
    return pid_ > 0 && !wait(std::chrono::milliseconds(0));
}

int child_process::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return -1;
    if (!status_) {
        ::kill(pid_, SIGTERM);
        if (!wait(grace)) {
            ::kill(pid_, SIGKILL);
            wait(std::chrono::seconds(30));
        }
    }
    return status_.value_or(-1);
}

bool run_result::ok() const {
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

run_result run_process(const std::vector<std::string>& argv, std::string_view input,
                       std::chrono::milliseconds timeout) {
    child_options options;
    options.in = input.empty() ? child_stream::null : child_stream::pipe;
    child_process child(argv, options);
    if (!input.empty()) {
        child.write(input);
        child.close_stdin();
    }
    run_result result;
    result.output = child.read_all(timeout);
    auto status = child.wait(std::chrono::milliseconds(100));
    result.status = status ? *status : child.stop(std::chrono::milliseconds(100));
    return result;
}

std::string shell_quote(std::string_view word) {
    std::string quoted = "'";
    for (char c : word) {
        if (c == '\'')
            quoted += "'\\''";
        else
            quoted += c;
    }
    return quoted + "'";
}

std::string read_proc_file(pid_t pid, const char* name) {
    const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return n < 0 ? std::string() : text;
}

}  // namespace tandem::test
