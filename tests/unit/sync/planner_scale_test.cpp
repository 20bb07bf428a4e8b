// SPDX-License-Identifier: MIT
// A big mailbox: 200,000 records and a handful of changes (S08 at scale); and full listings
// of a smaller one (these cost O(n) whatever the planner does). The plan must be exactly the
// changes; the time is printed, not asserted (the machine is shared).
#include "planner_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <variant>

namespace tandem::sync::test {
namespace {

constexpr mail::uid big = 200000;
constexpr mail::uid b_offset = 1000000;

std::vector<pair_record> big_journal(mail::uid n = big) {
    std::vector<pair_record> recs;
    recs.reserve(n);
    for (mail::uid u = 1; u <= n; ++u) {
        pair_record r;
        r.uid = {u, u + b_offset};
        if (u % 3 == 0) r.flags.set(mail::system_flag::seen);
        r.content_key = "<m" + std::to_string(u) + "@example.org>/4096";
        r.identity = {"A" + std::to_string(u), "B" + std::to_string(u)};
        r.size = 4096;
        recs.push_back(std::move(r));
    }
    return recs;
}

std::map<std::string, int> kinds(const plan& p) {
    static const char* names[] = {"create",  "remove", "copy",   "flags",
                                  "expunge", "move",   "journal"};
    static_assert(std::variant_size_v<action> == 7);
    std::map<std::string, int> out;
    for (const auto& a : p.actions) ++out[names[a.index()]];
    return out;
}

template <class F>
plan timed(const char* what, F&& f) {
    const auto start = std::chrono::steady_clock::now();
    plan p = f();
    const auto ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ planner  ] %s: %.1f ms\n", what, ms);
    return p;
}

TEST(planner_scale, two_hundred_thousand_records_fifty_changes) {
    std::vector<mailbox_input> in;
    in.push_back(mbox("INBOX", big_journal(), changes(), changes()));
    in.push_back(mbox("Archive", {}, changes(), changes()));
    auto& a = in[0].sides.a;
    auto& b = in[0].sides.b;
    for (mail::uid u = 1000; u < 1020; ++u) a.messages.push_back(msg(u, "\\Flagged"));  // 20 flags
    for (mail::uid u = 5000; u < 5010; ++u) {  // 10 gone on a
        a.vanished.push_back(u);
        if (u % 2 == 0)  // 5 of them moved to Archive
            in[1].sides.a.messages.push_back(msg(u + big, "",
                                                 "<m" + std::to_string(u) + "@example.org>/4096",
                                                 "A" + std::to_string(u)));
    }
    for (mail::uid u = 7000; u < 7010; ++u)
        b.messages.push_back(msg(u + b_offset, "\\Answered"));  // 10 flags
    for (mail::uid u = 1; u <= 10; ++u)                         // 10 new on b
        b.messages.push_back(msg(b_offset + big + u, "", "<new" + std::to_string(u) + ">"));

    const plan p = timed("200k records, 50 changes", [&] { return make_plan(in, {}); });
    EXPECT_EQ(kinds(p), (std::map<std::string, int>{
                            {"flags", 30}, {"expunge", 5}, {"move", 5}, {"copy", 10}}));
    EXPECT_TRUE(p.notices.empty());
}

constexpr mail::uid medium = 50000;

TEST(planner_scale, fifty_thousand_listed_and_unchanged) {
    auto recs = big_journal(medium);
    side_report a = full(), b = full();
    a.messages.reserve(medium);
    b.messages.reserve(medium);
    // Listed newest first: the planner must not rely on the store's order.
    for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
        a.messages.push_back(
            msg(it->uid.a, it->flags.to_imap(), it->content_key, it->identity.a, 4096));
        b.messages.push_back(
            msg(it->uid.b, it->flags.to_imap(), it->content_key, it->identity.b, 4096));
    }
    b.messages[10].flags.add_imap("\\Flagged");
    std::vector<mailbox_input> in{mbox("INBOX", std::move(recs), std::move(a), std::move(b))};
    const plan p = timed("50k listed on both sides, 1 change", [&] { return make_plan(in, {}); });
    EXPECT_EQ(kinds(p), (std::map<std::string, int>{{"flags", 1}}));
}

TEST(planner_scale, fifty_thousand_after_a_uidvalidity_change) {
    auto recs = big_journal(medium);
    side_report a = revalidated();
    a.messages.reserve(medium);
    for (const auto& r : recs)
        a.messages.push_back(msg(r.uid.a + 7, r.flags.to_imap(), r.content_key, "", 4096));
    std::vector<mailbox_input> in{mbox("INBOX", std::move(recs), std::move(a), changes())};
    const plan p = timed("50k re-paired after UIDVALIDITY", [&] { return make_plan(in, {}); });
    // Every record erased, then put again with its new uid: nothing on a store.
    EXPECT_EQ(kinds(p), (std::map<std::string, int>{{"journal", 2 * static_cast<int>(medium)}}));
}

}  // namespace
}  // namespace tandem::sync::test
