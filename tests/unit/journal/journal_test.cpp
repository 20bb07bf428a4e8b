// SPDX-License-Identifier: MIT
#include "tandem/journal/journal.hpp"

#include "support/temp_dir.hpp"
#include "tandem/journal/codec.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>

namespace tandem::journal {
namespace {

using test::temp_dir;

// The value of a result, or an exception that fails the test (never UB on an error).
template <class T>
T val(result<T> r) {
    if (!r) throw std::runtime_error(r.error().message());
    return std::move(*r);
}

mode_t mode_of(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
}

pair_record rec(mail::uid a, mail::uid b, std::string id = {}) {
    pair_record r;
    r.uid = {a, b};
    r.flags.set(mail::system_flag::seen);
    r.identity = {id.empty() ? "ga" + std::to_string(a) : id, "gb" + std::to_string(b)};
    r.content_key = "<m" + std::to_string(a) + "@x>/100";
    r.size = 100 + a;
    return r;
}

struct journal_test : ::testing::Test {
    temp_dir dir{"tandem-journal"};
    std::optional<journal> j;

    journal_options options() const {
        journal_options o;
        o.state_dir = dir / "state";
        o.durable = false;
        return o;
    }

    void open() {
        std::string why;
        auto r = journal::open(options(), &why);
        ASSERT_TRUE(r) << why;
        j.emplace(std::move(*r));
    }

    // Runs f inside one write transaction and commits.
    template <class F>
    void write(F f) {
        auto w = j->begin_write();
        ASSERT_TRUE(w) << w.error().message();
        f(*w);
        auto c = std::move(*w).commit();
        ASSERT_TRUE(c) << c.error().message();
    }

    lmdb::read_txn read() {
        auto r = j->begin_read();
        EXPECT_TRUE(r);
        return std::move(*r);
    }

    // Opens the pair c/INBOX with a record (a, a + 1000) for each a, in one commit.
    std::uint64_t inbox_with(std::initializer_list<mail::uid> uids_a) {
        std::uint64_t p = 0;
        write([&](lmdb::write_txn& w) {
            p = val(j->open_pair(w, "c", "INBOX")).id;
            for (mail::uid a : uids_a) ASSERT_TRUE(j->put_record(w, p, rec(a, a + 1000)));
        });
        return p;
    }
};

}  // namespace

// ---- open, files, version, lock ----

TEST_F(journal_test, creates_private_state_dir_and_files) {
    open();
    EXPECT_EQ(mode_of(dir / "state"), 0700u);
    EXPECT_EQ(mode_of(dir / "state" / "journal.lock"), 0600u);
    EXPECT_EQ(mode_of(dir / "state" / "journal"), 0700u);
    EXPECT_EQ(mode_of(dir / "state" / "journal" / "data.mdb"), 0600u);
    EXPECT_EQ(mode_of(dir / "state" / "journal" / "lock.mdb"), 0600u);
    EXPECT_GT(j->created(), 1600000000);
}

TEST_F(journal_test, creation_time_survives_reopen) {
    open();
    auto created = j->created();
    j.reset();
    ::sleep(1);
    open();
    EXPECT_EQ(j->created(), created);
}

TEST_F(journal_test, another_schema_version_is_refused_with_both_versions_named) {
    open();
    j.reset();
    {
        lmdb::env_options eo;
        auto e = lmdb::env::open(dir / "state" / "journal", eo);
        ASSERT_TRUE(e);
        auto w = e->begin_write();
        ASSERT_TRUE(w);
        auto meta = lmdb::dbi::open(*w, "meta", false);
        ASSERT_TRUE(meta);
        ASSERT_TRUE(w->put(*meta, "version", codec::writer::value(1).u32(7).bytes()));
        ASSERT_TRUE(std::move(*w).commit());
    }
    std::string why;
    auto r = journal::open(options(), &why);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::journal_version);
    EXPECT_NE(why.find("schema version 7"), std::string::npos) << why;
    EXPECT_NE(why.find("version " + std::to_string(schema_version)), std::string::npos) << why;
    EXPECT_NE(why.find((dir / "state").string()), std::string::npos) << why;
    // The refusal wrote nothing: still version 7, and the lock is free again.
    auto again = journal::open(options(), &why);
    EXPECT_EQ(again.error(), errc::journal_version);
}

