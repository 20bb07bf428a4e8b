// SPDX-License-Identifier: MIT
#include "tandem/maildir/folder.hpp"

#include "sys_p.hpp"
#include "tandem/maildir/filename.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>
#include <thread>

namespace tandem::maildir {
namespace {

constexpr std::size_t chunk_size = 64 * 1024;
constexpr int scan_attempts = 8;
constexpr int rename_attempts = 4;
// Threads that fsync a delivery batch's files at once (see delivery_batch::commit).
constexpr std::size_t fsync_threads = 8;

// How many delivered files may stay open between their write and their batch's fsync, over
// every batch of the process: half of what the soft limit on open files leaves beyond 256
// for everything else (the CLI raises that limit at its start, raise_open_files_limit).
std::atomic<long>& open_slots() {
    static std::atomic<long> slots = [] {
        struct rlimit rl {};
        if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0L;
        const long soft = rl.rlim_cur == RLIM_INFINITY ? 65536L : static_cast<long>(rl.rlim_cur);
        return std::max(0L, (std::min(soft, 65536L) - 256) / 2);
    }();
    return slots;
}

bool take_open_slot() {
    if (open_slots().fetch_sub(1, std::memory_order_relaxed) > 0) return true;
    open_slots().fetch_add(1, std::memory_order_relaxed);
    return false;
}

void give_open_slot() {
    open_slots().fetch_add(1, std::memory_order_relaxed);
}

const char* subdir_name(subdir s) {
    return s == subdir::cur ? "cur" : "new";
}

struct dir_stamp {
    std::uint64_t ino = 0;
    std::int64_t mtime_ns = 0;
    friend bool operator==(const dir_stamp&, const dir_stamp&) = default;
};

struct stamps {
    dir_stamp new_, cur;
    std::int64_t newest() const { return std::max(new_.mtime_ns, cur.mtime_ns); }
    friend bool operator==(const stamps&, const stamps&) = default;
};

result<dir_stamp> stamp_of(const std::filesystem::path& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return sys::from_errno(errno);
    if (!S_ISDIR(st.st_mode)) return sys::generic(std::errc::not_a_directory);
    return dir_stamp{static_cast<std::uint64_t>(st.st_ino), sys::to_ns(st.st_mtim)};
}

// How long a directory time stamp needs to be in the past before a change in the same
// clock tick can no longer hide behind it. A file system that keeps sub-second stamps
// (ext4, xfs, btrfs, tmpfs) ticks with the kernel's coarse clock (subsecond_settle); one
// that keeps whole seconds (or FAT's two) needs the configured `settle`. A stamp with no
// sub-second part is taken as the latter (by chance, 1 in 100 or so: a longer wait).
std::int64_t settle_ns_for(const stamps& s, std::chrono::milliseconds configured) {
    const auto full = std::chrono::duration_cast<std::chrono::nanoseconds>(configured).count();
    static const std::int64_t fine = subsecond_settle().count();
    const bool subsecond =
        s.new_.mtime_ns % 1'000'000'000 != 0 || s.cur.mtime_ns % 1'000'000'000 != 0;
    return subsecond ? std::min(full, fine) : full;
}

std::string format_token(const stamps& s, bool settled) {
    return "1 " + std::to_string(s.new_.ino) + ' ' + std::to_string(s.new_.mtime_ns) + ' ' +
           std::to_string(s.cur.ino) + ' ' + std::to_string(s.cur.mtime_ns) +
           (settled ? " s" : " u");
}

// nullopt for a token that does not parse or is unsettled: both mean "look again".
std::optional<stamps> parse_settled_token(std::string_view t) {
    if (!t.starts_with("1 ") || !t.ends_with(" s")) return std::nullopt;
    t = t.substr(2, t.size() - 4);
    stamps s;
    auto num = [&t](auto& v) {
        auto sp = t.find(' ');
        auto field = t.substr(0, sp);
        auto [p, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
        t = sp == std::string_view::npos ? std::string_view() : t.substr(sp + 1);
        return ec == std::errc() && p == field.data() + field.size() && !field.empty();
    };
    if (!num(s.new_.ino) || !num(s.new_.mtime_ns) || !num(s.cur.ino) || !num(s.cur.mtime_ns))
        return std::nullopt;
    if (!t.empty()) return std::nullopt;
    return s;
}

bool valid_system(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return is_known_system_letter(c); });
}
bool valid_keywords(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

body_reader memory_reader(std::string_view content) {
    return [content](std::span<char> b) mutable -> result<std::size_t> {
        auto n = std::min(b.size(), content.size());
        std::memcpy(b.data(), content.data(), n);
        content.remove_prefix(n);
        return n;
    };
}

long default_write(int fd, const void* data, std::size_t size) {
    return ::write(fd, data, size);
}

}  // namespace

std::chrono::nanoseconds subsecond_settle() {
    // Two ticks of the clock that stamps the files (CLOCK_REALTIME_COARSE: 4 ms at HZ=250,
    // 1 ms at HZ=1000), so that the coarse clock surely moved past the newest stamp; 25 ms
    // where the kernel does not say.
    timespec tick{};
    if (::clock_getres(CLOCK_REALTIME_COARSE, &tick) != 0 || tick.tv_sec != 0 || tick.tv_nsec <= 0)
        return std::chrono::milliseconds(25);
    return std::max<std::chrono::nanoseconds>(std::chrono::nanoseconds(2 * tick.tv_nsec),
                                              std::chrono::milliseconds(2));
}

// ---- message_file

message_file::message_file(int fd, std::uint64_t size, std::string file_name)
    : fd_(fd), size_(size), file_name_(std::move(file_name)) {}

message_file::~message_file() {
    if (fd_ >= 0) ::close(fd_);
}

message_file::message_file(message_file&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), size_(o.size_), file_name_(std::move(o.file_name_)) {}

message_file& message_file::operator=(message_file&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
        size_ = o.size_;
        file_name_ = std::move(o.file_name_);
    }
    return *this;
}

