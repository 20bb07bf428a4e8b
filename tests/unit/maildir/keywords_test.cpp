// SPDX-License-Identifier: MIT
#include "tandem/maildir/keywords.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace tandem::maildir;
using tandem::mail::flag_set;
using tandem::mail::system_flag;

namespace {

std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_text(const std::filesystem::path& p, std::string_view s) {
    std::ofstream out(p);
    out << s;
}

}  // namespace

TEST(maildir_keywords, missing_file_is_empty_and_assign_creates_it) {
    tandem::test::temp_dir dir;
    auto k = keyword_file::load(dir.path());
    ASSERT_TRUE(k) << k.error().message();
    EXPECT_EQ(k->size(), 0u);
    EXPECT_TRUE(k->holds("$Forwarded"));  // 'P' in the file name, no letter needed
    EXPECT_FALSE(k->holds("$Junk"));
    std::vector<std::string> kw{"$Junk", "NonJunk", "$Forwarded"};
    auto unfit = k->assign(kw);
    ASSERT_TRUE(unfit) << k->last_error();
    EXPECT_TRUE(unfit->empty());
    EXPECT_EQ(k->letter_of("$Junk"), 'a');
    EXPECT_EQ(k->letter_of("NonJunk"), 'b');
    EXPECT_EQ(k->letter_of("$Forwarded"), std::nullopt);  // that one is 'P'
    EXPECT_TRUE(k->holds("$junk"));
    EXPECT_FALSE(k->holds("$Phishing"));
    EXPECT_EQ(read_text(dir / "dovecot-keywords"), "0 $Junk\n1 NonJunk\n");
    EXPECT_FALSE(std::filesystem::exists(dir / "dovecot-keywords.lock"));
    struct stat st {};
    ASSERT_EQ(::stat((dir / "dovecot-keywords").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(maildir_keywords, reads_dovecot_file_with_gaps_and_junk_lines) {
    tandem::test::temp_dir dir;
    write_text(dir / "dovecot-keywords", "0 $Junk\n2 Work\nnot a line\n30 TooFar\n3 $Junk\n4\n");
    auto k = keyword_file::load(dir.path());
    ASSERT_TRUE(k);
    EXPECT_EQ(k->size(), 2u);
    EXPECT_EQ(k->keyword_of('a'), "$Junk");
    EXPECT_EQ(k->keyword_of('b'), std::nullopt);
    EXPECT_EQ(k->keyword_of('c'), "Work");
    EXPECT_EQ(k->keyword_of('d'), std::nullopt);  // repeated $Junk ignored
    EXPECT_EQ(k->letter_of("work"), 'c');         // case-insensitive fallback
    // A new keyword takes the first free letter.
    std::vector<std::string> kw{"Home"};
    ASSERT_TRUE(k->assign(kw));
    EXPECT_EQ(k->letter_of("Home"), 'b');
    EXPECT_EQ(read_text(dir / "dovecot-keywords"), "0 $Junk\n1 Home\n2 Work\n");
}

TEST(maildir_keywords, encode_and_decode_flag_sets) {
    tandem::test::temp_dir dir;
    write_text(dir / "dovecot-keywords", "0 $Junk\n1 Work\n");
    auto k = keyword_file::load(dir.path());
    ASSERT_TRUE(k);
    flag_set f;
    f.set(system_flag::seen);
    f.set(system_flag::flagged);
    f.add_keyword("Work");
    f.add_keyword("$Forwarded");
    f.add_keyword("Unknown");
    auto e = k->encode(f);
    EXPECT_EQ(e.system, "FPS");
    EXPECT_EQ(e.keywords, "b");
    ASSERT_EQ(e.unmapped.size(), 1u);
    EXPECT_EQ(e.unmapped[0], "Unknown");
    auto back = k->decode(e.system, e.keywords + "z");  // z has no line: ignored
    flag_set expect = f;
    expect.remove_keyword("Unknown");
    EXPECT_EQ(back, expect);
}

TEST(maildir_keywords, more_than_26_are_reported_not_stored) {
    tandem::test::temp_dir dir;
    auto k = keyword_file::load(dir.path());
    ASSERT_TRUE(k);
    std::vector<std::string> kw;
    for (int i = 0; i < 30; ++i) kw.push_back("k" + std::to_string(i));
    kw.push_back("has space");  // not an atom: cannot be a line of the file
    auto unfit = k->assign(kw);
    ASSERT_TRUE(unfit);
    EXPECT_EQ(k->size(), 26u);
    ASSERT_EQ(unfit->size(), 5u);
    EXPECT_NE(std::find(unfit->begin(), unfit->end(), "k29"), unfit->end());
    EXPECT_NE(std::find(unfit->begin(), unfit->end(), "has space"), unfit->end());
    EXPECT_EQ(k->letter_of("k25"), 'z');
    // Assigning known keywords again changes nothing and reports nothing.
    std::vector<std::string> again{"k0", "k25"};
    auto none = k->assign(again);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
}

TEST(maildir_keywords, a_stale_view_does_not_clobber_another_writers_addition) {
    tandem::test::temp_dir dir;
    auto a = keyword_file::load(dir.path());
    auto b = keyword_file::load(dir.path());
    ASSERT_TRUE(a && b);
    std::vector<std::string> ka{"Alpha"}, kb{"Beta"};
    ASSERT_TRUE(a->assign(ka));
    ASSERT_TRUE(b->assign(kb));  // b has not seen Alpha yet: it must read the file again
    EXPECT_EQ(b->letter_of("Alpha"), 'a');
    EXPECT_EQ(b->letter_of("Beta"), 'b');
    EXPECT_EQ(read_text(dir / "dovecot-keywords"), "0 Alpha\n1 Beta\n");
    // If b's writer had added the same keyword meanwhile, a uses that letter.
    std::vector<std::string> kb2{"Gamma"};
    ASSERT_TRUE(b->assign(kb2));
    ASSERT_TRUE(a->assign(kb2));
    EXPECT_EQ(a->letter_of("Gamma"), 'c');
    EXPECT_EQ(read_text(dir / "dovecot-keywords"), "0 Alpha\n1 Beta\n2 Gamma\n");
}

TEST(maildir_keywords, concurrent_writers_all_get_distinct_letters) {
    tandem::test::temp_dir dir;
    constexpr int writers = 8;
    std::vector<std::thread> threads;
    std::vector<bool> ok(writers, false);
    for (int i = 0; i < writers; ++i) {
        threads.emplace_back([&, i] {
            auto k = keyword_file::load(dir.path());
            if (!k) return;
            for (int j = 0; j < 3; ++j) {
                std::vector<std::string> kw{"w" + std::to_string(i) + "_" + std::to_string(j)};
                auto r = k->assign(kw);
                if (!r || !r->empty()) return;
            }
            ok[static_cast<std::size_t>(i)] = true;
        });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < writers; ++i) EXPECT_TRUE(ok[static_cast<std::size_t>(i)]) << i;
    auto k = keyword_file::load(dir.path());
    ASSERT_TRUE(k);
    EXPECT_EQ(k->size(), static_cast<std::size_t>(writers * 3));
    std::set<char> letters;
    for (int i = 0; i < writers; ++i)
        for (int j = 0; j < 3; ++j) {
            auto l = k->letter_of("w" + std::to_string(i) + "_" + std::to_string(j));
            ASSERT_TRUE(l.has_value());
            letters.insert(*l);
        }
    EXPECT_EQ(letters.size(), static_cast<std::size_t>(writers * 3));
}

TEST(maildir_keywords, held_lock_times_out_and_stale_lock_is_broken) {
    tandem::test::temp_dir dir;
    keyword_options quick;
    quick.lock_wait = std::chrono::milliseconds(50);
    quick.stale_after = std::chrono::seconds(5);
    auto lock = dir / "dovecot-keywords.lock";
    write_text(lock, "");
    auto k = keyword_file::load(dir.path(), quick);
    ASSERT_TRUE(k);
    std::vector<std::string> kw{"X"};
    auto r = k->assign(kw);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), tandem::errc::timeout);
    EXPECT_NE(k->last_error().find("dovecot-keywords.lock"), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(lock));  // young: another writer's, not ours to remove

    // An hour old, but a live process holds it (tandem's writers flock their lock): kept.
    struct timespec old[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, lock.c_str(), old, 0), 0);
    {
        int holder = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(holder, 0);
        ASSERT_EQ(::flock(holder, LOCK_EX), 0);
        EXPECT_FALSE(k->assign(kw));
        EXPECT_TRUE(std::filesystem::exists(lock));
        ::close(holder);
    }

    // Held by no one and older than stale_after: left by a killed writer, removed.
    auto r2 = k->assign(kw);
    ASSERT_TRUE(r2) << k->last_error();
    EXPECT_EQ(k->letter_of("X"), 'a');
    EXPECT_FALSE(std::filesystem::exists(lock));
}

