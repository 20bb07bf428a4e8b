// SPDX-License-Identifier: MIT
// `tandem sync` end to end, IMAP-Maildir and IMAP-IMAP: the first sync, a second one that
// does nothing, each change travelling either way, concurrent changes merging, a server
// without the extensions, and two stores that already hold the same mail. Every result is
// read from outside: IMAP through imap_script, the Maildir from the file system.
#include "e2e_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace tandem::e2e {
namespace {

// 2023-11-14 22:13:20 UTC and on: distinct dates, so that a date that goes wrong shows.
constexpr std::int64_t base_date = 1700000000;

std::string big_body() {
    std::string body;
    // 8-bit text, long lines and a tab: copied byte for byte or not at all.
    for (int i = 0; body.size() < 200 * 1024; ++i)
        body += "Zeile " + std::to_string(i) + ": Gr\xc3\xbc\xc3\x9f" + "e aus K\xc3\xb6ln\t" +
                std::string(static_cast<std::size_t>(i % 90), 'x') + "\r\n";
    return body;
}

void fill_first_sync_content(channel_under_test& c) {
    auto& a = c.a();
    auto msg = [](const std::string& s) { return test::make_message(s, "Body of " + s + ".\r\n"); };
    a.add("INBOX", msg("a-plain"), {}, base_date);
    a.add("INBOX", msg("a-seen"), {"\\Seen"}, base_date + 100);
    a.add("INBOX", msg("a-multi"), {"\\Seen", "\\Flagged", "\\Answered"}, base_date + 200);
    a.add("INBOX", msg("a-draft"), {"\\Draft"}, base_date + 300);
    a.add("INBOX", msg("a-fwd"), {"$Forwarded", "\\Seen"}, base_date + 400);
    a.add("INBOX", msg("a-kw"), {"todo", "$Label1", "\\Seen"}, base_date + 500);
    a.add("INBOX", test::make_message("a-big", big_body()), {"\\Seen"}, base_date + 600);
    a.create("Archive");
    for (int i = 0; i < 3; ++i)
        a.add("Archive", msg("a-archive-" + std::to_string(i)), {"\\Seen"}, base_date + 700 + i);
    a.create("Lists/tandem");
    a.add("Lists/tandem", msg("a-list-0"), {}, base_date + 800);
    a.add("Lists/tandem", msg("a-list-1"), {"\\Flagged", "urgent"}, base_date + 801);

    auto& b = c.b();
    b.create("Local");
    b.add("INBOX", msg("b-one"), {"\\Seen"}, base_date + 900);
    b.add("INBOX", msg("b-kw"), {"project", "$Forwarded"}, base_date + 901);
    b.add("Local", msg("b-local-1"), {"\\Flagged", "\\Seen"}, base_date + 902);
    b.add("Local", msg("b-local-2"), {}, base_date + 903);
}

// First sync: everything of both sides on both sides, bytes, flags and dates. Second sync:
// nothing moves on either side, and with CONDSTORE no mailbox is even opened.
void first_sync_then_nothing(channel_under_test& c, bool condstore = true) {
    fill_first_sync_content(c);
    snapshot_options dated{.dates = true};
    auto before_a = c.a().snapshot(dated);
    auto before_b = c.b().snapshot(dated);
    ASSERT_EQ(message_count(before_a), 12u);
    ASSERT_EQ(message_count(before_b), 4u);

    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto after_a = c.a().snapshot(dated);
    auto after_b = c.b().snapshot(dated);
    EXPECT_EQ(after_a, after_b);
    EXPECT_EQ(after_a, merged(before_a, before_b));
    EXPECT_EQ(flags_of(after_b, "INBOX", "a-kw"), "$Label1 \\Seen todo");
    EXPECT_EQ(flags_of(after_a, "INBOX", "b-kw"), "$Forwarded project");
    EXPECT_EQ(flags_of(after_b, "Lists/tandem", "a-list-1"), "\\Flagged urgent");

    // The second run, right after.
    auto marks_a = server_marks(c.server(), c.user_a());
    auto marks_b =
        c.b_imap() ? server_marks(c.server(), c.user_b()) : std::map<std::string, std::string>{};
    auto files = c.b_maildir() ? maildir_files(c.b_maildir()->root()) : std::vector<std::string>{};
    auto saves_a = c.saves(true), saves_b = c.saves(false);
    auto r2 = c.sync({"-vv"});
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    // The first run recorded every mailbox as it left it, its own copies included (the
    // stores vouched for them): the listing shows nothing new, and no mailbox is opened.
    if (condstore) {
        EXPECT_FALSE(contains(r2.err, " SELECT ") || contains(r2.err, " EXAMINE "))
            << r2.describe();
    }
    // Two accounts list at the same time: both LISTs go out before either answer is read.
    if (c.b_imap()) {
        const auto first_list = r2.err.find("] C: T");
        const auto first_answer = r2.err.find(" OK List completed");
        ASSERT_NE(first_answer, std::string::npos) << r2.describe();
        std::size_t lists_sent = 0;
        for (auto at = r2.err.find(" LIST \"\" ", first_list);
             at != std::string::npos && at < first_answer; at = r2.err.find(" LIST \"\" ", at + 1))
            ++lists_sent;
        EXPECT_EQ(lists_sent, 2u) << r2.describe();
    }
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks_a);
    if (c.b_imap()) {
        EXPECT_EQ(server_marks(c.server(), c.user_b()), marks_b);
    }
    if (c.b_maildir()) {
        EXPECT_EQ(maildir_files(c.b_maildir()->root()), files);
    }
    EXPECT_EQ(c.saves(true), saves_a);
    EXPECT_EQ(c.saves(false), saves_b);
    EXPECT_EQ(c.a().snapshot(dated), after_a);
}