result<std::size_t> message_file::read(std::span<char> buffer) {
    for (;;) {
        ssize_t n = ::read(fd_, buffer.data(), buffer.size());
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) return sys::from_errno(errno);
    }
}

result<std::string> message_file::read_all() {
    std::string out;
    out.reserve(size_);
    char buf[chunk_size];
    for (;;) {
        auto n = read(buf);
        if (!n) return n.error();
        if (*n == 0) return out;
        out.append(buf, *n);
    }
}

// ---- folder

folder::folder(std::filesystem::path dir, folder_options options)
    : dir_(std::move(dir)), options_(options) {}

bool folder::exists(const std::filesystem::path& dir) {
    struct stat st {};
    return ::stat((dir / "cur").c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
           ::stat((dir / "new").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

error_code folder::fail(std::string_view what, const std::filesystem::path& p,
                        const error_code& ec) {
    last_error_ = sys::describe(what, p, ec);
    return ec;
}

error_code folder::fail_errno(std::string_view what, const std::filesystem::path& p, int e) {
    return fail(what, p, sys::from_errno(e));
}

result<folder> folder::create(const std::filesystem::path& dir, bool maildirfolder_marker,
                              folder_options options) {
    folder f(dir, options);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return f.fail("create", dir, error_code(ec.value(), boost::system::generic_category()));
    // cur/ last: a folder is a directory with cur/ and new/, so a crash in between leaves a
    // directory that is not listed and that the next create() completes.
    for (const char* sub : {"tmp", "new", "cur"}) {
        auto p = dir / sub;
        if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
            return f.fail_errno("mkdir", p, errno);
    }
    if (maildirfolder_marker) {
        auto p = dir / "maildirfolder";
        sys::fd m(::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        if (!m) return f.fail_errno("create", p, errno);
    }
    if (options.fsync) {
        if (auto r = sys::fsync_path(dir, true); !r) return f.fail("fsync", dir, r.error());
        if (auto r = sys::fsync_path(dir.parent_path(), true); !r)
            return f.fail("fsync", dir.parent_path(), r.error());
    }
    return f;
}

std::filesystem::path folder::file_path(const location& l) const {
    return dir_ / subdir_name(l.subdir) / l.file_name;
}

result<std::string> folder::change_token() const {
    auto n = stamp_of(dir_ / "new");
    if (!n) return n.error();
    auto c = stamp_of(dir_ / "cur");
    if (!c) return c.error();
    stamps s{*n, *c};
    return format_token(s, sys::now_ns() - s.newest() >= settle_ns_for(s, options_.settle));
}

result<std::string> folder::settled_change_token(std::chrono::nanoseconds max_wait) const {
    std::int64_t budget = max_wait.count();
    for (int attempt = 0;; ++attempt) {
        auto n = stamp_of(dir_ / "new");
        if (!n) return n.error();
        auto c = stamp_of(dir_ / "cur");
        if (!c) return c.error();
        stamps s{*n, *c};
        const auto left = settle_ns_for(s, options_.settle) - (sys::now_ns() - s.newest());
        // A stamp in the future (clock skew) or a tick longer than the budget: not waited for.
        if (left <= 0 || left > budget || attempt == 2) return format_token(s, left <= 0);
        std::this_thread::sleep_for(std::chrono::nanoseconds(left));
        budget -= left;
    }
}

result<bool> folder::changed_since(std::string_view token) const {
    auto old = parse_settled_token(token);
    if (!old) return true;
    auto n = stamp_of(dir_ / "new");
    if (!n) return result<bool>(boost::system::in_place_error, n.error());
    auto c = stamp_of(dir_ / "cur");
    if (!c) return result<bool>(boost::system::in_place_error, c.error());
    return !(stamps{*n, *c} == *old);
}

void folder::remember(entry_list&& entries) {
    cache_ = std::move(entries);
    entries.clear();
    cache_.drop_duplicates();  // one location per base name: the first, as find() gives
}

result<scan_result> folder::scan(scan_mode mode, bool remember, std::size_t expected) {
    bool waited = false;
    for (int attempt = 0; attempt < scan_attempts; ++attempt) {
        auto n0 = stamp_of(dir_ / "new");
        if (!n0) return fail("stat", dir_ / "new", n0.error());
        auto c0 = stamp_of(dir_ / "cur");
        if (!c0) return fail("stat", dir_ / "cur", c0.error());
        stamps before{*n0, *c0};
        const auto settle_ns = settle_ns_for(before, options_.settle);
        auto age = sys::now_ns() - before.newest();
        if (age < settle_ns && !(age < 0 && waited)) {
            // A change in the same tick as this mtime would not move it, and we could miss a
            // file that readdir skipped: wait until the tick is over (mbsync does the same).
            // A time stamp in the future (clock skew) is waited for once, not forever.
            auto wait = age < 0 ? settle_ns : settle_ns - age;
            std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
            waited = true;
            continue;
        }
        bool settled = age >= settle_ns;

        scan_result out;
        // A few more than expected: new mail since the count, without doubling the entries.
        if (expected > 0) out.entries.reserve(expected + expected / 32 + 64);
        // The entries of new/ come first: positions below this one.
        std::size_t in_new = 0;
        bool listing_failed = false;
        ++listings_;
        for (subdir sd : {subdir::new_, subdir::cur}) {
            auto dir = dir_ / subdir_name(sd);
            auto names = sys::list_non_dirs(dir);
            if (!names) {
                if (names.error() == std::errc::no_such_file_or_directory) {
                    listing_failed = true;  // the folder went away or is being replaced
                    break;
                }
                return fail("list", dir, names.error());
            }
            sys::fd dfd;
            if (mode == scan_mode::full) {
                dfd = sys::fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
                if (!dfd) return fail_errno("open", dir, errno);
            }
            for (auto& name : *names) {
                if (name.empty() || name.front() == '.') continue;
                entry e(std::move(name), sd, options_.separator);
                const auto hint = size_hint(e.base());
                if (hint) e.size = *hint;
                if (mode == scan_mode::full) {
                    struct stat st {};
                    if (::fstatat(dfd.get(), e.file_name().c_str(), &st, 0) != 0) {
                        if (errno == ENOENT) continue;  // renamed or removed: the after-stat tells
                        return fail_errno("stat", dir / e.file_name(), errno);
                    }
                    if (!S_ISREG(st.st_mode)) continue;
                    if (!hint) e.size = static_cast<std::uint64_t>(st.st_size);
                    e.mtime = st.st_mtim.tv_sec;
                }
                // A base in both new/ and cur/ (a client's rename seen half-way): the cur/ one
                // is newer. A base twice in new/: the first one.
                if (sd == subdir::new_) {
                    out.entries.insert(std::move(e));
                    continue;
                }
                if (in_new > 0) {
                    auto pos = out.entries.find(e.base());
                    if (pos < in_new) {
                        out.entries[pos] = std::move(e);
                        continue;
                    }
                }
                out.entries.push_back(std::move(e));
            }
            if (sd == subdir::new_) in_new = out.entries.size();
        }
        if (listing_failed) continue;
        auto n1 = stamp_of(dir_ / "new");
        if (!n1) return fail("stat", dir_ / "new", n1.error());
        auto c1 = stamp_of(dir_ / "cur");
        if (!c1) return fail("stat", dir_ / "cur", c1.error());
        if (!(stamps{*n1, *c1} == before)) {
            // Somebody is changing it (a client's burst of renames): give them longer each
            // time before the next listing (5, 10, ... 35 ms, 140 ms in all).
            std::this_thread::sleep_for(std::chrono::milliseconds(5 * (attempt + 1)));
            continue;
        }

        cache_.clear();
        if (remember) {
            cache_ = out.entries;
            cache_.drop_duplicates();
        }
        out.token = format_token(before, settled);
        return out;
    }
    last_error_ = "scan " + dir_.string() + ": the folder kept changing during " +
                  std::to_string(scan_attempts) + " listings";
    return sys::generic(std::errc::resource_unavailable_try_again);
}

result<void> folder::relist() {
    for (int attempt = 0; attempt < scan_attempts; ++attempt) {
        auto n0 = stamp_of(dir_ / "new");
        if (!n0) return fail("stat", dir_ / "new", n0.error());
        auto c0 = stamp_of(dir_ / "cur");
        if (!c0) return fail("stat", dir_ / "cur", c0.error());
        entry_list found;
        found.reserve(cache_.size());
        ++listings_;
        for (subdir sd : {subdir::new_, subdir::cur}) {
            auto dir = dir_ / subdir_name(sd);
            auto names = sys::list_non_dirs(dir);
            if (!names) return fail("list", dir, names.error());
            for (auto& name : *names) {
                if (name.empty() || name.front() == '.') continue;
                entry e(std::move(name), sd, options_.separator);
                // The first of new/, the last of cur/.
                if (sd == subdir::cur)
                    found.assign(std::move(e));
                else
                    found.insert(std::move(e));
            }
        }
        auto n1 = stamp_of(dir_ / "new");
        if (!n1) return fail("stat", dir_ / "new", n1.error());
        auto c1 = stamp_of(dir_ / "cur");
        if (!c1) return fail("stat", dir_ / "cur", c1.error());
        if (!(stamps{*n1, *c1} == stamps{*n0, *c0})) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5 * (attempt + 1)));
            continue;
        }
        cache_ = std::move(found);
        return {};
    }
    last_error_ = "list " + dir_.string() + ": the folder kept changing";
    return sys::generic(std::errc::resource_unavailable_try_again);
}

void folder::expect(std::string_view base, std::string_view system, std::string_view keywords) {
    if (cache_.find(base) != entry_list::npos) return;
    file_name n;
    n.base = std::string(base);
    n.has_info = true;
    n.system = std::string(system);
    n.keywords = std::string(keywords);
    cache_.push_back(entry(format_name(n, options_.separator), subdir::cur, options_.separator));
}

result<std::optional<folder::location>> folder::locate(std::string_view base, bool fresh) {
    auto known = [&]() -> std::optional<location> {
        auto pos = cache_.find(base);
        if (pos == entry_list::npos) return std::nullopt;
        return location{cache_[pos].subdir, cache_[pos].file_name()};
    };
    if (!fresh) {
        if (auto l = known()) return l;
    }
    if (auto r = relist(); !r) return r.error();
    return known();
}

result<std::optional<entry>> folder::find(std::string_view base) {
    for (int attempt = 0; attempt < rename_attempts; ++attempt) {
        auto loc = locate(base, attempt > 0);
        if (!loc) return loc.error();
        if (!*loc) return std::optional<entry>();
        auto p = file_path(**loc);
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) {
            if (errno == ENOENT) continue;
            return fail_errno("stat", p, errno);
        }
        entry e(std::move((*loc)->file_name), (*loc)->subdir, options_.separator);
        e.size = size_hint(e.base()).value_or(static_cast<std::uint64_t>(st.st_size));
        e.mtime = st.st_mtim.tv_sec;
        return std::optional<entry>(std::move(e));
    }
    return std::optional<entry>();
}

