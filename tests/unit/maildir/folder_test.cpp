// SPDX-License-Identifier: MIT
#include "tandem/maildir/folder.hpp"
#include "tandem/maildir/filename.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace tandem::maildir;
namespace fs = std::filesystem;

namespace {

folder_options quick() {
    folder_options o;
    o.settle = std::chrono::milliseconds(0);
    return o;
}

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const fs::path& p, std::string_view s) {
    std::ofstream out(p, std::ios::binary);
    out << s;
}

// Directory times an hour back, as if nothing had happened for a while.
void age_dirs(const fs::path& folder_dir) {
    struct timespec old[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
    for (const char* sub : {"new", "cur"})
        ASSERT_EQ(::utimensat(AT_FDCWD, (folder_dir / sub).c_str(), old, 0), 0);
}

folder make(const tandem::test::temp_dir& d, folder_options o = quick()) {
    auto f = folder::create(d / "box", false, o);
    EXPECT_TRUE(f) << (f ? "" : f.error().message());
    return std::move(*f);
}

}  // namespace

TEST(maildir_folder, create_makes_the_three_directories) {
    tandem::test::temp_dir d;
    auto f = folder::create(d / "a" / "b", true);
    ASSERT_TRUE(f);
    EXPECT_EQ(names_in(d / "a" / "b"),
              (std::vector<std::string>{"cur", "maildirfolder", "new", "tmp"}));
    EXPECT_TRUE(folder::exists(d / "a" / "b"));
    EXPECT_FALSE(folder::exists(d / "a"));
    // Completing an existing folder is fine.
    fs::remove(d / "a" / "b" / "tmp");
    ASSERT_TRUE(folder::create(d / "a" / "b", true));
    EXPECT_TRUE(fs::is_directory(d / "a" / "b" / "tmp"));
}

TEST(maildir_folder, delivery_writes_content_mtime_and_flags_into_cur) {
    tandem::test::temp_dir d;
    auto f = make(d);
    const std::string body = "Message-ID: <a@b>\r\nSubject: hi\r\n\r\nbody\r\n";
    auto base = f.deliver(body, {"SF", "b", 1600000000});
    ASSERT_TRUE(base) << f.last_error();
    EXPECT_EQ(size_hint(*base), body.size());
    EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
    EXPECT_TRUE(names_in(d / "box" / "new").empty());
    auto cur = names_in(d / "box" / "cur");
    ASSERT_EQ(cur.size(), 1u);
    EXPECT_EQ(cur[0], *base + ":2,FSb");
    auto p = d / "box" / "cur" / cur[0];
    EXPECT_EQ(slurp(p), body);
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    auto scan = f.scan();
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 1u);
    const auto& e = scan->entries[0];
    EXPECT_EQ(e.base(), *base);
    EXPECT_EQ(e.subdir, subdir::cur);
    EXPECT_EQ(e.system(), "FS");
    EXPECT_EQ(e.keywords(), "b");
    EXPECT_EQ(e.size, body.size());
    EXPECT_EQ(e.mtime, 1600000000);
}

TEST(maildir_folder, delivery_without_flags_goes_to_cur_with_empty_info) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto base = f.deliver("x", {});
    ASSERT_TRUE(base);
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{*base + ":2,"});
}

TEST(maildir_folder, nothing_reaches_cur_before_the_rename) {
    tandem::test::temp_dir d;
    auto f = make(d);
    int calls = 0;
    std::size_t tmp_files_seen = 0, cur_files_seen = 1;
    body_reader reader = [&](std::span<char> buf) -> tandem::result<std::size_t> {
        if (calls++ == 3) {
            tmp_files_seen = names_in(d / "box" / "tmp").size();
            cur_files_seen = names_in(d / "box" / "cur").size();
            return 0;
        }
        std::memset(buf.data(), 'x', 100);
        return 100;
    };
    auto base = f.deliver(reader, {"S", "", 1});
    ASSERT_TRUE(base);
    EXPECT_EQ(tmp_files_seen, 1u);
    EXPECT_EQ(cur_files_seen, 0u);
    EXPECT_EQ(size_hint(*base), 300u);
    EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
}

TEST(maildir_folder, a_failing_reader_leaves_no_temporary_file) {
    tandem::test::temp_dir d;
    auto f = make(d);
    body_reader reader = [](std::span<char>) -> tandem::result<std::size_t> {
        return tandem::error_code(tandem::errc::connection_closed);
    };
    auto base = f.deliver(reader, {});
    ASSERT_FALSE(base);
    EXPECT_EQ(base.error(), tandem::errc::connection_closed);
    EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
    EXPECT_TRUE(names_in(d / "box" / "cur").empty());
}

