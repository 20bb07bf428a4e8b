// SPDX-License-Identifier: MIT
// `tandem sync` against a server that answers badly (tests/support/fake_imap_server): NO
// [OVERQUOTA] to an APPEND, BYE in the middle of a FETCH, unsolicited FETCH and EXPUNGE
// responses in the middle of other commands, a line that does not parse. Each ends in a
// clear message (the server's own words where it gave some), no crash and no hang; where
// the journal matters, a following run against a well-behaved script completes and copies
// nothing twice.
#include "../sync/e2e_support.hpp"
#include "support/fake_imap_server.hpp"

#include <gtest/gtest.h>

namespace tandem::e2e {
namespace {

using fis = test::fake_imap_server;

const std::string date = "\"05-Mar-2024 10:20:30 +0100\"";

std::string server_message(int n) {
    return test::make_message("s" + std::to_string(n),
                              "Server message " + std::to_string(n) + ".\r\n",
                              "<s" + std::to_string(n) + "@fake.test>");
}

// The answer to the listing FETCH (UID FLAGS RFC822.SIZE INTERNALDATE ... Message-ID) for
// message `n` (sequence number = UID = n).
std::string listing(int n, const std::string& flags = "\\Seen") {
    auto m = server_message(n);
    std::string header = "Message-ID: <s" + std::to_string(n) + "@fake.test>\r\n\r\n";
    return "* " + std::to_string(n) + " FETCH (UID " + std::to_string(n) + " FLAGS (" + flags +
           ") RFC822.SIZE " + std::to_string(m.size()) + " INTERNALDATE " + date +
           " BODY[HEADER.FIELDS (MESSAGE-ID)] {" + std::to_string(header.size()) + "}\r\n" +
           header + ")";
}

std::string body_fetch(int n) {
    auto m = server_message(n);
    return "* " + std::to_string(n) + " FETCH (UID " + std::to_string(n) + " BODY[] {" +
           std::to_string(m.size()) + "}\r\n" + m + ")";
}

// Login, the listing and the SELECT of an INBOX holding `messages` (UIDs 1..messages).
std::vector<fis::step> open_inbox(int messages) {
    auto n = std::to_string(messages);
    auto next = std::to_string(messages + 1);
    return {
        fis::send("* OK [CAPABILITY IMAP4rev1] fake ready"),
        fis::expect(R"((\S+) LOGIN .*)"),
        fis::send("$tag OK [CAPABILITY IMAP4rev1] logged in"),
        fis::expect(R"((\S+) LIST "" \*)"),
        fis::send(R"(* LIST () "/" INBOX)"),
        fis::send("$tag OK listed"),
        fis::expect(R"((\S+) STATUS INBOX \(MESSAGES UIDNEXT UIDVALIDITY\))"),
        fis::send("* STATUS INBOX (MESSAGES " + n + " UIDNEXT " + next + " UIDVALIDITY 5)"),
        fis::send("$tag OK status"),
        fis::expect(R"((\S+) SELECT INBOX)"),
        fis::send("* " + n + " EXISTS"),
        fis::send("* OK [UIDVALIDITY 5] ok"),
        fis::send("* OK [UIDNEXT " + next + "] ok"),
        fis::send("$tag OK [READ-WRITE] selected"),
    };
}

std::vector<fis::step> operator+(std::vector<fis::step> a, const std::vector<fis::step>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

class scripted {
  public:
    explicit scripted(std::vector<fis::step> script)
        : server_(std::make_unique<fis>(std::move(script))) {
        write_config();
    }
    void next_script(std::vector<fis::step> script) {
        server_ = std::make_unique<fis>(std::move(script));
        write_config();
    }
    run_result sync() const {
        run_options o;
        o.timeout = 40s;
        return w.run({"sync"}, o);
    }
    fis& server() { return *server_; }
    world w;

  private:
    void write_config() {
        auto pw = w.root() / "password";
        if (!fs::exists(pw)) write_file(pw, "fake-secret\n", fs::perms(0600));
        w.write_config(w.general() + "[store.fake]\ntype = imap\nhost = 127.0.0.1\nport = " +
                       std::to_string(server_->port()) +
                       "\ntls = none\nallow-plaintext = yes\ntimeout = 3s\nuser = u\n"
                       "password-file = " +
                       pw.string() + "\n\n" + w.maildir_store("local") +
                       w.channel("c", "fake", "local"));
    }
    std::unique_ptr<fis> server_;
};

::testing::AssertionResult ended_cleanly(const run_result& r) {
    if (r.timed_out) return ::testing::AssertionFailure() << "hung:\n" << r.describe();
    if (r.signal) return ::testing::AssertionFailure() << "crashed:\n" << r.describe();
    if (r.exit_code != 1 && r.exit_code != 3)
        return ::testing::AssertionFailure() << "neither 1 nor 3:\n" << r.describe();
    if (!contains(r.err, "error"))
        return ::testing::AssertionFailure() << "no error message:\n" << r.describe();
    return ::testing::AssertionSuccess();
}

std::size_t maildir_messages(const fs::path& root) {
    return maildir_files(root).size();
}

// Over quota (RFC 5530): the server's words reach the user, the mailbox is reported failed
// (exit 1), and the local message is still there to be copied later.
TEST(bad_server, over_quota_on_append_is_reported_in_the_servers_words) {
    auto local = test::make_message("local", "Local message.\r\n", "<local@tandem.test>");
    scripted s(open_inbox(0) +
               std::vector<fis::step>{
                   // Selected again for the APPEND.
                   fis::expect(R"((\S+) SELECT INBOX)"),
                   fis::send("* 0 EXISTS"),
                   fis::send("* OK [UIDVALIDITY 5] ok"),
                   fis::send("* OK [UIDNEXT 1] ok"),
                   fis::send("$tag OK [READ-WRITE] selected"),
                   fis::expect(R"((\S+) APPEND INBOX .*\{(\d+)\+?\})"),
                   fis::send("+ go ahead"),
                   fis::expect_bytes(local.size()),
                   fis::expect(""),
                   fis::send("$tag NO [OVERQUOTA] Quota exceeded (mailbox for user is full)"),
               });
    fs::create_directories(s.w.maildir() / "INBOX" / "new");
    fs::create_directories(s.w.maildir() / "INBOX" / "tmp");
    write_file(s.w.maildir() / "INBOX" / "cur" / "1700000000.M1P1.host:2,S", local);
    auto r = s.sync();
    EXPECT_TRUE(s.server().finished()) << s.server().received();
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(contains(r.err, "Quota exceeded (mailbox for user is full)")) << r.describe();
    EXPECT_TRUE(contains(r.err, "INBOX")) << r.describe();
    EXPECT_EQ(maildir_messages(s.w.maildir()), 1u);
}

// BYE while the listing FETCH is under way: a clean error with the server's text; the next
// run, against a server that behaves, copies every message once.
TEST(bad_server, bye_in_the_middle_of_a_fetch_then_a_good_run_copies_everything_once) {
    scripted s(open_inbox(3) +
               std::vector<fis::step>{
                   fis::expect(R"((\S+) UID FETCH 1:\* .*)"),
                   fis::send(listing(1)),
                   fis::send("* BYE [UNAVAILABLE] Server shutting down for maintenance"),
                   fis::close(),
               });
    auto r = s.sync();
    EXPECT_TRUE(s.server().finished());
    EXPECT_TRUE(ended_cleanly(r));
    EXPECT_TRUE(contains(r.all(), "Server shutting down for maintenance")) << r.describe();

    s.next_script(open_inbox(3) +
                  std::vector<fis::step>{
                      fis::expect(R"((\S+) UID FETCH 1:\* .*)"),
                      fis::send(listing(1)),
                      fis::send(listing(2)),
                      fis::send(listing(3)),
                      fis::send("$tag OK fetched"),
                      fis::expect(R"((\S+) UID FETCH 1:3 \(UID RFC822\.SIZE BODY\.PEEK\[\]\))"),
                      fis::send(body_fetch(1)),
                      fis::send(body_fetch(2)),
                      fis::send(body_fetch(3)),
                      fis::send("$tag OK fetched"),
                  });
    auto r2 = s.sync();
    EXPECT_TRUE(s.server().finished()) << s.server().received();
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    auto snap = snapshot_maildir(s.w.maildir());
    ASSERT_EQ(snap["INBOX"].size(), 3u);
    for (int i = 1; i <= 3; ++i)
        EXPECT_EQ(flags_of(snap, "INBOX", "s" + std::to_string(i)), "\\Seen");
}

// Unsolicited responses in the middle of other commands (RFC 9051 section 7: a client
// must accept them at any time): a flag update without UID during the listing, an
// EXISTS and a flag update during the body FETCH. The run completes or fails cleanly,
// and whatever it copied it copied once, with content intact.
TEST(bad_server, unsolicited_fetch_and_exists_during_other_commands) {
    scripted s(open_inbox(2) +
               std::vector<fis::step>{
                   fis::expect(R"((\S+) UID FETCH 1:\* .*)"),
                   fis::send(listing(1)),
                   fis::send(R"(* 1 FETCH (FLAGS (\Seen \Flagged)))"),
                   fis::send(listing(2)),
                   fis::send("* 2 RECENT"),
                   fis::send("$tag OK fetched"),
                   fis::expect(R"((\S+) UID FETCH 1:2 \(UID RFC822\.SIZE BODY\.PEEK\[\]\))"),
                   fis::send(R"(* 2 FETCH (FLAGS (\Seen \Answered)))"),
                   fis::send(body_fetch(1)),
                   fis::send("* 3 EXISTS"),
                   fis::send(body_fetch(2)),
                   fis::send("$tag OK fetched"),
               });
    auto r = s.sync();
    EXPECT_TRUE(s.server().finished()) << s.server().received();
    EXPECT_FALSE(r.timed_out) << r.describe();
    EXPECT_EQ(r.signal, 0) << r.describe();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    auto snap = snapshot_maildir(s.w.maildir());
    EXPECT_EQ(snap["INBOX"].size(), 2u);
    EXPECT_EQ(find(snap, "INBOX", "s1").size(), 1u);
    EXPECT_EQ(find(snap, "INBOX", "s2").size(), 1u);
    for (const auto& e : snap["INBOX"]) {
        auto subject = entry_subject(e);
        EXPECT_EQ(e.substr(0, e.rfind('|')),
                  subject + "|" + digest(server_message(std::stoi(subject.substr(1)))))
            << "copied byte for byte";
    }
}

// An EXPUNGE of a listed message before its body is fetched: the body FETCH answers only
// for the others. No error is invented and nothing is copied twice on the next run.
TEST(bad_server, expunge_between_listing_and_body_fetch) {
    scripted s(
        open_inbox(3) +
        std::vector<fis::step>{
            fis::expect(R"((\S+) UID FETCH 1:\* .*)"),
            fis::send(listing(1)),
            fis::send(listing(2)),
            fis::send(listing(3)),
            fis::send("$tag OK fetched"),
            fis::expect(R"((\S+) UID FETCH 1:3 \(UID RFC822\.SIZE BODY\.PEEK\[\]\))"),
            fis::send("* 2 EXPUNGE"),
            fis::send(body_fetch(1)),
            // Message 3 is sequence number 2 now.
            fis::send("* 2 FETCH (UID 3 BODY[] {" + std::to_string(server_message(3).size()) +
                      "}\r\n" + server_message(3) + ")"),
            fis::send("$tag OK fetched"),
        });
    auto r = s.sync();
    EXPECT_FALSE(r.timed_out) << r.describe();
    EXPECT_EQ(r.signal, 0) << r.describe();
    EXPECT_TRUE(r.exit_code == 0 || ended_cleanly(r)) << r.describe();
    auto snap = snapshot_maildir(s.w.maildir());
    EXPECT_EQ(find(snap, "INBOX", "s1").size(), 1u);
    EXPECT_EQ(find(snap, "INBOX", "s2").size(), 0u) << "no body was sent for it";
    EXPECT_LE(find(snap, "INBOX", "s3").size(), 1u);
}

// Lines that do not parse: a clean protocol error, no crash, no hang, nothing written.
TEST(bad_server, a_garbage_line_is_a_clean_protocol_error) {
    for (const std::string& garbage :
         {std::string("* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE ((({\x01\x02 garbage"),
          std::string("* 1 FETCH (UID 1 BODY[] {99999999999999999999}"),
          std::string("\x16\x03\x01\x02\x00 not imap at all"), std::string(")))) \"unbalanced")}) {
        SCOPED_TRACE(garbage);
        scripted s(open_inbox(1) + std::vector<fis::step>{
                                       fis::expect(R"((\S+) UID FETCH 1:\* .*)"),
                                       fis::send(garbage),
                                       fis::send("$tag OK fetched"),
                                       fis::wait(5s),
                                   });
        auto r = s.sync();
        EXPECT_TRUE(ended_cleanly(r));
        EXPECT_EQ(maildir_messages(s.w.maildir()), 0u);
    }
    // A greeting that is not IMAP: the connection fails (exit 3).
    scripted s({fis::send("SSH-2.0-OpenSSH_9.2p1 Debian-2"), fis::wait(5s)});
    auto r = s.sync();
    EXPECT_TRUE(ended_cleanly(r));
    EXPECT_EQ(r.exit_code, 3) << r.describe();
}

}  // namespace
}  // namespace tandem::e2e
