// SPDX-License-Identifier: MIT
// A message that the server refuses (Dovecot: "NO Can't save a zero byte message" for a
// 0-byte Maildir file) fails the APPEND of the whole batch it travels in (MULTIAPPEND is all
// or nothing, RFC 3502): the other messages must still arrive, once, and the refused one is
// reported on every run until it is gone.
#include "e2e_support.hpp"

#include <gtest/gtest.h>

namespace tandem::e2e {
namespace {

const channel_kind to_maildir{"maildir", false, layout::verbatim, transport::plain};

std::string body(int n) {
    return test::make_message("r" + std::to_string(n), "Message " + std::to_string(n) + ".\r\n",
                              "<r" + std::to_string(n) + "@tandem.test>");
}

TEST(refused, a_zero_byte_file_does_not_keep_the_other_messages_of_its_folder_back) {
    channel_under_test c(shared_server(), to_maildir);
    c.b().create("Work");
    const auto cur = c.b_maildir()->folder_dir("Work") / "cur";
    // Names in time order: the empty file sits between the others, in the same batch.
    for (int n = 1; n <= 5; ++n)
        write_file(cur / ("170000000" + std::to_string(n < 3 ? n : n + 1) + ".M" +
                          std::to_string(n) + "P1.host:2,S"),
                   body(n));
    const auto empty = cur / "1700000003.M9P1.host:2,S";
    write_file(empty, "");

    auto r = c.sync();
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(contains(r.all(), "Work")) << r.describe();
    EXPECT_TRUE(contains(lower(r.all()), "zero byte")) << r.describe();
    auto server = snapshot_imap(c.server(), c.user_a());
    ASSERT_EQ(server["Work"].size(), 5u) << r.describe();
    for (int n = 1; n <= 5; ++n)
        EXPECT_EQ(find(server, "Work", "r" + std::to_string(n)).size(), 1u) << n;
    const auto saves = c.saves(true);
    EXPECT_EQ(saves, 5u);

    // The refused file is still there; nothing else goes again.
    auto r2 = c.sync();
    EXPECT_EQ(r2.exit_code, 1) << r2.describe();
    EXPECT_TRUE(contains(lower(r2.all()), "zero byte")) << r2.describe();
    EXPECT_TRUE(contains(r2.all(), "Work")) << r2.describe();
    EXPECT_EQ(c.saves(true), saves) << "no message uploaded twice";
    EXPECT_EQ(snapshot_imap(c.server(), c.user_a())["Work"].size(), 5u);
    EXPECT_EQ(maildir_files(c.b_maildir()->root()).size(), 6u) << "the local files stay";

    fs::remove(empty);
    auto r3 = c.sync();
    EXPECT_EQ(r3.exit_code, 0) << r3.describe();
    EXPECT_EQ(c.saves(true), saves);
    EXPECT_EQ(snapshot_imap(c.server(), c.user_a()), snapshot_maildir(c.w.maildir()));
}

// Empty files in two batches of a large folder. The client sends a batch of the engine in
// several APPEND commands (at most 250 messages each), so a refused command may leave its
// neighbours on the server without their uids: those are paired on the next run, never
// uploaded twice, and every message but the empty ones ends on the server.
TEST(refused, empty_files_in_several_batches_leave_every_other_message_copied_once) {
    channel_under_test c(shared_server(), to_maildir);
    c.b().create("Big");
    const auto cur = c.b_maildir()->folder_dir("Big") / "cur";
    constexpr int batch = 5000;  // the engine's batch (5000 messages or 32 MB at most)
    constexpr int count = batch + 120;
    constexpr int second_empty = batch + 110;
    for (int n = 1; n <= count; ++n) {
        const auto name = std::to_string(1700000000 + n) + ".M" + std::to_string(n) + "P1.host:2,";
        write_file(cur / name, n == 7 || n == second_empty ? std::string() : body(n));
    }
    auto r = c.sync();
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(contains(lower(r.all()), "zero byte")) << r.describe();
    auto first = snapshot_imap(c.server(), c.user_a());
    // The second batch went one message at a time around its empty file.
    for (int n : {batch + 1, second_empty - 1, second_empty + 1, count})
        EXPECT_EQ(find(first, "Big", "r" + std::to_string(n)).size(), 1u) << n;
    EXPECT_EQ(c.saves(true), first["Big"].size());

    auto r2 = c.sync();
    EXPECT_EQ(r2.exit_code, 1) << r2.describe();
    EXPECT_TRUE(contains(lower(r2.all()), "zero byte")) << r2.describe();
    auto second = snapshot_imap(c.server(), c.user_a());
    EXPECT_EQ(second["Big"].size(), std::size_t(count - 2));
    EXPECT_EQ(c.saves(true), std::size_t(count - 2)) << "no message uploaded twice";
    std::set<std::string> subjects;
    for (const auto& e : second["Big"]) subjects.insert(entry_subject(e));
    EXPECT_EQ(subjects.size(), std::size_t(count - 2));

    auto r3 = c.sync();
    EXPECT_EQ(r3.exit_code, 1) << r3.describe();
    EXPECT_TRUE(contains(lower(r3.all()), "zero byte")) << r3.describe();
    EXPECT_EQ(c.saves(true), std::size_t(count - 2)) << "no message uploaded twice";
}

}  // namespace
}  // namespace tandem::e2e