TEST_F(journal_test, second_open_in_the_same_process_is_locked_out_with_our_pid) {
    open();
    std::string why;
    auto second = journal::open(options(), &why);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), errc::journal_locked);
    EXPECT_NE(why.find("pid " + std::to_string(::getpid())), std::string::npos) << why;
    EXPECT_NE(why.find("unit_journal"), std::string::npos) << why;  // the command line
    j.reset();
    auto third = journal::open(options(), &why);
    EXPECT_TRUE(third) << why;
}

TEST_F(journal_test, forked_child_is_locked_out_and_names_the_parent) {
    open();
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(out[0]);
        std::string why;
        auto r = journal::open(options(), &why);
        std::string msg = (r ? std::string("opened")
                             : (r.error() == errc::journal_locked ? "locked: " : "other: ") + why);
        [[maybe_unused]] auto n = ::write(out[1], msg.data(), msg.size());
        ::_exit(0);
    }
    ::close(out[1]);
    std::string got;
    char buf[512];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) got.append(buf, n);
    ::close(out[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_EQ(got.rfind("locked: ", 0), 0u) << got;
    EXPECT_NE(got.find("pid " + std::to_string(::getpid())), std::string::npos) << got;
}

TEST_F(journal_test, lock_wait_gets_the_journal_when_the_holder_exits) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        auto r = journal::open(options());
        char c = r ? 'y' : 'n';
        [[maybe_unused]] auto n = ::write(ready[1], &c, 1);
        ::usleep(300 * 1000);
        ::_exit(0);
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    ASSERT_EQ(c, 'y');
    auto o = options();
    o.lock_wait = std::chrono::seconds(10);
    std::string why;
    auto r = journal::open(o, &why);
    EXPECT_TRUE(r) << why;
    int status = 0;
    ::waitpid(child, &status, 0);
}

// ---- link measurements ----

TEST_F(journal_test, link_history_is_empty_until_put_and_kept_per_store_across_reopen) {
    open();
    {
        auto r = read();
        auto none = j->find_link(r, "work");
        ASSERT_TRUE(none);
        EXPECT_EQ(*none, link_history{});
    }
    link_history work{{12'000'000, 1700000000}, {31'000'000, 1700000100}};
    link_history home{{0, 0}, {500'000, 1700000200}};
    write([&](lmdb::write_txn& w) {
        ASSERT_TRUE(j->put_link(w, "work", work));
        ASSERT_TRUE(j->put_link(w, "home", home));
    });
    j.reset();
    open();
    auto r = read();
    auto got = j->find_link(r, "work");
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, work);
    got = j->find_link(r, "home");
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, home);
    // The meta database's own keys are untouched.
    auto pair = j->find_pair(r, "work", "INBOX");
    ASSERT_TRUE(pair);
    EXPECT_FALSE(*pair);
}

// ---- mailbox pair state ----

TEST_F(journal_test, pair_state_round_trip_ids_listing_and_erase) {
    open();
    pair_state inbox;
    write([&](lmdb::write_txn& w) {
        auto p = j->open_pair(w, "work", "INBOX");
        ASSERT_TRUE(p);
        EXPECT_NE(p->id, 0u);
        inbox = *p;
        inbox.sides.a = {"INBOX", 1234, 50, 999, 49, "tok-a"};
        inbox.sides.b = {"Posteingang", 77, 10, 0, 9, std::string("\0\1bin", 5)};
        inbox.last_sync = 1700000000;
        inbox.status = pair_status::error;
        inbox.error = "APPEND failed: over quota";
        ASSERT_TRUE(j->put_pair(w, "work", "INBOX", inbox));
        auto again = j->open_pair(w, "work", "INBOX");  // existing: same id, no reset
        ASSERT_TRUE(again);
        EXPECT_EQ(*again, inbox);
        ASSERT_TRUE(j->open_pair(w, "work", "Archive/2023 é"));
        ASSERT_TRUE(j->open_pair(w, "work2", "INBOX"));  // another channel, a longer name
        ASSERT_TRUE(j->open_pair(w, "wor", "INBOX"));    // and a shorter one
    });
    j.reset();
    open();  // read back after reopen
    auto r = read();
    auto found = j->find_pair(r, "work", "INBOX");
    ASSERT_TRUE(found && *found);
    EXPECT_EQ(**found, inbox);
    auto none = j->find_pair(r, "work", "Nope");
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);

    auto list = j->list_pairs(r, "work");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ((*list)[0].mailbox, "Archive/2023 é");
    EXPECT_EQ((*list)[1].mailbox, "INBOX");
    EXPECT_EQ((*list)[1].state, inbox);
    EXPECT_NE((*list)[0].state.id, inbox.id);
    r.release();

    write([&](lmdb::write_txn& w) {
        ASSERT_TRUE(j->put_record(w, inbox.id, rec(1, 1)));
        auto gone = j->erase_pair(w, "work", "INBOX");
        ASSERT_TRUE(gone);
        EXPECT_TRUE(*gone);
        auto count = j->count_records(w, inbox.id);
        ASSERT_TRUE(count);
        EXPECT_EQ(*count, 0u);  // its records went with it
        EXPECT_FALSE(val(j->erase_pair(w, "work", "INBOX")));
        // Re-created: a new id, never the old one.
        auto fresh = j->open_pair(w, "work", "INBOX");
        ASSERT_TRUE(fresh);
        EXPECT_GT(fresh->id, inbox.id);
    });
}

