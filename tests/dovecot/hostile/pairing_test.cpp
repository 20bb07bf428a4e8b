// SPDX-License-Identifier: MIT
// Mail new on both sides at once is paired by content key (first sync of stores that hold
// the same mail; recovery after a crash): two different messages that share a size and a
// Message-ID, or a size and a date without one, must stay two messages. And a message the
// server refuses must not hold back the others of its mailbox.
#include "hostile_support.hpp"

using tandem::e2e::hostile::imap_keys;
using tandem::e2e::hostile::key;

#include <gtest/gtest.h>

namespace tandem::e2e {
namespace {

const channel_kind pairing_kinds[] = {
    {"maildir", false, layout::verbatim, transport::plain},
    {"imap_imap", true, layout::verbatim, transport::plain},
};
class hostile_pairing : public ::testing::TestWithParam<channel_kind> {};

TEST_P(hostile_pairing, no_message_id_same_size_same_second_are_two_messages) {
    channel_under_test c(shared_server(), GetParam());
    const std::string m1 = "From: h@tandem.test\r\nSubject: cron 1\r\n\r\nload 0.1\r\n";
    const std::string m2 = "From: h@tandem.test\r\nSubject: cron 2\r\n\r\nload 0.2\r\n";
    ASSERT_EQ(m1.size(), m2.size());
    c.a().add("INBOX", m1, {}, 1650000000);
    c.b().add("INBOX", m2, {}, 1650000000);
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto want =
        hostile::sorted({hostile::key(m1, {}, 1650000000), hostile::key(m2, {}, 1650000000)});
    EXPECT_TRUE(hostile::same_messages(hostile::imap_keys(c.server(), c.user_a(), "INBOX"), want));
    if (c.b_imap())
        EXPECT_TRUE(
            hostile::same_messages(hostile::imap_keys(c.server(), c.user_b(), "INBOX"), want));
    else
        EXPECT_TRUE(hostile::same_messages(
            hostile::maildir_keys(c.b_maildir()->folder_dir("INBOX")), want));
}

// The same with one Message-ID on two different messages of one size.
TEST_P(hostile_pairing, one_message_id_same_size_different_bytes_are_two_messages) {
    channel_under_test c(shared_server(), GetParam());
    const std::string m1 =
        "From: h@tandem.test\r\nSubject: id 1\r\nMessage-ID: <same@h>\r\n\r\nA\r\n";
    const std::string m2 =
        "From: h@tandem.test\r\nSubject: id 2\r\nMessage-ID: <same@h>\r\n\r\nB\r\n";
    c.a().add("INBOX", m1, {}, 1650000000);
    c.b().add("INBOX", m2, {}, 1660000000);
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto want =
        hostile::sorted({hostile::key(m1, {}, 1650000000), hostile::key(m2, {}, 1660000000)});
    EXPECT_TRUE(hostile::same_messages(hostile::imap_keys(c.server(), c.user_a(), "INBOX"), want));
}

// A 0-byte file in the Maildir: Dovecot refuses to store it ("NO Can't save a zero byte
// message"). The run says so, naming the mailbox; the other messages sync all the same, and
// the next run neither loses the file nor duplicates anything.
TEST(hostile_refused_maildir, zero_byte_file_does_not_hold_back_the_other_messages_of_its_mailbox) {
    channel_under_test c(shared_server(), pairing_kinds[0]);  // maildir
    c.b().create("Empty");
    c.b().add("Empty", "", {"\\Seen"}, 1650000000);
    c.b().add("Empty", "x", {}, 1650000100);
    const auto file = c.b_maildir()->folder_dir("Empty");
    auto r = c.sync();
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(contains(r.all(), "Empty")) << r.describe();
    EXPECT_TRUE(hostile::same_messages(imap_keys(c.server(), c.user_a(), "Empty"),
                                       {key("x", {}, 1650000100)}));
    const auto files = maildir_files(c.w.maildir());
    EXPECT_EQ(files.size(), 2u);
    auto r2 = c.sync();
    EXPECT_NE(r2.exit_code, 0) << r2.describe();
    EXPECT_TRUE(hostile::same_messages(imap_keys(c.server(), c.user_a(), "Empty"),
                                       {key("x", {}, 1650000100)}));
    EXPECT_EQ(maildir_files(c.w.maildir()), files);
}

INSTANTIATE_TEST_SUITE_P(kinds, hostile_pairing, ::testing::ValuesIn(pairing_kinds), kind_name);

}  // namespace
}  // namespace tandem::e2e
