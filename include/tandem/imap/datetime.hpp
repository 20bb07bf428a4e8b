// SPDX-License-Identifier: MIT
// IMAP date-time (RFC 3501 section 9, RFC 9051 section 9): `dd-Mon-yyyy hh:mm:ss +zzzz`, the
// INTERNALDATE of FETCH and APPEND, with a space-padded day (date-day-fixed) and English months.
#pragma once

#include "tandem/util/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::imap {

// An instant and the zone in which it is written. Two date_times with the same `seconds` name
// the same instant whatever their offsets.
struct date_time {
    std::int64_t seconds = 0;  // since 1970-01-01T00:00:00Z
    int offset_minutes = 0;    // east of UTC: +0200 is 120, -0800 is -480

    friend bool operator==(const date_time&, const date_time&) = default;
};

// The 26 characters between the DQUOTEs of date-time, e.g. ` 7-Feb-1994 21:52:25 -0800`.
// errc::invalid_argument when the local year falls outside 0000..9999 or the offset outside
// -99:59..+99:59 (the four digits of `zone`).
result<std::string> format_date_time(const date_time& t);

// Parses the same, with or without the surrounding DQUOTEs. Lenient where servers differ and no
// ambiguity arises: a day written ` 7`, `07` or `7`, and any case for the month (ABNF strings are
// case-insensitive). A leap second (`:60`) is read as the next second. errc::invalid_argument
// otherwise (day 31-Apr, hour 24, zone +0260, trailing bytes...).
result<date_time> parse_date_time(std::string_view text);

// The local zone's offset at `seconds` (the TZ environment variable, else /etc/localtime), for an
// APPEND that gives a Maildir file's mtime in the user's own zone.
int local_offset_minutes(std::int64_t seconds);

}  // namespace tandem::imap
