// SPDX-License-Identifier: MIT
#include "tandem/maildir/filename.hpp"

#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdio>
#include <ctime>

namespace tandem::maildir {
namespace {

bool is_keyword_letter(char c) {
    return c >= 'a' && c <= 'z';
}

std::optional<std::uint64_t> field_number(std::string_view base, std::string_view key) {
    auto comma = base.find(',');
    while (comma != std::string_view::npos) {
        auto next = base.find(',', comma + 1);
        auto field =
            base.substr(comma + 1, next == std::string_view::npos ? next : next - comma - 1);
        if (field.starts_with(key)) {
            auto digits = field.substr(key.size());
            std::uint64_t v = 0;
            auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
            if (!digits.empty() && ec == std::errc() && p == digits.data() + digits.size())
                return v;
        }
        comma = next;
    }
    return std::nullopt;
}

}  // namespace

std::string sorted_letters(std::string_view letters) {
    std::string out(letters);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

file_name parse_name(std::string_view name, char separator) {
    file_name out;
    auto sep = name.find(separator);
    out.base = std::string(name.substr(0, sep));
    if (sep == std::string_view::npos) return out;
    out.has_info = true;
    auto info = name.substr(sep + 1);
    if (!info.starts_with("2,")) {
        out.flags_info = false;
        out.rest = std::string(info);
        return out;
    }
    auto letters = info.substr(2);
    auto comma = letters.find(',');
    if (comma != std::string_view::npos) {
        out.rest = std::string(letters.substr(comma));
        letters = letters.substr(0, comma);
    }
    for (char c : letters) (is_keyword_letter(c) ? out.keywords : out.system) += c;
    out.system = sorted_letters(out.system);
    out.keywords = sorted_letters(out.keywords);
    return out;
}

std::string format_name(const file_name& name, char separator) {
    std::string out = name.base;
    if (!name.has_info) return out;
    out += separator;
    if (!name.flags_info) return out + name.rest;
    out += "2,";
    out += sorted_letters(name.system);
    out += sorted_letters(name.keywords);
    out += name.rest;
    return out;
}

std::string cur_name(std::string_view base, std::string_view system, std::string_view keywords,
                     char separator) {
    file_name n;
    n.base = std::string(base);
    n.has_info = true;
    n.system = std::string(system);
    n.keywords = std::string(keywords);
    return format_name(n, separator);
}

std::optional<std::uint64_t> size_hint(std::string_view base) {
    return field_number(base, "S=");
}
std::optional<std::uint64_t> vsize_hint(std::string_view base) {
    return field_number(base, "W=");
}

bool is_known_system_letter(char c) {
    return c == 'D' || c == 'F' || c == 'P' || c == 'R' || c == 'S' || c == 'T';
}

std::string system_letters(const mail::flag_set& flags) {
    using mail::system_flag;
    std::string out;
    if (flags.has(system_flag::draft)) out += 'D';
    if (flags.has(system_flag::flagged)) out += 'F';
    for (const auto& k : flags.keywords()) {
        // Keywords are case-insensitive in IMAP (RFC 9051 2.3.2), so "$forwarded" counts too.
        if (k.size() == 10 && std::equal(k.begin(), k.end(), "$forwarded", [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) == b;
            })) {
            out += 'P';
            break;
        }
    }
    if (flags.has(system_flag::answered)) out += 'R';
    if (flags.has(system_flag::seen)) out += 'S';
    if (flags.has(system_flag::deleted)) out += 'T';
    return out;
}

void add_system_letters(std::string_view letters, mail::flag_set& flags) {
    using mail::system_flag;
    for (char c : letters) {
        switch (c) {
            case 'D':
                flags.set(system_flag::draft);
                break;
            case 'F':
                flags.set(system_flag::flagged);
                break;
            case 'P':
                flags.add_keyword("$Forwarded");
                break;
            case 'R':
                flags.set(system_flag::answered);
                break;
            case 'S':
                flags.set(system_flag::seen);
                break;
            case 'T':
                flags.set(system_flag::deleted);
                break;
            default:
                break;
        }
    }
}

std::string escape_host(std::string_view host, char separator) {
    std::string out;
    for (char ch : host) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '/' || c == ':' || c == ',' || c == '\\' || ch == separator || c < 0x21 ||
            c == 0x7f) {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\%03o", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

std::string format_unique(const unique_parts& p, std::optional<std::uint64_t> size,
                          char separator) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%lld.M%uP%uQ%lluR%016llx.", static_cast<long long>(p.seconds),
                  p.microseconds, p.pid, static_cast<unsigned long long>(p.counter),
                  static_cast<unsigned long long>(p.random));
    std::string out = buf;
    out += escape_host(p.host.empty() ? std::string_view("localhost") : p.host, separator);
    if (size) out += ",S=" + std::to_string(*size);
    return out;
}

namespace {

// SplitMix64's finalizer: a bijection, so distinct counters give distinct values.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// What does not change during a run, read once: a first sync delivers a name per message,
// and getrandom() and uname() (gethostname) for each were two system calls of its ~ten.
struct process_constants {
    std::uint64_t seed = 0;
    std::string host;
};

const process_constants& constants() {
    static const process_constants c = [] {
        process_constants k;
        if (::getrandom(&k.seed, sizeof k.seed, GRND_NONBLOCK) != sizeof k.seed) {
            // No entropy yet (early boot): time, pid and counter are unique on their own.
            struct timespec t {};
            ::clock_gettime(CLOCK_REALTIME, &t);
            k.seed = static_cast<std::uint64_t>(t.tv_nsec) ^ static_cast<std::uint64_t>(::getpid());
        }
        char host[HOST_NAME_MAX + 1] = {};
        if (::gethostname(host, sizeof host - 1) == 0) k.host = host;
        return k;
    }();
    return c;
}

// The process's pid, asked once and again in a child that fork() made (pthread_atfork): a
// system call per delivered message otherwise.
std::atomic<pid_t>& own_pid() {
    static std::atomic<pid_t> pid = [] {
        ::pthread_atfork(nullptr, nullptr, [] { own_pid().store(::getpid()); });
        return ::getpid();
    }();
    return pid;
}

}  // namespace

unique_parts next_unique_parts() {
    static std::atomic<std::uint64_t> counter{0};
    const auto& k = constants();
    unique_parts p;
    struct timespec t {};
    ::clock_gettime(CLOCK_REALTIME, &t);
    p.seconds = t.tv_sec;
    p.microseconds = static_cast<std::uint32_t>(t.tv_nsec / 1000);
    // A forked child has the parent's seed and counter, but its own pid.
    p.pid = static_cast<std::uint32_t>(own_pid().load());
    p.counter = ++counter;
    p.random = mix(k.seed + p.counter);
    p.host = k.host;
    return p;
}

}  // namespace tandem::maildir