std::string m(int i) {
    return "m" + std::to_string(i);
}

// Each kind of change, made on one side between two syncs, arrives on the other.
void changes_travel(channel_under_test& c, bool with_non_ascii) {
    for (int i = 1; i <= 12; ++i)
        c.a().add_new("INBOX", m(i),
                      i % 2 ? std::vector<std::string>{"\\Seen"} : std::vector<std::string>{});
    c.a().create("Work");
    c.a().add_new("Work", "w1");
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_EQ(c.a().snapshot(), c.b().snapshot());

    for (bool from_a : {true, false}) {
        SCOPED_TRACE(from_a ? "changes on a" : "changes on b");
        side& src = c.get(from_a);
        const std::string tag = from_a ? "a" : "b";
        const int k = from_a ? 0 : 6;
        src.add_new("INBOX", "new-" + tag, {"\\Seen"});
        src.set_flags("INBOX", m(k + 1), {"\\Flagged"}, {});
        src.set_flags("INBOX", m(k + 3), {}, {"\\Seen"});
        src.set_flags("INBOX", m(k + 2), {"$Label1", "project-x"}, {});
        src.expunge("INBOX", m(k + 4));
        src.move("INBOX", m(k + 5), "Work");
        src.set_flags("INBOX", m(k + 6), {"$Forwarded"}, {});
        src.create("Neu-" + tag);
        src.add_new("Neu-" + tag, "in-neu-" + tag);
        const std::string foreign = from_a ? "Entwürfe" : "日本語";
        if (with_non_ascii) {
            src.create(foreign);
            src.add_new(foreign, "foreign-" + tag);
        }

        // What the destination sees of the move: an IMAP destination must get a MOVE (logged
        // as a copy), never an APPEND; a Maildir destination a rename (same inode).
        const bool dst_imap = !from_a || c.b_imap();
        const std::string dst_user = from_a ? c.user_b() : c.user_a();
        std::size_t saves_before = 0, copies_before = 0;
        if (dst_imap) {
            saves_before = c.server().count_log_events("save", dst_user);
            copies_before = c.server().count_log_events("copy", dst_user, "Work");
        }
        ino_t inode_before = 0;
        if (from_a && c.b_maildir()) inode_before = c.b_maildir()->inode("INBOX", m(k + 5));

        auto r2 = c.sync();
        EXPECT_EQ(r2.exit_code, 0) << r2.describe();
        auto sa = c.a().snapshot();
        auto sb = c.b().snapshot();
        EXPECT_EQ(sa, sb);
        const auto& dst = from_a ? sb : sa;
        EXPECT_EQ(flags_of(dst, "INBOX", "new-" + tag), "\\Seen");
        EXPECT_EQ(flags_of(dst, "INBOX", m(k + 1)), "\\Flagged \\Seen");
        EXPECT_EQ(flags_of(dst, "INBOX", m(k + 3)), "");
        EXPECT_EQ(flags_of(dst, "INBOX", m(k + 2)), "$Label1 project-x");
        EXPECT_EQ(flags_of(dst, "INBOX", m(k + 4)), "<missing>");
        EXPECT_EQ(flags_of(dst, "Work", m(k + 4)), "<missing>");
        EXPECT_EQ(flags_of(dst, "INBOX", m(k + 5)), "<missing>");
        EXPECT_EQ(flags_of(dst, "Work", m(k + 5)), "\\Seen");
        EXPECT_EQ(flags_of(dst, "INBOX", m(k + 6)), "$Forwarded");
        EXPECT_EQ(flags_of(dst, "Neu-" + tag, "in-neu-" + tag), "");
        if (with_non_ascii) {
            EXPECT_EQ(flags_of(dst, foreign, "foreign-" + tag), "");
        }

        if (dst_imap) {
            const std::size_t uploads = with_non_ascii ? 3 : 2;  // new-, in-neu-, foreign-
            EXPECT_EQ(c.server().count_log_events("save", dst_user) - saves_before, uploads)
                << "the move must not upload the message again";
            EXPECT_GE(c.server().count_log_events("copy", dst_user, "Work"), copies_before + 1)
                << "the move should be a server-side MOVE/COPY";
            if (with_non_ascii) {
                auto names = test::list_mailboxes(c.server(), dst_user);
                EXPECT_NE(std::find(names.begin(), names.end(), utf7_encode(foreign)), names.end())
                    << "the mailbox must be created in modified UTF-7";
            }
        }
        if (from_a && c.b_maildir()) {
            EXPECT_EQ(c.b_maildir()->inode("Work", m(k + 5)), inode_before)
                << "the move must rename the file, not deliver a new one";
        }
    }
}

