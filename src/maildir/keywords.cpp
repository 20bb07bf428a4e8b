// SPDX-License-Identifier: MIT
#include "tandem/maildir/keywords.hpp"

#include "sys_p.hpp"
#include "tandem/maildir/filename.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <thread>

namespace tandem::maildir {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool is_forwarded(std::string_view k) {
    return iequals(k, "$Forwarded");
}

// A keyword must be one IMAP atom to be written as one line: no space, control or
// list-special characters would survive a round trip through the file or a server.
bool storable(std::string_view k) {
    if (k.empty() || k.front() == '\\') return false;
    return std::none_of(k.begin(), k.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
    });
}

void parse_into(std::string_view text, std::array<std::string, keyword_file::max_keywords>& slots) {
    for (auto& s : slots) s.clear();
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        auto sp = line.find(' ');
        if (sp == std::string_view::npos) continue;
        unsigned idx = 0;
        auto [p, ec] = std::from_chars(line.data(), line.data() + sp, idx);
        if (ec != std::errc() || p != line.data() + sp || idx >= slots.size()) continue;
        auto kw = line.substr(sp + 1);
        if (!storable(kw) || !slots[idx].empty()) continue;
        if (std::find(slots.begin(), slots.end(), kw) != slots.end()) continue;
        slots[idx] = std::string(kw);
    }
}

}  // namespace

result<keyword_file> keyword_file::load(const std::filesystem::path& folder,
                                        keyword_options options) {
    keyword_file k(folder, options);
    if (auto r = k.reload(); !r) return r.error();
    return k;
}

result<void> keyword_file::read_into(std::array<std::string, max_keywords>& slots) {
    auto path = folder_ / name;
    sys::fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!f) {
        if (errno == ENOENT) {
            for (auto& s : slots) s.clear();
            return {};
        }
        auto ec = sys::from_errno(errno);
        last_error_ = sys::describe("open", path, ec);
        return ec;
    }
    std::string text;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(f.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            auto ec = sys::from_errno(errno);
            last_error_ = sys::describe("read", path, ec);
            return ec;
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    parse_into(text, slots);
    return {};
}

result<void> keyword_file::reload() {
    return read_into(slots_);
}

std::optional<char> keyword_file::letter_of(std::string_view keyword) const {
    for (std::size_t i = 0; i < slots_.size(); ++i)
        if (!slots_[i].empty() && slots_[i] == keyword) return static_cast<char>('a' + i);
    for (std::size_t i = 0; i < slots_.size(); ++i)
        if (!slots_[i].empty() && iequals(slots_[i], keyword)) return static_cast<char>('a' + i);
    return std::nullopt;
}

bool keyword_file::holds(std::string_view keyword) const {
    return is_forwarded(keyword) || letter_of(keyword).has_value();
}

std::optional<std::string_view> keyword_file::keyword_of(char letter) const {
    if (letter < 'a' || letter > 'z') return std::nullopt;
    const auto& s = slots_[static_cast<std::size_t>(letter - 'a')];
    if (s.empty()) return std::nullopt;
    return std::string_view(s);
}

std::size_t keyword_file::size() const {
    return static_cast<std::size_t>(
        std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s.empty(); }));
}

// A lock file that no live process holds and that has not changed for stale_after was left
// by a writer that died: tandem's writers hold an flock() on their lock file, which a kill
// releases; Dovecot's replace the file within milliseconds. Returns whether the lock is gone.
bool keyword_file::break_if_stale(const std::filesystem::path& lock_path) const {
    struct stat st {};
    if (::stat(lock_path.c_str(), &st) != 0) return errno == ENOENT;
    auto age = sys::now_ns() - sys::to_ns(st.st_mtim);
    if (age <= std::chrono::duration_cast<std::chrono::nanoseconds>(options_.stale_after).count())
        return false;
    sys::fd probe(::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!probe) return errno == ENOENT;
    if (::flock(probe.get(), LOCK_EX | LOCK_NB) != 0) return false;  // a live writer
    // Holding the flock, remove the file only if it is still the one we judged: another
    // process may have broken it and taken a new lock meanwhile.
    struct stat now {};
    if (::fstat(probe.get(), &now) != 0 || ::stat(lock_path.c_str(), &st) != 0) return false;
    if (now.st_dev != st.st_dev || now.st_ino != st.st_ino) return false;
    return ::unlink(lock_path.c_str()) == 0 || errno == ENOENT;
}