TEST_F(journal_test, put_pair_checks_the_id) {
    open();
    write([&](lmdb::write_txn& w) {
        pair_state s;
        s.sides.a.uidnext = 5;
        ASSERT_TRUE(j->put_pair(w, "c", "m", s));  // id 0, new pair: allocated
        auto got = j->find_pair(w, "c", "m");
        ASSERT_TRUE(got && *got);
        EXPECT_NE((*got)->id, 0u);
        EXPECT_EQ((*got)->sides.a.uidnext, 5u);
        s.id = (*got)->id + 100;
        auto wrong = j->put_pair(w, "c", "m", s);
        ASSERT_FALSE(wrong);
        EXPECT_EQ(wrong.error(), errc::invalid_argument);
        auto nul = j->open_pair(w, "c", std::string("a\0b", 3));
        ASSERT_FALSE(nul);
        EXPECT_EQ(nul.error(), errc::invalid_argument);
    });
}

// ---- pair records ----

TEST_F(journal_test, records_reachable_from_either_uid_in_uid_a_order) {
    open();
    const std::uint64_t p = inbox_with({30, 10, 20});
    write([&](lmdb::write_txn& w) {
        // Unknown UIDs on one side: several coexist.
        ASSERT_TRUE(j->put_record(w, p, rec(40, 0)));
        ASSERT_TRUE(j->put_record(w, p, rec(50, 0)));
        ASSERT_TRUE(j->put_record(w, p, rec(0, 2000)));
        ASSERT_TRUE(j->put_record(w, p, rec(0, 1500)));
        auto bad = j->put_record(w, p, rec(0, 0));
        ASSERT_FALSE(bad);
        EXPECT_EQ(bad.error(), errc::invalid_argument);
        // Another pair's records stay apart.
        auto q = val(j->open_pair(w, "c", "Sent")).id;
        ASSERT_TRUE(j->put_record(w, q, rec(10, 99)));
    });
    auto r = read();
    auto all = j->records(r, p);
    ASSERT_TRUE(all);
    std::vector<std::pair<mail::uid, mail::uid>> order;
    for (auto& x : *all) order.emplace_back(x.uid.a, x.uid.b);
    EXPECT_EQ(order,
              (std::vector<std::pair<mail::uid, mail::uid>>{
                  {0, 1500}, {0, 2000}, {10, 1010}, {20, 1020}, {30, 1030}, {40, 0}, {50, 0}}));
    EXPECT_EQ(val(j->count_records(r, p)), 7u);

    auto by_a = j->find_record(r, p, side::a, 20);
    ASSERT_TRUE(by_a && *by_a);
    EXPECT_EQ(**by_a, rec(20, 1020));
    auto by_b = j->find_record(r, p, side::b, 1030);
    ASSERT_TRUE(by_b && *by_b);
    EXPECT_EQ(**by_b, rec(30, 1030));
    auto b_only = j->find_record(r, p, side::b, 1500);
    ASSERT_TRUE(b_only && *b_only);
    EXPECT_EQ((*b_only)->uid.a, 0u);
    EXPECT_FALSE(val(j->find_record(r, p, side::a, 0)));  // 0 is "unknown", never a key
    EXPECT_FALSE(val(j->find_record(r, p, side::b, 0)));
    EXPECT_FALSE(val(j->find_record(r, p, side::a, 21)));
    EXPECT_FALSE(val(j->find_record(r, p, side::b, 99)));  // that is the other pair's

    EXPECT_EQ(val(j->uids(r, p, side::a)), (std::vector<mail::uid>{10, 20, 30, 40, 50}));
    EXPECT_EQ(val(j->uids(r, p, side::b)), (std::vector<mail::uid>{1010, 1020, 1030, 1500, 2000}));
    // Records with a uid on one side only count on that side alone.
    EXPECT_EQ(val(j->count_uids(r, p, side::a)), 5u);
    EXPECT_EQ(val(j->count_uids(r, p, side::b)), 5u);

    int visited = 0;
    ASSERT_TRUE(j->for_each_record(r, p, [&](const pair_record&) { return ++visited < 2; }));
    EXPECT_EQ(visited, 2);
    // The same walk with views: uids and flags at once, the whole record on demand.
    std::vector<pair_record> viewed;
    ASSERT_TRUE(j->for_each_record_view(r, p, [&](const journal::record_view& v) -> result<bool> {
        auto full = v.decode();
        EXPECT_TRUE(full);
        EXPECT_EQ(full->uid, v.uid);
        EXPECT_EQ(full->flags, v.flags);
        viewed.push_back(*full);
        return true;
    }));
    EXPECT_EQ(viewed, *all);
    visited = 0;
    ASSERT_TRUE(j->for_each_record_view(
        r, p, [&](const journal::record_view&) -> result<bool> { return ++visited < 3; }));
    EXPECT_EQ(visited, 3);
}

