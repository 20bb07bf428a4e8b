// SPDX-License-Identifier: MIT
// File system helpers for state that must survive a crash: fsync of files and
// directories, private (0700 / 0600) creation, atomic replacement, and a lock file that
// names its holder so that a second process can say who is in the way.
#pragma once

#include "tandem/util/error.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::fs {

// An owned file descriptor, closed in the destructor.
class unique_fd {
  public:
    unique_fd() = default;
    explicit unique_fd(int fd) : fd_(fd) {}
    ~unique_fd() { reset(); }
    unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
    unique_fd& operator=(unique_fd&& o) noexcept;
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1);
    // close(2) with its result (0 or errno): NFS and some quota implementations report
    // write errors only here.
    int close();

  private:
    int fd_ = -1;
};

// fsync(2) of an open descriptor, of a file by path, and of a directory (which makes a
// rename or a create inside it durable: rename(2) alone is not, see fsync(2) NOTES).
result<void> fsync_fd(int fd);
result<void> fsync_file(const std::filesystem::path& file);
result<void> fsync_dir(const std::filesystem::path& dir);

// Creates `dir` and any missing parents with mode 0700; an existing directory is left
// as it is. Fails with std::errc::not_a_directory if something else is in the way.
result<void> create_private_dir(const std::filesystem::path& dir);

// Creates a new file with O_EXCL and the given mode (0600 unless told): fails with
// std::errc::file_exists if the name is taken. The descriptor is O_CLOEXEC.
result<unique_fd> create_exclusive(const std::filesystem::path& file, mode_t mode = 0600);

// Replaces `file` with `content` so that a reader (or a crash) sees either the old or
// the new content, never a mix: a temporary file beside it is written with mode 0600,
// fsynced, renamed over `file`, and the directory fsynced.
result<void> write_file_atomic(const std::filesystem::path& file, std::string_view content,
                               mode_t mode = 0600);

// The process that holds a lock_file, as it wrote itself into the file.
struct lock_holder {
    pid_t pid = 0;
    std::string command;  // its command line, arguments separated by spaces
    // "pid 1234 (tandem sync -c x)", or "an unknown process" when the file was empty.
    std::string describe() const;
};

// An exclusive lock on a file, held until the object goes away (or the process dies:
// the kernel drops it once no process has the file open, so a crash never leaves a stale
// lock behind).
//
// flock(2), not fcntl(2): flock locks belong to the open file description, so a second
// acquire() in the same process conflicts as it does from another process, whereas
// POSIX record locks of one process never conflict with each other. The file is
// created 0600 and never removed (removing it would let two processes lock two
// different inodes of the same name); its content is the holder's pid and command line.
class lock_file {
  public:
    lock_file() = default;
    ~lock_file();
    lock_file(lock_file&&) noexcept = default;
    lock_file& operator=(lock_file&&) noexcept;

    // Takes the lock, polling until `wait` has passed if another process holds it
    // (zero: one attempt), and up to 2 s more while the process named in the file is
    // dead (a child it started just before it died may still hold the file open).
    // When the lock is held elsewhere, fails with
    // std::errc::resource_unavailable_try_again and, if `holder` is given, fills it
    // with what the holder wrote into the file.
    static result<lock_file> acquire(const std::filesystem::path& file,
                                     std::chrono::milliseconds wait = std::chrono::milliseconds(0),
                                     lock_holder* holder = nullptr);

    // Reads what the current holder wrote into `file` (without taking the lock).
    static std::optional<lock_holder> read_holder(const std::filesystem::path& file);

    bool locked() const { return static_cast<bool>(fd_); }
    const std::filesystem::path& path() const { return path_; }
    // Gives the lock up early (the destructor does it otherwise).
    void release();

  private:
    lock_file(unique_fd fd, std::filesystem::path p) : fd_(std::move(fd)), path_(std::move(p)) {}
    unique_fd fd_;
    std::filesystem::path path_;
};

// This process's command line from /proc/self/cmdline, arguments joined by spaces.
std::string current_command_line();

}  // namespace tandem::fs