namespace {
int fail_after_bytes = 0;
int fail_errno = ENOSPC;
long full_disk_write(int fd, const void* data, std::size_t size) {
    if (fail_after_bytes <= 0) {
        errno = fail_errno;
        return -1;
    }
    auto n = std::min<std::size_t>(size, static_cast<std::size_t>(fail_after_bytes));
    fail_after_bytes -= static_cast<int>(n);
    return ::write(fd, data, n);
}
}  // namespace

TEST(maildir_folder, disk_full_is_storage_full_with_the_path_and_no_temporary_file) {
    tandem::test::temp_dir d;
    auto o = quick();
    o.write = &full_disk_write;
    auto f = make(d, o);
    for (int e : {ENOSPC, EDQUOT}) {
        fail_after_bytes = 1000;  // a partial write first, as a real disk fills
        fail_errno = e;
        std::string big(200000, 'y');
        auto base = f.deliver(big, {"S", "", 0});
        ASSERT_FALSE(base);
        EXPECT_EQ(base.error(), tandem::errc::storage_full);
        EXPECT_NE(f.last_error().find((d / "box" / "tmp").string()), std::string::npos)
            << f.last_error();
        EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
        EXPECT_TRUE(names_in(d / "box" / "cur").empty());
    }
    // Same through a batch: a destroyed batch removes the files it had written.
    fail_after_bytes = 150;
    {
        delivery_batch b(f);
        ASSERT_TRUE(b.add("first message", {}));
        auto second = b.add(std::string(1000, 'z'), {});
        ASSERT_FALSE(second);
        EXPECT_EQ(second.error(), tandem::errc::storage_full);
        EXPECT_EQ(names_in(d / "box" / "tmp").size(), 1u);
    }
    EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
    EXPECT_TRUE(names_in(d / "box" / "cur").empty());
}

std::size_t open_descriptors() {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), {}));
}

// A batch's files stay open from their write to the fsync at commit (no second open each),
// and none is left open after a commit or a discard; without fsync none is kept.
TEST(maildir_folder, a_batch_keeps_its_files_open_until_commit_and_no_longer) {
    tandem::test::temp_dir d;
    auto f = make(d);
    const auto baseline = open_descriptors();
    {
        delivery_batch b(f);
        for (int i = 0; i < 20; ++i) ASSERT_TRUE(b.add("kept " + std::to_string(i), {}));
        EXPECT_EQ(open_descriptors(), baseline + 1 + 20);  // tmp/ and the 20 files
        auto bases = b.commit();
        ASSERT_TRUE(bases) << f.last_error();
        EXPECT_EQ(bases->size(), 20u);
        EXPECT_EQ(open_descriptors(), baseline + 1);
    }
    EXPECT_EQ(open_descriptors(), baseline);
    {
        delivery_batch b(f);
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.add("dropped " + std::to_string(i), {}));
        EXPECT_EQ(open_descriptors(), baseline + 1 + 5);
    }
    EXPECT_EQ(open_descriptors(), baseline);
    EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
    EXPECT_EQ(names_in(d / "box" / "cur").size(), 20u);

    auto o = quick();
    o.fsync = false;
    auto g = folder::create(d / "nosync", false, o);
    ASSERT_TRUE(g);
    {
        delivery_batch b(*g);
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.add("unsynced " + std::to_string(i), {}));
        EXPECT_EQ(open_descriptors(), baseline + 1);
        ASSERT_TRUE(b.commit());
    }
    EXPECT_EQ(open_descriptors(), baseline);
    EXPECT_EQ(names_in(d / "nosync" / "cur").size(), 5u);
}