TEST_F(journal_test, a_record_with_the_same_uids_is_replaced_in_place) {
    open();
    const std::uint64_t p = inbox_with({10, 20, 30});
    write([&](lmdb::write_txn& w) { ASSERT_TRUE(j->put_record(w, p, rec(40, 0))); });
    auto flagged = rec(20, 1020, "id-20");
    flagged.flags.set(mail::system_flag::flagged);
    auto one_sided = rec(40, 0, "id-40");
    write([&](lmdb::write_txn& w) {
        EXPECT_TRUE(val(j->replace_record(w, p, flagged)));
        EXPECT_TRUE(val(j->replace_record(w, p, one_sided)));
        // Not the same uids: nothing is written.
        EXPECT_FALSE(val(j->replace_record(w, p, rec(20, 1021))));
        EXPECT_FALSE(val(j->replace_record(w, p, rec(0, 1020))));
        EXPECT_FALSE(val(j->replace_record(w, p, rec(50, 1050))));
        auto bad = j->replace_record(w, p, rec(0, 0));
        ASSERT_FALSE(bad);
        EXPECT_EQ(bad.error(), errc::invalid_argument);
    });
    auto r = read();
    EXPECT_EQ(val(j->count_records(r, p)), 4u);
    EXPECT_EQ(val(j->find_record(r, p, side::a, 20)), flagged);
    EXPECT_EQ(val(j->find_record(r, p, side::b, 1020)), flagged);
    EXPECT_EQ(val(j->find_record(r, p, side::a, 40)), one_sided);
    EXPECT_EQ(val(j->find_record(r, p, side::a, 10)), rec(10, 1010));
    EXPECT_EQ(val(j->uids(r, p, side::a)), (std::vector<mail::uid>{10, 20, 30, 40}));
    EXPECT_EQ(val(j->uids(r, p, side::b)), (std::vector<mail::uid>{1010, 1020, 1030}));
}

// records_a (pair, uid_a -> uid_b) came after the first journals: opening one without it
// builds it from `records`, once.

TEST_F(journal_test, a_journal_without_the_uid_a_index_gets_it_built_on_open) {
    open();
    std::uint64_t p = 0;
    write([&](lmdb::write_txn& w) {
        p = val(j->open_pair(w, "c", "INBOX")).id;
        for (mail::uid a : {30u, 10u, 20u}) ASSERT_TRUE(j->put_record(w, p, rec(a, a + 1000)));
        ASSERT_TRUE(j->put_record(w, p, rec(0, 2000)));
    });
    j.reset();
    {  // as an older tandem left it: no index, no mark
        lmdb::env_options eo;
        auto e = lmdb::env::open(dir / "state" / "journal", eo);
        ASSERT_TRUE(e);
        auto w = e->begin_write();
        ASSERT_TRUE(w);
        auto meta = lmdb::dbi::open(*w, "meta", false);
        auto index = lmdb::dbi::open(*w, "records_a", false);
        ASSERT_TRUE(meta && index);
        ASSERT_TRUE(w->erase(*meta, "records_a"));
        for (mail::uid a : {10u, 20u, 30u})
            ASSERT_TRUE(w->erase(*index, codec::writer().u64(p).u32(a).bytes()));
        ASSERT_TRUE(std::move(*w).commit());
    }
    open();
    {
        auto r = read();
        EXPECT_EQ(val(j->uids(r, p, side::a)), (std::vector<mail::uid>{10, 20, 30}));
        EXPECT_EQ(val(j->count_uids(r, p, side::a)), 3u);
    }
    write([&](lmdb::write_txn& w) { ASSERT_TRUE(j->erase_record(w, p, side::a, 20)); });
    auto r = read();
    EXPECT_EQ(val(j->uids(r, p, side::a)), (std::vector<mail::uid>{10, 30}));
}

