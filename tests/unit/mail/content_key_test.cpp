// SPDX-License-Identifier: MIT
// Content keys pair the same mail new on both sides; they must agree between a whole header
// (a Maildir file) and an IMAP BODY[HEADER.FIELDS (...)] of it, and must tell apart two
// messages that share a Message-ID and a size, or have no Message-ID and share a size and
// a date (found by the convergence test: two such messages were taken as one after a kill).
#include "tandem/mail/content_key.hpp"

#include <gtest/gtest.h>

namespace tandem::mail {
namespace {

const std::string whole =
    "Received: from x by y; Tue, 5 Mar 2024 10:20:30 +0100\r\n"
    "From: Chaos <chaos@tandem.test>\r\n"
    "To: Model <model@tandem.test>,\r\n"
    "\tOther <other@tandem.test>\r\n"
    "Subject: m7\r\n"
    "Date: Tue, 05 Mar 2024 10:20:30 +0100\r\n"
    "Message-ID: <m7@chaos.tandem.test>\r\n"
    "X-Tandem-Test-Id: m7\r\n"
    "\r\n"
    "body\r\n";

TEST(content_key, whole_header_and_imap_header_fields_agree) {
    // What Dovecot answers to BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO CC SUBJECT)]:
    // the matching lines in message order, then an empty line.
    const std::string fields =
        "From: Chaos <chaos@tandem.test>\r\n"
        "To: Model <model@tandem.test>,\r\n"
        "\tOther <other@tandem.test>\r\n"
        "Subject: m7\r\n"
        "Date: Tue, 05 Mar 2024 10:20:30 +0100\r\n"
        "Message-ID: <m7@chaos.tandem.test>\r\n"
        "\r\n";
    EXPECT_EQ(header_digest(whole), header_digest(fields));
    EXPECT_EQ(content_key(identify_header(whole), 500, 1),
              content_key(identify_header(fields), 500, 1));
    EXPECT_EQ(content_key(identify_header(whole), 500, 1),
              "<m7@chaos.tandem.test>/500/" + header_digest(whole));
}

TEST(content_key, line_ends_folding_and_field_order_do_not_matter) {
    const std::string lf =
        "Subject: m7\n"
        "Message-ID: <m7@chaos.tandem.test>\n"
        "To: Model <model@tandem.test>, Other <other@tandem.test>\n"
        "From:   Chaos <chaos@tandem.test>  \n"
        "Date: Tue, 05 Mar 2024 10:20:30 +0100\n"
        "\n";
    EXPECT_EQ(header_digest(whole), header_digest(lf));
}

TEST(content_key, a_different_subject_or_sender_gives_a_different_key) {
    std::string other = whole;
    other.replace(other.find("Subject: m7"), 11, "Subject: m8");
    EXPECT_NE(header_digest(whole), header_digest(other));
    EXPECT_NE(content_key(identify_header(whole), 647, 1),
              content_key(identify_header(other), 647, 1));
    std::string sender = whole;
    sender.replace(sender.find("chaos@"), 6, "chaoz@");
    EXPECT_NE(header_digest(whole), header_digest(sender));
}

TEST(content_key, no_message_id_keys_on_size_date_and_digest) {
    const std::string a = "Subject: a\r\nDate: x\r\n\r\nbody";
    const std::string b = "Subject: b\r\nDate: x\r\n\r\nbody";
    auto ka = content_key(identify_header(a), 27, 1709630430);
    EXPECT_EQ(ka, "nomsgid/27/1709630430/" + header_digest(a));
    EXPECT_NE(ka, content_key(identify_header(b), 27, 1709630430));
    EXPECT_NE(ka, content_key(identify_header(a), 27, 1709630431));
}

TEST(content_key, an_empty_field_differs_from_a_missing_one_and_the_body_is_not_read) {
    EXPECT_NE(header_digest("Subject:\r\n\r\n"), header_digest("\r\n"));
    EXPECT_EQ(header_digest("Subject: s\r\n\r\nFrom: not a header\r\n"),
              header_digest("Subject: s\r\n\r\n"));
    EXPECT_EQ(header_digest(""), header_digest("\r\n"));
    EXPECT_EQ(header_digest("X: 1\r\n\r\n").size(), 16u);
}

// Moved from the Maildir folder's test with the function (folder::message_id is still tested
// there, on files).
TEST(content_key, find_message_id_trims_and_matches_the_whole_field_name) {
    EXPECT_EQ(find_message_id("Message-ID: <a@b> \n"), "<a@b>");
    EXPECT_EQ(find_message_id("X-Message-ID: <no@b>\nMessage-ID : <yes@b>\n"), "<yes@b>");
    EXPECT_EQ(find_message_id("Message-ID:\n"), std::nullopt);
}

}  // namespace
}  // namespace tandem::mail
