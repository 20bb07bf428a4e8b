// SPDX-License-Identifier: MIT
// Several mailboxes sync at once, each on its own pair of stores (channel_job::connections,
// store::another): two IMAP accounts of Dovecot, and an IMAP account with a Maildir (which
// the lanes share, one call at a time). The stores sit behind gates
// (support/gated_store.hpp): a changes() call waits until another mailbox's has begun, so
// a run that collects one mailbox after the other shows up as one mailbox at a time. The
// gates also note the steps of a copy, to show a batch's bodies fetched ahead.
#include "support/dovecot.hpp"
#include "support/gated_store.hpp"
#include "support/imap_script.hpp"
#include "support/temp_dir.hpp"
#include "tandem/journal/journal.hpp"
#include "tandem/store/imap_store.hpp"
#include "tandem/store/maildir_store.hpp"
#include "tandem/sync/engine.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

namespace tandem::sync {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::gate;
using test::gated_store;

const std::vector<std::string> folders{"INBOX", "Archive", "Lists", "Sent"};

class lanes : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        test::dovecot_options o;
        o.users.clear();
        for (int i = 1; i <= users_per_name; ++i)
            for (const char* name : {"alice", "bob"})
                o.users.push_back({name + std::to_string(i), "secret"});
        server_ = new test::dovecot(o);
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    void SetUp() override {
        journal::journal_options o;
        o.state_dir = dir_.path() / "state";
        o.durable = false;
        auto j = journal::journal::open(o);
        ASSERT_TRUE(j);
        journal_.emplace(std::move(*j));
        alice_ = fresh("alice");
        bob_ = fresh("bob");
    }

    // A new user each test: the suite's server is shared.
    static constexpr int users_per_name = 8;
    static std::string fresh(const std::string& name) {
        static std::map<std::string, int> used;
        const int n = ++used[name];
        if (n > users_per_name) throw std::logic_error("lanes: more tests than users");
        return name + std::to_string(n);
    }

    std::unique_ptr<store::store> imap(const std::string& user) {
        client::endpoint ep;
        ep.tunnel = server_->tunnel_argv(user);
        ep.user = user;
        ep.read_timeout = 30s;
        std::string why;
        auto s = store::imap_store::connect(ep, {}, &why);
        if (!s) ADD_FAILURE() << why;
        return s ? std::move(*s) : nullptr;
    }

    std::unique_ptr<store::store> maildir() {
        store::maildir_store_options o{*journal_, dir_.path() / "Mail"};
        o.fsync = false;
        o.settle = 0ms;
        return std::make_unique<store::maildir_store>(std::move(o));
    }

    // Three messages in each folder of alice's account.
    void fill(bool create = true) {
        for (const auto& f : folders) {
            if (create && f != "INBOX") test::create_mailbox(*server_, alice_, f);
            for (int i = 0; i < 3; ++i)
                test::append_message(*server_, alice_, f,
                                     test::make_message(f + " " + std::to_string(i)), {});
        }
    }

    channel_report sync(store::store& a, store::store& b, gate& ga, gate& gb, unsigned connections,
                        std::uint64_t lane_work = 1) {
        gated_store wa(a, ga, false), wb(b, gb, b.changes_use_the_journal());
        channel_job job;
        job.name = "pair";
        job.rules.may_create = {true, true};
        job.connections = connections;
        job.lane_work = lane_work;  // 1: a few messages are worth a connection here
        return run_channel(*journal_, job, wa, wb, {});
    }

    static std::size_t files_in(const fs::path& folder) {
        std::size_t n = 0;
        for (const char* sub : {"cur", "new"})
            for ([[maybe_unused]] const auto& e : fs::directory_iterator(folder / sub)) ++n;
        return n;
    }

    static inline test::dovecot* server_ = nullptr;
    test::temp_dir dir_{"tandem-lanes"};
    std::optional<journal::journal> journal_;
    std::string alice_, bob_;
};

