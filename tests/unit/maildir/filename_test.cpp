// SPDX-License-Identifier: MIT
#include "tandem/maildir/filename.hpp"

#include <gtest/gtest.h>

#include <climits>
#include <set>

#include <sys/wait.h>
#include <unistd.h>

using namespace tandem::maildir;
using tandem::mail::flag_set;
using tandem::mail::system_flag;

TEST(maildir_filename, splits_base_and_flag_info) {
    auto n = parse_name("1491941793.M41850P8566.mx1,S=1355,W=1394:2,FRSab");
    EXPECT_EQ(n.base, "1491941793.M41850P8566.mx1,S=1355,W=1394");
    EXPECT_TRUE(n.has_info);
    EXPECT_TRUE(n.flags_info);
    EXPECT_EQ(n.system, "FRS");
    EXPECT_EQ(n.keywords, "ab");
    EXPECT_EQ(n.rest, "");
    EXPECT_EQ(size_hint(n.base), 1355u);
    EXPECT_EQ(vsize_hint(n.base), 1394u);
}

TEST(maildir_filename, canonical_names_round_trip) {
    for (const char* s : {"123.M1P2.host", "123.M1P2.host:2,", "123.M1P2.host:2,S",
                          "x,S=5:2,DFPRST", "x:2,Sabz", "x:2,FS,extra", "x:1,experimental"}) {
        EXPECT_EQ(format_name(parse_name(s)), s) << s;
    }
}

TEST(maildir_filename, letters_are_sorted_and_deduplicated_on_output) {
    auto n = parse_name("b:2,TSbaRSa");
    EXPECT_EQ(n.system, "RST");
    EXPECT_EQ(n.keywords, "ab");
    EXPECT_EQ(format_name(n), "b:2,RSTab");
    EXPECT_EQ(cur_name("b", "SF", "ca"), "b:2,FSac");
}

TEST(maildir_filename, odd_names) {
    // No info at all (a file in new/).
    auto plain = parse_name("1.2.host");
    EXPECT_FALSE(plain.has_info);
    EXPECT_EQ(plain.base, "1.2.host");
    EXPECT_EQ(format_name(plain), "1.2.host");
    // An info that is not "2,": kept verbatim, no flags read from it.
    auto exp = parse_name("m:1,FS");
    EXPECT_TRUE(exp.has_info);
    EXPECT_FALSE(exp.flags_info);
    EXPECT_EQ(exp.system, "");
    EXPECT_EQ(exp.rest, "1,FS");
    // Dovecot leaves text after a second ',' alone; so do we.
    auto rest = parse_name("m:2,S,foo=bar");
    EXPECT_EQ(rest.system, "S");
    EXPECT_EQ(rest.rest, ",foo=bar");
    // Unknown upper-case letters are kept as system letters.
    EXPECT_EQ(parse_name("m:2,XS").system, "SX");
    // A second separator is just a character of the info.
    auto two = parse_name("x:2,S:y");
    EXPECT_EQ(two.base, "x");
    EXPECT_EQ(two.system, ":S");
    EXPECT_EQ(two.keywords, "y");
    // Empty name, separator first.
    EXPECT_EQ(parse_name(":2,S").base, "");
    EXPECT_EQ(parse_name("").base, "");
    // Size hints that are not numbers are absent, and only fields after the first ',' count.
    EXPECT_EQ(size_hint("a,S=12x"), std::nullopt);
    EXPECT_EQ(size_hint("S=12"), std::nullopt);
    EXPECT_EQ(size_hint("a,U=3,S=12"), 12u);
    EXPECT_EQ(size_hint("a,S="), std::nullopt);
}

TEST(maildir_filename, alternative_separator) {
    auto n = parse_name("a:b!2,S", '!');
    EXPECT_EQ(n.base, "a:b");
    EXPECT_EQ(n.system, "S");
    EXPECT_EQ(format_name(n, '!'), "a:b!2,S");
    EXPECT_EQ(cur_name("x", "F", "", '!'), "x!2,F");
    EXPECT_FALSE(parse_name("a:2,S", '!').has_info);
}