result<bool> folder::stat(entry& e) {
    auto p = dir_ / subdir_name(e.subdir) / e.file_name();
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) return false;  // as scan(): not a message
        if (!size_hint(e.base())) e.size = static_cast<std::uint64_t>(st.st_size);
        e.mtime = st.st_mtim.tv_sec;
        return true;
    }
    if (errno != ENOENT)
        return result<bool>(boost::system::in_place_error, fail_errno("stat", p, errno));
    auto found = find(e.base());
    if (!found) return result<bool>(boost::system::in_place_error, found.error());
    if (!*found) return false;
    e = std::move(**found);
    return true;
}

result<outcome> folder::set_flags(std::string_view base, std::string_view system,
                                  std::string_view keywords) {
    if (!valid_system(system) || !valid_keywords(keywords)) {
        last_error_ = "set flags: invalid flag letters \"" + std::string(system) +
                      std::string(keywords) + "\"";
        return errc::invalid_argument;
    }
    for (int attempt = 0; attempt < rename_attempts; ++attempt) {
        auto loc = locate(base, attempt > 0);
        if (!loc) return loc.error();
        if (!*loc) return outcome::gone;
        auto fn = parse_name((*loc)->file_name, options_.separator);
        file_name target;
        target.base = fn.base;
        target.has_info = true;
        target.system = std::string(system);
        if (fn.flags_info) {
            for (char c : fn.system)
                if (!is_known_system_letter(c)) target.system += c;
            target.rest = fn.rest;
        }
        target.keywords = std::string(keywords);
        auto name = format_name(target, options_.separator);
        if ((*loc)->subdir == subdir::cur && name == (*loc)->file_name) return outcome::done;
        auto from = file_path(**loc);
        auto to = dir_ / "cur" / name;
        if (::rename(from.c_str(), to.c_str()) != 0) {
            if (errno == ENOENT) continue;  // renamed by someone else: look again
            return fail_errno("rename", from, errno);
        }
        ((*loc)->subdir == subdir::cur ? dirty_cur_ : dirty_new_) = true;
        dirty_cur_ = true;
        note((*loc)->subdir, (*loc)->file_name, false);
        note(subdir::cur, name, true);
        cache_.assign(entry(std::move(name), subdir::cur, options_.separator));
        return outcome::done;
    }
    last_error_ =
        "set flags " + std::string(base) + " in " + dir_.string() + ": the file kept being renamed";
    return sys::generic(std::errc::resource_unavailable_try_again);
}

