// SPDX-License-Identifier: MIT
#include "tandem/imap/datetime.hpp"

#include <array>
#include <cctype>
#include <chrono>
#include <ctime>

namespace tandem::imap {
namespace {

namespace chr = std::chrono;

constexpr std::array<std::string_view, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

constexpr int max_offset = 99 * 60 + 59;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

void put2(std::string& out, int v) {
    out += static_cast<char>('0' + v / 10);
    out += static_cast<char>('0' + v % 10);
}

// A cursor over the text with the few readers the grammar needs.
class reader {
  public:
    explicit reader(std::string_view s) : s_(s) {}
    bool done() const { return pos_ == s_.size(); }
    bool literal(char c) {
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    bool digits(std::size_t n, int& v) {
        if (s_.size() - pos_ < n) return false;
        int r = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const char c = s_[pos_ + i];
            if (c < '0' || c > '9') return false;
            r = r * 10 + (c - '0');
        }
        pos_ += n;
        v = r;
        return true;
    }
    bool is_digit() const { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; }
    std::string_view take(std::size_t n) {
        if (s_.size() - pos_ < n) return {};
        auto r = s_.substr(pos_, n);
        pos_ += n;
        return r;
    }

  private:
    std::string_view s_;
    std::size_t pos_ = 0;
};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

}  // namespace

result<std::string> format_date_time(const date_time& t) {
    if (t.offset_minutes < -max_offset || t.offset_minutes > max_offset)
        return errc::invalid_argument;
    // Reject before the arithmetic can overflow: 10000 years is about 3.2e11 seconds.
    constexpr std::int64_t limit = 400'000'000'000;
    if (t.seconds < -limit || t.seconds > limit) return errc::invalid_argument;
    const std::int64_t local = t.seconds + std::int64_t{t.offset_minutes} * 60;
    const std::int64_t days = floor_div(local, 86400);
    const std::int64_t in_day = local - days * 86400;
    const chr::year_month_day ymd{chr::sys_days{chr::days{days}}};
    const int year = static_cast<int>(ymd.year());
    if (year < 0 || year > 9999) return errc::invalid_argument;

    std::string out;
    out.reserve(26);
    const auto day = static_cast<int>(static_cast<unsigned>(ymd.day()));
    // date-day-fixed = (SP DIGIT) / 2DIGIT
    out += day < 10 ? ' ' : static_cast<char>('0' + day / 10);
    out += static_cast<char>('0' + day % 10);
    out += '-';
    out += months[static_cast<unsigned>(ymd.month()) - 1];
    out += '-';
    put2(out, year / 100);
    put2(out, year % 100);
    out += ' ';
    put2(out, static_cast<int>(in_day / 3600));
    out += ':';
    put2(out, static_cast<int>(in_day / 60 % 60));
    out += ':';
    put2(out, static_cast<int>(in_day % 60));
    out += ' ';
    out += t.offset_minutes < 0 ? '-' : '+';
    const int off = t.offset_minutes < 0 ? -t.offset_minutes : t.offset_minutes;
    put2(out, off / 60);
    put2(out, off % 60);
    return out;
}

result<date_time> parse_date_time(std::string_view text) {
    if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
        text = text.substr(1, text.size() - 2);
    reader r(text);
    int day = 0;
    int d1 = 0;
    if (r.literal(' ')) {
        if (!r.digits(1, day)) return errc::invalid_argument;
    } else if (!r.digits(1, day)) {
        return errc::invalid_argument;
    } else if (r.is_digit()) {
        r.digits(1, d1);
        day = day * 10 + d1;
    }
    if (!r.literal('-')) return errc::invalid_argument;
    const std::string_view mon = r.take(3);
    unsigned month = 0;
    for (unsigned m = 0; m < months.size(); ++m)
        if (iequals(mon, months[m])) month = m + 1;
    if (month == 0) return errc::invalid_argument;
    int year = 0;
    int hh = 0;
    int mm = 0;
    int ss = 0;
    int zh = 0;
    int zm = 0;
    if (!r.literal('-') || !r.digits(4, year) || !r.literal(' ') || !r.digits(2, hh) ||
        !r.literal(':') || !r.digits(2, mm) || !r.literal(':') || !r.digits(2, ss) ||
        !r.literal(' '))
        return errc::invalid_argument;
    int sign = 1;
    if (r.literal('-'))
        sign = -1;
    else if (!r.literal('+'))
        return errc::invalid_argument;
    if (!r.digits(2, zh) || !r.digits(2, zm) || !r.done()) return errc::invalid_argument;
    if (hh > 23 || mm > 59 || ss > 60 || zm > 59) return errc::invalid_argument;

    const chr::year_month_day ymd{chr::year{year}, chr::month{month},
                                  chr::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) return errc::invalid_argument;
    const std::int64_t days = chr::sys_days{ymd}.time_since_epoch().count();
    date_time t;
    t.offset_minutes = sign * (zh * 60 + zm);
    t.seconds = days * 86400 + hh * 3600 + mm * 60 + ss - std::int64_t{t.offset_minutes} * 60;
    return t;
}

int local_offset_minutes(std::int64_t seconds) {
    const auto t = static_cast<std::time_t>(seconds);
    std::tm local{};
    if (localtime_r(&t, &local) == nullptr) return 0;
    // tm_gmtoff (BSD, glibc) carries the offset in effect at that instant, DST included.
    return static_cast<int>(local.tm_gmtoff / 60);
}

}  // namespace tandem::imap