TEST(maildir_filename, flags_to_letters_and_back) {
    flag_set f;
    f.set(system_flag::seen);
    f.set(system_flag::answered);
    f.set(system_flag::flagged);
    f.set(system_flag::deleted);
    f.set(system_flag::draft);
    f.add_keyword("$Forwarded");
    EXPECT_EQ(system_letters(f), "DFPRST");
    flag_set back;
    add_system_letters("DFPRST", back);
    EXPECT_EQ(back, f);

    flag_set only_seen;
    only_seen.set(system_flag::seen);
    EXPECT_EQ(system_letters(only_seen), "S");
    flag_set s2;
    add_system_letters("S", s2);
    EXPECT_EQ(s2, only_seen);
    // R is \Answered, P is $Forwarded (not \Answered), T is \Deleted.
    flag_set r;
    add_system_letters("R", r);
    EXPECT_TRUE(r.has(system_flag::answered));
    EXPECT_TRUE(r.keywords().empty());
    flag_set p;
    add_system_letters("P", p);
    EXPECT_FALSE(p.has(system_flag::answered));
    EXPECT_TRUE(p.has_keyword("$Forwarded"));
    flag_set t;
    add_system_letters("TX", t);  // X unknown: ignored
    EXPECT_TRUE(t.has(system_flag::deleted));
    EXPECT_EQ(t.system_bits(), static_cast<std::uint8_t>(system_flag::deleted));
    // $forwarded in another case is still P.
    flag_set lower;
    lower.add_keyword("$forwarded");
    EXPECT_EQ(system_letters(lower), "P");
}

TEST(maildir_filename, unique_names_escape_the_host) {
    unique_parts p;
    p.seconds = 1700000000;
    p.microseconds = 42;
    p.pid = 777;
    p.counter = 3;
    p.random = 0xabc;
    p.host = "mx/1:b,c";
    EXPECT_EQ(format_unique(p), "1700000000.M42P777Q3R0000000000000abc.mx\\0571\\072b\\054c");
    EXPECT_EQ(format_unique(p, 1234),
              "1700000000.M42P777Q3R0000000000000abc.mx\\0571\\072b\\054c,S=1234");
    EXPECT_EQ(escape_host("a!b", '!'), "a\\041b");
    EXPECT_EQ(escape_host("a b"), "a\\040b");
    auto n = parse_name(format_unique(p, 99) + ":2,S");
    EXPECT_EQ(size_hint(n.base), 99u);
    EXPECT_EQ(n.system, "S");
}

// The random part comes from one seed per process: it must still differ at every call, and a
// forked child (same seed, same counter) must name its own pid.
TEST(maildir_filename, fresh_random_parts_differ_and_a_forked_child_names_its_own_pid) {
    std::set<std::uint64_t> randoms;
    for (int i = 0; i < 1000; ++i) EXPECT_TRUE(randoms.insert(next_unique_parts().random).second);

    const auto host = next_unique_parts().host;
    char expected_host[HOST_NAME_MAX + 1] = {};
    ASSERT_EQ(::gethostname(expected_host, sizeof expected_host - 1), 0);
    EXPECT_EQ(host, expected_host);

    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const std::uint32_t pid = next_unique_parts().pid;
        (void)!::write(fds[1], &pid, sizeof pid);
        ::_exit(0);
    }
    ::close(fds[1]);
    std::uint32_t reported = 0;
    EXPECT_EQ(::read(fds[0], &reported, sizeof reported), static_cast<ssize_t>(sizeof reported));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_EQ(reported, static_cast<std::uint32_t>(child));
    EXPECT_EQ(next_unique_parts().pid, static_cast<std::uint32_t>(::getpid()));
}

TEST(maildir_filename, fresh_unique_names_differ_and_have_no_separator) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        auto name = format_unique(next_unique_parts());
        EXPECT_EQ(name.find(':'), std::string::npos);
        EXPECT_EQ(name.find('/'), std::string::npos);
        EXPECT_NE(name.front(), '.');
        EXPECT_TRUE(seen.insert(name).second) << name;
    }
}