result<outcome> folder::remove(std::string_view base) {
    for (int attempt = 0; attempt < rename_attempts; ++attempt) {
        auto loc = locate(base, attempt > 0);
        if (!loc) return loc.error();
        if (!*loc) return outcome::gone;
        auto p = file_path(**loc);
        if (::unlink(p.c_str()) != 0) {
            if (errno == ENOENT) continue;
            return fail_errno("unlink", p, errno);
        }
        ((*loc)->subdir == subdir::cur ? dirty_cur_ : dirty_new_) = true;
        note((*loc)->subdir, (*loc)->file_name, false);
        cache_.erase(base);
        return outcome::done;
    }
    last_error_ =
        "remove " + std::string(base) + " in " + dir_.string() + ": the file kept being renamed";
    return sys::generic(std::errc::resource_unavailable_try_again);
}

result<outcome> folder::move_to(std::string_view base, folder& to,
                                std::optional<std::string_view> system,
                                std::optional<std::string_view> keywords) {
    if ((system && !valid_system(*system)) || (keywords && !valid_keywords(*keywords))) {
        last_error_ = "move: invalid flag letters";
        return errc::invalid_argument;
    }
    for (int attempt = 0; attempt < rename_attempts; ++attempt) {
        auto loc = locate(base, attempt > 0);
        if (!loc) return loc.error();
        if (!*loc) return outcome::gone;
        auto fn = parse_name((*loc)->file_name, options_.separator);
        file_name target;
        target.base = fn.base;
        target.has_info = true;
        if (fn.flags_info) {
            target.system = fn.system;
            target.keywords = fn.keywords;
            target.rest = fn.rest;
        }
        if (system) {
            std::string s(*system);
            for (char c : target.system)
                if (!is_known_system_letter(c)) s += c;
            target.system = std::move(s);
        }
        if (keywords) target.keywords = std::string(*keywords);
        auto name = format_name(target, to.options_.separator);
        auto from = file_path(**loc);
        auto dest = to.dir_ / "cur" / name;
        if (::rename(from.c_str(), dest.c_str()) != 0) {
            int e = errno;
            if (e == ENOENT && !folder::exists(to.dir_)) return fail_errno("rename to", dest, e);
            if (e == ENOENT) continue;
            return fail_errno("rename", from, e);
        }
        ((*loc)->subdir == subdir::cur ? dirty_cur_ : dirty_new_) = true;
        to.dirty_cur_ = true;
        note((*loc)->subdir, (*loc)->file_name, false);
        to.note(subdir::cur, name, true);
        cache_.erase(base);
        to.cache_.assign(entry(std::move(name), subdir::cur, to.options_.separator));
        return outcome::done;
    }
    last_error_ =
        "move " + std::string(base) + " from " + dir_.string() + ": the file kept being renamed";
    return sys::generic(std::errc::resource_unavailable_try_again);
}