TEST_F(lanes, mailboxes_of_two_servers_sync_at_once_on_more_connections) {
    fill();
    auto a = imap(alice_);
    auto b = imap(bob_);
    ASSERT_TRUE(a && b);
    gate ga, gb;
    ga.by_mailbox = gb.by_mailbox = true;
    ga.patience = 1000ms;  // the last mailbox waits for company in vain
    auto r = sync(*a, *b, ga, gb, 3);
    ASSERT_FALSE(r.any_failed()) << r.error;
    EXPECT_EQ(r.total.copied.b, 12u);
    EXPECT_EQ(ga.opened, 2) << "two more connections to each account";
    EXPECT_EQ(gb.opened, 2);
    EXPECT_EQ(ga.closed_ahead, 2) << "the lanes' LOGOUTs go out together";
    EXPECT_EQ(gb.closed_ahead, 2);
    EXPECT_GE(ga.most_mailboxes, 2u) << "the mailboxes were collected one after the other";
    for (const auto& f : folders) {
        auto msgs = test::list_messages(*server_, bob_, f);
        EXPECT_EQ(msgs.size(), 3u) << f;
    }

    // Nothing changed: no mailbox to look at, no connection more.
    gate idle_a, idle_b;
    auto again = sync(*a, *b, idle_a, idle_b, 3);
    ASSERT_FALSE(again.any_failed()) << again.error;
    EXPECT_FALSE(again.total.any());
    EXPECT_EQ(idle_a.opened, 0);
    EXPECT_EQ(idle_a.calls, 0);

    // A flag in each of two mailboxes on bob's side, with one connection: one mailbox after
    // the other, and no login more.
    for (const char* f : {"Archive", "Sent"}) {
        auto msgs = test::list_messages(*server_, bob_, f);
        test::store_flags(*server_, bob_, f, msgs[0].uid, "+FLAGS", {"\\Flagged"});
    }
    gate one_a, one_b;
    one_a.by_mailbox = one_b.by_mailbox = true;
    one_b.patience = 200ms;
    auto serial = sync(*a, *b, one_a, one_b, 1);
    ASSERT_FALSE(serial.any_failed()) << serial.error;
    EXPECT_EQ(serial.total.flagged.a, 2u);
    EXPECT_EQ(one_b.opened, 0);
    EXPECT_EQ(one_b.most_mailboxes, 1u);
    for (const char* f : {"Archive", "Sent"})
        EXPECT_EQ(test::list_messages(*server_, alice_, f)[0].flags,
                  std::vector<std::string>{"\\Flagged"});
}

TEST_F(lanes, a_maildir_is_shared_by_the_lanes_of_its_server) {
    fill();
    auto a = imap(alice_);
    auto b = maildir();
    ASSERT_TRUE(a);
    gate ga, gb;
    ga.by_mailbox = true;
    ga.patience = 1000ms;
    gb.patience = 0ms;
    auto r = sync(*a, *b, ga, gb, 4);
    ASSERT_FALSE(r.any_failed()) << r.error;
    EXPECT_EQ(r.total.copied.b, 12u);
    EXPECT_EQ(ga.opened, 3);
    EXPECT_EQ(gb.opened, 0) << "a Maildir store has no connection to add";
    EXPECT_GE(ga.most_mailboxes, 2u);
    const auto root = dir_.path() / "Mail";
    for (const auto& f : folders) EXPECT_EQ(files_in(root / f), 3u) << f;

    // New mail and a flag in every folder of the Maildir: back to the server, at once.
    for (const auto& f : folders) {
        std::ofstream(root / f / "new" / ("1700000000.new" + f + ".host"))
            << test::make_message("from the Maildir " + f);
    }
    gate again_a, again_b;
    again_a.by_mailbox = true;
    again_b.patience = 0ms;
    auto back = sync(*a, *b, again_a, again_b, 4);
    ASSERT_FALSE(back.any_failed()) << back.error;
    EXPECT_EQ(back.total.copied.a, 4u);
    for (const auto& f : folders)
        EXPECT_EQ(test::list_messages(*server_, alice_, f).size(), 4u) << f;
    gate idle_a, idle_b;
    auto idle = sync(*a, *b, idle_a, idle_b, 4);
    ASSERT_FALSE(idle.any_failed()) << idle.error;
    EXPECT_FALSE(idle.total.any());
}

