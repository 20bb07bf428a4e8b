// SPDX-License-Identifier: MIT
// The engine asks both sides for their changes at the same time when both changed since a
// sync that went well (run::collect): two IMAP stores over Dovecot, each wrapped in a store
// whose changes() waits at a gate until the other side's call has begun too
// (support/gated_store.hpp).
#include "support/dovecot.hpp"
#include "support/gated_store.hpp"
#include "support/imap_script.hpp"
#include "support/temp_dir.hpp"
#include "tandem/journal/journal.hpp"
#include "tandem/store/imap_store.hpp"
#include "tandem/sync/engine.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace tandem::store {
namespace {

using namespace std::chrono_literals;

using test::gate;
using test::gated_store;

class collect_at_once : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { server_ = new test::dovecot(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    std::unique_ptr<imap_store> open(const std::string& user) {
        client::endpoint ep;
        ep.tunnel = server_->tunnel_argv(user);
        ep.user = user;
        ep.read_timeout = 30s;
        std::string why;
        auto s = imap_store::connect(ep, {}, &why);
        if (!s) ADD_FAILURE() << why;
        return s ? std::move(*s) : nullptr;
    }

    // One sync of alice's and bob's accounts, through gates; returns the report.
    sync::channel_report sync_through(gate& g, bool both_use_the_journal) {
        auto a = open("alice");
        auto b = open("bob");
        if (!a || !b) return {};
        gated_store ga(*a, g, both_use_the_journal), gb(*b, g, both_use_the_journal);
        sync::channel_job job;
        job.name = "pair";
        return sync::run_channel(*journal_, job, ga, gb, {});
    }

    void SetUp() override {
        journal::journal_options o;
        o.state_dir = state_.path();
        o.durable = false;
        auto j = journal::journal::open(o);
        ASSERT_TRUE(j);
        journal_.emplace(std::move(*j));
    }

    static std::string flags_of(const std::string& user, std::uint32_t n) {
        auto listed = test::list_messages(*server_, user, "INBOX");
        std::string out;
        for (const auto& f : listed[n].flags) out += f + " ";
        return out;
    }

    static inline test::dovecot* server_ = nullptr;
    test::temp_dir state_{"tandem-at-once"};
    std::optional<journal::journal> journal_;
};

TEST_F(collect_at_once, both_changed_sides_are_asked_at_the_same_time_and_sequentially_else) {
    test::append_message(*server_, "alice", "INBOX", test::make_message("one"), {});
    test::append_message(*server_, "alice", "INBOX", test::make_message("two"), {});
    gate first;
    first.patience = 0ms;
    auto r1 = sync_through(first, false);
    ASSERT_FALSE(r1.any_failed()) << r1.error;
    EXPECT_EQ(r1.total.copied.b, 2u);
    EXPECT_EQ(first.most_inside, 1) << "a first sync asks one side after the other";

    // A flag changed on each side: both sides changed since the sync that went well.
    auto a_msgs = test::list_messages(*server_, "alice", "INBOX");
    auto b_msgs = test::list_messages(*server_, "bob", "INBOX");
    ASSERT_EQ(a_msgs.size(), 2u);
    ASSERT_EQ(b_msgs.size(), 2u);
    test::store_flags(*server_, "alice", "INBOX", a_msgs[0].uid, "+FLAGS", {"\\Flagged"});
    test::store_flags(*server_, "bob", "INBOX", b_msgs[1].uid, "+FLAGS", {"\\Seen"});
    gate both;
    auto r2 = sync_through(both, false);
    ASSERT_FALSE(r2.any_failed()) << r2.error;
    EXPECT_EQ(both.calls, 2);
    EXPECT_EQ(both.most_inside, 2) << "the second side was asked only after the first answered";
    EXPECT_EQ(r2.total.flagged.a, 1u);
    EXPECT_EQ(r2.total.flagged.b, 1u);
    EXPECT_EQ(flags_of("bob", 0), "\\Flagged ");
    EXPECT_EQ(flags_of("alice", 1), "\\Seen ");

    // Stores whose changes() both use the journal are asked one after the other.
    a_msgs = test::list_messages(*server_, "alice", "INBOX");
    b_msgs = test::list_messages(*server_, "bob", "INBOX");
    test::store_flags(*server_, "alice", "INBOX", a_msgs[1].uid, "+FLAGS", {"\\Answered"});
    test::store_flags(*server_, "bob", "INBOX", b_msgs[0].uid, "-FLAGS", {"\\Flagged"});
    gate one_by_one;
    one_by_one.patience = 200ms;
    auto r3 = sync_through(one_by_one, true);
    ASSERT_FALSE(r3.any_failed()) << r3.error;
    EXPECT_EQ(one_by_one.calls, 2);
    EXPECT_EQ(one_by_one.most_inside, 1);
    EXPECT_EQ(flags_of("bob", 1), "\\Answered \\Seen ");
    EXPECT_EQ(flags_of("alice", 0), "");
}

// Only one side changed, by flags: the other side's store selects the mailbox while the
// changed side lists, for the writes that follow. Not when new messages came there (an
// APPEND needs no selected mailbox).
TEST_F(collect_at_once, the_quiet_side_selects_while_the_changed_side_lists_its_flag_changes) {
    test::create_mailbox(*server_, "alice", "Ahead");
    test::append_message(*server_, "alice", "Ahead", test::make_message("first"), {});
    gate first;
    first.patience = 0ms;
    auto r1 = sync_through(first, false);
    ASSERT_FALSE(r1.any_failed()) << r1.error;
    EXPECT_EQ(first.selects_ahead, 0) << "a first sync selects nothing ahead";

    test::append_message(*server_, "alice", "Ahead", test::make_message("second"), {});
    gate added;
    added.patience = 0ms;
    auto r2 = sync_through(added, false);
    ASSERT_FALSE(r2.any_failed()) << r2.error;
    EXPECT_EQ(r2.total.copied.b, 1u);
    EXPECT_EQ(added.selects_ahead, 0) << "new messages go by APPEND";

    const auto a_msgs = test::list_messages(*server_, "alice", "Ahead");
    ASSERT_EQ(a_msgs.size(), 2u);
    test::store_flags(*server_, "alice", "Ahead", a_msgs[1].uid, "+FLAGS", {"\\Flagged"});
    gate flagged;  // changes() of alice and select_ahead() of bob must be inside together
    auto r3 = sync_through(flagged, false);
    ASSERT_FALSE(r3.any_failed()) << r3.error;
    EXPECT_EQ(flagged.selects_ahead, 1);
    EXPECT_EQ(flagged.most_inside, 2) << "bob's SELECT waited for alice's listing";
    EXPECT_EQ(r3.total.flagged.b, 1u);
    const auto b_msgs = test::list_messages(*server_, "bob", "Ahead");
    ASSERT_EQ(b_msgs.size(), 2u);
    std::string flags;
    for (const auto& f : b_msgs[1].flags) flags += f + " ";
    EXPECT_EQ(flags, "\\Flagged ");
}

}  // namespace
}  // namespace tandem::store
