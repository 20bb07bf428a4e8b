// SPDX-License-Identifier: MIT
// The session against a scripted server: a small Python program run as the tunnel, which
// checks each command it reads and answers as told. It shows what Dovecot will not: a
// server without LITERAL+ or MOVE, an iCloud-like ENABLE, unsolicited data in odd places.
#include "tandem/client/session.hpp"

#include "tandem/util/base64.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

namespace tandem::client {
namespace {

using namespace std::chrono_literals;
using imap::uid_set;

// argv: greeting, then pairs (expect, reply). A command is read whole, literals included;
// `expect` must occur in it, else the answer is `tag BAD unexpected: ...`. `{tag}` in a
// reply is the command's tag. An expect starting with "LINE:" reads one bare line (a SASL
// response, DONE). One starting with "REJECT:" answers the first synchronizing literal
// with the reply instead of `+`; "EXACT:" wants the whole command (after the tag) equal.
// A reply ending in "<CLOSE>" is sent, then the server hangs up. A synchronizing literal whose
// bytes come before the `+` is answered `BAD literal before continuation`.
constexpr const char* fake_server = R"PY(
import os, re, select, sys
args = sys.argv[1:]
buf = b''
def fill():
    global buf
    d = os.read(0, 65536)
    if not d:
        sys.exit(0)
    buf += d
def readline():
    global buf
    while b'\r\n' not in buf:
        fill()
    line, buf = buf.split(b'\r\n', 1)
    return line
def readn(n):
    global buf
    while len(buf) < n:
        fill()
    data, buf = buf[:n], buf[n:]
    return data
def early():
    return len(buf) > 0 or bool(select.select([0], [], [], 0.2)[0])
def send(s):
    os.write(1, s.encode('utf-8', 'surrogateescape'))
send(args[0])
steps = args[1:]
for i in range(0, len(steps), 2):
    expect, reply = steps[i], steps[i + 1]
    if expect.startswith('LINE:'):
        line = readline().decode('utf-8', 'surrogateescape')
        if expect[5:] not in line:
            send('* BAD unexpected line: ' + line + '\r\n')
        send(reply.replace('{tag}', tag))
        continue
    reject = expect.startswith('REJECT:')
    if reject:
        expect = expect[7:]
    exact = expect.startswith('EXACT:')
    if exact:
        expect = expect[6:]
    line = readline()
    full = line
    tag = line.split(b' ', 1)[0].decode()
    rejected = False
    while True:
        m = re.search(rb'\{(\d+)(\+?)\}$', line)
        if not m:
            break
        n = int(m.group(1))
        if not m.group(2):
            if early():
                send(tag + ' BAD literal before continuation\r\n')
                sys.exit(1)
            if reject:
                rejected = True
                break
            send('+ go\r\n')
        full += b'\r\n' + readn(n)
        line = readline()
        full += line
    text = full.decode('utf-8', 'surrogateescape')
    if (exact and text.split(' ', 1)[1] != expect) or expect not in text:
        send(tag + ' BAD unexpected: ' + text[:200] + '\r\n')
        continue
    if reply.endswith('<CLOSE>'):
        send(reply[:-7].replace('{tag}', tag))
        sys.exit(0)
    send(reply.replace('{tag}', tag))
while True:
    fill()
)PY";

constexpr const char* caps_basic = "IMAP4rev1 UIDPLUS ENABLE CONDSTORE QRESYNC ESEARCH";

struct scripted {
    std::vector<std::string> trace;
    endpoint ep;

