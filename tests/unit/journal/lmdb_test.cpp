// SPDX-License-Identifier: MIT
#include "tandem/journal/lmdb.hpp"

#include "support/temp_dir.hpp"
#include "tandem/journal/codec.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace lmdb = tandem::journal::lmdb;
using tandem::journal::codec::be32;
using tandem::journal::codec::load_be32;
using tandem::test::temp_dir;

namespace {

struct lmdb_env : ::testing::Test {
    temp_dir dir{"tandem-lmdb"};
    lmdb::env env;
    lmdb::dbi db;

    // `count` entries, keys be32(0) up, values of `value_size` bytes, in one write.
    void fill(std::uint32_t count, std::size_t value_size) {
        ASSERT_TRUE(env.write([&](lmdb::write_txn& w) -> tandem::result<void> {
            for (std::uint32_t i = 0; i < count; ++i)
                if (auto r = w.put(db, be32(i), std::string(value_size, 'v')); !r) return r;
            return {};
        }));
    }

    void open(lmdb::env_options o = {}) {
        o.durable = false;
        auto e = lmdb::env::open(dir / "env", o);
        ASSERT_TRUE(e) << e.error().message();
        env = std::move(*e);
        auto w = env.begin_write();
        ASSERT_TRUE(w);
        auto d = lmdb::dbi::open(*w, "test");
        ASSERT_TRUE(d);
        db = *d;
        ASSERT_TRUE(std::move(*w).commit());
    }

    std::optional<std::string> read(std::string_view key) {
        auto r = env.begin_read();
        EXPECT_TRUE(r);
        auto v = r->get(db, key);
        EXPECT_TRUE(v);
        if (!*v) return std::nullopt;
        return std::string(**v);
    }
};

// Kilobytes of `file` that this process has mapped and resident (/proc/self/smaps).
std::size_t resident_kb_of(const std::filesystem::path& file) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool in_file = false;
    std::size_t kb = 0;
    while (std::getline(smaps, line)) {
        if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
            line.find(' ') < line.find(':'))
            in_file = line.size() >= file.native().size() &&
                      line.compare(line.size() - file.native().size(), std::string::npos,
                                   file.native()) == 0;
        else if (in_file && line.rfind("Rss:", 0) == 0)
            kb += std::stoul(line.substr(4));
    }
    return kb;
}

mode_t lmdb_mode_of(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
}

}  // namespace

TEST_F(lmdb_env, commit_makes_writes_visible) {
    open();
    auto w = env.begin_write();
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->put(db, "k", "v"));
    auto inside = w->get(db, "k");
    ASSERT_TRUE(inside && *inside);
    EXPECT_EQ(**inside, "v");
    EXPECT_FALSE(read("k"));  // a reader does not see an uncommitted write
    ASSERT_TRUE(std::move(*w).commit());
    EXPECT_FALSE(w->active());
    EXPECT_EQ(read("k"), "v");
}

TEST_F(lmdb_env, abort_and_destructor_drop_writes) {
    open();
    {
        auto w = env.begin_write();
        ASSERT_TRUE(w);
        ASSERT_TRUE(w->put(db, "dropped-by-dtor", "x"));
    }
    {
        auto w = env.begin_write();
        ASSERT_TRUE(w);
        ASSERT_TRUE(w->put(db, "aborted", "x"));
        w->abort();
        EXPECT_FALSE(w->active());
    }
    EXPECT_FALSE(read("dropped-by-dtor"));
    EXPECT_FALSE(read("aborted"));
    EXPECT_EQ(env.open_transactions(), 0u);
}

TEST_F(lmdb_env, moved_transaction_commits_once) {
    open();
    auto w = env.begin_write();
    ASSERT_TRUE(w);
    lmdb::write_txn moved = std::move(*w);
    EXPECT_FALSE(w->active());
    ASSERT_TRUE(moved.put(db, "k", "v"));
    ASSERT_TRUE(std::move(moved).commit());
    // Committing a finished transaction is an error, never silently "ok".
    auto again = std::move(moved).commit();
    EXPECT_FALSE(again);
    EXPECT_EQ(read("k"), "v");
}