TEST_F(lanes, few_messages_on_a_near_link_stay_on_one_connection) {
    fill();
    auto a = imap(alice_);
    auto b = imap(bob_);
    ASSERT_TRUE(a && b);
    ASSERT_FALSE(a->round_trip()) << "a tunnel has no round trip to overlap";
    gate ga, gb;
    ga.by_mailbox = true;
    ga.patience = 200ms;
    auto r = sync(*a, *b, ga, gb, 4, 500);
    ASSERT_FALSE(r.any_failed()) << r.error;
    EXPECT_EQ(r.total.copied.b, 12u);
    EXPECT_EQ(ga.opened + gb.opened, 0) << "12 messages are not worth a login";
    EXPECT_EQ(ga.most_mailboxes, 1u);

    // 3 new messages in each of the 4 mailboxes (a work estimate of 4 each, the SELECT
    // included), at 10 per connection: two.
    fill(false);
    gate more_a, more_b;
    more_a.by_mailbox = true;
    more_a.patience = 1000ms;
    auto more = sync(*a, *b, more_a, more_b, 4, 10);
    ASSERT_FALSE(more.any_failed()) << more.error;
    EXPECT_EQ(more.total.copied.b, 12u);
    EXPECT_EQ(more_a.opened, 1);
    EXPECT_EQ(more_b.opened, 1);
    EXPECT_EQ(more_a.most_mailboxes, 2u);
}

// Not lanes, but the same gates: the flag changes of a mailbox on a side go to the store in
// one call (one flight of UID STOREs), whatever each message's change is.
TEST_F(lanes, different_flag_changes_of_a_mailbox_go_in_one_call) {
    for (int i = 0; i < 4; ++i)
        test::append_message(*server_, alice_, "INBOX", test::make_message(std::to_string(i)), {});
    auto a = imap(alice_);
    auto b = imap(bob_);
    ASSERT_TRUE(a && b);
    gate ga, gb;
    ga.patience = gb.patience = 0ms;
    ASSERT_FALSE(sync(*a, *b, ga, gb, 1).any_failed());
    auto msgs = test::list_messages(*server_, bob_, "INBOX");
    ASSERT_EQ(msgs.size(), 4u);
    test::store_flags(*server_, bob_, "INBOX", msgs[0].uid, "+FLAGS", {"\\Flagged"});
    test::store_flags(*server_, bob_, "INBOX", msgs[1].uid, "+FLAGS", {"\\Seen"});
    test::store_flags(*server_, bob_, "INBOX", msgs[2].uid, "+FLAGS", {"\\Answered", "\\Seen"});
    test::store_flags(*server_, bob_, "INBOX", msgs[3].uid, "+FLAGS", {"$Work"});
    gate fa, fb;
    fa.patience = fb.patience = 0ms;
    auto r = sync(*a, *b, fa, fb, 1);
    ASSERT_FALSE(r.any_failed()) << r.error;
    EXPECT_EQ(r.total.flagged.a, 4u);
    EXPECT_EQ(fa.flag_calls, 1) << "one call per distinct change";
    auto now = test::list_messages(*server_, alice_, "INBOX");
    ASSERT_EQ(now.size(), 4u);
    EXPECT_EQ(now[0].flags, std::vector<std::string>{"\\Flagged"});
    EXPECT_EQ(now[1].flags, std::vector<std::string>{"\\Seen"});
    EXPECT_EQ(now[2].flags, (std::vector<std::string>{"\\Answered", "\\Seen"}));
    EXPECT_EQ(now[3].flags, std::vector<std::string>{"$Work"});
}

TEST_F(lanes, a_refused_connection_leaves_the_sync_on_fewer) {
    fill();
    auto a = imap(alice_);
    auto b = imap(bob_);
    ASSERT_TRUE(a && b);
    gate ga, gb;
    gb.refuse_another = true;
    ga.patience = gb.patience = 0ms;
    auto r = sync(*a, *b, ga, gb, 4);
    ASSERT_FALSE(r.any_failed()) << r.error;
    EXPECT_EQ(r.total.copied.b, 12u);
    EXPECT_EQ(gb.opened, 0);
    EXPECT_EQ(ga.most_mailboxes, 1u) << "one lane: one mailbox at a time";
    for (const auto& f : folders) EXPECT_EQ(test::list_messages(*server_, bob_, f).size(), 3u) << f;
}