TEST_F(journal_test, updates_that_change_uid_b_keep_both_indexes_consistent) {
    open();
    std::uint64_t p = 0;
    write([&](lmdb::write_txn& w) {
        p = val(j->open_pair(w, "c", "INBOX")).id;
        ASSERT_TRUE(j->put_record(w, p, rec(5, 0)));    // appended, uid_b unknown
        ASSERT_TRUE(j->put_record(w, p, rec(5, 700)));  // learnt: 700
        ASSERT_TRUE(j->put_record(w, p, rec(5, 701)));  // changed again (UIDVALIDITY, re-paired)
        ASSERT_TRUE(j->put_record(w, p, rec(0, 800)));  // b-only
        ASSERT_TRUE(j->put_record(w, p, rec(6, 800)));  // uid_a learnt for it
        auto changed = rec(6, 800);
        changed.flags.add_keyword("$Forwarded");
        ASSERT_TRUE(j->put_record(w, p, changed));  // same UIDs, new flags
    });
    auto r = read();
    EXPECT_FALSE(val(j->find_record(r, p, side::b, 700)));  // the stale index entry is gone
    auto five = j->find_record(r, p, side::b, 701);
    ASSERT_TRUE(five && *five);
    EXPECT_EQ((*five)->uid.a, 5u);
    auto six = j->find_record(r, p, side::b, 800);
    ASSERT_TRUE(six && *six);
    EXPECT_EQ((*six)->uid.a, 6u);
    EXPECT_TRUE((*six)->flags.has_keyword("$Forwarded"));
    EXPECT_EQ(val(j->count_records(r, p)), 2u);
    EXPECT_EQ(val(j->uids(r, p, side::b)), (std::vector<mail::uid>{701, 800}));
    r.release();

    // A uid_b that moves from one record to another takes it over: the old holder goes.
    write([&](lmdb::write_txn& w) {
        ASSERT_TRUE(j->put_record(w, p, rec(7, 701)));
        EXPECT_FALSE(val(j->find_record(w, p, side::a, 5)));
        EXPECT_EQ(val(j->find_record(w, p, side::b, 701)).value().uid.a, 7u);
        EXPECT_TRUE(val(j->erase_record(w, p, side::b, 800)));
        EXPECT_FALSE(val(j->find_record(w, p, side::a, 6)));
        EXPECT_FALSE(val(j->erase_record(w, p, side::b, 800)));
        EXPECT_TRUE(val(j->erase_record(w, p, side::a, 7)));
        EXPECT_FALSE(val(j->find_record(w, p, side::b, 701)));
        EXPECT_EQ(val(j->count_records(w, p)), 0u);
        EXPECT_TRUE(val(j->uids(w, p, side::b)).empty());
        EXPECT_EQ(val(j->count_uids(w, p, side::a)), 0u);
        EXPECT_EQ(val(j->count_uids(w, p, side::b)), 0u);
    });
}