TEST(maildir_folder, batch_renames_all_at_commit) {
    tandem::test::temp_dir d;
    auto f = make(d);
    delivery_batch b(f);
    ASSERT_TRUE(b.add("one", {"S", "", 1000}));
    ASSERT_TRUE(b.add("two!", {"", "a", 2000}));
    spit(d / "spool", "three");
    ASSERT_TRUE(b.add_file(d / "spool", {"F", "", 3000}));
    EXPECT_FALSE(fs::exists(d / "spool"));  // taken over
    EXPECT_EQ(names_in(d / "box" / "tmp").size(), 3u);
    EXPECT_TRUE(names_in(d / "box" / "cur").empty());
    auto bases = b.commit();
    ASSERT_TRUE(bases) << f.last_error();
    ASSERT_EQ(bases->size(), 3u);
    EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
    auto scan = f.scan();
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 3u);
    std::map<std::string, entry> by_base;
    for (auto& e : scan->entries) by_base[std::string(e.base())] = e;
    EXPECT_EQ(by_base.at((*bases)[0]).system(), "S");
    EXPECT_EQ(by_base.at((*bases)[0]).mtime, 1000);
    EXPECT_EQ(by_base.at((*bases)[1]).keywords(), "a");
    EXPECT_EQ(by_base.at((*bases)[1]).size, 4u);
    EXPECT_EQ(by_base.at((*bases)[2]).system(), "F");
    EXPECT_EQ(by_base.at((*bases)[2]).mtime, 3000);
    auto m = f.open((*bases)[2]);
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->read_all().value(), "three");
    struct stat st {};
    ASSERT_EQ(::stat((d / "box" / "cur" / by_base.at((*bases)[2]).file_name()).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(maildir_folder, big_streamed_delivery_keeps_memory_flat) {
    tandem::test::temp_dir d;
    auto f = make(d);
    constexpr std::uint64_t total = 60ull * 1024 * 1024;
    auto byte_at = [](std::uint64_t i) { return static_cast<char>('a' + (i * 7 + i / 4099) % 26); };
    // In a child process, so that its peak resident size measures the delivery alone.
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::uint64_t sent = 0;
        body_reader reader = [&](std::span<char> buf) -> tandem::result<std::size_t> {
            std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - sent));
            for (std::size_t i = 0; i < n; ++i) buf[i] = byte_at(sent + i);
            sent += n;
            return n;
        };
        auto base = f.deliver(reader, {"S", "", 1234567890});
        ::_exit(base ? 0 : 1);
    }
    int status = 0;
    struct rusage ru {};
    ASSERT_EQ(::wait4(pid, &status, 0, &ru), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    EXPECT_LT(ru.ru_maxrss, 30 * 1024) << "peak KB; the message is 60 MB";

    auto scan = f.scan();
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 1u);
    EXPECT_EQ(scan->entries[0].size, total);
    EXPECT_EQ(scan->entries[0].mtime, 1234567890);
    auto m = f.open(scan->entries[0].base());
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->size(), total);
    std::vector<char> buf(1 << 20);
    std::uint64_t pos = 0;
    bool same = true;
    for (;;) {
        auto n = (*m)->read(buf);
        ASSERT_TRUE(n);
        if (*n == 0) break;
        for (std::size_t i = 0; i < *n && same; ++i) same = buf[i] == byte_at(pos + i);
        pos += *n;
    }
    EXPECT_EQ(pos, total);
    EXPECT_TRUE(same);
}

TEST(maildir_folder, flag_renames_keep_the_base_name) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto base = f.deliver("x", {"S", "", 0});
    ASSERT_TRUE(base);
    ASSERT_EQ(f.set_flags(*base, "FRS", "ac").value(), outcome::done);
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{*base + ":2,FRSac"});
    // Letters tandem does not know, and text after a second ',', stay.
    fs::rename(d / "box" / "cur" / (*base + ":2,FRSac"),
               d / "box" / "cur" / (*base + ":2,FRSXac,keep"));
    ASSERT_EQ(f.set_flags(*base, "T", "").value(), outcome::done);
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{*base + ":2,TX,keep"});
    // Asking for the flags it already has renames nothing.
    ASSERT_EQ(f.set_flags(*base, "T", "").value(), outcome::done);
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{*base + ":2,TX,keep"});
    // Letters that are not flags are refused.
    auto bad = f.set_flags(*base, "Sx", "");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), tandem::errc::invalid_argument);
    ASSERT_TRUE(f.sync());
}

TEST(maildir_folder, a_message_in_new_moves_to_cur_on_set_flags) {
    tandem::test::temp_dir d;
    auto f = make(d);
    spit(d / "box" / "new" / "100.M1P1.host", "from an MDA");
    spit(d / "box" / "new" / ".hidden", "not a message");
    auto scan = f.scan();
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 1u);
    EXPECT_EQ(scan->entries[0].subdir, subdir::new_);
    EXPECT_EQ(scan->entries[0].size, 11u);  // no ",S=": from stat
    ASSERT_EQ(f.set_flags("100.M1P1.host", "S", "").value(), outcome::done);
    EXPECT_EQ(names_in(d / "box" / "new"), std::vector<std::string>{".hidden"});
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{"100.M1P1.host:2,S"});
}

TEST(maildir_folder, a_file_renamed_by_a_mail_client_is_found_again) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto base = f.deliver("hello", {"", "", 0});
    ASSERT_TRUE(base);
    ASSERT_TRUE(f.scan());
    // A client marks it seen behind our back.
    fs::rename(d / "box" / "cur" / (*base + ":2,"), d / "box" / "cur" / (*base + ":2,S"));
    ASSERT_EQ(f.set_flags(*base, "FS", "").value(), outcome::done);
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{*base + ":2,FS"});
    // And again before open() and find().
    fs::rename(d / "box" / "cur" / (*base + ":2,FS"), d / "box" / "cur" / (*base + ":2,RS"));
    auto m = f.open(*base);
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->file_name(), *base + ":2,RS");
    EXPECT_EQ((*m)->read_all().value(), "hello");
    fs::rename(d / "box" / "cur" / (*base + ":2,RS"), d / "box" / "cur" / (*base + ":2,S"));
    auto e = f.find(*base);
    ASSERT_TRUE(e && *e);
    EXPECT_EQ((*e)->system(), "S");
    EXPECT_EQ((*e)->size, 5u);
    // A fresh folder object (no cache) finds it by listing.
    folder other(d / "box", quick());
    ASSERT_EQ(other.set_flags(*base, "", "").value(), outcome::done);
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{*base + ":2,"});
}

