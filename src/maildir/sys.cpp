// SPDX-License-Identifier: MIT
#include "sys_p.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace tandem::maildir::sys {

bool is_full(int e) {
#ifdef EDQUOT
    if (e == EDQUOT) return true;
#endif
    return e == ENOSPC;
}

error_code from_errno(int e) {
    if (is_full(e)) return errc::storage_full;
    return error_code(e, boost::system::generic_category());
}

std::string describe(std::string_view what, const std::filesystem::path& p, const error_code& ec) {
    std::string out(what);
    out += ' ';
    out += p.string();
    out += ": ";
    out += ec.message();
    return out;
}

namespace {

result<std::vector<std::string>> list(const std::filesystem::path& dir, bool dirs) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return from_errno(errno);
    std::vector<std::string> names;
    for (;;) {
        errno = 0;
        const dirent* e = ::readdir(d);
        if (!e) break;
        std::string_view n(e->d_name);
        if (n == "." || n == "..") continue;
        if (!dirs && e->d_type == DT_DIR) continue;
        names.emplace_back(n);
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return from_errno(err);
    return names;
}

}  // namespace

result<std::vector<std::string>> list_dir(const std::filesystem::path& dir) {
    return list(dir, true);
}
result<std::vector<std::string>> list_non_dirs(const std::filesystem::path& dir) {
    return list(dir, false);
}

result<void> fsync_path(const std::filesystem::path& p, bool directory) {
    fd f(::open(p.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0)));
    if (!f) return from_errno(errno);
    if (::fsync(f.get()) != 0) return from_errno(errno);
    return {};
}

std::int64_t now_ns() {
    struct timespec t {};
    ::clock_gettime(CLOCK_REALTIME, &t);
    return to_ns(t);
}

}  // namespace tandem::maildir::sys