    explicit scripted(std::string greeting, std::vector<std::string> steps) {
        ep.tunnel = {"python3", "-c", fake_server, std::move(greeting)};
        for (auto& s : steps) ep.tunnel.push_back(std::move(s));
        ep.user = "alice";
        ep.secret = "s3cret-pw";
        ep.read_timeout = 5s;
        ep.compress = compress_mode::no;
        ep.id.clear();
        ep.trace = [this](trace_direction d, std::string_view line) {
            trace.push_back((d == trace_direction::client   ? "C: "
                             : d == trace_direction::server ? "S: "
                                                            : "I: ") +
                            std::string(line));
        };
    }
    std::string transcript() const {
        std::string s;
        for (auto& l : trace) s += l + "\n";
        return s;
    }
};

std::string preauth(std::string caps = caps_basic) {
    return "* PREAUTH [CAPABILITY " + caps + "] ready\r\n";
}

// The opening that every PREAUTH script starts with: ENABLE QRESYNC.
std::vector<std::string> with_enable(std::vector<std::string> rest) {
    std::vector<std::string> steps = {"ENABLE QRESYNC",
                                      "* ENABLED QRESYNC\r\n{tag} OK enabled\r\n"};
    steps.insert(steps.end(), rest.begin(), rest.end());
    return steps;
}

TEST(session, synchronizing_literals_wait_for_the_continuation) {
    // No LITERAL+: each APPEND literal waits for `+`; the server checks nothing came early.
    scripted s(preauth("IMAP4rev1 UIDPLUS"),
               {"APPEND INBOX (\\Seen) {5}\r\nfirst", "{tag} OK [APPENDUID 7 1] done\r\n",
                "APPEND INBOX {6}\r\nsecond", "{tag} OK [APPENDUID 7 2] done\r\n"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    mail::flag_set seen;
    seen.set(mail::system_flag::seen);
    auto a = (*c)->append("INBOX", {{seen, std::nullopt, imap::literal_data::from_memory("first")},
                                    {{}, std::nullopt, imap::literal_data::from_memory("second")}});
    ASSERT_TRUE(a) << (*c)->last_error().describe() << "\n" << s.transcript();
    EXPECT_EQ(a->uidvalidity, 7u);
    EXPECT_EQ(a->uids, (std::vector<mail::uid>{1, 2}));
}

TEST(session, literal_plus_sends_at_once_and_multiappend_pairs_uids_in_order) {
    scripted s(preauth("IMAP4rev1 UIDPLUS LITERAL+ MULTIAPPEND"),
               {"APPEND Sent {3+}\r\nabc {4+}\r\ndefg", "{tag} OK [APPENDUID 9 12:11] done\r\n"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    auto a = (*c)->append("Sent", {{{}, std::nullopt, imap::literal_data::from_memory("abc")},
                                   {{}, std::nullopt, imap::literal_data::from_memory("defg")}});
    ASSERT_TRUE(a) << (*c)->last_error().describe() << "\n" << s.transcript();
    // RFC 4315 3: 12:11 is the same set as 11:12, in order.
    EXPECT_EQ(a->uids, (std::vector<mail::uid>{11, 12}));
}

TEST(session, multiappend_goes_in_commands_of_at_most_250_messages_in_one_flight) {
    // 300 messages: APPEND of 250, then APPEND of 50, each checked whole by the server.
    auto body = [](int i) {
        std::string b = std::to_string(i);
        return "m" + std::string(3 - b.size(), '0') + b;
    };
    auto command = [&](int from, int to) {
        std::string c = "APPEND Sent";
        for (int i = from; i < to; ++i) c += " {4+}\r\n" + body(i);
        return c;
    };
    scripted s(preauth("IMAP4rev1 UIDPLUS LITERAL+ MULTIAPPEND"),
               {"EXACT:" + command(0, 250), "{tag} OK [APPENDUID 9 1:250] done\r\n",
                "EXACT:" + command(250, 300), "{tag} OK [APPENDUID 9 251:300] done\r\n"});
    s.ep.trace = nullptr;  // 300 literals
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c);
    std::vector<append_item> items;
    for (int i = 0; i < 300; ++i)
        items.push_back({{}, std::nullopt, imap::literal_data::from_memory(body(i))});
    auto a = (*c)->append("Sent", items);
    ASSERT_TRUE(a) << (*c)->last_error().describe();
    ASSERT_EQ(a->uids.size(), 300u);
    for (std::size_t i = 0; i < 300; ++i) EXPECT_EQ(a->uids[i], i + 1) << i;
}

TEST(session, multiappend_commands_stay_under_8_mib) {
    // Four messages of 3 MiB: two per command (a third would pass 8 MiB).
    std::string big(3 * 1024 * 1024, 'x');
    scripted s(preauth("IMAP4rev1 UIDPLUS LITERAL+ MULTIAPPEND"),
               {"APPEND Sent {3145728+}", "{tag} OK [APPENDUID 9 1:2] done\r\n",
                "APPEND Sent {3145728+}", "{tag} OK [APPENDUID 9 3:4] done\r\n"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    std::vector<append_item> items;
    for (int i = 0; i < 4; ++i)
        items.push_back({{}, std::nullopt, imap::literal_data::from_memory(big)});
    auto a = (*c)->append("Sent", items);
    ASSERT_TRUE(a) << (*c)->last_error().describe() << "\n" << s.transcript();
    EXPECT_EQ(a->uids, (std::vector<mail::uid>{1, 2, 3, 4}));
    std::size_t appends = 0;
    for (auto& l : s.trace)
        if (l.find("C: ") == 0 && l.find("APPEND") != std::string::npos) ++appends;
    EXPECT_EQ(appends, 2u) << s.transcript();
}

TEST(session, a_refused_synchronizing_literal_is_not_sent_and_the_error_has_the_server_text) {
    scripted s(preauth("IMAP4rev1 UIDPLUS"),
               {"REJECT:APPEND Sent", "{tag} NO [OVERQUOTA] Quota exceeded\r\n", "NOOP",
                "{tag} OK still here\r\n"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    auto a = (*c)->append("Sent", {{{}, std::nullopt, imap::literal_data::from_memory("body")}});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error(), errc::command_failed);
    EXPECT_EQ((*c)->last_error().describe(), "[OVERQUOTA] Quota exceeded");
    auto n = (*c)->noop();
    ASSERT_TRUE(n) << s.transcript();
    EXPECT_EQ(n->text, "still here");
}

TEST(session, untagged_data_goes_to_its_command_and_the_rest_is_kept) {
    scripted s(preauth(),
               with_enable({"SELECT INBOX (CONDSTORE)",
                            "* 3 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n* OK [UIDNEXT 20] x\r\n"
                            "* OK [HIGHESTMODSEQ 100] x\r\n{tag} OK [READ-WRITE] selected\r\n",
                            "UID FETCH 10:11 (UID FLAGS)",
                            "* 1 FETCH (UID 10 FLAGS (\\Seen) MODSEQ (90))\r\n"
                            "* 3 FETCH (UID 15 FLAGS (\\Flagged) MODSEQ (101))\r\n"
                            "* 2 FETCH (UID 11 FLAGS () MODSEQ (95))\r\n"
                            "* VANISHED 12\r\n"
                            "{tag} OK done\r\n"}));
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    auto sel = (*c)->select("INBOX");
    ASSERT_TRUE(sel) << s.transcript();
    EXPECT_EQ(sel->exists, 3u);
    EXPECT_EQ(sel->uidvalidity, 5u);
    EXPECT_EQ(sel->uidnext, 20u);
    EXPECT_EQ(sel->highestmodseq, 100u);
    std::vector<mail::uid> got;
    auto f = (*c)->uid_fetch(uid_set{{10, 11}}, {"FLAGS"},
                             [&](imap::fetch_data&& d) { got.push_back(*d.uid); });
    ASSERT_TRUE(f) << (*c)->last_error().describe() << s.transcript();
    EXPECT_EQ(got, (std::vector<mail::uid>{10, 11}));
    EXPECT_EQ(f->max_modseq, 95u);
    auto u = (*c)->take_unsolicited();
    ASSERT_EQ(u.size(), 2u);
    auto* other = std::get_if<imap::fetch_data>(&u[0].data);
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(other->uid.value_or(0), 15u);
    EXPECT_EQ(u[0].mailbox, "INBOX");
    auto* v = std::get_if<imap::vanished_data>(&u[1].data);
    ASSERT_NE(v, nullptr);
    EXPECT_TRUE(v->uids.contains(12));
    EXPECT_TRUE((*c)->take_unsolicited().empty());
}

TEST(session, pipelined_commands_complete_out_of_the_order_they_are_waited_for) {
    std::vector<std::string> steps;
    for (int i = 0; i < 50; ++i)
        steps.insert(steps.end(), {"NOOP", "{tag} OK noop " + std::to_string(i) + "\r\n"});
    scripted s(preauth("IMAP4rev1"), steps);
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    std::vector<std::string> tags;
    for (int i = 0; i < 50; ++i) {
        auto t = (*c)->send(imap::cmd::noop());
        ASSERT_TRUE(t);
        tags.push_back(*t);
    }
    // The last first: everything before it is read and kept.
    auto last = (*c)->wait(tags.back());
    ASSERT_TRUE(last) << s.transcript();
    EXPECT_EQ(last->text, "noop 49");
    for (int i = 0; i < 49; ++i) {
        auto r = (*c)->wait(tags[static_cast<std::size_t>(i)]);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->text, "noop " + std::to_string(i));
    }
    // A tag waited for twice is no longer known.
    EXPECT_FALSE((*c)->wait(tags.front()));
}

TEST(session, copyuid_pairs_uids_in_the_order_the_server_wrote_them) {
    scripted s(preauth("IMAP4rev1 UIDPLUS MOVE"),
               {"UID MOVE 1,3 Archive",
                "* OK [COPYUID 44 3,1 100:101] moved\r\n* 1 EXPUNGE\r\n"
                "* 2 EXPUNGE\r\n{tag} OK done\r\n"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    auto m = (*c)->uid_move(uid_set{{1, 1}, {3, 3}}, "Archive");
    ASSERT_TRUE(m) << s.transcript();
    EXPECT_EQ(m->uidvalidity, 44u);
    using pair = std::pair<mail::uid, mail::uid>;
    EXPECT_EQ(m->mapping, (std::vector<pair>{{3, 100}, {1, 101}}));
    EXPECT_EQ((*c)->take_unsolicited().size(), 2u);  // the two EXPUNGEs
}

TEST(session, missing_extensions_are_reported_before_anything_is_sent) {
    scripted s(preauth("IMAP4rev1"), {"NOOP", "{tag} OK\r\n"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    EXPECT_EQ((*c)->uid_expunge(uid_set{{1, 1}}).error(), errc::missing_capability);
    EXPECT_EQ((*c)->uid_move(uid_set{{1, 1}}, "X").error(), errc::missing_capability);
    EXPECT_EQ((*c)->idle(1s).error(), errc::missing_capability);
    fetch_options since;
    since.changed_since = 5;
    EXPECT_EQ((*c)->uid_fetch(uid_set{{1, 2}}, {"FLAGS"}, nullptr, since).error(),
              errc::missing_capability);
    EXPECT_FALSE((*c)->qresync_enabled());
    ASSERT_TRUE((*c)->noop()) << s.transcript();  // the script saw nothing but this NOOP
}

TEST(session, an_enable_without_enabled_leaves_qresync_off) {
    // iCloud answers ENABLE with a bare OK: QRESYNC must not be used then.
    scripted s(preauth(),
               {"ENABLE QRESYNC", "{tag} OK enabled nothing\r\n", "SELECT INBOX (CONDSTORE)",
                "* OK [UIDVALIDITY 1] x\r\n{tag} OK selected\r\n"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    EXPECT_FALSE((*c)->qresync_enabled());
    select_options o;
    o.qresync = select_options::qresync_state{1, 50, {}};
    auto sel = (*c)->select("INBOX", o);
    ASSERT_TRUE(sel) << s.transcript();
    EXPECT_FALSE(sel->qresync);
}

TEST(session, disabled_capabilities_are_invisible) {
    scripted s(preauth(), {"EXACT:SELECT INBOX", "{tag} OK selected\r\n"});
    s.ep.disabled_capabilities = {"qresync", "CONDSTORE", "ENABLE"};
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    EXPECT_FALSE((*c)->has("QRESYNC"));
    EXPECT_FALSE((*c)->has("CONDSTORE"));
    EXPECT_TRUE((*c)->has("UIDPLUS"));
    // No ENABLE went out, and the SELECT has no (CONDSTORE): the script checks the order.
    auto sel = (*c)->select("INBOX");
    ASSERT_TRUE(sel) << s.transcript();
}

TEST(session, login_failure_is_an_authentication_error_and_the_trace_hides_the_password) {
    scripted s(
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n",
        {"AUTHENTICATE PLAIN " + util::base64_encode(imap::cmd::sasl_plain("alice", "s3cret-pw")),
         "{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"});
    connect_failure why;
    auto c = session::connect(s.ep, &why);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), errc::authentication_failed);
    EXPECT_EQ(why.step, "authentication");
    EXPECT_EQ(why.server.describe(), "[AUTHENTICATIONFAILED] Authentication failed.");
    std::string t = s.transcript();
    EXPECT_NE(t.find("AUTHENTICATE PLAIN"), std::string::npos) << t;
    EXPECT_EQ(t.find("s3cret-pw"), std::string::npos) << t;
    EXPECT_EQ(t.find(util::base64_encode(imap::cmd::sasl_plain("alice", "s3cret-pw"))),
              std::string::npos)
        << t;
}

TEST(session, xoauth2_error_challenge_is_answered_so_that_the_no_arrives) {
    std::string token = "ya29.token";
    scripted s("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi\r\n",
               {"AUTHENTICATE XOAUTH2", "+ \r\n",
                "LINE:" + util::base64_encode(imap::cmd::sasl_xoauth2("alice", token)),
                "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n",
                "LINE:", "{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"});
    s.ep.auth = auth_mechanism::xoauth2;
    s.ep.secret = token;
    auto c = session::connect(s.ep);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error(), errc::authentication_failed) << s.transcript();
    EXPECT_EQ(s.transcript().find(token), std::string::npos);
}

TEST(session, logout_reads_the_bye_and_the_ok_then_the_session_is_closed) {
    scripted s(preauth(),
               with_enable({"EXACT:LOGOUT", "* BYE Logging out\r\n{tag} OK done\r\n<CLOSE>"}));
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    EXPECT_TRUE((*c)->usable());
    auto r = (*c)->logout();
    ASSERT_TRUE(r) << r.error().message() << "\n" << s.transcript();
    EXPECT_EQ(r->text, "done");
    EXPECT_FALSE((*c)->usable());
    EXPECT_FALSE((*c)->noop());
}

TEST(session, logout_does_not_wait_long_for_a_silent_server) {
    // The server reads LOGOUT and says nothing.
    scripted s(preauth(), with_enable({"EXACT:LOGOUT", ""}));
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    auto start = std::chrono::steady_clock::now();
    auto r = (*c)->logout(100ms);
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::timeout);
    EXPECT_LT(took, 2s);
    EXPECT_FALSE((*c)->usable());
    bool sent = std::any_of(s.trace.begin(), s.trace.end(), [](const std::string& l) {
        return l.find("C: ") == 0 && l.find("LOGOUT") != std::string::npos;
    });
    EXPECT_TRUE(sent) << s.transcript();
}

TEST(session, unselect_leaves_the_mailbox_and_needs_the_capability) {
    scripted s(preauth(std::string(caps_basic) + " UNSELECT"),
               with_enable({"SELECT INBOX", "* 0 EXISTS\r\n{tag} OK [READ-WRITE] selected\r\n",
                            "EXACT:UNSELECT", "{tag} OK unselected\r\n"}));
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    ASSERT_TRUE((*c)->select("INBOX")) << s.transcript();
    EXPECT_EQ((*c)->selected(), "INBOX");
    ASSERT_TRUE((*c)->unselect()) << s.transcript();
    EXPECT_TRUE((*c)->selected().empty());

    scripted without(preauth(), with_enable({}));
    auto d = session::connect(without.ep);
    ASSERT_TRUE(d) << without.transcript();
    auto u = (*d)->unselect();
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error(), errc::missing_capability);
}

TEST(session, commands_pipelined_behind_a_select_see_its_answer_first) {
    scripted s(
        preauth(),
        with_enable({"SELECT INBOX",
                     "* 2 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n{tag} OK [READ-WRITE] selected\r\n",
                     "UID FETCH 1:* (UID FLAGS)",
                     "* 1 FETCH (UID 4 FLAGS ())\r\n* 2 FETCH (UID 9 FLAGS (\\Seen))\r\n{tag} OK "
                     "done\r\n"}));
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    std::vector<std::string> events;
    select_options so;
    so.condstore = false;
    so.on_selected = [&](const select_result& r) {
        events.push_back("selected " + std::to_string(r.exists));
    };
    so.pipelined.emplace_back(imap::cmd::uid_fetch(uid_set{{1, uid_set::star}}, {"UID", "FLAGS"}),
                              [&](imap::response& r) {
                                  auto* f = std::get_if<imap::fetch_data>(&r);
                                  if (!f) return false;
                                  events.push_back("fetch " + std::to_string(f->uid.value_or(0)));
                                  return true;
                              });
    auto sel = (*c)->select("INBOX", so);
    ASSERT_TRUE(sel) << s.transcript();
    ASSERT_EQ(sel->pipelined.size(), 1u);
    ASSERT_TRUE((*c)->wait(sel->pipelined[0])) << s.transcript();
    EXPECT_EQ(events, (std::vector<std::string>{"selected 2", "fetch 4", "fetch 9"}));
    // The FETCH went out before the SELECT's answer came.
    auto fetch_sent = std::find_if(s.trace.begin(), s.trace.end(), [](const std::string& l) {
        return l.find("C: ") == 0 && l.find("UID FETCH") != std::string::npos;
    });
    auto answer = std::find_if(s.trace.begin(), s.trace.end(),
                               [](const std::string& l) { return l.find("S: * 2 EXISTS") == 0; });
    EXPECT_LT(fetch_sent - s.trace.begin(), answer - s.trace.begin()) << s.transcript();
}

TEST(session, a_failed_select_reads_the_answers_of_the_commands_behind_it) {
    scripted s(preauth(), with_enable({"SELECT Nope", "{tag} NO [NONEXISTENT] no such mailbox\r\n",
                                       "UID FETCH", "{tag} BAD no mailbox selected\r\n", "NOOP",
                                       "{tag} OK fine\r\n"}));
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    select_options so;
    so.pipelined.emplace_back(imap::cmd::uid_fetch(uid_set{{1, uid_set::star}}, {"UID", "FLAGS"}),
                              nullptr);
    auto sel = (*c)->select("Nope", so);
    ASSERT_FALSE(sel);
    EXPECT_EQ(sel.error(), errc::command_failed);
    EXPECT_EQ((*c)->last_error().text, "no such mailbox");
    EXPECT_TRUE((*c)->selected().empty());
    auto n = (*c)->noop();
    ASSERT_TRUE(n) << s.transcript();
    EXPECT_EQ(n->text, "fine");
}

TEST(session, bye_then_close_is_server_bye_with_the_text_kept) {
    scripted s(preauth("IMAP4rev1"), {"NOOP", "* BYE [UNAVAILABLE] shutting down\r\n<CLOSE>"});
    auto c = session::connect(s.ep);
    ASSERT_TRUE(c) << s.transcript();
    auto n = (*c)->noop();
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error(), errc::server_bye);
    EXPECT_EQ((*c)->last_error().describe(), "[UNAVAILABLE] shutting down");
    // Broken for good: later commands fail at once with the same error.
    EXPECT_EQ((*c)->noop().error(), errc::server_bye);
}

// compress_mode::automatic: COMPRESS where the link is slower than deflating.
TEST(compress_choice, neither_over_loopback_nor_over_a_lan) {
    using std::chrono::microseconds;
    EXPECT_FALSE(compress_pays(true, std::nullopt));  // a tunnel
    EXPECT_FALSE(compress_pays(true, microseconds(40'000)));
    EXPECT_FALSE(compress_pays(false, microseconds(300)));  // a wired LAN
    // A far link, or one the kernel did not measure: not before a rate was measured.
    EXPECT_FALSE(compress_pays(false, microseconds(1'000)));
    EXPECT_FALSE(compress_pays(false, microseconds(25'000)));
    EXPECT_FALSE(compress_pays(false, std::nullopt));
}

// On a far link, what earlier runs measured (bytes of bodies a second) decides: without
// first, then with, then the faster.
TEST(compress_choice, a_far_link_follows_the_measured_rates) {
    using std::chrono::microseconds;
    const auto far = microseconds(20'000);
    EXPECT_FALSE(compress_pays(false, far, {0, 0}));
    EXPECT_TRUE(compress_pays(false, far, {50'000'000, 0}));
    EXPECT_FALSE(compress_pays(false, far, {0, 8'000'000}));
    EXPECT_FALSE(compress_pays(false, far, {50'000'000, 20'000'000}));
    EXPECT_FALSE(compress_pays(false, far, {20'000'000, 20'000'000}));  // a tie: no CPU spent
    EXPECT_TRUE(compress_pays(false, far, {1'000'000, 2'500'000}));
    EXPECT_TRUE(compress_pays(false, std::nullopt, {1'000'000, 2'500'000}));
    // Never on a near link or loopback, whatever was measured.
    EXPECT_FALSE(compress_pays(false, microseconds(300), {1'000'000, 2'500'000}));
    EXPECT_FALSE(compress_pays(true, far, {1'000'000, 2'500'000}));
}

}  // namespace
}  // namespace tandem::client