TEST_F(journal_test, random_updates_match_a_model) {
    open();
    std::uint64_t p = 0;
    write([&](lmdb::write_txn& w) { p = val(j->open_pair(w, "c", "m")).id; });
    // The model: uid_a -> uid_b and uid_b -> uid_a, the same replacement rules.
    std::map<std::pair<mail::uid, mail::uid>, pair_record> model;
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
        write([&](lmdb::write_txn& w) {
            for (int i = 0; i < 50; ++i) {
                mail::uid a = rng() % 40, b = rng() % 40;
                if (a == 0 && b == 0) continue;
                if (rng() % 4 == 0) {
                    side s = rng() % 2 ? side::a : side::b;
                    mail::uid u = s == side::a ? a : b;
                    bool expect = false;
                    for (auto it = model.begin(); it != model.end(); ++it) {
                        if (u != 0 && it->second.uid[s] == u) {
                            model.erase(it);
                            expect = true;
                            break;
                        }
                    }
                    auto e = j->erase_record(w, p, s, u);
                    ASSERT_TRUE(e);
                    EXPECT_EQ(*e, expect);
                } else {
                    std::erase_if(model, [&](auto& kv) {
                        return (a != 0 && kv.first.first == a) || (b != 0 && kv.first.second == b);
                    });
                    model[{a, b}] = rec(a, b);
                    ASSERT_TRUE(j->put_record(w, p, rec(a, b)));
                }
            }
        });
    }
    auto r = read();
    auto all = j->records(r, p);
    ASSERT_TRUE(all);
    std::vector<pair_record> expected;
    for (auto& [k, v] : model) expected.push_back(v);
    EXPECT_EQ(*all, expected);
    for (auto& x : expected) {
        for (side s : mail::both_sides) {
            if (x.uid[s] == 0) continue;
            auto f = j->find_record(r, p, s, x.uid[s]);
            ASSERT_TRUE(f && *f);
            EXPECT_EQ(**f, x);
        }
    }
    std::vector<mail::uid> bs;
    for (auto& x : expected)
        if (x.uid.b) bs.push_back(x.uid.b);
    std::sort(bs.begin(), bs.end());
    EXPECT_EQ(val(j->uids(r, p, side::b)), bs);
}

TEST_F(journal_test, many_records_grow_the_map_and_erase_all_of_a_pair) {
    auto o = options();
    o.map_size = 256 * 1024;
    std::string why;
    auto opened = journal::open(o, &why);
    ASSERT_TRUE(opened) << why;
    j.emplace(std::move(*opened));
    const auto start = j->env().map_size();
    std::uint64_t p = 0, q = 0;
    // One big transaction through write(): MAP_FULL, grow, run again.
    int runs = 0;
    auto r = j->write([&](lmdb::write_txn& w) -> result<void> {
        ++runs;
        auto a = j->open_pair(w, "c", "big");
        if (!a) return a.error();
        p = a->id;
        auto b = j->open_pair(w, "c", "other");
        if (!b) return b.error();
        q = b->id;
        for (mail::uid u = 1; u <= 20000; ++u) {
            auto x = rec(u, u + 5, std::string(40, 'i'));
            if (auto put = j->put_record(w, p, x); !put) return put;
        }
        return j->put_record(w, q, rec(1, 1));
    });
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_GT(runs, 1);
    EXPECT_GT(j->env().map_size(), start);
    {
        auto t = read();
        EXPECT_EQ(val(j->count_records(t, p)), 20000u);
        auto f = j->find_record(t, p, side::b, 12345 + 5);
        ASSERT_TRUE(f && *f);
        EXPECT_EQ((*f)->uid.a, 12345u);
    }
    write([&](lmdb::write_txn& w) {
        auto n = j->erase_records(w, p);
        ASSERT_TRUE(n);
        EXPECT_EQ(*n, 20000u);
    });
    auto t = read();
    EXPECT_EQ(val(j->count_records(t, p)), 0u);
    EXPECT_TRUE(val(j->uids(t, p, side::b)).empty());
    EXPECT_EQ(val(j->count_records(t, q)), 1u);  // the neighbour is untouched
    EXPECT_TRUE(val(j->find_record(t, q, side::b, 1)));
}

TEST_F(journal_test, grouped_writes_are_all_or_nothing) {
    open();
    std::uint64_t p = 0;
    write([&](lmdb::write_txn& w) { p = val(j->open_pair(w, "c", "m")).id; });
    {
        auto w = j->begin_write();
        ASSERT_TRUE(w);
        for (mail::uid u = 1; u <= 10; ++u) ASSERT_TRUE(j->put_record(*w, p, rec(u, u)));
        ASSERT_TRUE(j->record_intent(*w, intent{}));
        // no commit: the destructor aborts
    }
    auto r = read();
    EXPECT_EQ(val(j->count_records(r, p)), 0u);
    EXPECT_TRUE(val(j->intents(r)).empty());
}

// ---- Maildir UID map ----