TEST(maildir_folder, a_file_deleted_meanwhile_is_gone_not_an_error) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto base = f.deliver("bye", {"S", "", 0});
    auto other = folder::create(d / "other", false, quick());
    ASSERT_TRUE(base && other);
    ASSERT_TRUE(f.scan());
    fs::remove(d / "box" / "cur" / (*base + ":2,S"));
    EXPECT_EQ(f.set_flags(*base, "F", "").value(), outcome::gone);
    EXPECT_EQ(f.remove(*base).value(), outcome::gone);
    EXPECT_EQ(f.move_to(*base, *other).value(), outcome::gone);
    auto m = f.open(*base);
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->has_value());
    auto id = f.message_id(*base);
    ASSERT_TRUE(id);
    EXPECT_FALSE(id->has_value());
    auto e = f.find(*base);
    ASSERT_TRUE(e);
    EXPECT_FALSE(e->has_value());
}

// A folder object that never listed its directories (a new run) finds a file where the
// journal's flags say it is without a listing; where it is not (a mail client renamed it,
// or it is still in new/), it lists and finds it as before.
TEST(maildir_folder, an_expected_location_saves_the_listing_and_a_wrong_one_costs_only_that) {
    tandem::test::temp_dir d;
    std::vector<std::string> bases;
    {
        auto writer = make(d);
        for (int i = 0; i < 4; ++i)
            bases.push_back(writer.deliver("m" + std::to_string(i), {"S", "a", 0}).value());
    }
    spit(d / "box" / "new" / "9.M9P9.h", "from an MDA");
    auto f = make(d);
    f.expect(bases[0], "S", "a");
    f.expect(bases[1], "S", "a");
    f.expect(bases[2], "S", "a");
    ASSERT_EQ(f.set_flags(bases[0], "FS", "a").value(), outcome::done);
    EXPECT_EQ(f.remove(bases[1]).value(), outcome::done);
    auto b = folder::create(d / "b", false, quick());
    ASSERT_TRUE(b);
    ASSERT_EQ(f.move_to(bases[2], *b).value(), outcome::done);
    EXPECT_EQ(f.listings(), 0u);
    EXPECT_TRUE(fs::exists(d / "box" / "cur" / (bases[0] + ":2,FSa")));
    EXPECT_FALSE(fs::exists(d / "box" / "cur" / (bases[1] + ":2,Sa")));
    EXPECT_TRUE(fs::exists(d / "b" / "cur" / (bases[2] + ":2,Sa")));
    // Stale: a client flagged it since. The listing finds it, and its flags are kept.
    fs::rename(d / "box" / "cur" / (bases[3] + ":2,Sa"), d / "box" / "cur" / (bases[3] + ":2,FSa"));
    f.expect(bases[3], "S", "a");
    ASSERT_EQ(f.set_flags(bases[3], "RS", "a").value(), outcome::done);
    EXPECT_EQ(f.listings(), 1u);
    EXPECT_TRUE(fs::exists(d / "box" / "cur" / (bases[3] + ":2,RSa")));
    // In new/, not cur/: found by the listing. A known location is not overridden.
    f.expect("9.M9P9.h", "S", "");
    f.expect(bases[0], "", "");
    ASSERT_EQ(f.set_flags("9.M9P9.h", "S", "").value(), outcome::done);
    EXPECT_TRUE(fs::exists(d / "box" / "cur" / "9.M9P9.h:2,S"));
    EXPECT_EQ(f.remove(bases[0]).value(), outcome::done);
    std::vector<std::string> left{"9.M9P9.h:2,S", bases[3] + ":2,RSa"};
    std::sort(left.begin(), left.end());
    EXPECT_EQ(names_in(d / "box" / "cur"), left);
}

TEST(maildir_folder, remove_unlinks_then_reports_gone) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto base = f.deliver("x", {});
    ASSERT_TRUE(base);
    EXPECT_EQ(f.remove(*base).value(), outcome::done);
    EXPECT_TRUE(names_in(d / "box" / "cur").empty());
    EXPECT_EQ(f.remove(*base).value(), outcome::gone);
}