const channel_kind first_sync_kinds[] = {
    {"maildir_plain", false, layout::verbatim, transport::plain},
    {"maildirpp_tunnel", false, layout::maildirpp, transport::tunnel},
    {"maildir_tls", false, layout::verbatim, transport::tls},
    {"imap_imap", true, layout::verbatim, transport::plain},
};
const channel_kind both_kinds[] = {
    {"maildir", false, layout::verbatim, transport::plain},
    {"imap_imap", true, layout::verbatim, transport::plain},
};

class first_sync : public ::testing::TestWithParam<channel_kind> {};
class sync_changes : public ::testing::TestWithParam<channel_kind> {};
class sync_without_extensions : public ::testing::TestWithParam<channel_kind> {};

TEST_P(first_sync, copies_everything_both_ways_then_a_second_sync_changes_nothing) {
    channel_under_test c(shared_server(), GetParam());
    first_sync_then_nothing(c);
}
INSTANTIATE_TEST_SUITE_P(e2e, first_sync, ::testing::ValuesIn(first_sync_kinds), kind_name);

TEST_P(sync_changes, each_change_on_one_side_arrives_on_the_other) {
    channel_under_test c(shared_server(), GetParam());
    changes_travel(c, true);
}

TEST_P(sync_changes, changes_on_both_sides_merge) {
    channel_under_test c(shared_server(), GetParam());
    auto& a = c.a();
    a.add_new("INBOX", "both-flags");
    a.add_new("INBOX", "seen-answered", {"\\Seen", "\\Answered"});
    a.add_new("INBOX", "gone-on-a");
    a.add_new("INBOX", "gone-on-b");
    a.add_new("INBOX", "untouched", {"\\Seen"});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    auto& b = c.b();
    // Disjoint flag changes on one message: both survive.
    a.set_flags("INBOX", "both-flags", {"\\Seen"}, {});
    b.set_flags("INBOX", "both-flags", {"\\Flagged"}, {});
    // A flag cleared on one side, a keyword added on the other.
    a.set_flags("INBOX", "seen-answered", {}, {"\\Seen"});
    b.set_flags("INBOX", "seen-answered", {"$Label2"}, {});
    // A new message on each side.
    a.add_new("INBOX", "new-on-a", {"\\Flagged"});
    b.add_new("INBOX", "new-on-b", {"\\Seen"});
    // Expunged on one side, flagged on the other: expunged.
    a.expunge("INBOX", "gone-on-a");
    b.set_flags("INBOX", "gone-on-a", {"\\Flagged"}, {});
    b.expunge("INBOX", "gone-on-b");
    a.set_flags("INBOX", "gone-on-b", {"\\Flagged"}, {});

    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    auto sa = a.snapshot();
    auto sb = b.snapshot();
    EXPECT_EQ(sa, sb);
    for (const auto* s : {&sa, &sb}) {
        EXPECT_EQ(flags_of(*s, "INBOX", "both-flags"), "\\Flagged \\Seen");
        EXPECT_EQ(flags_of(*s, "INBOX", "seen-answered"), "$Label2 \\Answered");
        EXPECT_EQ(flags_of(*s, "INBOX", "new-on-a"), "\\Flagged");
        EXPECT_EQ(flags_of(*s, "INBOX", "new-on-b"), "\\Seen");
        EXPECT_EQ(flags_of(*s, "INBOX", "gone-on-a"), "<missing>");
        EXPECT_EQ(flags_of(*s, "INBOX", "gone-on-b"), "<missing>");
        EXPECT_EQ(flags_of(*s, "INBOX", "untouched"), "\\Seen");
        EXPECT_EQ(s->at("INBOX").size(), 5u);
    }
    // And a third run has nothing left to do.
    auto marks = server_marks(c.server(), c.user_a());
    auto r3 = c.sync();
    ASSERT_EQ(r3.exit_code, 0) << r3.describe();
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks);
}

