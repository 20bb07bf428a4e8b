// SPDX-License-Identifier: MIT
// Hostile mailbox names end to end: a '.' inside a level (the Maildir++ separator, and the
// hierarchy separator of a second server), '&' (the modified UTF-7 shift), non-ASCII, a
// leading dot, spaces, a level of 240 bytes of UTF-8, names past NAME_MAX once written as
// a directory (270 bytes in one level; two levels of 150 joined by Maildir++). Each one is
// carried across under its own name, both ways, or refused with an error that names it; it
// never comes back under another name nor twice, and a second sync changes nothing.
//
// The server here is Dovecot with LAYOUT=fs (one directory per level, '/' separator): its
// default Maildir++ storage refuses '.' in a name. The second server keeps that default with
// '.' as its separator, so it can hold neither "a.b" nor ".lead" (nor "a/b", which Dovecot
// refuses under any layout: "Name must not have '/' characters").
#include "hostile_support.hpp"

#include <gtest/gtest.h>

namespace tandem::e2e {
namespace {

std::string repeat(std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

struct name_case {
    std::string name;
    bool verbatim = true;    // representable in a verbatim Maildir
    bool maildirpp = true;   // in a Maildir++ one
    bool dot_server = true;  // on a server with '.' as separator
};

std::vector<name_case> cases() {
    return {
        {"a.b", true, true, false},
        {"x&y", true, true, true},
        {"caf\xc3\xa9", true, true, true},
        {"\xe6\x97\xa5\xe6\x9c\xac/\xe6\x9d\xb1\xe4\xba\xac", true, true, true},  // 日本/東京
        {repeat("\xe6\x97\xa5", 80), true, true, true},                           // 240 bytes
        {repeat("\xe6\x97\xa5", 90), false, false, true},                         // 270 bytes
        {std::string(150, 'p') + "/" + std::string(150, 'q'), true, false, true},
        {".lead", false, true, false},
        {" sp ace ", true, true, true},
    };
}

test::dovecot_options server_options(char separator, bool fs_layout) {
    auto o = many_users(12);
    o.separator = separator;
    o.mail_log = true;
    if (fs_layout) o.extra_config.push_back("mail_location = maildir:~/Maildir:LAYOUT=fs");
    return o;
}

std::unique_ptr<test::dovecot>& slash_holder() {
    static std::unique_ptr<test::dovecot> s;
    return s;
}
std::unique_ptr<test::dovecot>& dot_holder() {
    static std::unique_ptr<test::dovecot> s;
    return s;
}
// '/' separator, one directory per level: takes '.' and a leading dot in a name.
test::dovecot& slash_server() {
    if (!slash_holder())
        slash_holder() = std::make_unique<test::dovecot>(server_options('/', true));
    return *slash_holder();
}
// '.' separator, Dovecot's default Maildir++ storage.
test::dovecot& dot_server() {
    if (!dot_holder()) dot_holder() = std::make_unique<test::dovecot>(server_options('.', false));
    return *dot_holder();
}
std::string next_user(const test::dovecot& s) {
    static std::map<const test::dovecot*, int> used;
    return "user" + std::to_string(++used[&s]);
}

class servers_environment : public ::testing::Environment {
  public:
    void TearDown() override {
        slash_holder().reset();
        dot_holder().reset();
    }
};
::testing::Environment* const servers_registered =
    ::testing::AddGlobalTestEnvironment(new servers_environment);

// Canonical name <-> wire name on a server with `sep`.
std::string wire(const std::string& canonical, char sep) {
    auto w = utf7_encode(canonical);
    if (sep != '/') std::replace(w.begin(), w.end(), '/', sep);
    return w;
}
std::set<std::string> server_names(const test::dovecot& s, const std::string& user) {
    std::set<std::string> out;
    for (auto n : test::list_mailboxes(s, user)) {
        if (s.options().separator != '/')
            std::replace(n.begin(), n.end(), s.options().separator, '/');
        out.insert(utf7_decode(n));
    }
    return out;
}
std::set<std::string> maildir_names(const fs::path& root, layout l) {
    std::set<std::string> out;
    for (const auto& [name, _] : maildir_folders(root, l)) out.insert(name);
    return out;
}

void add_message(const test::dovecot& s, const std::string& user, const std::string& canonical) {
    auto w = wire(canonical, s.options().separator);
    test::create_mailbox(s, user, w);
    test::append_message(s, user, w,
                         test::make_message("in " + canonical, "Hi.\r\n", "<n@h.test>"));
}

// The parent levels of a name ("a/b/c" -> "a", "a/b").
std::set<std::string> with_parents(const std::set<std::string>& names) {
    std::set<std::string> out = names;
    for (const auto& n : names)
        for (auto p = n.find('/'); p != std::string::npos; p = n.find('/', p + 1))
            out.insert(n.substr(0, p));
    return out;
}

// The output of a run names every refused mailbox and is an error of one mailbox, not of
// the run (exit 1: some mailboxes failed).
void expect_refused(const run_result& r, const std::vector<std::string>& refused) {
    if (refused.empty()) {
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        return;
    }
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    for (const auto& n : refused) {
        // One line names the mailbox and says that it failed.
        bool said = false;
        std::istringstream lines(r.all());
        for (std::string line; std::getline(lines, line);)
            said = said || (contains(line, n) && contains(lower(line), "fail"));
        EXPECT_TRUE(said) << "no failure of \"" << n << "\" in\n" << r.describe();
    }
}

class hostile_names : public ::testing::TestWithParam<layout> {};

std::string layout_name(const ::testing::TestParamInfo<layout>& info) {
    return info.param == layout::verbatim ? "verbatim" : "maildirpp";
}

TEST_P(hostile_names, server_names_reach_the_maildir_or_are_refused_by_name) {
    auto& s = slash_server();
    const auto user = next_user(s);
    world w;
    w.write_config(w.general() + w.imap_store("server", s, user) +
                   w.maildir_store("local", GetParam()) + w.channel("c", "server", "local"));
    std::set<std::string> fit{"INBOX"};
    std::vector<std::string> refused;
    for (const auto& c : cases()) {
        add_message(s, user, c.name);
        bool ok = GetParam() == layout::verbatim ? c.verbatim : c.maildirpp;
        if (ok)
            fit.insert(c.name);
        else
            refused.push_back(c.name);
    }
    const auto on_server = server_names(s, user);

    auto r = w.run({"sync"});
    expect_refused(r, refused);
    auto folders = maildir_names(w.maildir(), GetParam());
    EXPECT_EQ(folders, fit) << r.describe();
    for (const auto& name : fit) {
        if (name == "INBOX") continue;
        auto dir = maildir_folders(w.maildir(), GetParam())[name];
        EXPECT_EQ(hostile::maildir_keys(dir).size(), 1u) << name;
    }

    // Again: the same refusals, and nothing new on either side.
    auto files = maildir_files(w.maildir());
    auto r2 = w.run({"sync"});
    expect_refused(r2, refused);
    EXPECT_EQ(maildir_names(w.maildir(), GetParam()), fit);
    EXPECT_EQ(maildir_files(w.maildir()), files);
    EXPECT_EQ(server_names(s, user), on_server);
}

TEST_P(hostile_names, maildir_names_reach_the_server_under_the_same_name) {
    auto& s = slash_server();
    const auto user = next_user(s);
    world w;
    w.write_config(w.general() + w.imap_store("server", s, user) +
                   w.maildir_store("local", GetParam()) + w.channel("c", "server", "local"));
    maildir_side m(w.maildir(), GetParam());
    m.create("INBOX");
    std::set<std::string> made{"INBOX"};
    for (const auto& c : cases()) {
        if (!(GetParam() == layout::verbatim ? c.verbatim : c.maildirpp)) continue;
        m.add(c.name, test::make_message("in " + c.name, "Hi.\r\n", "<n@h.test>"), {}, {});
        made.insert(c.name);
    }
    ASSERT_EQ(maildir_names(w.maildir(), GetParam()), made);
    // Directories whose names are no folder name: Latin-1, and in Maildir++ an upper-case
    // escape (which would read as "a.b", whose directory is ".a\2eb"). Both hold a message.
    std::vector<std::string> strays{"caf\xe9"};
    if (GetParam() == layout::maildirpp) strays = {".caf\xe9", ".a\\2Eb"};
    for (const auto& d : strays) {
        for (const char* sub : {"new", "tmp"}) fs::create_directories(w.maildir() / d / sub);
        write_file(w.maildir() / d / "cur" / "1.stray.host:2,S", test::make_message("stray"));
    }

    const auto on_disk = maildir_names(w.maildir(), GetParam());  // strays too, as they read

    auto r = w.run({"sync"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    for (const auto& d : strays)
        EXPECT_TRUE(contains(r.all(), d)) << "no word of the skipped " << d << "\n" << r.describe();
    EXPECT_EQ(server_names(s, user), with_parents(made)) << r.describe();
    for (const auto& name : made) {
        auto got = fetch_all(s, user, wire(name, '/'));
        ASSERT_TRUE(got) << name;
        if (name == "INBOX") continue;
        ASSERT_EQ(got->size(), 1u) << name;
        EXPECT_EQ(subject_of(got->front().body), "in " + name);
    }

    auto marks = server_marks(s, user);
    auto files = maildir_files(w.maildir());
    auto r2 = w.run({"sync"});
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    EXPECT_EQ(server_names(s, user), with_parents(made));
    EXPECT_EQ(server_marks(s, user), marks);
    EXPECT_EQ(maildir_names(w.maildir(), GetParam()), on_disk);
    EXPECT_EQ(maildir_files(w.maildir()), files);
}

INSTANTIATE_TEST_SUITE_P(layouts, hostile_names,
                         ::testing::Values(layout::verbatim, layout::maildirpp), layout_name);

// IMAP-IMAP across separators: the '/' server's names go to the '.' server where they can
// be written there, the '.' server's hierarchy comes back with '/'; "a.b" and ".lead" are
// refused by name, and neither becomes the hierarchy "a" > "b" nor "" > "lead".
TEST(hostile_names_imap, slash_server_and_dot_server_both_ways) {
    auto& s = slash_server();
    auto& d = dot_server();
    const auto su = next_user(s), du = next_user(d);
    world w;
    std::string cfg = w.general() + w.imap_store("slash", s, su);
    cfg += "[store.dot]\ntype = imap\nhost = 127.0.0.1\nport = " + std::to_string(d.imap_port()) +
           "\ntls = none\nallow-plaintext = yes\nuser = " + du +
           "\npassword-file = " + w.password_file(d, du).string() + "\n\n";
    w.write_config(cfg + w.channel("c", "slash", "dot"));

    std::set<std::string> on_slash{"INBOX"}, on_dot{"INBOX"};
    std::vector<std::string> refused;
    const std::vector<std::string> for_slash_only{"a.b", ".lead"};
    for (const auto& c : cases()) {
        if (c.name.size() > 260) continue;  // past Dovecot's own Maildir++ limit on d
        add_message(s, su, c.name);
        on_slash.insert(c.name);
        if (c.dot_server)
            on_dot.insert(c.name);
        else
            refused.push_back(c.name);
    }
    // From the '.' server: a hierarchy, and '&' and non-ASCII in its levels.
    for (const std::string n : {"up/down", "r&d/caf\xc3\xa9"}) {
        add_message(d, du, n);
        on_slash.insert(n);
        on_dot.insert(n);
    }

    auto r = w.run({"sync"});
    expect_refused(r, refused);
    EXPECT_EQ(server_names(s, su), with_parents(on_slash)) << r.describe();
    EXPECT_EQ(server_names(d, du), with_parents(on_dot)) << r.describe();
    for (const auto& name : on_dot) {
        auto got = fetch_all(d, du, wire(name, '.'));
        ASSERT_TRUE(got) << name;
        EXPECT_EQ(got->size(), name == "INBOX" ? 0u : 1u) << name;
    }

    auto marks_s = server_marks(s, su), marks_d = server_marks(d, du);
    auto r2 = w.run({"sync"});
    expect_refused(r2, refused);
    EXPECT_EQ(server_names(s, su), with_parents(on_slash));
    EXPECT_EQ(server_names(d, du), with_parents(on_dot));
    EXPECT_EQ(server_marks(s, su), marks_s);
    EXPECT_EQ(server_marks(d, du), marks_d);
}

}  // namespace
}  // namespace tandem::e2e
