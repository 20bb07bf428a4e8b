// SPDX-License-Identifier: MIT
// System-call helpers of the Maildir layer: owned descriptors, errno to error_code, directory
// listing, clocks. Private to src/maildir.
#pragma once

#include "tandem/util/error.hpp"
#include "tandem/util/fs.hpp"

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::maildir::sys {

using fd = tandem::fs::unique_fd;

// ENOSPC and EDQUOT become errc::storage_full; the rest stays a generic (std::errc) code so
// that callers can compare with std::errc values.
error_code from_errno(int e);
bool is_full(int e);
inline error_code generic(std::errc e) {
    return error_code(static_cast<int>(e), boost::system::generic_category());
}

// "<what> <path>: <strerror>" for last_error().
std::string describe(std::string_view what, const std::filesystem::path& p, const error_code& ec);

// The names in a directory, without "." and "..", in readdir order. Dot files are included
// (the caller decides). ENOENT on the directory itself is returned as an error.
result<std::vector<std::string>> list_dir(const std::filesystem::path& dir);
// The same without the entries that readdir says are directories (d_type; file systems that
// do not fill it in return everything).
result<std::vector<std::string>> list_non_dirs(const std::filesystem::path& dir);

result<void> fsync_path(const std::filesystem::path& p, bool directory);

std::int64_t now_ns();
inline std::int64_t to_ns(const struct timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

}  // namespace tandem::maildir::sys
