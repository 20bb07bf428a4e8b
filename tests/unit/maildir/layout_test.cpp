// SPDX-License-Identifier: MIT
#include "tandem/maildir/layout.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fstream>

using namespace tandem::maildir;
namespace fs = std::filesystem;

namespace {

folder_options quick_options() {
    folder_options o;
    o.settle = std::chrono::milliseconds(0);
    return o;
}

std::vector<std::string> folders_of(tree& t) {
    auto l = t.list();
    EXPECT_TRUE(l) << t.last_error();
    return l ? l->folders : std::vector<std::string>{};
}

using names = std::vector<std::string>;

}  // namespace

TEST(maildir_layout, verbatim_maps_names_to_directories_and_back) {
    tandem::test::temp_dir d;
    tree t(d / "mail", layout_kind::verbatim, quick_options());
    EXPECT_EQ(t.path_of("INBOX").value(), d / "mail" / "INBOX");
    EXPECT_EQ(t.path_of("inbox").value(), d / "mail" / "INBOX");
    EXPECT_EQ(t.path_of("Lists/foo").value(), d / "mail" / "Lists" / "foo");
    EXPECT_EQ(t.path_of("Entwürfe/日本語").value(), d / "mail" / "Entwürfe" / "日本語");
    EXPECT_EQ(t.name_of(d / "mail" / "Lists" / "foo").value(), "Lists/foo");
    EXPECT_EQ(t.name_of(d / "mail" / "Entwürfe" / "日本語").value(), "Entwürfe/日本語");
    EXPECT_EQ(t.canonical("inbox/Sub").value(), "INBOX/Sub");
    EXPECT_FALSE(t.name_of(d / "elsewhere"));
    EXPECT_FALSE(t.name_of(d / "mail"));
    EXPECT_FALSE(t.name_of(d / "mail" / "inbox"));  // would alias INBOX
}

TEST(maildir_layout, names_that_cannot_be_represented_are_refused_with_a_reason) {
    tandem::test::temp_dir d;
    tree v(d / "v", layout_kind::verbatim, quick_options());
    tree p(d / "p", layout_kind::maildirpp, quick_options());
    for (auto* t : {&v, &p}) {
        for (const char* bad :
             {"", "/a", "a/", "a//b", "..", "a/../b", "a/.", "bad\x01", "\xff\xfe", "\xc0\xaf"}) {
            auto r = t->path_of(bad);
            ASSERT_FALSE(r) << bad;
            EXPECT_EQ(r.error(), tandem::errc::invalid_mailbox_name);
            EXPECT_NE(t->last_error().find("invalid folder name"), std::string::npos);
        }
    }
    for (const char* bad :
         {"cur", "a/new", "tmp/x", ".hidden", "a/maildirfolder", "dovecot-keywords"}) {
        auto r = v.path_of(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error(), tandem::errc::invalid_mailbox_name);
    }
    EXPECT_NE(v.last_error().find("dovecot-keywords"), std::string::npos);
    EXPECT_FALSE(v.path_of(std::string(256, 'x')));
    EXPECT_TRUE(v.path_of(std::string(255, 'x')));
    // Maildir++ has room for all of those, escaped or prefixed with a dot.
    EXPECT_EQ(p.path_of("cur").value(), d / "p" / ".cur");
    EXPECT_EQ(p.path_of(".hidden").value(), d / "p" / ".\\2ehidden");
    EXPECT_FALSE(p.path_of(std::string(254, 'x') + "/y"));
}

TEST(maildir_layout, maildirpp_maps_names_with_dots_and_escapes) {
    tandem::test::temp_dir d;
    tree t(d.path(), layout_kind::maildirpp, quick_options());
    EXPECT_EQ(t.path_of("INBOX").value(), d.path());
    EXPECT_EQ(t.path_of("Sent").value(), d / ".Sent");
    EXPECT_EQ(t.path_of("Lists/foo").value(), d / ".Lists.foo");
    EXPECT_EQ(t.path_of("INBOX/child").value(), d / ".INBOX.child");
    EXPECT_EQ(t.path_of("v1.2/a\\b").value(), d / ".v1\\2e2.a\\5cb");
    EXPECT_EQ(t.path_of("Été/München").value(), d / ".Été.München");
    for (const char* n : {"INBOX", "Sent", "Lists/foo", "INBOX/child", "v1.2/a\\b", "Été/München"})
        EXPECT_EQ(t.name_of(t.path_of(n).value()).value(), n) << n;
    // Directories that would not map back to themselves.
    EXPECT_FALSE(t.name_of(d / ".v1\\2E2"));  // upper-case escape: we would write \2e
    EXPECT_FALSE(t.name_of(d / ".inbox"));
    EXPECT_FALSE(t.name_of(d / "nodot"));
    EXPECT_FALSE(t.name_of(d / ".a..b"));
}