TEST_F(lmdb_env, get_missing_is_nullopt_not_error_and_insert_erase_report_presence) {
    open();
    auto w = env.begin_write();
    ASSERT_TRUE(w);
    auto missing = w->get(db, "nope");
    ASSERT_TRUE(missing);
    EXPECT_FALSE(*missing);
    auto ins = w->insert(db, "k", "1");
    ASSERT_TRUE(ins);
    EXPECT_TRUE(*ins);
    ins = w->insert(db, "k", "2");
    ASSERT_TRUE(ins);
    EXPECT_FALSE(*ins);
    EXPECT_EQ(**w->get(db, "k"), "1");
    auto er = w->erase(db, "k");
    ASSERT_TRUE(er);
    EXPECT_TRUE(*er);
    er = w->erase(db, "k");
    ASSERT_TRUE(er);
    EXPECT_FALSE(*er);
}

TEST_F(lmdb_env, reopen_reads_back_and_files_are_private) {
    open();
    {
        auto w = env.begin_write();
        ASSERT_TRUE(w);
        ASSERT_TRUE(w->put(db, "persist", "yes"));
        ASSERT_TRUE(std::move(*w).commit());
    }
    env = lmdb::env();  // close
    open();
    EXPECT_EQ(read("persist"), "yes");
    EXPECT_EQ(lmdb_mode_of(dir / "env"), 0700u);
    EXPECT_EQ(lmdb_mode_of(dir / "env" / "data.mdb"), 0600u);
    EXPECT_EQ(lmdb_mode_of(dir / "env" / "lock.mdb"), 0600u);
}

TEST_F(lmdb_env, single_file_mode) {
    auto e = lmdb::env::open(dir / "one.mdb", {.single_file = true});
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / "one.mdb"));
    EXPECT_EQ(lmdb_mode_of(dir / "one.mdb"), 0600u);
}

TEST_F(lmdb_env, error_names_the_failing_call) {
    open();
    auto r = env.begin_read();
    ASSERT_TRUE(r);
    auto d = lmdb::dbi::open(*r, "no-such-db");
    ASSERT_FALSE(d);
    EXPECT_TRUE(lmdb::is_lmdb_error(d.error()));
    EXPECT_EQ(lmdb::lmdb_rc(d.error()), MDB_NOTFOUND);
    EXPECT_EQ(d.error().message().rfind("mdb_dbi_open: MDB_NOTFOUND", 0), 0u)
        << d.error().message();

    auto full = lmdb::make_error(lmdb::call::put, MDB_MAP_FULL);
    EXPECT_EQ(full.message(), "mdb_put: MDB_MAP_FULL: Environment mapsize limit reached");
    EXPECT_TRUE(lmdb::is_map_full(full));
    EXPECT_FALSE(lmdb::is_map_full(lmdb::make_error(lmdb::call::put, MDB_KEYEXIST)));
    EXPECT_NE(full, lmdb::make_error(lmdb::call::txn_commit, MDB_MAP_FULL));
    EXPECT_TRUE(lmdb::is_map_full(lmdb::make_error(lmdb::call::txn_commit, MDB_MAP_FULL)));
    EXPECT_FALSE(lmdb::is_lmdb_error(make_error_code(std::errc::io_error)));
    EXPECT_EQ(lmdb::lmdb_rc(make_error_code(std::errc::io_error)), 0);
}

TEST_F(lmdb_env, errno_from_lmdb_compares_equal_to_errc) {
    auto e = lmdb::env::open(dir / "a-file", {.single_file = true});
    ASSERT_TRUE(e);
    auto bad = lmdb::env::open(dir / "a-file" / "sub.mdb", {.single_file = true});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message().rfind("mdb_env_open: ", 0), 0u) << bad.error().message();
    EXPECT_TRUE(bad.error() == std::errc::not_a_directory) << bad.error().message();
}

TEST_F(lmdb_env, map_grows_on_map_full_and_write_retries) {
    lmdb::env_options o;
    o.map_size = 64 * 1024;  // a few pages: full after some hundred records
    open(o);
    const std::size_t start = env.map_size();
    std::string big(900, 'x');
    int calls = 0;
    // One transaction far larger than the map: fails with MAP_FULL, is retried on a
    // doubled map until it fits.
    auto r = env.write(
        [&](lmdb::write_txn& w) -> tandem::result<void> {
            ++calls;
            for (std::uint32_t i = 0; i < 2000; ++i) {
                if (auto p = w.put(db, be32(i), big); !p) return p;
            }
            return {};
        },
        16);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_GT(calls, 1);
    EXPECT_GT(env.map_size(), start);
    auto rt = env.begin_read();
    ASSERT_TRUE(rt);
    auto c = rt->open_cursor(db);
    ASSERT_TRUE(c);
    std::size_t n = 0;
    ASSERT_TRUE(c->scan({}, {}, [&](const lmdb::entry& e) {
        EXPECT_EQ(e.value.size(), big.size());
        ++n;
    }));
    EXPECT_EQ(n, 2000u);
}