result<std::optional<message_file>> folder::open(std::string_view base) {
    for (int attempt = 0; attempt < rename_attempts; ++attempt) {
        auto loc = locate(base, attempt > 0);
        if (!loc) return loc.error();
        if (!*loc) return std::optional<message_file>();
        auto p = file_path(**loc);
        sys::fd f(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
        if (!f) {
            if (errno == ENOENT) continue;
            return fail_errno("open", p, errno);
        }
        struct stat st {};
        if (::fstat(f.get(), &st) != 0) return fail_errno("stat", p, errno);
        return std::optional<message_file>(
            message_file(f.release(), static_cast<std::uint64_t>(st.st_size), (*loc)->file_name));
    }
    return std::optional<message_file>();
}

result<std::optional<std::string>> folder::message_id(std::string_view base) {
    auto f = open(base);
    if (!f) return f.error();
    if (!*f) return std::optional<std::string>();
    return read_message_id(std::move(**f));
}

result<std::optional<mail::header_identity>> folder::identify(const entry& e) {
    auto p = dir_ / subdir_name(e.subdir) / e.file_name();
    sys::fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    std::optional<message_file> file;
    if (fd) {
        file.emplace(fd.release(), 0, e.file_name());
    } else {
        if (errno != ENOENT) return fail_errno("open", p, errno);
        auto f = open(e.base());  // renamed by a client since the scan
        if (!f) return f.error();
        if (!*f) return std::optional<mail::header_identity>();
        file.emplace(std::move(**f));
    }
    auto head = read_head(std::move(*file));
    if (!head) return head.error();
    return std::optional<mail::header_identity>(mail::identify_header(*head));
}

result<std::optional<std::string>> folder::read_message_id(message_file&& m) {
    auto head = read_head(std::move(m));
    if (!head) return head.error();
    return mail::find_message_id(*head);
}

// The header within the first mail::message_id_window bytes: the keys read nothing after
// it, and most headers end within the first read.
result<std::string> folder::read_head(message_file&& m) {
    auto head = mail::read_header([&](std::span<char> buffer) { return m.read(buffer); },
                                  mail::message_id_window);
    if (!head) return fail("read", dir_ / m.file_name(), head.error());
    return head;
}

result<void> folder::sync() {
    if (!options_.fsync) {
        dirty_new_ = dirty_cur_ = false;
        return {};
    }
    for (auto [flag, name] : {std::pair{&dirty_new_, "new"}, std::pair{&dirty_cur_, "cur"}}) {
        if (!*flag) continue;
        if (auto r = sys::fsync_path(dir_ / name, true); !r)
            return fail("fsync", dir_ / name, r.error());
        *flag = false;
    }
    return {};
}

// ---- delivery

result<void> folder::finish_tmp(int fd, std::string_view tmp_name, const new_message& m,
                                bool sync) {
    auto tmp = [&] { return dir_ / "tmp" / std::string(tmp_name); };
    if (m.internal_date != 0) {
        // mtime is the INTERNALDATE (Dovecot and mbsync agree); set after the last write,
        // which would move it again.
        struct timespec times[2] = {{static_cast<time_t>(m.internal_date), 0},
                                    {static_cast<time_t>(m.internal_date), 0}};
        if (::futimens(fd, times) != 0) {
            const int e = errno;  // read before tmp() allocates
            return fail_errno("utime", tmp(), e);
        }
    }
    if (sync) {
        if (::fsync(fd) != 0) {
            const int e = errno;
            return fail_errno("fsync", tmp(), e);
        }
    } else if (options_.fsync && writes_back(fd)) {
        // A batch fsyncs its files at commit(): start their writeback now, so that the disk
        // works while the next ones are written and the fsyncs find little left to do.
        // Only a hint (EINVAL/ENOSYS where unsupported): the fsync is what counts.
        (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    return {};
}

bool folder::writes_back(int fd) {
    if (writeback_ < 0) {
        // tmpfs and ramfs have no device to write back to: the hint would be a system call
        // per message for nothing.
        struct statfs st {};
        writeback_ =
            ::fstatfs(fd, &st) == 0 && (st.f_type == TMPFS_MAGIC || st.f_type == RAMFS_MAGIC) ? 0
                                                                                              : 1;
    }
    return writeback_ == 1;
}

result<delivery_batch::pending> folder::write_tmp(const body_reader& body, const new_message& m,
                                                  bool sync, delivery_batch* into) {
    if (!valid_system(m.system) || !valid_keywords(m.keywords)) {
        last_error_ = "deliver: invalid flag letters \"" + m.system + m.keywords + "\"";
        return errc::invalid_argument;
    }
    auto write = options_.write ? options_.write : &default_write;
    // From tmp/'s descriptor where the batch has one: no walk of the whole path per file.
    const int tmp_dir = into ? into->tmp_dir() : -1;
    constexpr int create_flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    std::string tmp_name;
    auto tmp = [&] { return dir_ / "tmp" / tmp_name; };
    sys::fd f;
    for (int attempt = 0; attempt < 16 && !f; ++attempt) {
        tmp_name = format_unique(next_unique_parts(), std::nullopt, options_.separator);
        f = sys::fd(tmp_dir >= 0 ? ::openat(tmp_dir, tmp_name.c_str(), create_flags, 0600)
                                 : ::open(tmp().c_str(), create_flags, 0600));
        if (const int e = errno; !f && e != EEXIST) return fail_errno("create", tmp(), e);
    }
    if (!f) return fail_errno("create", tmp(), EEXIST);

    auto abandon = [&](error_code ec) {
        f.reset();
        if (tmp_dir >= 0)
            ::unlinkat(tmp_dir, tmp_name.c_str(), 0);
        else
            ::unlink(tmp().c_str());
        return ec;
    };
    // One buffer for all deliveries: a fresh 64 KB per message was zeroed 200,000 times in a
    // first sync of small messages.
    static thread_local std::vector<char> buf(chunk_size);
    std::uint64_t size = 0;
    for (;;) {
        auto n = body(std::span<char>(buf));
        if (!n) {
            last_error_ = "deliver into " + dir_.string() +
                          ": reading the message failed: " + n.error().message();
            return abandon(n.error());
        }
        if (*n == 0) break;
        for (std::size_t off = 0; off < *n;) {
            long w = write(f.get(), buf.data() + off, *n - off);
            if (w < 0 && errno == EINTR) continue;
            if (const int e = errno; w < 0) return abandon(fail_errno("write", tmp(), e));
            off += static_cast<std::size_t>(w);
        }
        size += *n;
    }
    if (auto r = finish_tmp(f.get(), tmp_name, m, sync); !r) return abandon(r.error());
    delivery_batch::pending p;
    // Kept open for the batch's fsync, which reports a write error as close would; else
    // closed now: quota and NFS write errors may surface only at close.
    if (into && options_.fsync && !sync && take_open_slot()) {
        p.file = std::move(f);
    } else if (int e = f.close(); e != 0) {
        return abandon(fail_errno("close", tmp(), e));
    }
    p.base = tmp_name + ",S=" + std::to_string(size);
    p.final_name = cur_name(p.base, m.system, m.keywords, options_.separator);
    p.tmp_name = std::move(tmp_name);
    return p;
}

result<delivery_batch::pending> folder::adopt_tmp(const std::filesystem::path& spool,
                                                  const new_message& m, bool sync) {
    if (!valid_system(m.system) || !valid_keywords(m.keywords)) {
        last_error_ = "deliver: invalid flag letters \"" + m.system + m.keywords + "\"";
        return errc::invalid_argument;
    }
    std::string tmp_name;
    std::filesystem::path tmp;
    bool linked = false;
    for (int attempt = 0; attempt < 16 && !linked; ++attempt) {
        tmp_name = format_unique(next_unique_parts(), std::nullopt, options_.separator);
        tmp = dir_ / "tmp" / tmp_name;
        // link(2), not rename(2): it fails on an existing name as O_EXCL does.
        if (::link(spool.c_str(), tmp.c_str()) == 0) {
            linked = true;
        } else if (errno != EEXIST) {
            if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP) break;
            return fail_errno("link", spool, errno);
        }
    }
    if (!linked) {
        // Another file system: copy, and leave the spool file to its owner.
        sys::fd in(::open(spool.c_str(), O_RDONLY | O_CLOEXEC));
        if (!in) return fail_errno("open", spool, errno);
        int infd = in.get();
        body_reader reader = [infd](std::span<char> b) -> result<std::size_t> {
            for (;;) {
                ssize_t n = ::read(infd, b.data(), b.size());
                if (n >= 0) return static_cast<std::size_t>(n);
                if (errno != EINTR) return sys::from_errno(errno);
            }
        };
        return write_tmp(reader, m, sync);
    }
    ::unlink(spool.c_str());
    sys::fd f(::open(tmp.c_str(), O_RDWR | O_CLOEXEC));
    auto abandon = [&](error_code ec) {
        f.reset();
        ::unlink(tmp.c_str());
        return ec;
    };
    if (!f) return abandon(fail_errno("open", tmp, errno));
    struct stat st {};
    if (::fstat(f.get(), &st) != 0) return abandon(fail_errno("stat", tmp, errno));
    if (::fchmod(f.get(), 0600) != 0) return abandon(fail_errno("chmod", tmp, errno));
    if (auto r = finish_tmp(f.get(), tmp_name, m, sync); !r) return abandon(r.error());
    if (int e = f.close(); e != 0) return abandon(fail_errno("close", tmp, e));
    std::string base = tmp_name + ",S=" + std::to_string(st.st_size);
    delivery_batch::pending p;
    p.tmp_name = std::move(tmp_name);
    p.base = std::move(base);
    p.final_name = cur_name(p.base, m.system, m.keywords, options_.separator);
    return p;
}

result<std::string> folder::deliver(std::string_view content, const new_message& m) {
    return deliver(memory_reader(content), m);
}

result<std::string> folder::deliver(const body_reader& body, const new_message& m) {
    // One file: fsync while the descriptor is still open, rather than reopen it in commit().
    auto p = write_tmp(body, m, options_.fsync);
    if (!p) return p.error();
    p->synced = true;
    delivery_batch b(*this);
    b.pending_.push_back(std::move(*p));
    auto done = b.commit();
    if (!done) return done.error();
    return std::move(done->front());
}

// ---- delivery_batch

delivery_batch::~delivery_batch() {
    discard();
}

void delivery_batch::discard() {
    if (!folder_) return;
    for (auto& p : pending_) {
        if (p.file) {
            p.file.reset();
            give_open_slot();
        }
        ::unlink((folder_->dir_ / "tmp" / p.tmp_name).c_str());
    }
    pending_.clear();
}

int delivery_batch::tmp_dir() {
    if (!tmp_dir_tried_) {
        tmp_dir_tried_ = true;
        tmp_dir_ =
            sys::fd(::open((folder_->dir_ / "tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    return tmp_dir_.get();
}

result<void> delivery_batch::add(std::string_view content, const new_message& m) {
    return add(memory_reader(content), m);
}

result<void> delivery_batch::add(const body_reader& body, const new_message& m) {
    auto p = folder_->write_tmp(body, m, false, this);
    if (!p) return p.error();
    pending_.push_back(std::move(*p));
    return {};
}

result<void> delivery_batch::add_file(const std::filesystem::path& spool, const new_message& m) {
    auto p = folder_->adopt_tmp(spool, m, false);
    if (!p) return p.error();
    pending_.push_back(std::move(*p));
    return {};
}

result<std::vector<std::string>> delivery_batch::commit() {
    folder& f = *folder_;
    committed_.clear();
    if (pending_.empty()) return committed_;
    // Each file is reached from its directory's descriptor: no walk of the whole path per
    // file (a first sync of 200,000 messages fsyncs and renames each one).
    const int tmp_dir = this->tmp_dir();
    if (tmp_dir < 0) {
        auto ec = f.fail_errno("open", f.dir_ / "tmp", errno);
        discard();
        return ec;
    }
    const sys::fd cur_dir(::open((f.dir_ / "cur").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cur_dir) {
        auto ec = f.fail_errno("open", f.dir_ / "cur", errno);
        discard();
        return ec;
    }
    if (f.options_.fsync) {
        // ext4 (and xfs) give each fsync of its own thread a journal commit, but fold fsyncs
        // that wait at the same time into one: a few threads make the batch cost a few
        // commits instead of one per file. Every file is still fsynced before any rename.
        std::vector<pending*> todo;
        for (auto& p : pending_)
            if (!p.synced) todo.push_back(&p);
        const std::size_t threads = std::min<std::size_t>(fsync_threads, todo.size());
        std::vector<std::optional<std::pair<std::filesystem::path, error_code>>> errors(threads);
        auto work = [&](std::size_t t) {
            for (std::size_t i = t; i < todo.size(); i += threads) {
                const auto& name = todo[i]->tmp_name;
                sys::fd file = std::move(todo[i]->file);
                const bool kept = bool(file);
                if (!kept) file = sys::fd(::openat(tmp_dir, name.c_str(), O_RDONLY | O_CLOEXEC));
                int e = !file ? errno : ::fsync(file.get()) != 0 ? errno : 0;
                // A file kept open since its write: close reports what close reports.
                if (int c = file.close(); e == 0 && kept) e = c;
                if (kept) give_open_slot();
                if (e != 0) {
                    errors[t].emplace(f.dir_ / "tmp" / name, sys::from_errno(e));
                    return;
                }
            }
        };
        if (threads <= 1) {
            if (threads == 1) work(0);
        } else {
            std::vector<std::thread> pool;
            pool.reserve(threads - 1);
            std::vector<std::size_t> inline_slices{0};
            for (std::size_t t = 1; t < threads; ++t) {
                try {
                    pool.emplace_back(work, t);
                } catch (const std::system_error&) {
                    inline_slices.push_back(t);  // no thread to be had: this one does it
                }
            }
            for (auto t : inline_slices) work(t);
            for (auto& th : pool) th.join();
        }
        for (auto& e : errors) {
            if (!e) continue;
            auto ec = f.fail("fsync", e->first, e->second);
            discard();
            return ec;
        }
    }
    std::size_t i = 0;
    for (; i < pending_.size(); ++i) {
        const auto& p = pending_[i];
        if (::renameat(tmp_dir, p.tmp_name.c_str(), cur_dir.get(), p.final_name.c_str()) != 0) {
            auto ec = f.fail_errno("rename", f.dir_ / "tmp" / p.tmp_name, errno);
            pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(i));
            discard();
            if (f.options_.fsync) (void)sys::fsync_path(f.dir_ / "cur", true);
            return ec;
        }
        // Not remembered in the cache: a first sync delivers 200,000 files that nothing in
        // the run touches again (27 MB of entries); a later call finds one from the
        // record's flags (expect()) or, failing that, by a listing.
        f.note(subdir::cur, p.final_name, true);
        committed_.push_back(p.base);
    }
    pending_.clear();
    if (f.options_.fsync && ::fsync(cur_dir.get()) != 0)
        return f.fail_errno("fsync", f.dir_ / "cur", errno);
    return committed_;
}

}  // namespace tandem::maildir