TEST(maildir_layout, verbatim_create_list_remove) {
    tandem::test::temp_dir d;
    tree t(d / "mail", layout_kind::verbatim, quick_options());
    auto missing = t.create("INBOX");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), tandem::errc::not_found);  // no root: maybe not mounted
    ASSERT_TRUE(t.create_root());
    for (const char* n :
         {"INBOX", "Sent", "Lists/foo", "Lists/bar/deep", "Entwürfe", "INBOX/child"})
        ASSERT_TRUE(t.create(n)) << n << ": " << t.last_error();
    EXPECT_TRUE(folder::exists(d / "mail" / "Lists" / "bar" / "deep"));
    EXPECT_FALSE(folder::exists(d / "mail" / "Lists"));  // a plain parent
    EXPECT_FALSE(fs::exists(d / "mail" / "Sent" / "maildirfolder"));
    // Noise that is not a folder: hidden directories, files, a half-made folder.
    fs::create_directories(d / "mail" / ".notmuch" / "xapian" / "cur");
    fs::create_directories(d / "mail" / ".notmuch" / "xapian" / "new");
    std::ofstream(d / "mail" / "README") << "x";
    fs::create_directories(d / "mail" / "half" / "new");
    EXPECT_EQ(folders_of(t),
              (names{"Entwürfe", "INBOX", "INBOX/child", "Lists/bar/deep", "Lists/foo", "Sent"}));
    // An existing folder is fine to create again.
    EXPECT_TRUE(t.create("Sent"));

    // A folder with a message is not removed unless asked.
    auto sent = t.open("Sent");
    ASSERT_TRUE(sent);
    ASSERT_TRUE(sent->deliver("x", {}));
    auto r = t.remove("Sent");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::directory_not_empty);
    EXPECT_NE(t.last_error().find("1 message"), std::string::npos);
    EXPECT_TRUE(folder::exists(d / "mail" / "Sent"));
    ASSERT_TRUE(t.remove("Sent", true)) << t.last_error();
    EXPECT_FALSE(fs::exists(d / "mail" / "Sent"));
    // A folder with children loses its own directories only.
    ASSERT_TRUE(t.remove("INBOX/child"));
    auto inbox_child_parent = t.create("Lists/bar");
    ASSERT_TRUE(inbox_child_parent);
    ASSERT_TRUE(t.remove("Lists/bar"));
    EXPECT_TRUE(folder::exists(d / "mail" / "Lists" / "bar" / "deep"));
    EXPECT_FALSE(folder::exists(d / "mail" / "Lists" / "bar"));
    auto inbox = t.remove("inbox");
    ASSERT_FALSE(inbox);
    EXPECT_EQ(inbox.error(), tandem::errc::invalid_argument);
    EXPECT_EQ(t.remove("Nope").error(), tandem::errc::not_found);
    EXPECT_EQ(folders_of(t), (names{"Entwürfe", "INBOX", "Lists/bar/deep", "Lists/foo"}));
}

TEST(maildir_layout, verbatim_rename_moves_children) {
    tandem::test::temp_dir d;
    tree t(d.path(), layout_kind::verbatim, quick_options());
    ASSERT_TRUE(t.create("a"));
    ASSERT_TRUE(t.create("a/b"));
    ASSERT_TRUE(t.create("c"));
    ASSERT_TRUE(t.rename("a", "x/y")) << t.last_error();
    EXPECT_EQ(folders_of(t), (names{"c", "x/y", "x/y/b"}));
    EXPECT_EQ(t.rename("x/y", "c").error(), std::errc::file_exists);
    EXPECT_EQ(t.rename("x/y", "x/y/z").error(), tandem::errc::invalid_mailbox_name);
    EXPECT_EQ(t.rename("INBOX", "q").error(), tandem::errc::invalid_argument);
    EXPECT_EQ(t.rename("nope", "q").error(), tandem::errc::not_found);
}

TEST(maildir_layout, maildirpp_create_list_rename_remove) {
    tandem::test::temp_dir d;
    tree t(d.path(), layout_kind::maildirpp, quick_options());
    for (const char* n : {"INBOX", "Sent", "Lists/foo", "Lists/foo/sub", "v1.2", "日本語"})
        ASSERT_TRUE(t.create(n)) << n << ": " << t.last_error();
    EXPECT_TRUE(fs::exists(d / ".Sent" / "maildirfolder"));
    EXPECT_FALSE(fs::exists(d / "maildirfolder"));  // INBOX is the root, not a subfolder
    EXPECT_TRUE(folder::exists(d.path()));
    fs::create_directories(d / ".Weird\\2E" / "cur");
    fs::create_directories(d / ".Weird\\2E" / "new");
    auto l = t.list();
    ASSERT_TRUE(l);
    EXPECT_EQ(l->folders, (names{"INBOX", "Lists/foo", "Lists/foo/sub", "Sent", "v1.2", "日本語"}));
    ASSERT_EQ(l->skipped.size(), 1u);
    EXPECT_EQ(l->skipped[0], d / ".Weird\\2E");

    ASSERT_TRUE(t.rename("Lists/foo", "Archive/foo")) << t.last_error();
    EXPECT_TRUE(folder::exists(d / ".Archive.foo.sub"));
    EXPECT_FALSE(fs::exists(d / ".Lists.foo"));
    EXPECT_EQ(t.rename("Archive/foo", "Sent").error(), std::errc::file_exists);

    ASSERT_TRUE(t.remove("Archive/foo"));
    EXPECT_FALSE(fs::exists(d / ".Archive.foo"));
    EXPECT_TRUE(folder::exists(d / ".Archive.foo.sub"));  // children are separate directories
    EXPECT_EQ(folders_of(t), (names{"Archive/foo/sub", "INBOX", "Sent", "v1.2", "日本語"}));
    auto f = t.open("日本語");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->path(), d / ".日本語");
    EXPECT_EQ(t.open("Lists/foo").error(), tandem::errc::not_found);
}