TEST_F(journal_test, maildir_uid_map) {
    open();
    maildir_folder f;
    write([&](lmdb::write_txn& w) {
        auto none = j->find_maildir_folder(w, "local", "INBOX");
        ASSERT_TRUE(none);
        EXPECT_FALSE(*none);
        auto o = j->open_maildir_folder(w, "local", "INBOX", 1700000000);
        ASSERT_TRUE(o);
        f = *o;
        EXPECT_EQ(f.uidvalidity, 1700000000u);
        EXPECT_EQ(f.next_uid, 1u);
        EXPECT_EQ(val(j->maildir_assign(w, f, "1700000000.M1P2.host")), 1u);
        EXPECT_EQ(val(j->maildir_assign(w, f, "1700000001.M3P4.host")), 2u);
        EXPECT_EQ(val(j->maildir_assign(w, f, "1700000000.M1P2.host")), 1u);  // already has one
        EXPECT_EQ(f.next_uid, 3u);
        // A stale copy of the folder handle does not hand out a UID twice.
        maildir_folder stale = *o;
        EXPECT_EQ(val(j->maildir_assign(w, stale, "1700000002.M5P6.host")), 3u);
        // Same folder name in another store: a different map.
        auto other = j->open_maildir_folder(w, "local2", "INBOX", 5);
        ASSERT_TRUE(other);
        EXPECT_NE(other->id, f.id);
        EXPECT_EQ(val(j->maildir_assign(w, *other, "1700000000.M1P2.host")), 1u);
    });
    j.reset();
    open();
    {
        auto r = read();
        auto again = j->find_maildir_folder(r, "local", "INBOX");
        ASSERT_TRUE(again && *again);
        EXPECT_EQ((*again)->id, f.id);
        EXPECT_EQ((*again)->next_uid, 4u);
        EXPECT_EQ(val(j->maildir_uid(r, f, "1700000001.M3P4.host")).value(), 2u);
        EXPECT_EQ(val(j->maildir_name(r, f, 3)).value(), "1700000002.M5P6.host");
        EXPECT_FALSE(val(j->maildir_name(r, f, 4)));
        auto list = j->maildir_list(r, f);
        ASSERT_TRUE(list);
        ASSERT_EQ(list->size(), 3u);
        EXPECT_EQ((*list)[0].uid, 1u);
        EXPECT_EQ((*list)[2].name, "1700000002.M5P6.host");
    }
    write([&](lmdb::write_txn& w) {
        EXPECT_TRUE(val(j->maildir_forget(w, f, "1700000001.M3P4.host")));
        EXPECT_FALSE(val(j->maildir_forget(w, f, "1700000001.M3P4.host")));
        EXPECT_FALSE(val(j->maildir_uid(w, f, "1700000001.M3P4.host")));
        EXPECT_FALSE(val(j->maildir_name(w, f, 2)));
        // A forgotten name that comes back gets a new UID: UIDs are never reused.
        EXPECT_EQ(val(j->maildir_assign(w, f, "1700000001.M3P4.host")), 4u);
        EXPECT_EQ(val(j->maildir_list(w, f)).size(), 3u);
    });
    write([&](lmdb::write_txn& w) {
        ASSERT_TRUE(j->reset_maildir_folder(w, f, 42));
        EXPECT_EQ(f.uidvalidity, 42u);
        EXPECT_TRUE(val(j->maildir_list(w, f)).empty());
        EXPECT_EQ(val(j->maildir_assign(w, f, "x")), 1u);
        EXPECT_TRUE(val(j->erase_maildir_folder(w, "local", "INBOX")));
        EXPECT_FALSE(val(j->find_maildir_folder(w, "local", "INBOX")));
        EXPECT_TRUE(val(j->find_maildir_folder(w, "local2", "INBOX")));
    });
}

