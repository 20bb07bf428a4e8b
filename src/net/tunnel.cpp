// SPDX-License-Identifier: MIT
#include "tunnel_p.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>

extern char** environ;

namespace tandem::net {

namespace {

bool reaped(pid_t pid) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD);
}

// Waits for the child's exit for up to `limit`; true once reaped. A pidfd (Linux 5.3) wakes
// the moment the child exits; polling every 5 ms, as before, cost a run that ends with a
// tunnel's LOGOUT 5 ms of nothing (the child's exit takes a millisecond or two).
bool reap_within(pid_t pid, std::chrono::milliseconds limit) {
    if (reaped(pid)) return true;
    const auto end = std::chrono::steady_clock::now() + limit;
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd >= 0) {
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                end - std::chrono::steady_clock::now());
            pollfd p{fd, POLLIN, 0};
            int n = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
            if (n < 0 && errno == EINTR) continue;
            break;
        }
        ::close(fd);
        return reaped(pid);
    }
    while (true) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (reaped(pid)) return true;
        if (std::chrono::steady_clock::now() >= end) return false;
    }
}

}  // namespace

result<tunnel_child> tunnel_child::start(const std::vector<std::string>& argv, int fd) {
    if (argv.empty()) return errc::invalid_argument;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // dup2 clears FD_CLOEXEC on the copies; the original closes on exec.
    posix_spawn_file_actions_adddup2(&actions, fd, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fd, STDOUT_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // The child must not inherit a SIGPIPE set to ignore or blocked signals of ours.
    sigset_t none;
    sigemptyset(&none);

    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return error_code(rc, boost::system::system_category());
    return tunnel_child(pid);
}

void tunnel_child::terminate() {
    if (pid_ <= 0) return;
    pid_t pid = pid_;
    pid_ = -1;
    if (reap_within(pid, std::chrono::milliseconds(200))) return;
    ::kill(pid, SIGTERM);
    if (reap_within(pid, std::chrono::milliseconds(2000))) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
}

}  // namespace tandem::net