TEST_F(lmdb_env, map_full_without_retry_is_reported_and_grow_needs_no_open_txn) {
    lmdb::env_options o;
    o.map_size = 64 * 1024;
    open(o);
    auto r = env.write(
        [&](lmdb::write_txn& w) -> tandem::result<void> {
            for (std::uint32_t i = 0; i < 2000; ++i) {
                if (auto p = w.put(db, be32(i), std::string(900, 'y')); !p) return p;
            }
            return {};
        },
        1);
    ASSERT_FALSE(r);
    EXPECT_TRUE(lmdb::is_map_full(r.error())) << r.error().message();
    EXPECT_NE(r.error().message().find("MDB_MAP_FULL"), std::string::npos);

    auto rt = env.begin_read();
    ASSERT_TRUE(rt);
    auto g = env.grow();
    EXPECT_FALSE(g);
    EXPECT_EQ(g.error(), std::errc::device_or_resource_busy);
    rt->release();
    const auto before = env.map_size();
    ASSERT_TRUE(env.grow());
    EXPECT_EQ(env.map_size(), before * 2);
}

// The engine's lanes read on some threads while another writes: a write that fills the
// map waits for their transactions to end and grows it then, instead of failing.
TEST_F(lmdb_env, a_full_map_grows_once_other_threads_transactions_end) {
    lmdb::env_options o;
    o.map_size = 64 * 1024;
    open(o);
    std::atomic<bool> stop{false};
    std::atomic<int> reads{0};
    std::vector<std::thread> readers;
    for (int k = 0; k < 3; ++k)
        readers.emplace_back([&] {
            while (!stop) {
                auto rt = env.begin_read();
                if (!rt) continue;
                auto c = rt->open_cursor(db);
                if (c) (void)c->scan({}, {}, [](const lmdb::entry&) {});
                ++reads;
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
        });
    auto r = env.write(
        [&](lmdb::write_txn& w) -> tandem::result<void> {
            for (std::uint32_t i = 0; i < 2000; ++i) {
                if (auto p = w.put(db, be32(i), std::string(900, 'z')); !p) return p;
            }
            return {};
        },
        16);
    stop = true;
    for (auto& t : readers) t.join();
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_GT(env.map_size(), 64u * 1024);
    EXPECT_GT(reads.load(), 0);
}

TEST_F(lmdb_env, many_small_commits_grow_the_map_before_it_fills) {
    lmdb::env_options o;
    o.map_size = 64 * 1024;
    open(o);
    for (std::uint32_t i = 0; i < 3000; ++i) {
        auto w = env.begin_write();
        ASSERT_TRUE(w) << w.error().message();
        ASSERT_TRUE(w->put(db, be32(i), std::string(200, 'z'))) << i;
        ASSERT_TRUE(std::move(*w).commit()) << i;
    }
    EXPECT_GT(env.map_size(), 64u * 1024);
    auto v = read(be32(2999));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->size(), 200u);
}

// A walk over every entry leaves at most a few pages of the map resident in this process,
// not the file (the pages the kernel mapped around each fault included): the journal of a
// 200,000-message mailbox would otherwise count in full in tandem's RSS.
TEST_F(lmdb_env, a_long_walk_does_not_keep_the_map_resident) {
    open();
    ASSERT_NO_FATAL_FAILURE(fill(60000, 300));
    const auto file = std::filesystem::canonical(dir / "env" / "data.mdb");
    const std::size_t file_kb = std::filesystem::file_size(file) / 1024;
    ASSERT_GT(file_kb, 16u * 1024);

    auto r = env.begin_read();
    ASSERT_TRUE(r);
    auto c = r->open_cursor(db);
    ASSERT_TRUE(c);
    std::size_t walked = 0, peak_kb = 0;
    auto walk = c->scan({}, {}, [&](const lmdb::entry& e) {
        EXPECT_EQ(e.value.size(), 300u);
        if (++walked % 5000 == 0) peak_kb = std::max(peak_kb, resident_kb_of(file));
    });
    ASSERT_TRUE(walk);
    EXPECT_EQ(walked, 60000u);
    EXPECT_GT(env.page_releases(), 0u);
    EXPECT_LT(peak_kb, file_kb / 4) << "of " << file_kb << " KB";
}

