// SPDX-License-Identifier: MIT
#include "tandem/config/config.hpp"

#include <gtest/gtest.h>

#include <map>

namespace tandem::config {
namespace {

environment values_env(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
        auto it = vars.find(std::string(name));
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

TEST(parse_size, units_are_powers_of_1024) {
    EXPECT_EQ(parse_size("0").value(), 0u);
    EXPECT_EQ(parse_size("1234").value(), 1234u);
    EXPECT_EQ(parse_size("512k").value(), 512u * 1024);
    EXPECT_EQ(parse_size("512K").value(), 512u * 1024);
    EXPECT_EQ(parse_size("50M").value(), 50u * 1024 * 1024);
    EXPECT_EQ(parse_size("50MB").value(), 50u * 1024 * 1024);
    EXPECT_EQ(parse_size("1G").value(), 1024u * 1024 * 1024);
    EXPECT_EQ(parse_size("2GiB").value(), 2ull * 1024 * 1024 * 1024);
    EXPECT_EQ(parse_size("100b").value(), 100u);
}

TEST(parse_size, rejects_garbage_and_overflow) {
    for (const char* bad : {"", "M", "50Q", "5.5M", "-1", "50 M x", "1T", "50MBs",
                            "99999999999999999999", "17179869184G"}) {
        auto r = parse_size(bad);
        EXPECT_FALSE(r) << bad;
    }
    EXPECT_NE(parse_size("50Q").error().message().find("50M"), std::string::npos);
}

TEST(parse_delete_limit, percent_or_count) {
    EXPECT_EQ(parse_delete_limit("50%").value(), (delete_limit{delete_limit::kind::percent, 50}));
    EXPECT_EQ(parse_delete_limit("100%").value(), (delete_limit{delete_limit::kind::percent, 100}));
    EXPECT_EQ(parse_delete_limit("25").value(), (delete_limit{delete_limit::kind::count, 25}));
    EXPECT_FALSE(parse_delete_limit("101%"));
    EXPECT_FALSE(parse_delete_limit("%"));
    EXPECT_FALSE(parse_delete_limit("half"));
    EXPECT_FALSE(parse_delete_limit("5%%"));
}

TEST(delete_limit, allows) {
    const delete_limit half{delete_limit::kind::percent, 50};
    EXPECT_TRUE(half.allows(5, 10));
    EXPECT_FALSE(half.allows(6, 10));
    EXPECT_TRUE(half.allows(0, 0));
    EXPECT_FALSE(half.allows(1, 1));
    EXPECT_FALSE(half.allows(11, 10));
    const delete_limit none{delete_limit::kind::percent, 0};
    EXPECT_FALSE(none.allows(1, 1000));
    EXPECT_TRUE(none.allows(0, 1000));
    const delete_limit count{delete_limit::kind::count, 3};
    EXPECT_TRUE(count.allows(3, 3));
    EXPECT_FALSE(count.allows(4, 1000000));
}

TEST(parse_duration, units) {
    using std::chrono::milliseconds;
    EXPECT_EQ(parse_duration("60s").value(), milliseconds(60'000));
    EXPECT_EQ(parse_duration("60").value(), milliseconds(60'000));
    EXPECT_EQ(parse_duration("5m").value(), milliseconds(300'000));
    EXPECT_EQ(parse_duration("1h").value(), milliseconds(3'600'000));
    EXPECT_EQ(parse_duration("500ms").value(), milliseconds(500));
    EXPECT_EQ(parse_duration("1m30s").value(), milliseconds(90'000));
    EXPECT_EQ(parse_duration("2d").value(), milliseconds(172'800'000));
    for (const char* bad : {"", "s", "10x", "1.5s", "-5s", "60 s", "5m3", "99999999999999d"})
        EXPECT_FALSE(parse_duration(bad)) << bad;
}

TEST(parse_bool, all_spellings) {
    for (const char* yes : {"yes", "YES", "true", "on", "1", "True"})
        EXPECT_TRUE(parse_bool(yes).value()) << yes;
    for (const char* no : {"no", "false", "off", "0", "No"})
        EXPECT_FALSE(parse_bool(no).value()) << no;
    for (const char* bad : {"", "y", "2", "yess", "enabled"}) EXPECT_FALSE(parse_bool(bad)) << bad;
}

TEST(expand_path, tilde_and_variables) {
    auto env = values_env({{"HOME", "/home/me"}, {"XDG_DATA_HOME", "/data"}, {"EMPTY", ""}});
    EXPECT_EQ(expand_path("~", env).value(), "/home/me");
    EXPECT_EQ(expand_path("~/Mail", env).value(), "/home/me/Mail");
    EXPECT_EQ(expand_path("$HOME/Mail", env).value(), "/home/me/Mail");
    EXPECT_EQ(expand_path("${XDG_DATA_HOME}/mail", env).value(), "/data/mail");
    EXPECT_EQ(expand_path("${XDG_CONFIG_HOME:-/home/me/.config}/x", env).value(),
              "/home/me/.config/x");
    EXPECT_EQ(expand_path("${EMPTY:-/d}", env).value(), "/d");
    EXPECT_EQ(expand_path("/a/$$b", env).value(), "/a/$b");
    EXPECT_EQ(expand_path("/plain/path", env).value(), "/plain/path");
    EXPECT_EQ(expand_path("/x~y", env).value(), "/x~y");  // only a leading ~ expands
}

TEST(expand_path, errors) {
    auto env = values_env({{"HOME", "/home/me"}});
    auto unset = expand_path("$XDG_DATA_HOME/mail", env);
    ASSERT_FALSE(unset);
    EXPECT_NE(unset.error().message().find("XDG_DATA_HOME"), std::string::npos);
    EXPECT_FALSE(expand_path("${HOME", env));
    EXPECT_FALSE(expand_path("~other/Mail", env));
    EXPECT_FALSE(expand_path("/a/$/b", env));
    EXPECT_FALSE(expand_path("${1x}", env));
}

TEST(default_paths, xdg_or_home) {
    auto plain = values_env({{"HOME", "/home/me"}});
    EXPECT_EQ(default_config_path(plain), "/home/me/.config/tandem/tandem.conf");
    EXPECT_EQ(default_state_dir(plain), "/home/me/.local/state/tandem");
    auto xdg =
        values_env({{"HOME", "/home/me"}, {"XDG_CONFIG_HOME", "/cfg"}, {"XDG_STATE_HOME", "/state"}});
    EXPECT_EQ(default_config_path(xdg), "/cfg/tandem/tandem.conf");
    EXPECT_EQ(default_state_dir(xdg), "/state/tandem");
    // The XDG spec: a relative value is invalid and ignored.
    auto relative = values_env({{"HOME", "/home/me"}, {"XDG_CONFIG_HOME", "cfg"}});
    EXPECT_EQ(default_config_path(relative), "/home/me/.config/tandem/tandem.conf");
}

mailbox_patterns patterns(std::string_view text) {
    auto r = mailbox_patterns::parse(text);
    EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error().message());
    return r ? *r : mailbox_patterns{};
}

TEST(mailbox_patterns, star_crosses_levels_percent_does_not) {
    auto star = patterns("*");
    EXPECT_TRUE(star.matches("INBOX"));
    EXPECT_TRUE(star.matches("Work/Projects/2024"));
    auto top = patterns("%");
    EXPECT_TRUE(top.matches("Archive"));
    EXPECT_FALSE(top.matches("Archive/2023"));
    auto sub = patterns("Work/%");
    EXPECT_TRUE(sub.matches("Work/A"));
    EXPECT_FALSE(sub.matches("Work/A/B"));
    EXPECT_FALSE(sub.matches("Work"));
    auto deep = patterns("Work/*");
    EXPECT_TRUE(deep.matches("Work/A/B"));
    EXPECT_FALSE(deep.matches("Workshop/A"));
    auto mid = patterns("A%Z");
    EXPECT_TRUE(mid.matches("AbcZ"));
    EXPECT_TRUE(mid.matches("AZ"));
    EXPECT_FALSE(mid.matches("Ab/cZ"));
}

TEST(mailbox_patterns, excludes_win_whatever_the_order) {
    auto p = patterns("!Junk * !\"Old Stuff/*\"");
    EXPECT_TRUE(p.matches("INBOX"));
    EXPECT_TRUE(p.matches("Sent"));
    EXPECT_FALSE(p.matches("Junk"));
    EXPECT_TRUE(p.matches("Junk/Keep"));  // the exclusion is literal
    EXPECT_FALSE(p.matches("Old Stuff/2019"));
    EXPECT_TRUE(p.matches("Old Stuff"));
    ASSERT_EQ(p.patterns().size(), 3u);
    EXPECT_TRUE(p.patterns()[0].exclude);
    EXPECT_EQ(p.patterns()[2].text, "Old Stuff/*");
}

TEST(mailbox_patterns, literals_and_quotes) {
    auto p = patterns("INBOX \"My Folder\" Sent \"Quote\\\"d\" Ünïcødé/日本");
    EXPECT_TRUE(p.matches("My Folder"));
    EXPECT_TRUE(p.matches("Sent"));
    EXPECT_TRUE(p.matches("Quote\"d"));
    EXPECT_TRUE(p.matches("Ünïcødé/日本"));
    EXPECT_FALSE(p.matches("My"));
    EXPECT_FALSE(p.matches("sent"));  // only INBOX ignores case
    EXPECT_FALSE(p.patterns()[1].has_wildcards());
    EXPECT_TRUE(patterns("\"Quoted *\"").matches("Quoted stars"));
}

TEST(mailbox_patterns, inbox_is_case_insensitive) {
    auto p = patterns("inbox Inbox/%");
    EXPECT_TRUE(p.matches("INBOX"));
    EXPECT_TRUE(p.matches("inbox"));
    EXPECT_TRUE(p.matches("InBox/Sub"));
    EXPECT_FALSE(p.matches("INBOXES"));
    EXPECT_TRUE(patterns("INBOX").matches("Inbox"));
    EXPECT_FALSE(patterns("* !INBOX").matches("inbox"));
}

TEST(mailbox_patterns, syntax_errors) {
    for (const char* bad :
         {"", "   ", "!Junk", "\"unterminated", "!", "\"a\"b", "a\"b", "/x", "x/", "a//b", "\"\""})
        EXPECT_FALSE(mailbox_patterns::parse(bad)) << bad;
}

TEST(mailbox_patterns, no_backtracking_blowup) {
    auto p = patterns("*a*a*a*a*a*a*a*a*a*a*a*b");
    EXPECT_FALSE(p.matches(std::string(5000, 'a')));
}

TEST(to_string, names_round_trip) {
    EXPECT_EQ(to_string(tls_mode::starttls), "starttls");
    EXPECT_EQ(to_string(direction::a_to_b), "a-to-b");
    EXPECT_EQ(to_string(sides::none), "none");
    EXPECT_EQ(to_string(auth_method::automatic), "auto");
    EXPECT_EQ(to_string(log_level::debug), "debug");
}

}  // namespace
}  // namespace tandem::config
