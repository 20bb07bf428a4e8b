// SPDX-License-Identifier: MIT
// `tandem sync` when things go wrong: a mailbox recreated under a new UIDVALIDITY, the
// process killed at any instant of a first and of an incremental sync, and a side that
// suddenly looks empty (the mass-removal guard). Results are read from outside.
#include "e2e_support.hpp"

#include <gtest/gtest.h>

#include <iostream>

namespace tandem::e2e {
namespace {

const channel_kind robust_kinds[] = {
    {"maildir", false, layout::verbatim, transport::plain},
    {"imap_imap", true, layout::verbatim, transport::plain},
};

class robust : public ::testing::TestWithParam<channel_kind> {};

// Deletes and recreates a server mailbox with the same messages (a new UIDVALIDITY), as a
// server restored from a backup does; `flag_subject` comes back \Flagged as well.
void recreate(const test::dovecot& server, const std::string& user, const std::string& mailbox,
              const std::string& flag_subject) {
    auto before = test::status(server, user, mailbox);
    auto messages = fetch_all(server, user, mailbox);
    ASSERT_TRUE(messages);
    test::delete_mailbox(server, user, mailbox);
    test::create_mailbox(server, user, mailbox);
    for (const auto& m : *messages) {
        auto flags = m.flags;
        if (subject_of(m.body) == flag_subject) flags.push_back("\\Flagged");
        test::append_message(server, user, mailbox, m.body, flags, m.internaldate);
    }
    ASSERT_NE(test::status(server, user, mailbox).uidvalidity, before.uidvalidity);
}

// The base names of a Maildir folder's files (what stays when only flags change).
std::set<std::string> base_names(const fs::path& folder) {
    std::set<std::string> out;
    for (const char* sub : {"cur", "new"})
        for (const auto& f : fs::directory_iterator(folder / sub)) {
            auto n = f.path().filename().string();
            out.insert(n.substr(0, n.find(':')));
        }
    return out;
}

TEST_P(robust, uidvalidity_reset_duplicates_nothing_and_loses_nothing) {
    channel_under_test c(shared_server(), GetParam());
    c.a().create("Work");
    for (int i = 1; i <= 5; ++i)
        c.a().add_new("Work", "w" + std::to_string(i),
                      i == 2 ? std::vector<std::string>{"\\Seen"} : std::vector<std::string>{});
    c.a().add_new("INBOX", "m1");
    c.b().add_new("INBOX", "b1");
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_EQ(c.a().snapshot(), c.b().snapshot());

    // On side a (both kinds), then on side b (IMAP-IMAP).
    for (bool on_a : {true, false}) {
        if (!on_a && !c.b_imap()) break;
        SCOPED_TRACE(on_a ? "reset on a" : "reset on b");
        const std::string& user = on_a ? c.user_a() : c.user_b();
        const std::string flagged = on_a ? "w3" : "w4";
        std::set<std::string> bases;
        if (c.b_maildir()) bases = base_names(c.b_maildir()->folder_dir("Work"));
        auto other_saves = c.saves(!on_a);
        const std::string other_user = on_a ? c.user_b() : c.user_a();
        std::map<std::string, std::string> other_marks;
        std::uint32_t other_uidvalidity = 0;
        if (c.b_imap()) {
            other_marks = server_marks(c.server(), other_user);
            other_uidvalidity = test::status(c.server(), other_user, "Work").uidvalidity;
        }
        recreate(c.server(), user, "Work", flagged);

        auto r2 = c.sync();
        ASSERT_EQ(r2.exit_code, 0) << r2.describe();
        auto sa = c.a().snapshot();
        auto sb = c.b().snapshot();
        EXPECT_EQ(sa, sb);
        EXPECT_EQ(sa.at("Work").size(), 5u) << "no duplicates, no loss";
        EXPECT_EQ(sa.at("INBOX").size(), 2u);
        EXPECT_EQ(flags_of(on_a ? sb : sa, "Work", flagged), "\\Flagged");
        EXPECT_EQ(flags_of(sb, "Work", "w2"), "\\Seen");
        EXPECT_EQ(c.saves(!on_a), other_saves) << "nothing uploaded again to the other side";
        if (c.b_maildir()) {
            EXPECT_EQ(base_names(c.b_maildir()->folder_dir("Work")), bases)
                << "the Maildir keeps its files (only the flag suffix may change)";
        } else {
            EXPECT_EQ(server_marks(c.server(), other_user).at("INBOX"), other_marks.at("INBOX"));
            EXPECT_EQ(test::status(c.server(), other_user, "Work").uidvalidity, other_uidvalidity)
                << "the other side's mailbox is not recreated";
        }
    }
}

// Messages that arrived so far on side b (Maildir files, those of tmp/ too: a delivery
// writes there as the bodies come and moves them once the batch is whole; or APPENDs that
// Dovecot logged) and on side a (APPENDs): a kill can wait for the copying to be under way.
std::size_t arrived_b(channel_under_test& c) {
    if (!c.b_maildir()) return c.saves(false);
    return maildir_files(c.b_maildir()->root(), true).size();
}
std::size_t arrived_a(channel_under_test& c) {
    return c.saves(true);
}

struct kill_plan {
    std::optional<std::chrono::milliseconds> after;  // a kill by time
    bool to_b = true;                                // else: counts arrivals on a
    std::size_t arrivals = 0;                        // a kill once this many more arrived
};

// Runs the sync once per plan, each killed (SIGKILL) as planned; returns how many runs
// were killed in the middle of the copying (after some messages arrived, before the end).
int killed_runs(channel_under_test& c, const std::vector<kill_plan>& plans) {
    int mid_copy = 0;
    for (const auto& p : plans) {
        run_options o;
        o.kill_after = p.after;
        bool by_arrival = false;
        if (!p.after) {
            const std::size_t base = p.to_b ? arrived_b(c) : arrived_a(c);
            o.kill_if = [&c, &p, &by_arrival, base] {
                by_arrival = (p.to_b ? arrived_b(c) : arrived_a(c)) >= base + p.arrivals;
                return by_arrival;
            };
        }
        auto r = c.sync({}, o);
        if (std::getenv("E2E_DEBUG"))
            std::cerr << "plan " << (p.after ? p.after->count() : -1) << "ms/" << p.arrivals
                      << (p.to_b ? " to b" : " to a") << ": killed " << r.killed << " by arrival "
                      << by_arrival << " exit " << r.exit_code << ", a " << arrived_a(c) << ", b "
                      << arrived_b(c) << "\n"
                      << r.err << "\n";
        if (!r.killed) {
            EXPECT_EQ(r.exit_code, 0) << "a run that was not killed: " << r.describe();
        } else if (by_arrival) {
            ++mid_copy;
        }
    }
    return mid_copy;
}

void bulk_append(const test::dovecot& server, const std::string& user, const std::string& mailbox,
                 const std::vector<std::string>& messages) {
    std::vector<std::string> commands;
    for (const auto& m : messages)
        commands.push_back("APPEND " + test::imap_quote(mailbox) + " {" + std::to_string(m.size()) +
                           "}\r\n" + m);
    auto t = test::imap_script(server, user, commands);
    ASSERT_TRUE(t.ok());
}

std::string filler(int i) {
    std::string body;
    while (body.size() < 4000)
        body += "Line of message " + std::to_string(i) + ", some text to fill it up a bit.\r\n";
    return body;
}

// Each subject once in the mailbox; returns the number of messages.
std::size_t expect_unique(const store_snapshot& s, const std::string& mailbox) {
    auto it = s.find(mailbox);
    if (it == s.end()) {
        ADD_FAILURE() << "no mailbox " << mailbox;
        return 0;
    }
    std::set<std::string> subjects;
    for (const auto& e : it->second)
        EXPECT_TRUE(subjects.insert(entry_subject(e)).second)
            << "twice in " << mailbox << ": " << e;
    return it->second.size();
}

TEST_P(robust, killed_syncs_end_with_every_message_once) {
    channel_under_test c(shared_server(), GetParam());
    std::vector<std::string> server_messages;
    for (int i = 0; i < 300; ++i)
        server_messages.push_back(test::make_message("a-" + std::to_string(i), filler(i)));
    bulk_append(c.server(), c.user_a(), "INBOX", server_messages);
    c.b().create("Local");
    for (int i = 0; i < 60; ++i)
        c.b().add_new("INBOX", "b-" + std::to_string(i),
                      i % 2 ? std::vector<std::string>{"\\Seen"} : std::vector<std::string>{});
    for (int i = 0; i < 20; ++i) c.b().add_new("Local", "local-" + std::to_string(i));

    // A large first sync, killed at several points.
    // The copies go in one batch each way (APPEND commands of about 1 MiB, one Maildir
    // delivery), a to b first: "20 arrived on b" kills the first run in the middle of it,
    // "10 arrived on a" a later one after both batches landed, before the journal knows of
    // them. A run that finds an earlier one's intent on the server waits for what that one
    // may still have on its way (store::late_write_window): the kills by time land in the
    // wait or after it.
    int mid_copy = killed_runs(c, {{{}, true, 20},
                                   {100ms},
                                   {{}, false, 10},
                                   {250ms},
                                   {{}, false, 20},
                                   {{}, true, 120},
                                   {2500ms}});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_GE(mid_copy, 1) << "the kills did not land in the middle of the copying";
    RecordProperty("first_sync_mid_copy_kills", mid_copy);
    auto sa = c.a().snapshot();
    auto sb = c.b().snapshot();
    EXPECT_EQ(sa, sb);
    EXPECT_EQ(expect_unique(sa, "INBOX"), 360u);
    EXPECT_EQ(expect_unique(sb, "INBOX"), 360u);
    EXPECT_EQ(expect_unique(sa, "Local"), 20u);

    // An incremental sync with changes on both sides, killed at several points. Each way
    // copies 2.4 MB, three APPEND commands of about 1 MiB to an IMAP side: "10 arrived"
    // then holds while the rest is still on its way. With 40 small messages a way, one
    // command each, a run could end within the 10 ms between two looks at the arrivals,
    // and no kill landed in the copying (seen under load); with 300 a way (two commands),
    // one sanitized run in three on 2 cores still missed every kill.
    const unsigned more_n = 600;
    std::vector<std::string> more, local_more;
    for (unsigned i = 0; i < more_n; ++i) {
        more.push_back(test::make_message("a2-" + std::to_string(i), filler(i)));
        local_more.push_back(test::make_message("b2-" + std::to_string(i), filler(i)));
    }
    bulk_append(c.server(), c.user_a(), "INBOX", more);
    {
        std::vector<std::string> commands{"SELECT INBOX"};
        for (int i = 0; i < 30; ++i)
            commands.push_back("UID STORE " + std::to_string(i + 1) + " +FLAGS (\\Flagged)");
        ASSERT_TRUE(test::imap_script(c.server(), c.user_a(), commands).ok());
    }
    for (int i = 100; i < 110; ++i) c.a().expunge("INBOX", "a-" + std::to_string(i));
    if (c.b_imap())
        bulk_append(c.server(), c.user_b(), "INBOX", local_more);
    else
        for (const auto& m : local_more) c.b().add("INBOX", m, {}, {});
    for (int i = 0; i < 5; ++i) c.b().expunge("INBOX", "b-" + std::to_string(i));
    for (int i = 5; i < 10; ++i) c.b().move("INBOX", "b-" + std::to_string(i), "Local");

    // "10 arrived on a" kills the first run after both batches landed.
    int mid_copy_again = killed_runs(c, {{{}, false, 10},
                                         {50ms},
                                         {{}, true, 10},
                                         {150ms},
                                         {300ms},
                                         {{}, false, 15},
                                         {{}, true, 15},
                                         {2100ms}});
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    EXPECT_GE(mid_copy_again, 1) << "the kills did not land in the middle of the copying";
    RecordProperty("incremental_mid_copy_kills", mid_copy_again);
    sa = c.a().snapshot();
    sb = c.b().snapshot();
    EXPECT_EQ(sa, sb);
    EXPECT_EQ(expect_unique(sa, "INBOX"), 300u - 10 + 60 - 5 - 5 + 2 * more_n);
    EXPECT_EQ(expect_unique(sb, "INBOX"), 300u - 10 + 60 - 5 - 5 + 2 * more_n);
    EXPECT_EQ(expect_unique(sb, "Local"), 25u);
    for (int i = 0; i < 30; ++i)
        EXPECT_EQ(flags_of(sb, "INBOX", "a-" + std::to_string(i)), "\\Flagged");
    EXPECT_EQ(flags_of(sb, "INBOX", "a-105"), "<missing>");
    EXPECT_EQ(flags_of(sa, "INBOX", "b-3"), "<missing>");
    EXPECT_EQ(flags_of(sa, "Local", "b-7"), "\\Seen");
}

TEST_P(robust, mass_removal_guard_stops_a_sync_against_an_emptied_side) {
    channel_under_test c(shared_server(), GetParam());
    c.a().create("Work");
    for (int i = 0; i < 10; ++i) c.a().add_new("INBOX", "m" + std::to_string(i));
    for (int i = 0; i < 4; ++i) c.a().add_new("Work", "w" + std::to_string(i));
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    // b's INBOX loses every message (an unmounted disk's empty mount point, a wiped account).
    c.b().empty("INBOX");
    auto marks = server_marks(c.server(), c.user_a());
    auto snap = c.a().snapshot();
    auto guarded = c.sync();
    EXPECT_EQ(guarded.exit_code, 4) << guarded.describe();
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks) << "nothing may change on the server";
    EXPECT_EQ(c.a().snapshot(), snap);
    EXPECT_TRUE(contains(lower(guarded.all()), "force")) << "the message should point to --force";