// A small journal (a few MB: c5000's is 2 MB) is released more often than a large one: what
// a short run touches of it would otherwise stay resident up to its end.
// A lookup lands anywhere in the file and maps 16 pages with each one it faults in, a walk
// goes on to the next page: 16 lookups release a small journal's map, a walk 20 KB of entries.
TEST_F(lmdb_env, a_small_journal_is_released_every_16_lookups_or_20_kb_of_a_walk) {
    open();
    // 840 KB, in 75 releases (the puts are lookups too): under the 128 after which
    // releases slow down.
    ASSERT_NO_FATAL_FAILURE(fill(1200, 700));
    auto r = env.begin_read();
    ASSERT_TRUE(r);
    const auto before = env.page_releases();
    for (std::uint32_t i = 0; i < 160; ++i) {
        auto v = r->get(db, be32(i * 7));
        ASSERT_TRUE(v && *v);
    }
    const auto after_lookups = env.page_releases();
    EXPECT_GE(after_lookups - before, 9u);
    EXPECT_LE(after_lookups - before, 11u);
    auto c = r->open_cursor(db);
    ASSERT_TRUE(c);
    std::size_t walked = 0;
    ASSERT_TRUE(c->scan({}, {}, [&](const lmdb::entry&) { ++walked; }));
    EXPECT_EQ(walked, 1200u);
    // 712 bytes a step (node header, key, value): 854,400 bytes, a release every 20,480.
    const auto after_walk = env.page_releases() - after_lookups;
    EXPECT_GE(after_walk, 40u);
    EXPECT_LE(after_walk, 43u);
}

// A walk over small entries (an index of uids) passes many of them on each page: it is
// released by the bytes it passed, not by its steps.
TEST_F(lmdb_env, a_walk_over_small_entries_is_released_by_its_bytes) {
    open();
    ASSERT_NO_FATAL_FAILURE(fill(2000, 4));  // 125 releases: the puts are lookups
    auto r = env.begin_read();
    ASSERT_TRUE(r);
    const auto before = env.page_releases();
    auto c = r->open_cursor(db);
    ASSERT_TRUE(c);
    std::size_t walked = 0;
    ASSERT_TRUE(c->scan({}, {}, [&](const lmdb::entry&) { ++walked; }));
    EXPECT_EQ(walked, 2000u);
    // 16 bytes a step: 32,000 bytes, one release or two (counted by steps: 15).
    EXPECT_LE(env.page_releases() - before, 2u);
}

// Tens of thousands of lookups (a first sync) release less and less often: after each 128
// releases the interval doubles, up to that of a large journal.
TEST_F(lmdb_env, many_lookups_release_less_often) {
    open();
    ASSERT_NO_FATAL_FAILURE(fill(100, 1));
    auto r = env.begin_read();
    ASSERT_TRUE(r);
    const auto before = env.page_releases();
    for (std::uint32_t i = 0; i < 20000; ++i) ASSERT_TRUE(r->get(db, be32(i % 100)));
    // After the puts' 6: 122 releases every 16 lookups, 128 every 32, 128 every 64, then
    // every 128: 423 in all (every 16 lookups throughout: 1,250).
    const auto released = env.page_releases() - before;
    EXPECT_GE(released, 400u);
    EXPECT_LE(released, 440u);
}