TEST(maildir_folder, move_keeps_the_base_name_and_takes_the_new_letters) {
    tandem::test::temp_dir d;
    auto a = make(d);
    auto b = folder::create(d / "b", false, quick());
    ASSERT_TRUE(b);
    auto base = a.deliver("moving", {"S", "ab", 777});
    ASSERT_TRUE(base);
    ASSERT_EQ(a.move_to(*base, *b, std::nullopt, std::string_view("c")).value(), outcome::done);
    EXPECT_TRUE(names_in(d / "box" / "cur").empty());
    EXPECT_EQ(names_in(d / "b" / "cur"), std::vector<std::string>{*base + ":2,Sc"});
    auto scan = b->scan();
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 1u);
    EXPECT_EQ(scan->entries[0].base(), *base);
    EXPECT_EQ(scan->entries[0].mtime, 777);  // rename keeps the INTERNALDATE
    ASSERT_TRUE(a.sync());
    ASSERT_TRUE(b->sync());
    // From new/ of one folder to cur/ of another, letters kept.
    spit(d / "box" / "new" / "9.M9P9.h", "n");
    ASSERT_EQ(a.move_to("9.M9P9.h", *b).value(), outcome::done);
    EXPECT_TRUE(fs::exists(d / "b" / "cur" / "9.M9P9.h:2,"));
}

TEST(maildir_folder, scan_keeps_one_entry_per_base_and_skips_odd_files) {
    tandem::test::temp_dir d;
    auto f = make(d);
    spit(d / "box" / "new" / "dup.M1.h", "old");
    spit(d / "box" / "cur" / "dup.M1.h:2,S", "newer");
    spit(d / "box" / "cur" / "x,S=99:2,F", "not 99 bytes");
    fs::create_directory(d / "box" / "cur" / "subdir");
    auto scan = f.scan();
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 2u);
    std::map<std::string, entry> by_base;
    for (auto& e : scan->entries) by_base[std::string(e.base())] = e;
    EXPECT_EQ(by_base.at("dup.M1.h").subdir, subdir::cur);
    EXPECT_EQ(by_base.at("dup.M1.h").system(), "S");
    EXPECT_EQ(by_base.at("x,S=99").size, 99u);  // the hint wins: no stat needed for the size
    auto names = f.scan(scan_mode::names);
    ASSERT_TRUE(names);
    EXPECT_EQ(names->entries.size(), 2u);
    for (const auto& e : names->entries) EXPECT_EQ(e.mtime, 0);
    // A count to make room for, too small or too large, changes nothing but the allocation.
    for (std::size_t expected : {1, 2, 100000}) {
        auto again = f.scan(scan_mode::names, true, expected);
        ASSERT_TRUE(again);
        ASSERT_EQ(again->entries.size(), 2u);
        EXPECT_NE(again->entries.find("dup.M1.h"), entry_list::npos);
        EXPECT_EQ(again->entries[again->entries.find("dup.M1.h")].subdir, subdir::cur);
        EXPECT_NE(again->entries.find("x,S=99"), entry_list::npos);
    }
}

TEST(maildir_folder, a_settled_token_waits_out_only_the_rest_of_the_last_change_tick) {
    tandem::test::temp_dir d;
    auto f = make(d, folder_options{});  // 1 s, but a tick where the mtimes have nanoseconds
    // Right after a write, without time to wait: unsettled. "Right after" means within one
    // tick of the coarse clock (the stamp lags the real clock by up to one more): a loaded
    // machine may take longer, so such a try proves nothing and is made again.
    bool checked = false;
    for (int attempt = 0; attempt < 50 && !checked; ++attempt) {
        const auto start = std::chrono::steady_clock::now();
        ASSERT_TRUE(f.deliver("x", {}));
        auto quick = f.settled_change_token(std::chrono::nanoseconds(0));
        ASSERT_TRUE(quick);
        if (std::chrono::steady_clock::now() - start >= tandem::maildir::subsecond_settle() / 2)
            continue;
        EXPECT_TRUE(quick->ends_with(" u")) << *quick;
        EXPECT_TRUE(f.changed_since(*quick).value());
        checked = true;
    }
    EXPECT_TRUE(checked) << "no delivery and token within half the settle time in 50 tries";

    ASSERT_TRUE(f.deliver("y", {}));
    const auto start = std::chrono::steady_clock::now();
    auto t = f.settled_change_token(std::chrono::seconds(2));
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(t);
    EXPECT_TRUE(t->ends_with(" s"));
    EXPECT_FALSE(f.changed_since(*t).value());
    // What is left of the tick (this file system stamps in nanoseconds), not the 1 s.
    EXPECT_LT(waited, std::chrono::milliseconds(500));
    // Settled already: no wait at all, the same token.
    EXPECT_EQ(f.settled_change_token(std::chrono::nanoseconds(0)).value(), *t);
}