// A writer killed while it held the lock: the next run waits stale_after at most.
TEST(maildir_keywords, a_lock_left_by_a_killed_writer_is_broken_after_stale_after) {
    tandem::test::temp_dir dir;
    keyword_options opts;
    opts.lock_wait = std::chrono::seconds(10);
    opts.stale_after = std::chrono::milliseconds(300);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto k = keyword_file::load(dir.path(), opts);
        int fd = ::open((dir / "dovecot-keywords.lock").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (!k || fd < 0 || ::flock(fd, LOCK_EX) != 0) ::_exit(1);
        ::pause();  // killed while holding it
    }
    for (int i = 0; i < 200 && !std::filesystem::exists(dir / "dovecot-keywords.lock"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    auto k = keyword_file::load(dir.path(), opts);
    ASSERT_TRUE(k);
    std::vector<std::string> kw{"Y"};
    opts.lock_wait = std::chrono::milliseconds(600);
    auto held = keyword_file::load(dir.path(), opts);
    ASSERT_TRUE(held);
    EXPECT_FALSE(held->assign(kw)) << "the live holder's lock was broken";
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    auto t0 = std::chrono::steady_clock::now();
    auto r = k->assign(kw);
    ASSERT_TRUE(r) << k->last_error();
    EXPECT_EQ(k->letter_of("Y"), 'a');
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}