// A journal of 16 MB or more releases every 1,024 steps of a walk or 256 lookups: at
// 200,000 messages, after 2,000 flag changes, 1,024 lookups between two releases (each maps
// 64 KB) left up to 20 MB more of the journal resident than every 256.
TEST_F(lmdb_env, a_large_journal_releases_every_256_lookups) {
    open();
    // A page of its own each: over 16 MB.
    ASSERT_NO_FATAL_FAILURE(fill(4200, 3900));
    ASSERT_GE(env.used_size(), 4096u * 4096u);
    open();  // the next run's: no release yet, so none slowed down
    auto r = env.begin_read();
    ASSERT_TRUE(r);
    const auto before = env.page_releases();
    for (std::uint32_t i = 0; i < 2048; ++i) ASSERT_TRUE(r->get(db, be32(i * 2)));
    // The first after 16 lookups (a release learns the file's size), then every 256: 8 or 9
    // (every 1,024: 3; every 16: 128).
    const auto released = env.page_releases() - before;
    EXPECT_GE(released, 7u);
    EXPECT_LE(released, 10u);
}

TEST_F(lmdb_env, cursor_ranges) {
    open();
    auto w = env.begin_write();
    ASSERT_TRUE(w);
    for (std::uint32_t i : {5u, 1u, 300u, 20u, 256u, 7u})
        ASSERT_TRUE(w->put(db, be32(i), std::to_string(i)));
    ASSERT_TRUE(w->put(db, "zzzz-other", "other"));
    auto c = w->open_cursor(db);
    ASSERT_TRUE(c);

    std::vector<std::uint32_t> seen;
    ASSERT_TRUE(c->scan(be32(6), be32(300),
                        [&](const lmdb::entry& e) { seen.push_back(load_be32(e.key)); }));
    EXPECT_EQ(seen, (std::vector<std::uint32_t>{7, 20, 256}));

    seen.clear();
    ASSERT_TRUE(c->scan({}, {}, [&](const lmdb::entry& e) {
        if (e.key.size() == 4) seen.push_back(load_be32(e.key));
        return seen.size() < 3;  // stop early
    }));
    EXPECT_EQ(seen, (std::vector<std::uint32_t>{1, 5, 7}));

    seen.clear();
    ASSERT_TRUE(c->scan_prefix(std::string("\0\0", 2),
                               [&](const lmdb::entry& e) { seen.push_back(load_be32(e.key)); }));
    EXPECT_EQ(seen.size(), 6u);

    auto lb = c->lower_bound(be32(301));
    ASSERT_TRUE(lb && *lb);
    EXPECT_EQ((*lb)->key, "zzzz-other");
    auto exact = c->find(be32(8));
    ASSERT_TRUE(exact);
    EXPECT_FALSE(*exact);
    auto last = c->last();
    ASSERT_TRUE(last && *last);
    EXPECT_EQ((*last)->value, "other");
    auto prev = c->prev();
    ASSERT_TRUE(prev && *prev);
    EXPECT_EQ((*prev)->value, "300");

    // A callback's error stops the walk and comes back.
    int visits = 0;
    auto err = c->scan({}, {}, [&](const lmdb::entry&) -> tandem::result<void> {
        ++visits;
        return make_error_code(std::errc::io_error);
    });
    EXPECT_FALSE(err);
    EXPECT_EQ(visits, 1);
}

TEST_F(lmdb_env, cursor_erase_then_next_walks_on_across_pages) {
    open();
    {
        auto w = env.begin_write();
        ASSERT_TRUE(w);
        for (std::uint32_t i = 0; i < 5000; ++i)
            ASSERT_TRUE(w->put(db, be32(i), std::string(50, 'v')));
        ASSERT_TRUE(std::move(*w).commit());
    }
    auto w = env.begin_write();
    ASSERT_TRUE(w);
    auto c = w->open_cursor(db);
    ASSERT_TRUE(c);
    // Erase every even key in one pass.
    auto e = c->first();
    std::size_t erased = 0;
    while (e && *e) {
        if (load_be32((*e)->key) % 2 == 0) {
            ASSERT_TRUE(c->erase());
            ++erased;
        }
        e = c->next();
    }
    ASSERT_TRUE(e);
    EXPECT_EQ(erased, 2500u);
    *c = lmdb::cursor();
    ASSERT_TRUE(std::move(*w).commit());
    auto r = env.begin_read();
    auto rc = r->open_cursor(db);
    std::size_t odd = 0, total = 0;
    ASSERT_TRUE(rc->scan({}, {}, [&](const lmdb::entry& x) {
        ++total;
        odd += load_be32(x.key) % 2;
    }));
    EXPECT_EQ(total, 2500u);
    EXPECT_EQ(odd, 2500u);
}
