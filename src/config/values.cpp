// SPDX-License-Identifier: MIT
// The value syntaxes of tandem.conf: sizes, durations, booleans, the mass-removal limit,
// path expansion and mailbox patterns.
#include "values_p.hpp"

#include <boost/throw_exception.hpp>

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace tandem::config {

namespace detail {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    // Optimal string alignment: Levenshtein plus the swap of two neighbours ("hsot"), the
    // commonest typo. Keys and names are short, so three rows are cheap.
    std::vector<std::size_t> before(b.size() + 1), above(b.size() + 1), row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) above[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            row[j] = std::min(
                {above[j] + 1, row[j - 1] + 1, above[j - 1] + (a[i - 1] != b[j - 1] ? 1u : 0u)});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                row[j] = std::min(row[j], before[j - 2] + 1);
        }
        before.swap(above);
        above.swap(row);
    }
    return above[b.size()];
}

error make_error(std::string text) {
    return error(diagnostic{{}, 0, std::move(text)});
}

std::optional<std::string> home_directory(const environment& env) {
    if (auto home = env("HOME"); home && !home->empty()) return home;
    // HOME unset (some cron set-ups): the password database knows.
    long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buffer(size > 0 ? static_cast<std::size_t>(size) : 16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwuid_r(::getuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found &&
        found->pw_dir && *found->pw_dir)
        return std::string(found->pw_dir);
    return std::nullopt;
}

}  // namespace detail

using detail::make_error;

std::string diagnostic::to_string() const {
    if (file.empty()) return text;
    if (line == 0) return file + ": " + text;
    return file + ":" + std::to_string(line) + ": " + text;
}

std::string error::message() const {
    std::string out;
    for (const auto& d : diagnostics) {
        if (!out.empty()) out += '\n';
        out += d.to_string();
    }
    return out;
}

void throw_exception_from_error(const error& e, const boost::source_location& loc) {
    boost::throw_exception(std::runtime_error(e.message()), loc);
}

namespace {

// Digits at the front of `text`, consumed; nullopt on overflow or no digits.
std::optional<std::uint64_t> take_number(std::string_view& text) {
    std::uint64_t n = 0;
    std::size_t i = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
        const unsigned digit = static_cast<unsigned>(text[i] - '0');
        if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
        n = n * 10 + digit;
    }
    if (i == 0) return std::nullopt;
    text.remove_prefix(i);
    return n;
}

}  // namespace

result<std::uint64_t> parse_size(std::string_view text) {
    const auto bad = [] {
        return make_error("expected a size such as 512k, 50M or 1G, or a number of bytes");
    };
    std::string_view rest = detail::trim(text);
    auto n = take_number(rest);
    if (!n) return bad();
    std::uint64_t unit = 1;
    if (!rest.empty()) {
        switch (std::tolower(static_cast<unsigned char>(rest.front()))) {
            case 'k':
                unit = std::uint64_t{1} << 10;
                break;
            case 'm':
                unit = std::uint64_t{1} << 20;
                break;
            case 'g':
                unit = std::uint64_t{1} << 30;
                break;
            case 'b':
                break;
            default:
                return bad();
        }
        rest.remove_prefix(1);
        // 50M, 50MB and 50MiB all mean 50 * 1024 * 1024.
        if (unit != 1 && (rest == "B" || rest == "b" || rest == "iB")) rest = {};
        if (!rest.empty()) return bad();
    }
    if (*n > std::numeric_limits<std::uint64_t>::max() / unit) return make_error("size too large");
    return *n * unit;
}

result<delete_limit> parse_delete_limit(std::string_view text) {
    std::string_view rest = detail::trim(text);
    auto n = take_number(rest);
    if (n && rest == "%") {
        if (*n > 100) return make_error("a percentage must be between 0% and 100%");
        return delete_limit{delete_limit::kind::percent, *n};
    }
    if (n && rest.empty()) return delete_limit{delete_limit::kind::count, *n};
    return make_error("expected a percentage such as 50% or a number of messages");
}

bool delete_limit::allows(std::uint64_t removals, std::uint64_t total) const {
    if (unit == kind::count) return removals <= value;
    if (removals > total) return false;
    // removals / total <= value / 100 without rounding; value <= 100 and removals <= total,
    // so both products fit unless total is absurdly large.
    if (total <= std::numeric_limits<std::uint64_t>::max() / 100)
        return removals * 100 <= value * total;
    return static_cast<long double>(removals) * 100 <= static_cast<long double>(value) * total;
}