// A copy larger than one batch of the engine (32 MB by listed sizes): the next batch's
// UID FETCH goes out before the messages of the one before are stored, the fetch that
// follows asks for the same messages, and every message arrives whole.
TEST_F(lanes, the_next_batch_of_a_copy_is_fetched_ahead) {
    test::append_message(*server_, alice_, "INBOX", test::make_message("before"), {});
    auto a = imap(alice_);
    auto b = maildir();
    ASSERT_TRUE(a && b);
    gate first_a, first_b;
    first_a.wanted = first_b.wanted = 1;
    // The first run copies into an empty folder (sizes not listed: batches by count only).
    ASSERT_FALSE(sync(*a, *b, first_a, first_b, 1).any_failed());
    std::set<std::string> bodies{test::make_message("before")};
    for (int i = 0; i < 28; ++i) {  // 1.2 MB each: a batch of 27, then one of 1
        std::string m = test::make_message("big " + std::to_string(i), "");
        while (m.size() < 1200 * 1000)
            m += "line " + std::to_string(m.size()) + " of " + std::to_string(i) + "\r\n";
        test::append_message(*server_, alice_, "INBOX", m, {});
        bodies.insert(std::move(m));
    }
    gate g;
    g.wanted = 1;
    auto r = sync(*a, *b, g, g, 1);
    ASSERT_FALSE(r.any_failed()) << r.error;
    EXPECT_EQ(r.total.copied.b, 28u);
    const std::vector<std::string> expected{"fetch 27 from 2", "ahead 1 from 29", "finish",
                                            "fetch 1 from 29", "finish"};
    EXPECT_EQ(g.transfers, expected);
    std::set<std::string> delivered;
    for (const char* sub : {"cur", "new"})
        for (const auto& e : fs::directory_iterator(dir_.path() / "Mail" / "INBOX" / sub)) {
            std::ifstream in(e.path(), std::ios::binary);
            delivered.insert(std::string(std::istreambuf_iterator<char>(in), {}));
        }
    EXPECT_EQ(delivered.size(), bodies.size());
    EXPECT_TRUE(delivered == bodies) << "a body differs";
}

// Each store's listing is told what the journal recorded of its mailboxes at the last run
// (store::list_ahead(): an IMAP store may select a large INBOX first).
TEST_F(lanes, each_listing_is_told_what_the_last_run_recorded) {
    fill();
    auto a = imap(alice_);
    auto b = maildir();
    ASSERT_TRUE(a && b);
    gate ga, gb;
    ga.wanted = gb.wanted = 1;
    ASSERT_FALSE(sync(*a, *b, ga, gb, 1).any_failed());
    EXPECT_EQ(ga.lists_ahead, std::vector<std::string>{"list ahead"});
    test::append_message(*server_, alice_, "INBOX", test::make_message("one more"), {});
    ASSERT_FALSE(sync(*a, *b, ga, gb, 1).any_failed());
    ASSERT_EQ(ga.lists_ahead.size(), 2u);
    std::string expected = "list ahead";
    for (const auto& f : std::set<std::string>(folders.begin(), folders.end()))
        expected += " " + f + "=3";
    EXPECT_EQ(ga.lists_ahead[1], expected);
    ASSERT_EQ(gb.lists_ahead.size(), 2u);
    EXPECT_NE(gb.lists_ahead[1].find(" INBOX="), std::string::npos) << gb.lists_ahead[1];
}

// A mailbox that a store has open is looked at first, whatever its size: opening another
// would close it (store::is_open; an IMAP store's INBOX selected before its listing).
TEST_F(lanes, a_mailbox_open_already_is_looked_at_first) {
    fill();
    auto a = imap(alice_);
    auto b = maildir();
    ASSERT_TRUE(a && b);
    gate ga, gb;
    ga.wanted = gb.wanted = 1;
    ASSERT_FALSE(sync(*a, *b, ga, gb, 1).any_failed());
    // Sent gets the fewest new messages: the smallest, the last by size.
    int n = 0;
    for (const auto& f : folders) {
        for (int i = 0; i < (f == "Sent" ? 1 : 5); ++i)
            test::append_message(*server_, alice_, f,
                                 test::make_message("new " + std::to_string(++n)), {});
    }
    ga.changes_order.clear();
    ga.open_mailbox = "Sent";
    ASSERT_FALSE(sync(*a, *b, ga, gb, 1).any_failed());
    ASSERT_EQ(ga.changes_order.size(), folders.size());
    EXPECT_EQ(ga.changes_order.front(), "Sent");
    ga.changes_order.clear();
    ga.open_mailbox.clear();
    for (const auto& f : folders)
        for (int i = 0; i < (f == "Sent" ? 1 : 5); ++i)
            test::append_message(*server_, alice_, f,
                                 test::make_message("more " + std::to_string(++n)), {});
    auto fresh = imap(alice_);  // nothing selected
    ASSERT_TRUE(fresh);
    ASSERT_FALSE(sync(*fresh, *b, ga, gb, 1).any_failed());
    ASSERT_EQ(ga.changes_order.size(), folders.size());
    EXPECT_EQ(ga.changes_order.back(), "Sent") << "the largest first otherwise";
}

}  // namespace
}  // namespace tandem::sync
