// SPDX-License-Identifier: MIT
// Hostile messages end to end, IMAP-Maildir and IMAP-IMAP, in both directions at once: bare
// LF line ends, CRLF mixed with LF, NUL bytes, raw 8-bit (UTF-8 and Latin-1) header fields,
// no Message-ID, two different messages of one size under one Message-ID, two identical
// messages, the smallest message Dovecot takes, a 60 MB attachment. Each must arrive byte
// for byte, with its flags and INTERNALDATE (Maildir: mtime), as often as it was there, and
// a second sync must change nothing.
//
// What Dovecot 2.3.19 does with such input (checked by hand with its imap binary, and
// asserted below where tandem depends on it):
//  - bare LF: stored as LF (Dovecot's Maildir keeps LF), served as CRLF by BODY[] and
//    BINARY[]. So an IMAP copy of a bare-LF message reads with CRLF; the Maildir original
//    stays as it was.
//  - NUL: taken in a plain literal and in a literal8 (BINARY, RFC 3516) alike and stored;
//    BINARY[] gives it back, BODY[] serves it as 0x80.
//  - 0 bytes: "NO Can't save a zero byte message"; 1 byte ("x") is accepted.
#include "hostile_support.hpp"

#include <gtest/gtest.h>

namespace tandem::e2e {
namespace {

using hostile::as_body_section;
using hostile::crlf;
using hostile::imap_keys;
using hostile::key;
using hostile::maildir_keys;
using hostile::sorted;

const channel_kind kinds[] = {
    {"maildir", false, layout::verbatim, transport::plain},
    {"imap_imap", true, layout::verbatim, transport::plain},
};

class hostile_messages : public ::testing::TestWithParam<channel_kind> {};

struct sample {
    std::string bytes;
    std::vector<std::string> flags;
    std::int64_t date = 0;
};

// The corpus, tagged so that the two sides' messages differ.
std::vector<sample> corpus(const std::string& tag) {
    const std::string from = "From: Hostile <h@tandem.test>\r\n";
    auto id = [&](const std::string& s) { return "Message-ID: <" + s + "-" + tag + "@h.test>"; };
    std::vector<sample> out;
    // Each side's messages have dates of their own: a message without Message-ID is known by
    // its size and date, so that same-size twins across the sides would be one message (see
    // no_message_id_same_size_same_second below).
    const std::int64_t base = tag == "a" ? 1600000000 : 1610000000;
    auto add = [&](std::string bytes, std::vector<std::string> flags) {
        out.push_back({std::move(bytes), std::move(flags),
                       base + static_cast<std::int64_t>(out.size()) * 86400 + 7});
    };
    add(from + "Subject: " + tag + " plain\r\n" + id("plain") + "\r\n\r\nA plain message.\r\n",
        {"\\Seen"});
    add("From: Hostile <h@tandem.test>\nSubject: " + tag + " bare LF\n" + "Message-ID: <lf-" + tag +
            "@h.test>\n\nline one\nline two\n",
        {"\\Flagged", "$label1"});
    add(from + "Subject: " + tag + " mixed\r\n" + id("mixed") +
            "\n\r\ncrlf line\r\nlf line\nlast crlf\r\nno end",
        {"\\Answered"});
    add("From: J\xc3\xb6rg M\xc3\xbcller <j@tandem.test>\r\nSubject: " + tag +
            " Gr\xc3\xbc\xc3\x9f"
            "e \xe6\x97\xa5\xe6\x9c\xac\r\n" +
            id("utf8") + "\r\nX-Note: \xe2\x82\xac 8-bit\r\n\r\nBody \xc3\xa9.\r\n",
        {});
    add("From: Fran\xe7ois <f@tandem.test>\r\nSubject: " + tag + " caf\xe9 Latin-1\r\n" +
            id("latin1") + "\r\n\r\nCaf\xe9 cr\xe8me.\r\n",
        {"\\Seen", "\\Draft"});
    add(from + "Subject: " + tag + " no Message-ID\r\n\r\nNo id at all.\r\n", {"$Forwarded"});
    // Two different messages of the same size under one Message-ID: an identity of
    // Message-ID and size cannot tell them apart.
    add(from + "Subject: " + tag + " same id 1\r\nMessage-ID: <same-" + tag +
            "@h.test>\r\n\r\nFirst.\r\n",
        {"\\Seen"});
    add(from + "Subject: " + tag + " same id 2\r\nMessage-ID: <same-" + tag +
            "@h.test>\r\n\r\nOther.\r\n",
        {"\\Seen"});
    // Two identical messages, flags and date included: both must be copied.
    add(from + "Subject: " + tag + " twin\r\n" + id("twin") + "\r\n\r\nTwin.\r\n", {"\\Flagged"});
    out.push_back(out.back());
    // The smallest message Dovecot stores (it refuses 0 bytes).
    add(tag == "a" ? "x" : "y", {"\\Flagged"});
    return out;
}

void put(side& s, const std::vector<sample>& messages) {
    for (const auto& m : messages) s.add("INBOX", m.bytes, m.flags, m.date);
}

// The keys of `messages` as read through IMAP (BODY[]) or from the Maildir as written.
std::vector<std::string> keys(const std::vector<sample>& messages, bool via_imap) {
    std::vector<std::string> out;
    for (const auto& m : messages)
        out.push_back(key(via_imap ? as_body_section(m.bytes) : m.bytes, m.flags, m.date));
    return sorted(out);
}

std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return sorted(a);
}

std::vector<std::string> side_keys(channel_under_test& c, bool side_a) {
    if (side_a) return imap_keys(c.server(), c.user_a(), "INBOX");
    if (c.b_imap()) return imap_keys(c.server(), c.user_b(), "INBOX");
    return maildir_keys(c.b_maildir()->folder_dir("INBOX"));
}

TEST_P(hostile_messages, corpus_arrives_byte_for_byte_both_ways_and_resyncs_to_nothing) {
    channel_under_test c(shared_server(), GetParam());
    auto on_a = corpus("a"), on_b = corpus("b");
    put(c.a(), on_a);
    put(c.b(), on_b);
    // Dovecot's side of the bargain: what was APPENDed reads back with CRLF.
    ASSERT_TRUE(hostile::same_messages(side_keys(c, true), keys(on_a, true)));

    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    // Side a (IMAP) holds its own and b's messages, as IMAP serves them.
    EXPECT_TRUE(
        hostile::same_messages(side_keys(c, true), joined(keys(on_a, true), keys(on_b, true))));
    if (c.b_imap()) {
        EXPECT_TRUE(hostile::same_messages(side_keys(c, false),
                                           joined(keys(on_a, true), keys(on_b, true))));
    } else {
        // The Maildir keeps its own files as they were (bare LF too) and holds a's messages
        // exactly as BODY[] gave them.
        EXPECT_TRUE(hostile::same_messages(side_keys(c, false),
                                           joined(keys(on_a, true), keys(on_b, false))));
    }

    auto before = hostile::quiet(c);
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    EXPECT_EQ(hostile::quiet(c), before) << r2.describe();
    EXPECT_TRUE(
        hostile::same_messages(side_keys(c, true), joined(keys(on_a, true), keys(on_b, true))));
}

// NUL bytes in a Maildir message: Dovecot offers BINARY, so tandem must send them in a
// literal8 (RFC 3516 4.3; a plain literal cannot carry NUL) and the server must hold them:
// read back with BINARY[], which gives NUL where BODY[] would give 0x80.
TEST(hostile_messages_maildir, nul_bytes_from_the_maildir_reach_the_server) {
    channel_under_test c(shared_server(), kinds[0]);
    const std::string nul = std::string("From: Hostile <h@tandem.test>\r\nSubject: nul b\r\n") +
                            "Message-ID: <nul-b@h.test>\r\n\r\nA" + std::string(1, '\0') + "B" +
                            std::string(3, '\0') + "C\nD\r\n";
    c.b().add("INBOX", nul, {"\\Seen"}, 1650000000);
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(hostile::same_messages(imap_keys(c.server(), c.user_a(), "INBOX", true),
                                       {key(crlf(nul), {"\\Seen"}, 1650000000)}));
    EXPECT_TRUE(hostile::same_messages(imap_keys(c.server(), c.user_a(), "INBOX"),
                                       {key(as_body_section(nul), {"\\Seen"}, 1650000000)}));
    auto before = hostile::quiet(c);
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    EXPECT_EQ(hostile::quiet(c), before) << r2.describe();
}

// A 60 MB attachment (base64, 76-column lines): in IMAP-Maildir from the Maildir up to the
// server, in IMAP-IMAP from one account to the other.
TEST_P(hostile_messages, sixty_megabyte_attachment) {
    channel_under_test c(shared_server(), GetParam());
    std::string payload(45u * 1024 * 1024, '\0');
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    for (char& ch : payload) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ch = static_cast<char>(x);
    }
    auto encoded = base64(payload);
    payload.clear();
    payload.shrink_to_fit();
    std::string big =
        "From: Hostile <h@tandem.test>\r\nSubject: big\r\nMessage-ID: <big@h.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
        "--b0\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n--b0\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=\"big.bin\"\r\n\r\n";
    big.reserve(big.size() + encoded.size() + encoded.size() / 38 + 64);
    for (std::size_t i = 0; i < encoded.size(); i += 76) big += encoded.substr(i, 76) + "\r\n";
    encoded.clear();
    encoded.shrink_to_fit();
    big += "--b0--\r\n";
    ASSERT_GT(big.size(), 60u * 1000 * 1000);
    const auto want = key(big, {"\\Seen"}, 1660000000);

