// SPDX-License-Identifier: MIT
#include "tunnel_p.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

extern char** environ;

namespace tandem::net {

namespace {

// Polls for the child's exit for up to `limit`; true once reaped.
bool reap_within(pid_t pid, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (true) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return true;
        if (std::chrono::steady_clock::now() >= end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
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
