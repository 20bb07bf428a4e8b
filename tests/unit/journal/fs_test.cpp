// SPDX-License-Identifier: MIT
// util/fs.hpp, tested here because the journal is its first user (the util layer has no
// test folder of its own).
#include "tandem/util/fs.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

using namespace tandem;
using tandem::test::temp_dir;

namespace {

mode_t fs_mode_of(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
}

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST(fs, create_private_dir_makes_missing_parents_0700) {
    temp_dir dir;
    auto deep = dir / "a" / "b" / "c";
    ASSERT_TRUE(fs::create_private_dir(deep));
    EXPECT_EQ(fs_mode_of(dir / "a"), 0700u);
    EXPECT_EQ(fs_mode_of(deep), 0700u);
    ASSERT_TRUE(fs::create_private_dir(deep));  // existing: fine
    std::ofstream(dir / "file") << "x";
    auto r = fs::create_private_dir(dir / "file");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::not_a_directory);
}

TEST(fs, create_exclusive_is_0600_even_under_a_lax_umask_and_refuses_existing) {
    temp_dir dir;
    mode_t old = ::umask(0);
    auto fd = fs::create_exclusive(dir / "f");
    ::umask(old);
    ASSERT_TRUE(fd);
    EXPECT_EQ(fs_mode_of(dir / "f"), 0600u);
    auto again = fs::create_exclusive(dir / "f");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), std::errc::file_exists);
}

TEST(fs, write_file_atomic_replaces_content_and_leaves_no_temporary) {
    temp_dir dir;
    ASSERT_TRUE(fs::write_file_atomic(dir / "state", "one"));
    ASSERT_TRUE(fs::write_file_atomic(dir / "state", "two, longer"));
    EXPECT_EQ(slurp(dir / "state"), "two, longer");
    EXPECT_EQ(fs_mode_of(dir / "state"), 0600u);
    int files = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
    EXPECT_EQ(files, 1);
    auto r = fs::write_file_atomic(dir / "missing-dir" / "x", "y");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);
}

TEST(fs, fsync_of_file_and_directory) {
    temp_dir dir;
    std::ofstream(dir / "f") << "data";
    EXPECT_TRUE(fs::fsync_file(dir / "f"));
    EXPECT_TRUE(fs::fsync_dir(dir.path()));
    EXPECT_FALSE(fs::fsync_dir(dir / "f"));  // not a directory
    EXPECT_FALSE(fs::fsync_file(dir / "nope"));
}

TEST(fs, lock_file_records_holder_and_excludes_a_second_lock_in_the_same_process) {
    temp_dir dir;
    auto first = fs::lock_file::acquire(dir / "x.lock");
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(fs_mode_of(dir / "x.lock"), 0600u);
    auto h = fs::lock_file::read_holder(dir / "x.lock");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->pid, ::getpid());
    EXPECT_NE(h->command.find("unit_journal"), std::string::npos) << h->command;

    fs::lock_holder holder;
    auto second = fs::lock_file::acquire(dir / "x.lock", std::chrono::milliseconds(0), &holder);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), std::errc::resource_unavailable_try_again);
    EXPECT_EQ(holder.pid, ::getpid());
    EXPECT_NE(holder.describe().find("pid " + std::to_string(::getpid())), std::string::npos);

    first->release();
    EXPECT_FALSE(first->locked());
    EXPECT_FALSE(fs::lock_file::read_holder(dir / "x.lock"));  // emptied on release
    auto third = fs::lock_file::acquire(dir / "x.lock");
    EXPECT_TRUE(third);
}

TEST(fs, lock_wait_succeeds_once_the_holder_lets_go) {
    temp_dir dir;
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        auto l = fs::lock_file::acquire(dir / "w.lock");
        char c = l ? 'y' : 'n';
        if (::write(ready[1], &c, 1) != 1) ::_exit(2);
        ::usleep(300 * 1000);
        ::_exit(0);  // the kernel drops the lock with the process
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    ASSERT_EQ(c, 'y');

    fs::lock_holder holder;
    auto busy = fs::lock_file::acquire(dir / "w.lock", std::chrono::milliseconds(0), &holder);
    ASSERT_FALSE(busy);
    EXPECT_EQ(holder.pid, child);

    auto waited = fs::lock_file::acquire(dir / "w.lock", std::chrono::seconds(10));
    EXPECT_TRUE(waited) << waited.error().message();
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// A run killed just after it started a child (the Maildir store's closer, or a tunnel
// between fork and exec) leaves the lock's open file to that child for a moment: the next
// run found the lock held by the dead run and stopped (convergence test, session 20).
TEST(fs, a_lock_kept_by_the_child_of_a_dead_holder_is_waited_for) {
    temp_dir dir;
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t holder_pid = ::fork();
    ASSERT_GE(holder_pid, 0);
    if (holder_pid == 0) {
        ::close(ready[0]);
        auto l = fs::lock_file::acquire(dir / "d.lock");
        if (!l) ::_exit(2);
        if (::fork() == 0) {  // keeps the locked file open after its parent is gone
            ::usleep(300 * 1000);
            ::_exit(0);
        }
        if (::write(ready[1], "y", 1) != 1) ::_exit(3);
        ::_exit(0);  // killed, as it were: no release, the file still names this process
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(holder_pid, &status, 0), holder_pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    auto named = fs::lock_file::read_holder(dir / "d.lock");
    ASSERT_TRUE(named);
    EXPECT_EQ(named->pid, holder_pid);

    const auto start = std::chrono::steady_clock::now();
    fs::lock_holder holder;
    auto lock = fs::lock_file::acquire(dir / "d.lock", std::chrono::milliseconds(0), &holder);
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(lock) << lock.error().message() << " (held by " << holder.describe() << ")";
    EXPECT_GT(waited, std::chrono::milliseconds(100));  // the child still held it at first
    EXPECT_EQ(fs::lock_file::read_holder(dir / "d.lock")->pid, ::getpid());
}

TEST(fs, lock_holder_describe) {
    EXPECT_EQ((fs::lock_holder{42, "tandem sync"}).describe(), "pid 42 (tandem sync)");
    EXPECT_EQ((fs::lock_holder{42, ""}).describe(), "pid 42");
    EXPECT_EQ(fs::lock_holder{}.describe(), "an unknown process");
}
