// SPDX-License-Identifier: MIT
// An owned file descriptor, closed with its owner; moves hand it over.
#pragma once

namespace tandem::maildir::sys {

class fd {
  public:
    fd() = default;
    explicit fd(int f) : fd_(f) {}
    ~fd() { reset(); }
    fd(fd&& o) noexcept : fd_(o.release()) {}
    fd& operator=(fd&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    fd(const fd&) = delete;
    fd& operator=(const fd&) = delete;

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }
    void reset(int f = -1);
    // close(2) with its result: NFS and some quota implementations report write errors only here.
    int close();

  private:
    int fd_ = -1;
};

}  // namespace tandem::maildir::sys
