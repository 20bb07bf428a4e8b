// SPDX-License-Identifier: MIT
// Hostile folder names in both Maildir layouts, the unit-level half of the end-to-end names
// test (tests/dovecot/hostile/names_test.cpp) and the regression inputs of fuzz_maildir:
// each name maps to one directory and back to itself, or is refused with a reason that
// names it; no directory name is read as a folder that would be written elsewhere.
#include "support/temp_dir.hpp"
#include "tandem/maildir/layout.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tandem::maildir {
namespace {

namespace fs = std::filesystem;

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

// name -> directory (relative to the root) -> name.
std::string round_trip(tree& t, const std::string& name) {
    auto p = t.path_of(name);
    if (!p) return "refused: " + t.last_error();
    auto back = t.name_of(*p);
    if (!back) return "not read back: " + t.last_error();
    EXPECT_EQ(*back, name) << p->string();
    return p->lexically_relative(t.root()).string();
}

TEST(hostile_names, the_maildirpp_separator_and_escape_character_inside_a_level) {
    tree t("/r", layout_kind::maildirpp);
    EXPECT_EQ(round_trip(t, "a.b"), ".a\\2eb");
    EXPECT_EQ(round_trip(t, "a/b"), ".a.b");
    EXPECT_EQ(round_trip(t, "a\\b"), ".a\\5cb");
    EXPECT_EQ(round_trip(t, "a\\2eb"), ".a\\5c2eb");  // an escape-like text stays text
    EXPECT_EQ(round_trip(t, ".lead"), ".\\2elead");
    EXPECT_EQ(round_trip(t, "x&y"), ".x&y");
    EXPECT_EQ(round_trip(t, " sp ace "), ". sp ace ");
    EXPECT_EQ(round_trip(t, "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac"),
              ".caf\xc3\xa9.\xe6\x97\xa5\xe6\x9c\xac");
}

TEST(hostile_names, the_verbatim_layout_keeps_dots_and_refuses_hidden_levels_by_name) {
    tree t("/r", layout_kind::verbatim);
    EXPECT_EQ(round_trip(t, "a.b"), "a.b");
    EXPECT_EQ(round_trip(t, "a\\b"), "a\\b");
    EXPECT_EQ(round_trip(t, "x&y/ z "), "x&y/ z ");
    EXPECT_FALSE(t.path_of(".lead"));
    EXPECT_NE(t.last_error().find("\".lead\""), std::string::npos) << t.last_error();
    EXPECT_FALSE(t.path_of("a/.hidden"));
    EXPECT_NE(t.last_error().find("\"a/.hidden\""), std::string::npos) << t.last_error();
}

// NAME_MAX (255 bytes) counts bytes of UTF-8, after the Maildir++ '.' and escapes.
TEST(hostile_names, names_at_and_past_name_max) {
    tree v("/r", layout_kind::verbatim);
    tree p("/r", layout_kind::maildirpp);
    const auto cjk85 = repeat("\xe6\x97\xa5", 85);  // 255 bytes
    EXPECT_EQ(round_trip(v, cjk85), cjk85);
    EXPECT_EQ(round_trip(v, cjk85 + "/" + cjk85), cjk85 + "/" + cjk85);
    EXPECT_FALSE(v.path_of(cjk85 + "x"));
    EXPECT_NE(v.last_error().find("255"), std::string::npos) << v.last_error();

    EXPECT_EQ(round_trip(p, std::string(254, 'a')), "." + std::string(254, 'a'));
    EXPECT_FALSE(p.path_of(std::string(255, 'a')));
    EXPECT_FALSE(p.path_of(cjk85));
    EXPECT_NE(p.last_error().find("255"), std::string::npos) << p.last_error();
    // Two levels that fit one by one, but not joined.
    EXPECT_FALSE(p.path_of(std::string(150, 'p') + "/" + std::string(150, 'q')));
    // 84 dots escape to 252 bytes: one more and the escapes carry it past the limit.
    EXPECT_EQ(round_trip(p, std::string(84, '.') + "a"), "." + repeat("\\2e", 84) + "a");
    EXPECT_FALSE(p.path_of(std::string(85, '.')));
}

TEST(hostile_names, bytes_that_are_not_a_name) {
    for (auto kind : {layout_kind::verbatim, layout_kind::maildirpp}) {
        tree t("/r", kind);
        EXPECT_FALSE(t.path_of("caf\xe9"));  // Latin-1
        EXPECT_NE(t.last_error().find("UTF-8"), std::string::npos);
        EXPECT_FALSE(t.path_of("\xc0\xaf"));  // overlong '/'
        EXPECT_FALSE(t.path_of(std::string("a\0b", 3)));
        EXPECT_FALSE(t.path_of("a\tb"));
        EXPECT_FALSE(t.path_of("a//b"));
        EXPECT_FALSE(t.path_of("a/../b"));
    }
}

// fuzz_maildir found that "<root>/." names the root: in Maildir++ that is INBOX, whose
// directory is the root itself (only the trailing '.' differs), in verbatim no folder.
TEST(hostile_names, the_root_spelled_with_a_trailing_dot) {
    tree p("/r", layout_kind::maildirpp);
    auto n = p.name_of("/r/.");
    ASSERT_TRUE(n) << p.last_error();
    EXPECT_EQ(*n, "INBOX");
    tree v("/r", layout_kind::verbatim);
    EXPECT_FALSE(v.name_of("/r/."));
}

// Directories that would read as a name whose own directory is another one: upper-case
// escapes, an escaped '/', an escaped control character, a lower-case inbox.
TEST(hostile_names, aliases_are_skipped_when_listing) {
    test::temp_dir dir("tandem-hostile-names");
    tree t(dir.path(), layout_kind::maildirpp);
    for (const char* d : {".a\\2Eb", ".a\\2fb", ".x\\09y", ".INBOX", ".ok\\2eyes", ".caf\xe9"}) {
        for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(dir / d / sub);
    }
    auto l = t.list();
    ASSERT_TRUE(l) << t.last_error();
    EXPECT_EQ(l->folders, (std::vector<std::string>{"ok.yes"}));
    EXPECT_EQ(l->skipped.size(), 5u);
}

}  // namespace
}  // namespace tandem::maildir