// A listing reads a folder's count from its state: it must follow every assign and forget,
// and a state written before the count was kept (two fields) is counted by a walk once.
TEST_F(journal_test, maildir_count_is_kept_with_the_state_and_rebuilt_from_an_old_one) {
    open();
    maildir_folder f;
    write([&](lmdb::write_txn& w) {
        f = val(j->open_maildir_folder(w, "local", "INBOX", 7));
        EXPECT_EQ(f.count, std::optional<std::uint32_t>(0));
        for (int i = 0; i < 5; ++i) val(j->maildir_assign(w, f, "m" + std::to_string(i)));
        val(j->maildir_assign(w, f, "m0"));  // already mapped: no change
        EXPECT_TRUE(val(j->maildir_forget(w, f, "m3")));
        EXPECT_FALSE(val(j->maildir_forget(w, f, "m3")));
    });
    {
        auto r = read();
        auto again = val(j->find_maildir_folder(r, "local", "INBOX")).value();
        EXPECT_EQ(again.count, std::optional<std::uint32_t>(4));
        EXPECT_EQ(val(j->maildir_count(r, again)), 4u);
    }
    j.reset();
    {  // the state as an older tandem wrote it: uidvalidity and next uid only
        lmdb::env_options eo;
        auto e = lmdb::env::open(dir / "state" / "journal", eo);
        ASSERT_TRUE(e);
        auto w = e->begin_write();
        ASSERT_TRUE(w);
        auto d = lmdb::dbi::open(*w, "md_state", false);
        ASSERT_TRUE(d);
        ASSERT_TRUE(w->put(*d, codec::be64(f.id), codec::writer::value(1).u32(7).u32(6).bytes()));
        ASSERT_TRUE(std::move(*w).commit());
    }
    open();
    {
        auto r = read();
        auto old = val(j->find_maildir_folder(r, "local", "INBOX")).value();
        EXPECT_FALSE(old.count);
        EXPECT_EQ(old.next_uid, 6u);
        EXPECT_EQ(val(j->maildir_count(r, old)), 4u);  // walked
    }
    write([&](lmdb::write_txn& w) {
        auto old = val(j->find_maildir_folder(w, "local", "INBOX")).value();
        EXPECT_EQ(val(j->maildir_assign(w, old, "m9")), 6u);
        EXPECT_EQ(old.count, std::optional<std::uint32_t>(5));
    });
    auto r = read();
    EXPECT_EQ(val(j->find_maildir_folder(r, "local", "INBOX")).value().count,
              std::optional<std::uint32_t>(5));
}

// ---- intents ----

TEST_F(journal_test, intents_keep_their_order_and_sequence_numbers_are_never_reused) {
    open();
    std::vector<std::uint64_t> seqs;
    const intent_kind kinds[] = {intent_kind::append,         intent_kind::store_flags,
                                 intent_kind::expunge,        intent_kind::move,
                                 intent_kind::create_mailbox, intent_kind::delete_mailbox};
    write([&](lmdb::write_txn& w) {
        for (int i = 0; i < 12; ++i) {
            intent it;
            it.kind = kinds[i % 6];
            it.on = i % 2 ? side::b : side::a;
            it.channel = "c";
            it.mailbox = "box" + std::to_string(i);
            it.payload = std::string("\0payload", 8) + std::to_string(i);
            auto s = j->record_intent(w, it);
            ASSERT_TRUE(s);
            seqs.push_back(*s);
        }
    });
    EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
    EXPECT_EQ(std::adjacent_find(seqs.begin(), seqs.end()), seqs.end());
    write([&](lmdb::write_txn& w) {
        EXPECT_TRUE(val(j->erase_intent(w, seqs[3])));
        EXPECT_FALSE(val(j->erase_intent(w, seqs[3])));
    });
    j.reset();
    open();
    {
        auto r = read();
        auto all = j->intents(r);
        ASSERT_TRUE(all);
        ASSERT_EQ(all->size(), 11u);
        for (std::size_t i = 0, k = 0; i < 12; ++i) {
            if (i == 3) continue;
            const auto& it = (*all)[k++];
            EXPECT_EQ(it.seq, seqs[i]);
            EXPECT_EQ(it.kind, kinds[i % 6]);
            EXPECT_EQ(it.on, i % 2 ? side::b : side::a);
            EXPECT_EQ(it.mailbox, "box" + std::to_string(i));
            EXPECT_EQ(it.payload, std::string("\0payload", 8) + std::to_string(i));
        }
    }
    write([&](lmdb::write_txn& w) {
        ASSERT_TRUE(j->erase_all_intents(w));
        EXPECT_TRUE(val(j->intents(w)).empty());
        auto next = j->record_intent(w, intent{});
        ASSERT_TRUE(next);
        EXPECT_GT(*next, seqs.back());
    });
}

TEST_F(journal_test, a_corrupt_value_is_an_error_not_a_crash) {
    open();
    j.reset();
    {
        auto e = lmdb::env::open(dir / "state" / "journal", {});
        ASSERT_TRUE(e);
        auto w = e->begin_write();
        auto d = lmdb::dbi::open(*w, "intents", false);
        ASSERT_TRUE(d);
        ASSERT_TRUE(w->put(*d, codec::be64(1), std::string("\x01\x63", 2)));  // kind 99, cut short
        ASSERT_TRUE(std::move(*w).commit());
    }
    open();
    auto r = read();
    auto all = j->intents(r);
    ASSERT_FALSE(all);
    EXPECT_EQ(all.error(), std::errc::bad_message);
}

}  // namespace tandem::journal
