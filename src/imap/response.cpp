// SPDX-License-Identifier: MIT
#include "tandem/imap/response.hpp"

#include "parser_p.hpp"

#include <array>

namespace tandem::imap {
namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
// days_from_civil), so that no time-zone database is involved.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, int& out) {
    if (s.empty()) return false;
    out = 0;
    for (char c : s) {
        if (!detail::is_digit(c)) return false;
        out = out * 10 + (c - '0');
    }
    return true;
}

}  // namespace

// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
// date-day-fixed = (SP DIGIT) / 2DIGIT; time = 2DIGIT ":" 2DIGIT ":" 2DIGIT;
// zone = ("+" / "-") 4DIGIT (RFC 3501 9). A one-digit day without the space is accepted.
std::optional<std::int64_t> parse_internaldate(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    auto dash = s.find('-');
    if (dash == std::string_view::npos || dash > 2) return std::nullopt;
    int day = 0;
    if (!digits(s.substr(0, dash), day)) return std::nullopt;
    s.remove_prefix(dash + 1);
    static constexpr std::array<std::string_view, 12> months = {
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
    if (s.size() < 4 || s[3] != '-') return std::nullopt;
    unsigned month = 0;
    for (unsigned i = 0; i < months.size(); ++i)
        if (detail::iequals(s.substr(0, 3), months[i])) month = i + 1;
    if (month == 0) return std::nullopt;
    s.remove_prefix(4);
    // "yyyy hh:mm:ss +zzzz"
    if (s.size() != 19 || s[4] != ' ' || s[7] != ':' || s[10] != ':' || s[13] != ' ')
        return std::nullopt;
    int year = 0, hour = 0, minute = 0, second = 0, zone = 0;
    if (!digits(s.substr(0, 4), year) || !digits(s.substr(5, 2), hour) ||
        !digits(s.substr(8, 2), minute) || !digits(s.substr(11, 2), second) ||
        !digits(s.substr(15, 4), zone))
        return std::nullopt;
    if (s[14] != '+' && s[14] != '-') return std::nullopt;
    static constexpr std::array<unsigned, 12> month_days = {31, 29, 31, 30, 31, 30,
                                                            31, 31, 30, 31, 30, 31};
    if (day < 1 || static_cast<unsigned>(day) > month_days[month - 1] || hour > 23 || minute > 59 ||
        second > 60 || zone % 100 > 59)
        return std::nullopt;
    std::int64_t offset = (zone / 100) * 3600 + (zone % 100) * 60;
    if (s[14] == '-') offset = -offset;
    auto days = days_from_civil(year, month, static_cast<unsigned>(day));
    // Local time minus its offset is UTC: "02:44:25 -0700" is 09:44:25Z.
    return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

mail::flag_set make_flag_set(std::span<const std::string> atoms) {
    mail::flag_set flags;
    for (const auto& a : atoms) flags.add_imap(a);
    return flags;
}

mail::flag_set fetch_data::flag_set() const {
    return flags ? make_flag_set(*flags) : mail::flag_set{};
}

}  // namespace tandem::imap