    // With --force the removal goes through.
    auto forced = c.sync({"--force"});
    ASSERT_EQ(forced.exit_code, 0) << forced.describe();
    auto sa = c.a().snapshot();
    EXPECT_EQ(sa, c.b().snapshot());
    EXPECT_EQ(sa.at("INBOX").size(), 0u);
    EXPECT_EQ(sa.at("Work").size(), 4u);

    if (!c.b_maildir()) return;
    // The whole Maildir root gone (the disk not mounted at all).
    for (int i = 0; i < 6; ++i) c.a().add_new("INBOX", "n" + std::to_string(i));
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    auto root = c.b_maildir()->root();
    auto away = root.string() + ".away";
    fs::rename(root, away);
    marks = server_marks(c.server(), c.user_a());
    snap = c.a().snapshot();
    auto gone = c.sync();
    EXPECT_EQ(gone.exit_code, 4) << gone.describe();
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks) << "nothing may change on the server";
    EXPECT_EQ(c.a().snapshot(), snap);
    EXPECT_FALSE(fs::exists(root)) << "an unmounted Maildir must not be recreated";
    // Mounted again: nothing to do.
    fs::remove_all(root);
    fs::rename(away, root);
    auto back = c.sync();
    ASSERT_EQ(back.exit_code, 0) << back.describe();
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks);
    EXPECT_EQ(c.a().snapshot(), c.b().snapshot());
}

// An unmounted Maildir under a channel that may remove folders on the server: the folders
// look deleted on the Maildir side, but nothing may go on the server.
TEST(robust_maildir, unmounted_maildir_removes_nothing_even_where_removal_is_allowed) {
    channel_under_test c(shared_server(), robust_kinds[0], "remove = both\n");
    c.a().create("Work");
    for (int i = 0; i < 6; ++i) c.a().add_new("INBOX", "m" + std::to_string(i));
    for (int i = 0; i < 3; ++i) c.a().add_new("Work", "w" + std::to_string(i));
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto root = c.b_maildir()->root();
    fs::rename(root, root.string() + ".away");
    auto marks = server_marks(c.server(), c.user_a());
    auto snap = c.a().snapshot();
    auto gone = c.sync();
    EXPECT_EQ(gone.exit_code, 4) << gone.describe();
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks) << gone.describe();
    EXPECT_EQ(c.a().snapshot(), snap);
    EXPECT_FALSE(fs::exists(root));
}

INSTANTIATE_TEST_SUITE_P(e2e, robust, ::testing::ValuesIn(robust_kinds), kind_name);

}  // namespace
}  // namespace tandem::e2e