// Two stores that already hold the same mail (a user adopting tandem after mbsync): paired
// by identity, nothing copied; only what one side lacks travels.
TEST_P(sync_changes, first_sync_of_stores_holding_the_same_mail_copies_nothing) {
    channel_under_test c(shared_server(), GetParam());
    for (bool side_a : {true, false}) {
        auto& s = c.get(side_a);
        s.create("Work");
        for (int i = 0; i < 8; ++i) {
            auto text = test::make_message("same-" + std::to_string(i),
                                           "Shared body " + std::to_string(i) + ".\r\n");
            std::vector<std::string> flags;
            if (i % 2) flags.push_back("\\Seen");
            if (i % 3 == 0) flags.push_back("\\Flagged");
            s.add(i < 5 ? "INBOX" : "Work", text, flags, base_date + i);
        }
    }
    c.a().add_new("INBOX", "only-on-a");
    c.b().add_new("INBOX", "only-on-b");
    auto saves_a = c.saves(true), saves_b = c.saves(false);
    auto files = c.b_maildir() ? maildir_files(c.b_maildir()->root()) : std::vector<std::string>{};

    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto sa = c.a().snapshot();
    EXPECT_EQ(sa, c.b().snapshot());
    EXPECT_EQ(sa.at("INBOX").size(), 7u);
    EXPECT_EQ(sa.at("Work").size(), 3u);
    EXPECT_EQ(c.saves(true) - saves_a, 1u) << "only only-on-b goes to a";
    if (c.b_imap()) {
        EXPECT_EQ(c.saves(false) - saves_b, 1u) << "only only-on-a goes to b";
    }
    if (c.b_maildir()) {
        auto now = maildir_files(c.b_maildir()->root());
        std::vector<std::string> kept;
        std::set_intersection(files.begin(), files.end(), now.begin(), now.end(),
                              std::back_inserter(kept));
        EXPECT_EQ(kept, files) << "the Maildir's own messages stay as they were";
        EXPECT_EQ(now.size(), files.size() + 1) << "only only-on-a is delivered";
    }
}

// Flags that travelled to an IMAP side are recorded as the server numbered them (the store
// vouches for its own STOREs): the run after opens no mailbox on either side.
TEST_P(sync_changes, the_run_after_flag_changes_travelled_opens_no_mailbox) {
    channel_under_test c(shared_server(), GetParam());
    for (int i = 1; i <= 6; ++i)
        c.a().add_new("INBOX", m(i),
                      i % 2 ? std::vector<std::string>{"\\Seen"} : std::vector<std::string>{});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    for (bool from_b : {true, false}) {
        SCOPED_TRACE(from_b ? "changes on b" : "changes on a");
        auto& src = c.get(!from_b);
        const int k = from_b ? 0 : 3;
        src.set_flags("INBOX", m(k + 1), {"\\Flagged"}, {});
        src.set_flags("INBOX", m(k + 2), {"\\Seen", "$Label1"}, {});
        if (k == 0)
            src.set_flags("INBOX", m(k + 3), {}, {"\\Seen"});
        else
            src.set_flags("INBOX", m(k + 3), {"\\Seen"}, {});
        auto r2 = c.sync();
        ASSERT_EQ(r2.exit_code, 0) << r2.describe();
        ASSERT_EQ(c.a().snapshot(), c.b().snapshot());
        auto r3 = c.sync({"-vv"});
        ASSERT_EQ(r3.exit_code, 0) << r3.describe();
        EXPECT_FALSE(contains(r3.err, " SELECT ") || contains(r3.err, " EXAMINE "))
            << r3.describe();
    }
}

