// SPDX-License-Identifier: MIT
// `tandem sync` against a server that refuses every APPEND (NO [OVERQUOTA], RFC 5530): the
// refused batch is tried again one message at a time, but a server that refuses the first
// messages alike is not asked for each of the others.
#include "../sync/e2e_support.hpp"
#include "support/fake_imap_server.hpp"

#include <gtest/gtest.h>

namespace tandem::e2e {
namespace {

using fis = test::fake_imap_server;

constexpr const char* caps = "IMAP4rev1 MULTIAPPEND UIDPLUS";
constexpr const char* quota = "NO [OVERQUOTA] Quota exceeded (mailbox for user is full)";

std::string local_message(int n) {
    return test::make_message("l" + std::to_string(n),
                              "Local message " + std::to_string(n) + ".\r\n",
                              "<l" + std::to_string(n) + "@tandem.test>");
}

// Login, the listing and the SELECT of an empty INBOX.
std::vector<fis::step> open_empty_inbox() {
    return {
        fis::send(std::string("* OK [CAPABILITY ") + caps + "] fake ready"),
        fis::expect(R"((\S+) LOGIN .*)"),
        fis::send(std::string("$tag OK [CAPABILITY ") + caps + "] logged in"),
        fis::expect(R"((\S+) LIST "" \*)"),
        fis::send(R"(* LIST () "/" INBOX)"),
        fis::send("$tag OK listed"),
        fis::expect(R"((\S+) STATUS INBOX \(MESSAGES UIDNEXT UIDVALIDITY\))"),
        fis::send("* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 5)"),
        fis::send("$tag OK status"),
        fis::expect(R"((\S+) SELECT INBOX)"),
        fis::send("* 0 EXISTS"),
        fis::send("* OK [UIDVALIDITY 5] ok"),
        fis::send("* OK [UIDNEXT 1] ok"),
        fis::send("$tag OK [READ-WRITE] selected"),
    };
}

std::size_t count_appends(const fis& server) {
    std::size_t n = 0;
    for (const auto& line : server.received_lines())
        if (line.find(" APPEND ") != std::string::npos) ++n;
    return n;
}

TEST(refusal, a_server_refusing_every_append_is_tried_only_a_few_times_alone) {
    constexpr int count = 6;
    auto script = open_empty_inbox();
    // The batch, as one MULTIAPPEND (RFC 3502), refused as a whole.
    for (int n = 1; n <= count; ++n) {
        // The tag is kept as $1: a line that goes on after a literal has none.
        script.push_back(fis::expect(n == 1 ? R"((\S+) APPEND INBOX .*\{\d+\})" : R"( .*\{\d+\})"));
        script.push_back(fis::send("+ go ahead"));
        script.push_back(fis::expect_bytes(local_message(n).size()));
    }
    script.push_back(fis::expect(""));
    script.push_back(fis::send(std::string("$1 ") + quota));
    // Whether anything of it landed: the selected INBOX, selected afresh.
    script.push_back(fis::expect(R"((\S+) SELECT INBOX.*)"));
    script.push_back(fis::send("* 0 EXISTS"));
    script.push_back(fis::send("* OK [UIDVALIDITY 5] ok"));
    script.push_back(fis::send("* OK [UIDNEXT 1] ok"));
    script.push_back(fis::send("$tag OK [READ-WRITE] selected"));
    // One at a time: three refusals in the same words, then no more. Like Dovecot, each
    // answer ends with the time it took, which differs.
    for (int n = 1; n <= 3; ++n) {
        script.push_back(fis::expect(R"((\S+) APPEND INBOX .*\{(\d+)\})"));
        script.push_back(fis::send("+ go ahead"));
        script.push_back(fis::expect_bytes(local_message(n).size()));
        script.push_back(fis::expect(""));
        script.push_back(fis::send(std::string("$tag ") + quota + " (0.00" + std::to_string(n) +
                                   " + 0.000 secs)."));
    }
    script.push_back(fis::expect(R"((\S+) LOGOUT)"));
    script.push_back(fis::send("* BYE logging out"));
    script.push_back(fis::send("$tag OK bye"));
    fis server(std::move(script));

    world w;
    auto pw = w.root() / "password";
    write_file(pw, "fake-secret\n", fs::perms(0600));
    w.write_config(
        w.general() +
        "[store.fake]\ntype = imap\nhost = 127.0.0.1\nport = " + std::to_string(server.port()) +
        "\ntls = none\nallow-plaintext = yes\ntimeout = 3s\nuser = u\n"
        "password-file = " +
        pw.string() + "\n\n" + w.maildir_store("local") + w.channel("c", "fake", "local"));
    fs::create_directories(w.maildir() / "INBOX" / "new");
    fs::create_directories(w.maildir() / "INBOX" / "tmp");
    for (int n = 1; n <= count; ++n)
        write_file(w.maildir() / "INBOX" / "cur" /
                       ("170000000" + std::to_string(n) + ".M" + std::to_string(n) + "P1.host:2,S"),
                   local_message(n));
    run_options o;
    o.timeout = 40s;
    auto r = w.run({"sync"}, o);
    EXPECT_TRUE(server.finished()) << server.received();
    EXPECT_EQ(count_appends(server), 1u + 3u) << server.received();
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(contains(r.err, "Quota exceeded (mailbox for user is full)")) << r.describe();
    EXPECT_TRUE(contains(r.err, "INBOX")) << r.describe();
    EXPECT_EQ(maildir_files(w.maildir()).size(), std::size_t(count)) << "nothing lost locally";
}

}  // namespace
}  // namespace tandem::e2e