// The shorter settle time still hides no change: a flag change made right after a settled
// token, 300 times, always moves the token. (A wait shorter than the clock's tick would let
// some of them share the token's stamp, on a kernel without fine-grained stamps on demand.)
TEST(maildir_folder, a_change_right_after_a_settled_token_always_shows) {
    tandem::test::temp_dir d;
    auto f = make(d, folder_options{});
    auto base = f.deliver("x", {});
    ASSERT_TRUE(base);
    EXPECT_LE(tandem::maildir::subsecond_settle(), std::chrono::milliseconds(25));
    std::string flags;
    int missed = 0;
    for (int i = 0; i < 300; ++i) {
        auto t = f.settled_change_token(std::chrono::milliseconds(40));
        ASSERT_TRUE(t);
        ASSERT_TRUE(t->ends_with(" s")) << *t;
        std::string next = flags.empty() ? "S" : "";
        fs::rename(d / "box" / "cur" / (*base + ":2," + flags),
                   d / "box" / "cur" / (*base + ":2," + next));
        flags = next;
        if (!f.changed_since(*t).value()) ++missed;
    }
    EXPECT_EQ(missed, 0);
}

TEST(maildir_folder, change_token_sees_additions_renames_and_removals) {
    tandem::test::temp_dir d;
    auto f = make(d, folder_options{});  // the default settle time of 1 s
    auto base = f.deliver("x", {});
    ASSERT_TRUE(base);

    age_dirs(d / "box");
    auto t0 = f.change_token();
    ASSERT_TRUE(t0);
    EXPECT_FALSE(f.changed_since(*t0).value());
    spit(d / "box" / "new" / "1.M1.h", "added by an MDA");
    EXPECT_TRUE(f.changed_since(*t0).value());

    age_dirs(d / "box");
    auto t1 = f.change_token().value();
    EXPECT_FALSE(f.changed_since(t1).value());
    fs::rename(d / "box" / "cur" / (*base + ":2,"), d / "box" / "cur" / (*base + ":2,S"));
    EXPECT_TRUE(f.changed_since(t1).value());

    age_dirs(d / "box");
    auto t2 = f.change_token().value();
    EXPECT_FALSE(f.changed_since(t2).value());
    fs::remove(d / "box" / "cur" / (*base + ":2,S"));
    EXPECT_TRUE(f.changed_since(t2).value());

    // A token taken right after a change is unsettled: a write in the same tick would leave
    // the mtime alone, so it never claims "unchanged". (Tried again when the machine was too
    // slow for "right after", as above.)
    bool checked = false;
    for (int attempt = 0; attempt < 50 && !checked; ++attempt) {
        const auto start = std::chrono::steady_clock::now();
        spit(d / "box" / "new" / ("fresh." + std::to_string(attempt)), "x");
        auto t3 = f.change_token().value();
        if (std::chrono::steady_clock::now() - start >= tandem::maildir::subsecond_settle() / 2)
            continue;
        EXPECT_TRUE(t3.ends_with(" u")) << t3;
        EXPECT_TRUE(f.changed_since(t3).value());
        checked = true;
    }
    EXPECT_TRUE(checked);
    EXPECT_TRUE(f.changed_since("garbage").value());
    EXPECT_TRUE(f.changed_since("").value());

    // A directory replaced by another one with the same mtime is a change too.
    age_dirs(d / "box");
    auto t4 = f.change_token().value();
    struct stat st {};
    ASSERT_EQ(::stat((d / "box" / "new").c_str(), &st), 0);
    fs::rename(d / "box" / "new", d / "box" / "new.old");
    fs::create_directory(d / "box" / "new");
    struct timespec same[2] = {st.st_mtim, st.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, (d / "box" / "new").c_str(), same, 0), 0);
    fs::remove_all(d / "box" / "new.old");
    age_dirs(d / "box");
    ASSERT_EQ(::utimensat(AT_FDCWD, (d / "box" / "new").c_str(), same, 0), 0);
    EXPECT_TRUE(f.changed_since(t4).value());
}

TEST(maildir_folder, scan_waits_out_a_fresh_change_so_its_token_is_settled) {
    tandem::test::temp_dir d;
    folder_options o;
    o.settle = std::chrono::milliseconds(300);
    auto f = make(d, o);
    ASSERT_TRUE(f.deliver("x", {}));
    auto scan = f.scan();
    const auto done = std::chrono::system_clock::now();
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->entries.size(), 1u);
    // A file system with sub-second stamps ticks with the kernel's coarse clock: the scan
    // ends subsecond_settle() after the newest directory time stamp at the earliest.
    // (Measured from the stamp, not from the call: the delivery's fsyncs may take part of it.)
    auto stamp = [&](const char* sub) {
        struct stat st {};
        EXPECT_EQ(::stat((d / "box" / sub).c_str(), &st), 0);
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::seconds(st.st_mtim.tv_sec) +
                std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    };
    EXPECT_GE(done - std::max(stamp("new"), stamp("cur")),
              std::chrono::duration_cast<std::chrono::system_clock::duration>(
                  tandem::maildir::subsecond_settle()));
    EXPECT_FALSE(f.changed_since(scan->token).value());
    ASSERT_TRUE(f.deliver("y", {}));
    EXPECT_TRUE(f.changed_since(scan->token).value());
}