    side& from = c.b_imap() ? static_cast<side&>(c.a()) : c.b();
    from.add("INBOX", big, {"\\Seen"}, 1660000000);
    big.clear();
    big.shrink_to_fit();
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(hostile::same_messages(side_keys(c, !c.b_imap()), std::vector<std::string>{want}));
    auto before = hostile::quiet(c);
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    EXPECT_EQ(hostile::quiet(c), before) << r2.describe();
}

// A 0-byte file in the Maildir: Dovecot refuses to store it ("NO Can't save a zero byte
// message"; 1 byte is the smallest it takes, in the corpus above). The run fails that mailbox
// and says why, naming it; the file stays, and the next run does the same, no more.
TEST(hostile_messages_maildir, zero_byte_file_is_refused_by_the_server_and_named) {
    channel_under_test c(shared_server(), kinds[0]);
    c.b().create("Empty");
    c.b().add("Empty", "", {"\\Seen"}, 1650000000);
    c.a().add_new("INBOX", "fine");
    for (int run = 1; run <= 2; ++run) {
        SCOPED_TRACE("run " + std::to_string(run));
        auto r = c.sync();
        EXPECT_EQ(r.exit_code, 1) << r.describe();
        bool said = false;
        std::istringstream lines(r.all());
        for (std::string line; std::getline(lines, line);)
            said = said || (contains(line, "Empty") && contains(line, "zero byte"));
        EXPECT_TRUE(said) << r.describe();
        EXPECT_EQ(imap_keys(c.server(), c.user_a(), "Empty"), std::vector<std::string>{});
        EXPECT_EQ(maildir_keys(c.b_maildir()->folder_dir("Empty")),
                  std::vector<std::string>{key("", {"\\Seen"}, 1650000000)});
        // The other mailboxes sync all the same.
        EXPECT_EQ(c.b().snapshot()["INBOX"], c.a().snapshot()["INBOX"]);
    }
}