result<std::vector<std::string>> keyword_file::assign(std::span<const std::string> keywords) {
    auto missing = [&](const std::array<std::string, max_keywords>& slots) {
        std::vector<std::string> out;
        for (const auto& k : keywords) {
            if (is_forwarded(k)) continue;
            bool found = std::any_of(slots.begin(), slots.end(),
                                     [&](const auto& s) { return !s.empty() && iequals(s, k); });
            if (!found && std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
        }
        return out;
    };
    std::vector<std::string> unfit;
    auto wanted = missing(slots_);
    std::erase_if(wanted, [&](const std::string& k) {
        if (storable(k)) return false;
        unfit.push_back(k);
        return true;
    });
    if (wanted.empty()) return unfit;

    // Dovecot's dot-lock: the lock file is also the new version of the file.
    auto lock_path = folder_ / lock_name;
    auto deadline = std::chrono::steady_clock::now() + options_.lock_wait;
    sys::fd lock;
    for (;;) {
        lock = sys::fd(::open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (lock) {
            // Marks the lock as held by a live process (see break_if_stale); a kill releases it.
            ::flock(lock.get(), LOCK_EX);
            break;
        }
        if (errno != EEXIST) {
            auto ec = sys::from_errno(errno);
            last_error_ = sys::describe("create", lock_path, ec);
            return ec;
        }
        if (break_if_stale(lock_path)) continue;
        if (std::chrono::steady_clock::now() >= deadline) {
            last_error_ = "lock " + lock_path.string() + ": held by another process";
            return errc::timeout;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto fail = [&](std::string_view what, const std::filesystem::path& p, int e) -> error_code {
        auto ec = sys::from_errno(e);
        last_error_ = sys::describe(what, p, ec);
        lock.reset();
        ::unlink(lock_path.c_str());
        return ec;
    };

    std::array<std::string, max_keywords> slots;
    if (auto r = read_into(slots); !r) {
        lock.reset();
        ::unlink(lock_path.c_str());
        return r.error();
    }
    auto still_missing = missing(slots);
    if (still_missing.empty()) {  // another writer added them meanwhile
        lock.reset();
        ::unlink(lock_path.c_str());
        slots_ = std::move(slots);
        return unfit;
    }
    for (const auto& k : still_missing) {
        if (!storable(k)) continue;
        auto free =
            std::find_if(slots.begin(), slots.end(), [](const auto& s) { return s.empty(); });
        if (free == slots.end()) {
            unfit.push_back(k);
            continue;
        }
        *free = k;
    }
    std::string text;
    for (std::size_t i = 0; i < slots.size(); ++i)
        if (!slots[i].empty()) text += std::to_string(i) + ' ' + slots[i] + '\n';
    for (std::size_t off = 0; off < text.size();) {
        ssize_t n = ::write(lock.get(), text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("write", lock_path, errno);
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(lock.get()) != 0) return fail("fsync", lock_path, errno);
    if (int e = lock.close(); e != 0) return fail("close", lock_path, e);
    auto path = folder_ / name;
    if (::rename(lock_path.c_str(), path.c_str()) != 0) return fail("rename", lock_path, errno);
    if (auto r = sys::fsync_path(folder_, true); !r) {
        last_error_ = sys::describe("fsync", folder_, r.error());
        return r.error();
    }
    slots_ = std::move(slots);
    return unfit;
}

encoded_flags keyword_file::encode(const mail::flag_set& flags) const {
    encoded_flags out;
    out.system = system_letters(flags);
    for (const auto& k : flags.keywords()) {
        if (is_forwarded(k)) continue;
        if (auto l = letter_of(k))
            out.keywords += *l;
        else
            out.unmapped.push_back(k);
    }
    out.keywords = sorted_letters(out.keywords);
    return out;
}

mail::flag_set keyword_file::decode(std::string_view system,
                                    std::string_view keyword_letters) const {
    mail::flag_set out;
    add_system_letters(system, out);
    for (char c : keyword_letters)
        if (auto k = keyword_of(c)) out.add_keyword(*k);
    return out;
}

}  // namespace tandem::maildir