TEST(maildir_folder, whole_second_stamps_are_waited_out_for_the_configured_settle) {
    tandem::test::temp_dir d;
    folder_options o;
    o.settle = std::chrono::milliseconds(300);
    auto f = make(d, o);
    ASSERT_TRUE(f.deliver("x", {}));
    // As a file system that keeps whole seconds: stamps without a sub-second part, now.
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    timespec whole[2] = {{now.tv_sec, 0}, {now.tv_sec, 0}};
    for (const char* sub : {"new", "cur"})
        ASSERT_EQ(::utimensat(AT_FDCWD, (f.path() / sub).c_str(), whole, 0), 0);
    auto start = std::chrono::steady_clock::now();
    auto scan = f.scan();
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(scan);
    // The stamp is less than a second old: the scan waits until it is 300 ms old.
    auto age_at_start = std::chrono::nanoseconds(now.tv_nsec);
    if (age_at_start < std::chrono::milliseconds(250)) {
        EXPECT_GE(took, std::chrono::milliseconds(40));
    }
    EXPECT_FALSE(f.changed_since(scan->token).value());
}

TEST(maildir_folder, scan_during_concurrent_renames_never_loses_a_message) {
    tandem::test::temp_dir d;
    folder_options o;
    o.settle = std::chrono::milliseconds(1);
    o.fsync = false;
    auto f = make(d, o);
    // Long names, so that the listing takes several getdents(2) calls and a rename can move a
    // name behind the cursor (without the before/after check, scans here lose messages).
    constexpr int count = 800;
    std::vector<std::string> bases;
    for (int i = 0; i < count; ++i) {
        bases.push_back(std::to_string(i) + ".M0P0." + std::string(150, 'h'));
        spit(d / "box" / "cur" / (bases.back() + ":2,"), "m");
    }
    std::atomic<bool> stop{false};
    std::thread client([&] {
        // A mail client toggling \Seen on every message, as fast as it can.
        folder c(d / "box", o);
        // A mail client toggling \Seen in bursts, with short pauses in which a scan can finish.
        for (int round = 0; !stop; ++round) {
            for (std::size_t i = 0; i < bases.size() && !stop; ++i) {
                (void)c.set_flags(bases[i], round % 2 ? "" : "S", "");
                if (i % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        }
    });
    int complete = 0, busy = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
    while (std::chrono::steady_clock::now() < until) {
        auto scan = f.scan(scan_mode::names);
        if (!scan) {
            EXPECT_EQ(scan.error(), std::errc::resource_unavailable_try_again);
            ++busy;
            continue;
        }
        std::set<std::string> seen;
        for (const auto& e : scan->entries) seen.insert(std::string(e.base()));
        EXPECT_EQ(seen.size(), static_cast<std::size_t>(count));
        EXPECT_EQ(scan->entries.size(), static_cast<std::size_t>(count));
        ++complete;
    }
    stop = true;
    client.join();
    auto last = f.scan();
    ASSERT_TRUE(last);
    EXPECT_EQ(last->entries.size(), static_cast<std::size_t>(count));
    std::cout << "[          ] " << complete << " complete scans, " << busy << " busy\n";
}

TEST(maildir_folder, message_id_comes_from_the_header_only) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto b1 = f.deliver(
        "From: a\r\nmessage-id:\r\n  <folded@x>\r\nSubject: s\r\n\r\nMessage-ID: <body@x>\r\n", {});
    auto b2 = f.deliver("Subject: none\n\nMessage-ID: <in-body@x>\n", {});
    std::string big_header = "Message-Id: <late@x>\n";
    auto b3 = f.deliver(std::string(70000, 'X') + ": filler\n" + big_header + "\n", {});
    ASSERT_TRUE(b1 && b2 && b3);
    EXPECT_EQ(f.message_id(*b1).value(), std::optional<std::string>("<folded@x>"));
    EXPECT_EQ(f.message_id(*b2).value(), std::nullopt);
    EXPECT_EQ(f.message_id(*b3).value(), std::nullopt);  // beyond the first 64 KB
    // Headers read in pieces: one of 40 KB, and one whose blank line straddles two reads
    // (16 KB each); the body's Message-ID is never taken.
    std::string filler;
    while (filler.size() < 40000) filler += "X-Filler: " + std::string(60, 'f') + "\r\n";
    auto b4 = f.deliver(filler + "Message-ID: <long@x>\r\n\r\nMessage-ID: <body@x>\r\n", {});
    std::string edge = "Subject: edge\n";
    edge += "X-Pad: " + std::string(16 * 1024 - edge.size() - 8 - 1, 'p') + "\n";
    ASSERT_EQ(edge.size(), 16u * 1024 - 1);  // the blank line's "\n" opens the second read
    auto b5 = f.deliver(edge + "\nMessage-ID: <body-only@x>\n", {});
    ASSERT_TRUE(b4 && b5);
    EXPECT_EQ(f.message_id(*b4).value(), std::optional<std::string>("<long@x>"));
    EXPECT_EQ(f.message_id(*b5).value(), std::nullopt);
}

TEST(maildir_folder, scan_of_a_missing_folder_is_an_error_with_the_path) {
    tandem::test::temp_dir d;
    folder f(d / "nothing", quick());
    auto scan = f.scan();
    ASSERT_FALSE(scan);
    EXPECT_EQ(scan.error(), std::errc::no_such_file_or_directory);
    EXPECT_NE(f.last_error().find("nothing"), std::string::npos);
}

TEST(maildir_folder, stat_of_a_names_only_entry_follows_a_rename_and_reports_a_removal) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto base = f.deliver("hello", {"", "", 1'600'000'000});
    ASSERT_TRUE(base);
    spit(d / "box" / "cur" / "plain.M2.h:2,S", "twelve bytes");
    auto scan = f.scan(scan_mode::names);
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 2u);
    auto& e = scan->entries[0].base() == *base ? scan->entries[0] : scan->entries[1];
    auto& plain = scan->entries[0].base() == *base ? scan->entries[1] : scan->entries[0];
    EXPECT_EQ(e.mtime, 0);
    EXPECT_EQ(plain.size, 0u);
    // A client renames one after the listing: stat() finds it by its base name.
    fs::rename(d / "box" / "cur" / (*base + ":2,"), d / "box" / "cur" / (*base + ":2,RS"));
    ASSERT_TRUE(f.stat(e).value());
    EXPECT_EQ(e.mtime, 1'600'000'000);
    EXPECT_EQ(e.size, 5u);
    EXPECT_EQ(e.file_name(), *base + ":2,RS");
    EXPECT_EQ(e.system(), "RS");
    ASSERT_TRUE(f.stat(plain).value());
    EXPECT_EQ(plain.size, 12u);  // no ",S=": from the file
    fs::remove(d / "box" / "cur" / "plain.M2.h:2,S");
    plain.mtime = 0;
    EXPECT_FALSE(f.stat(plain).value());
}

TEST(maildir_folder, a_batch_larger_than_the_fsync_threads_delivers_every_file) {
    tandem::test::temp_dir d;
    auto o = quick();
    o.fsync = true;
    auto f = make(d, o);
    delivery_batch b(f);
    for (int i = 0; i < 21; ++i) ASSERT_TRUE(b.add("message " + std::to_string(i), {"S", "", 0}));
    auto bases = b.commit();
    ASSERT_TRUE(bases) << f.last_error();
    ASSERT_EQ(bases->size(), 21u);
    EXPECT_TRUE(names_in(d / "box" / "tmp").empty());
    auto cur = names_in(d / "box" / "cur");
    ASSERT_EQ(cur.size(), 21u);
    for (int i = 0; i < 21; ++i) {
        auto name = (*bases)[static_cast<std::size_t>(i)] + ":2,S";
        EXPECT_EQ(slurp(d / "box" / "cur" / name), "message " + std::to_string(i));
    }
}

TEST(maildir_folder, entries_handed_back_with_remember_serve_later_calls) {
    tandem::test::temp_dir d;
    auto f = make(d);
    auto base = f.deliver("Message-ID: <m@x>\r\n\r\nbody", {"S", "", 0});
    ASSERT_TRUE(base);
    folder other(d / "box", quick());
    auto scan = other.scan(scan_mode::names, false);
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->entries.size(), 1u);
    // Read from the entry's file, and from its new name once a client renamed it.
    EXPECT_EQ(other.identify(scan->entries[0]).value()->message_id,
              std::optional<std::string>("<m@x>"));
    fs::rename(d / "box" / "cur" / (*base + ":2,S"), d / "box" / "cur" / (*base + ":2,FS"));
    EXPECT_EQ(other.identify(scan->entries[0]).value()->message_id,
              std::optional<std::string>("<m@x>"));
    other.remember(std::move(scan->entries));
    ASSERT_EQ(other.set_flags(*base, "RS", "").value(), outcome::done);
    EXPECT_EQ(names_in(d / "box" / "cur"), std::vector<std::string>{*base + ":2,RS"});
}