result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    const auto bad = [] { return make_error("expected a duration such as 60s, 5m, 1h or 500ms"); };
    std::string_view rest = detail::trim(text);
    if (rest.empty()) return bad();
    std::uint64_t total = 0;
    bool first_part = true;
    while (!rest.empty()) {
        auto n = take_number(rest);
        if (!n) return bad();
        std::uint64_t unit = 1000;  // a plain number is seconds
        std::size_t len = 0;
        while (len < rest.size() && std::isalpha(static_cast<unsigned char>(rest[len]))) ++len;
        const std::string suffix = detail::to_lower(rest.substr(0, len));
        rest.remove_prefix(len);
        if (suffix == "ms")
            unit = 1;
        else if (suffix == "s" || suffix.empty())
            unit = 1000;
        else if (suffix == "m" || suffix == "min")
            unit = 60'000;
        else if (suffix == "h")
            unit = 3'600'000;
        else if (suffix == "d")
            unit = 86'400'000;
        else
            return bad();
        // A bare number is seconds only on its own: "5m3" is more likely a typo than 5m3s.
        if (suffix.empty() && (!rest.empty() || !first_part)) return bad();
        first_part = false;
        if (*n > (std::uint64_t{1} << 50) / unit) return make_error("duration too long");
        total += *n * unit;
        if (total > (std::uint64_t{1} << 50)) return make_error("duration too long");
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

result<bool> parse_bool(std::string_view text) {
    const std::string t = detail::to_lower(detail::trim(text));
    if (t == "yes" || t == "true" || t == "on" || t == "1") return true;
    if (t == "no" || t == "false" || t == "off" || t == "0") return false;
    return make_error("expected yes or no (also true/false, on/off, 1/0)");
}

environment process_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* v = std::getenv(std::string(name).c_str());
        if (!v) return std::nullopt;
        return std::string(v);
    };
}

result<std::string> expand_path(std::string_view text, const environment& env) {
    std::string out;
    std::size_t i = 0;
    if (!text.empty() && text[0] == '~') {
        if (text.size() > 1 && text[1] != '/')
            return make_error("only \"~\" and \"~/\" expand at the start of a path, not ~user");
        auto home = detail::home_directory(env);
        if (!home) return make_error("cannot expand \"~\": HOME is not set");
        out = *home;
        i = 1;
    }
    while (i < text.size()) {
        const char c = text[i];
        if (c != '$') {
            out += c;
            ++i;
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '$') {
            out += '$';
            i += 2;
            continue;
        }
        std::string name;
        std::optional<std::string> fallback;
        if (i + 1 < text.size() && text[i + 1] == '{') {
            const std::size_t close = text.find('}', i + 2);
            if (close == std::string_view::npos)
                return make_error("\"${\" without a closing \"}\"");
            std::string_view inside = text.substr(i + 2, close - i - 2);
            if (const auto dash = inside.find(":-"); dash != std::string_view::npos) {
                fallback = std::string(inside.substr(dash + 2));
                inside = inside.substr(0, dash);
            }
            name = std::string(inside);
            i = close + 1;
        } else {
            std::size_t j = i + 1;
            while (j < text.size() &&
                   (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_'))
                ++j;
            name = std::string(text.substr(i + 1, j - i - 1));
            i = j;
        }
        if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) ||
            !std::all_of(name.begin(), name.end(), [](char ch) {
                return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
            }))
            return make_error("bad variable name after \"$\" (write $$ for a dollar sign)");
        auto value = name == "HOME" ? detail::home_directory(env) : env(name);
        if (!value || value->empty()) {
            if (!fallback) return make_error("environment variable \"" + name + "\" is not set");
            value = fallback;
        }
        out += *value;
    }
    return out;
}

namespace {

// XDG Base Directory: a variable that is unset, empty or relative is ignored.
std::filesystem::path xdg_dir(const environment& env, std::string_view var,
                              std::string_view fallback) {
    if (auto v = env(var); v && !v->empty() && (*v)[0] == '/') return std::filesystem::path(*v);
    auto home = detail::home_directory(env);
    return std::filesystem::path(home.value_or(".")) / fallback;
}

}  // namespace