// Maildir file names as other programs leave them: no info in new/, spaces and a backslash
// in the base, an unknown upper-case letter (kept on rename), a "1," info, '!' in a base, a
// keyword letter with no line in dovecot-keywords. Each message reaches the server with the
// flags its name says; the next run renames and uploads nothing.
TEST(hostile_messages_maildir, odd_file_names_sync_and_stay) {
    channel_under_test c(shared_server(), kinds[0]);
    c.b().create("INBOX");
    const auto dir = c.b_maildir()->folder_dir("INBOX");
    const std::vector<std::pair<std::string, std::vector<std::string>>> files{
        {"new/1700000001.plain.host", {}},
        {"cur/1700000002.with space\\and backslash.host:2,S", {"\\Seen"}},
        {"cur/1700000003.unknown.host:2,FSZ", {"\\Flagged", "\\Seen"}},
        {"cur/1700000004.experimental.host:1,whatever", {}},
        {"cur/1700000005.bang!name.host:2,R", {"\\Answered"}},
        {"cur/1700000006.nokeyword.host:2,Sq", {"\\Seen"}},
    };
    std::vector<std::string> want;
    int i = 0;
    for (const auto& [name, flags] : files) {
        auto m = test::make_message("odd " + std::to_string(++i));
        write_file(dir / name, m);
        timespec times[2] = {{1650000000 + i, 0}, {1650000000 + i, 0}};
        ::utimensat(AT_FDCWD, (dir / name).c_str(), times, 0);
        want.push_back(key(m, flags, 1650000000 + i));
    }
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(hostile::same_messages(imap_keys(c.server(), c.user_a(), "INBOX"), sorted(want)));
    // Z and the unmapped q stay in the names.
    auto names = maildir_files(c.w.maildir());
    EXPECT_EQ(std::count_if(names.begin(), names.end(),
                            [](const std::string& n) { return n.ends_with(":2,FSZ"); }),
              1)
        << ::testing::PrintToString(names);
    auto before = hostile::quiet(c);
    auto r2 = c.sync();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    EXPECT_EQ(hostile::quiet(c), before) << r2.describe();
}

INSTANTIATE_TEST_SUITE_P(kinds, hostile_messages, ::testing::ValuesIn(kinds), kind_name);

}  // namespace
}  // namespace tandem::e2e
