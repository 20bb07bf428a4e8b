// SPDX-License-Identifier: MIT
// The child process of a tunnel (`ssh host imapd`, `/usr/lib/dovecot/imap`): started with
// one end of a socketpair as its stdin and stdout, terminated and reaped on close.
#pragma once

#include "tandem/util/error.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace tandem::net {

class tunnel_child {
  public:
    // Runs argv (looked up in PATH) with `fd` as stdin and stdout; stderr is inherited.
    static result<tunnel_child> start(const std::vector<std::string>& argv, int fd);

    tunnel_child(tunnel_child&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
    tunnel_child& operator=(tunnel_child&&) = delete;
    ~tunnel_child() { terminate(); }

    // After the socket was closed: a short grace for a clean exit on EOF, then SIGTERM,
    // then SIGKILL; always reaped.
    void terminate();
    pid_t pid() const { return pid_; }

  private:
    explicit tunnel_child(pid_t pid) : pid_(pid) {}
    pid_t pid_ = -1;
};

}  // namespace tandem::net