// $Forwarded is the 'P' of a Maildir file name, not a dovecot-keywords letter: taken off on
// either side, it goes on the other ("chaos bug 1": a Maildir file that lost its P got
// $Forwarded back, as if the folder could not hold it).
TEST_P(sync_changes, taking_forwarded_off_travels_both_ways) {
    channel_under_test c(shared_server(), GetParam());
    c.a().add_new("INBOX", m(1), {"$Forwarded", "\\Seen"});
    c.a().add_new("INBOX", m(2), {"$Forwarded"});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    c.b().set_flags("INBOX", m(1), {}, {"$Forwarded"});
    c.a().set_flags("INBOX", m(2), {}, {"$Forwarded"});
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    auto sa = c.a().snapshot();
    EXPECT_EQ(sa, c.b().snapshot());
    EXPECT_EQ(flags_of(sa, "INBOX", m(1)), "\\Seen");
    EXPECT_EQ(flags_of(sa, "INBOX", m(2)), "");
}

// A message moved on b to another folder and flagged on a, seen first by a run that
// recorded nothing (a dry run here, a killed run the same): a Maildir gave the file its UID
// in that run's scan. The next run still finds the message by its content key and moves
// a's copy along with its flag, instead of expunging it and uploading b's file again.
TEST_P(sync_changes, a_move_first_seen_by_a_run_that_recorded_nothing_is_still_a_move) {
    channel_under_test c(shared_server(), GetParam());
    c.a().create("Archive");
    c.a().add_new("INBOX", "moved", {"\\Seen"});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    c.b().move("INBOX", "moved", "Archive");
    c.a().set_flags("INBOX", "moved", {"$Forwarded"}, {});
    auto dry = c.sync({"--dry-run"});
    ASSERT_EQ(dry.exit_code, 0) << dry.describe();
    const auto saves = c.saves(true);
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    auto sa = c.a().snapshot();
    EXPECT_EQ(sa, c.b().snapshot());
    EXPECT_EQ(flags_of(sa, "Archive", "moved"), "$Forwarded \\Seen");
    EXPECT_EQ(flags_of(sa, "INBOX", "moved"), "<missing>");
    EXPECT_EQ(c.saves(true), saves) << "moved on a, not uploaded again";
}

INSTANTIATE_TEST_SUITE_P(e2e, sync_changes, ::testing::ValuesIn(both_kinds), kind_name);

// A Maildir folder that for one run is not one (its cur/ a file) is taken as removed on b
// and kept untouched on a; its state is not recorded then, so that once it is whole again
// the message that arrived on a meanwhile is copied.
TEST(sync_folders, a_folder_that_briefly_is_not_one_gets_what_came_meanwhile) {
    channel_under_test c(shared_server(), both_kinds[0]);
    c.a().create("Archive");
    c.a().add_new("Archive", "stays", {});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    c.a().add_new("Archive", "meanwhile", {});
    const auto cur = c.b_maildir()->folder_dir("Archive") / "cur";
    const auto away = cur.parent_path() / "cur.away";
    std::filesystem::rename(cur, away);
    std::ofstream(cur) << "not a directory";
    auto broken = c.sync();
    EXPECT_TRUE(contains(broken.all(), "kept on side a untouched")) << broken.describe();
    std::filesystem::remove(cur);
    std::filesystem::rename(away, cur);
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    auto sa = c.a().snapshot();
    EXPECT_EQ(sa, c.b().snapshot());
    EXPECT_EQ(flags_of(c.b().snapshot(), "Archive", "meanwhile"), "");
}

// Dovecot without CONDSTORE, QRESYNC, UIDPLUS, MOVE and LIST-STATUS: the fall-backs.
TEST_P(sync_without_extensions, first_sync_second_sync_and_changes) {
    auto options = many_users();
    options.hidden_capabilities = {"CONDSTORE", "QRESYNC", "UIDPLUS", "MOVE", "LIST-STATUS"};
    test::dovecot server(options);
    auto caps = server.capabilities();
    for (const char* hidden : {"CONDSTORE", "QRESYNC", "UIDPLUS", "MOVE", "LIST-STATUS"})
        ASSERT_EQ(std::find(caps.begin(), caps.end(), hidden), caps.end()) << hidden;
    {
        SCOPED_TRACE("first sync");
        channel_under_test c(server, GetParam());
        first_sync_then_nothing(c, false);
    }
    {
        SCOPED_TRACE("changes");
        channel_under_test c(server, GetParam());
        changes_travel(c, false);
    }
}
INSTANTIATE_TEST_SUITE_P(e2e, sync_without_extensions, ::testing::ValuesIn(both_kinds), kind_name);

}  // namespace
}  // namespace tandem::e2e