std::filesystem::path default_config_path(const environment& env) {
    return xdg_dir(env, "XDG_CONFIG_HOME", ".config") / "tandem" / "tandem.conf";
}

std::filesystem::path default_state_dir(const environment& env) {
    return xdg_dir(env, "XDG_STATE_HOME", ".local/state") / "tandem";
}

// Mailbox patterns.

namespace {

// INBOX is case-insensitive (RFC 9051 5.1) as the first level of a name only.
std::string canonical_inbox(std::string_view name) {
    std::string out(name);
    const std::size_t end = std::min(out.find('/'), out.size());
    if (detail::iequals(std::string_view(out).substr(0, end), "INBOX"))
        out.replace(0, end, "INBOX");
    return out;
}

bool glob(std::string_view pattern, std::string_view name) {
    // dp[j]: pattern[0..i) matches name[0..j). O(|pattern| * |name|), no backtracking blow-up.
    std::vector<char> dp(name.size() + 1, 0), next(name.size() + 1, 0);
    dp[0] = 1;
    for (const char p : pattern) {
        std::fill(next.begin(), next.end(), 0);
        if (p == '*' || p == '%') {
            char reach = 0;
            for (std::size_t j = 0; j <= name.size(); ++j) {
                if (p == '%' && j > 0 && name[j - 1] == '/') reach = 0;
                reach |= dp[j];
                next[j] = reach;
            }
        } else {
            for (std::size_t j = 1; j <= name.size(); ++j) next[j] = dp[j - 1] && name[j - 1] == p;
        }
        dp.swap(next);
    }
    return dp[name.size()] != 0;
}

}  // namespace

bool mailbox_pattern::has_wildcards() const {
    return text.find_first_of("*%") != std::string::npos;
}

bool mailbox_pattern::matches(std::string_view canonical_name) const {
    return glob(text, canonical_inbox(canonical_name));
}

result<mailbox_patterns> mailbox_patterns::parse(std::string_view text) {
    mailbox_patterns out;
    std::size_t i = 0;
    const auto space = [](char c) { return c == ' ' || c == '\t'; };
    while (true) {
        while (i < text.size() && space(text[i])) ++i;
        if (i == text.size()) break;
        mailbox_pattern p;
        if (text[i] == '!') {
            p.exclude = true;
            ++i;
        }
        if (i < text.size() && text[i] == '"') {
            ++i;
            bool closed = false;
            while (i < text.size()) {
                const char c = text[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\\' && i < text.size()) {
                    p.text += text[i++];
                    continue;
                }
                p.text += c;
            }
            if (!closed) return make_error("a quoted mailbox name without its closing quote");
            if (i < text.size() && !space(text[i]))
                return make_error("expected a space after the quoted name \"" + p.text + "\"");
        } else {
            while (i < text.size() && !space(text[i])) {
                if (text[i] == '"')
                    return make_error("a quote inside a pattern; quote the whole name instead");
                p.text += text[i++];
            }
        }
        if (p.text.empty())
            return make_error(p.exclude ? "\"!\" without a pattern after it" : "an empty pattern");
        if (p.text.front() == '/' || p.text.back() == '/' || p.text.find("//") != std::string::npos)
            return make_error("a pattern with an empty level: \"" + p.text + "\"");
        p.text = canonical_inbox(p.text);
        out.patterns_.push_back(std::move(p));
    }
    if (std::none_of(out.patterns_.begin(), out.patterns_.end(),
                     [](const mailbox_pattern& p) { return !p.exclude; }))
        return make_error("no pattern selects a mailbox (only exclusions; add * for all)");
    return out;
}

bool mailbox_patterns::matches(std::string_view canonical_name) const {
    bool included = false;
    for (const auto& p : patterns_) {
        if (!p.matches(canonical_name)) continue;
        if (p.exclude) return false;
        included = true;
    }
    return included;
}

std::string_view to_string(tls_mode m) {
    return detail::name_of(detail::tls_modes, m);
}
std::string_view to_string(auth_method m) {
    return m == auth_method::automatic ? "auto" : detail::name_of(detail::auth_methods, m);
}
std::string_view to_string(direction d) {
    return detail::name_of(detail::directions, d);
}
std::string_view to_string(sides s) {
    return detail::name_of(detail::sides_values, s);
}
std::string_view to_string(log_level l) {
    return detail::name_of(detail::log_levels, l);
}

}  // namespace tandem::config
