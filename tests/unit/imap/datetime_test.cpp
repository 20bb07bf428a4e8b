// SPDX-License-Identifier: MIT
#include "tandem/imap/datetime.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace {

using tandem::errc;
using tandem::imap::date_time;
using tandem::imap::format_date_time;
using tandem::imap::parse_date_time;

std::string fmt(std::int64_t s, int off) {
    auto r = format_date_time({s, off});
    EXPECT_TRUE(r);
    return r ? *r : std::string("<error>");
}

// RFC 3501 6.3.11's example, "07-Feb-1994 21:52:25 -0800", is 1994-02-08T05:52:25Z.
constexpr std::int64_t rfc_example = 760686745;

TEST(datetime, formats_rfc_example_with_space_padded_day) {
    EXPECT_EQ(fmt(rfc_example, -480), " 7-Feb-1994 21:52:25 -0800");
    EXPECT_EQ(fmt(rfc_example, 0), " 8-Feb-1994 05:52:25 +0000");
    EXPECT_EQ(fmt(rfc_example, 330), " 8-Feb-1994 11:22:25 +0530");
}

TEST(datetime, formats_epoch_and_two_digit_days) {
    EXPECT_EQ(fmt(0, 0), " 1-Jan-1970 00:00:00 +0000");
    EXPECT_EQ(fmt(-1, 0), "31-Dec-1969 23:59:59 +0000");
    EXPECT_EQ(fmt(951782400, 0), "29-Feb-2000 00:00:00 +0000");  // a leap day
    EXPECT_EQ(fmt(1700000000, 60), "14-Nov-2023 23:13:20 +0100");
    EXPECT_EQ(fmt(1700000000, -600), "14-Nov-2023 12:13:20 -1000");
}

TEST(datetime, format_rejects_what_cannot_be_written) {
    EXPECT_EQ(format_date_time({0, 100 * 60}).error(), errc::invalid_argument);
    EXPECT_EQ(format_date_time({253402300800, 0}).error(), errc::invalid_argument);  // 10000-01-01
    EXPECT_TRUE(format_date_time({253402300799, 0}));                                // 9999-12-31
    EXPECT_EQ(format_date_time({INT64_MAX, 0}).error(), errc::invalid_argument);
    EXPECT_EQ(format_date_time({INT64_MIN, 0}).error(), errc::invalid_argument);
}

date_time parse(std::string_view s) {
    auto r = parse_date_time(s);
    EXPECT_TRUE(r) << s;
    return r ? *r : date_time{-1, -1};
}

TEST(datetime, parses_rfc_example_in_every_day_form) {
    const date_time want{rfc_example, -480};
    EXPECT_EQ(parse(" 7-Feb-1994 21:52:25 -0800"), want);
    EXPECT_EQ(parse("07-Feb-1994 21:52:25 -0800"), want);
    EXPECT_EQ(parse("7-Feb-1994 21:52:25 -0800"), want);
    EXPECT_EQ(parse("\"07-Feb-1994 21:52:25 -0800\""), want);
    EXPECT_EQ(parse(" 7-FEB-1994 21:52:25 -0800"), want);
    EXPECT_EQ(parse(" 8-Feb-1994 05:52:25 +0000"), (date_time{rfc_example, 0}));
}

TEST(datetime, round_trips) {
    for (std::int64_t s : {std::int64_t{0}, std::int64_t{-86400 * 365}, rfc_example,
                           std::int64_t{1700000000}, std::int64_t{4102444799}}) {
        for (int off : {0, 60, -480, 345, -(9 * 60 + 30), 14 * 60}) {
            const date_time t{s, off};
            auto text = format_date_time(t);
            ASSERT_TRUE(text);
            EXPECT_EQ(text->size(), 26u);
            EXPECT_EQ(parse(*text), t) << *text;
        }
    }
}

TEST(datetime, leap_second_reads_as_next_second) {
    EXPECT_EQ(parse("31-Dec-2016 23:59:60 +0000").seconds, 1483228800);
}

TEST(datetime, rejects_malformed) {
    for (std::string_view bad : {
             "",
             "07-Feb-1994 21:52:25",          // no zone
             "07-Feb-1994 21:52:25 0800",     // no sign
             "07-Foo-1994 21:52:25 +0000",    // month
             "31-Apr-1994 21:52:25 +0000",    // no such day
             "29-Feb-1900 00:00:00 +0000",    // not a leap year
             " 0-Feb-1994 21:52:25 +0000",    // day zero
             "07-Feb-1994 24:00:00 +0000",    // hour
             "07-Feb-1994 21:60:25 +0000",    // minute
             "07-Feb-1994 21:52:61 +0000",    // second
             "07-Feb-1994 21:52:25 +0060",    // zone minutes
             "07-Feb-94 21:52:25 +0000",      // two-digit year
             "07-Feb-1994 21:52:25 +0000 ",   // trailing space
             "07-Feb-1994  21:52:25 +0000",   // two spaces
             "107-Feb-1994 21:52:25 +0000",   // three-digit day
             "\"07-Feb-1994 21:52:25 +0000",  // one quote
         }) {
        auto r = parse_date_time(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error(), errc::invalid_argument);
        }
    }
}

TEST(datetime, local_offset_follows_tz) {
    const char* old = std::getenv("TZ");
    const std::string saved = old ? old : "";
    ::setenv("TZ", "UTC-3", 1);  // POSIX sign: three hours east of UTC
    ::tzset();
    EXPECT_EQ(tandem::imap::local_offset_minutes(rfc_example), 180);
    ::setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1);
    ::tzset();
    EXPECT_EQ(tandem::imap::local_offset_minutes(rfc_example), -300);  // February: EST
    EXPECT_EQ(tandem::imap::local_offset_minutes(1689000000), -240);   // July: EDT
    if (old)
        ::setenv("TZ", saved.c_str(), 1);
    else
        ::unsetenv("TZ");
    ::tzset();
}

}  // namespace
