// SPDX-License-Identifier: MIT
#include "tandem/imap/command.hpp"

#include "support/temp_dir.hpp"
#include "tandem/util/base64.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace {

using namespace tandem::imap;
using tandem::errc;
using tandem::util::base64_decode;
using tandem::util::base64_encode;

const wire_options sync{};
const wire_options plus{literal_mode::plus, false, false};
const wire_options minus{literal_mode::minus, false, false};
const wire_options utf8{literal_mode::synchronizing, true, false};
const wire_options binary{literal_mode::synchronizing, false, true};

std::string wire(const command& c, const wire_options& o = sync) {
    auto r = c.wire("A1", o);
    EXPECT_TRUE(r) << c.redacted("A1", o);
    return r ? *r : std::string("<error>");
}

std::string one(argument a, const wire_options& o = sync) {
    return wire(command("X").add(std::move(a)), o);
}

// ---- argument forms ------------------------------------------------------------------------

TEST(command_forms, astring_is_an_atom_when_it_can_be) {
    EXPECT_EQ(one(argument::astring("INBOX")), "A1 X INBOX\r\n");
    EXPECT_EQ(one(argument::astring("a.b/c-d_e+f!$&'")), "A1 X a.b/c-d_e+f!$&'\r\n");
    // `]` is ASTRING-CHAR though not ATOM-CHAR (RFC 3501 section 9).
    EXPECT_EQ(one(argument::astring("Lists]x")), "A1 X Lists]x\r\n");
}

TEST(command_forms, astring_is_quoted_for_specials) {
    EXPECT_EQ(one(argument::astring("Sent Items")), "A1 X \"Sent Items\"\r\n");
    EXPECT_EQ(one(argument::astring("")), "A1 X \"\"\r\n");
    EXPECT_EQ(one(argument::astring("NIL")), "A1 X \"NIL\"\r\n");
    EXPECT_EQ(one(argument::astring("nil")), "A1 X \"nil\"\r\n");
    for (std::string s : {"a(b", "a)b", "a{b", "a%b", "a*b", "a\x7f"}) {
        EXPECT_EQ(one(argument::astring(s)), "A1 X \"" + s + "\"\r\n") << s;
    }
    EXPECT_EQ(one(argument::astring("say \"hi\"")), "A1 X \"say \\\"hi\\\"\"\r\n");
    EXPECT_EQ(one(argument::astring("back\\slash")), "A1 X \"back\\\\slash\"\r\n");
}

TEST(command_forms, string_is_never_an_atom) {
    EXPECT_EQ(one(argument::string("INBOX")), "A1 X \"INBOX\"\r\n");
    EXPECT_EQ(one(argument::nstring(std::nullopt)), "A1 X NIL\r\n");
    EXPECT_EQ(one(argument::nstring("NIL")), "A1 X \"NIL\"\r\n");
}

TEST(command_forms, crlf_and_8bit_go_as_literals) {
    EXPECT_EQ(one(argument::astring("a\r\nb")), "A1 X {4}\r\na\r\nb\r\n");
    EXPECT_EQ(one(argument::astring("a\nb")), "A1 X {3}\r\na\nb\r\n");
    EXPECT_EQ(one(argument::astring("caf\xc3\xa9")), "A1 X {5}\r\ncaf\xc3\xa9\r\n");
}

TEST(command_forms, utf8_accept_quotes_valid_utf8_only) {
    EXPECT_EQ(one(argument::astring("caf\xc3\xa9"), utf8), "A1 X \"caf\xc3\xa9\"\r\n");
    EXPECT_EQ(one(argument::astring("bad\xff"), utf8), "A1 X {4}\r\nbad\xff\r\n");
    EXPECT_EQ(one(argument::astring("a\nb\xc3\xa9"), utf8), "A1 X {5}\r\na\nb\xc3\xa9\r\n");
}

TEST(command_forms, nul_cannot_be_in_a_string) {
    std::string detail;
    auto r =
        command("X").add(argument::astring(std::string("a\0b", 3))).serialize("A1", sync, &detail);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::invalid_argument);
    EXPECT_NE(detail.find("NUL"), std::string::npos);
    EXPECT_FALSE(command("X").add(argument::string(std::string(1, '\0'))).serialize("A1", utf8));
}

TEST(command_forms, raw_atom_and_flag_are_checked) {
    EXPECT_EQ(one(argument::raw("(\\Seen $Forwarded)")), "A1 X (\\Seen $Forwarded)\r\n");
    EXPECT_EQ(one(argument::raw("BODY.PEEK[HEADER.FIELDS (Message-ID)]")),
              "A1 X BODY.PEEK[HEADER.FIELDS (Message-ID)]\r\n");
    EXPECT_EQ(one(argument::flag("\\Seen")), "A1 X \\Seen\r\n");
    EXPECT_EQ(one(argument::flag("$Forwarded")), "A1 X $Forwarded\r\n");
    EXPECT_EQ(one(argument::number(4294967295u)), "A1 X 4294967295\r\n");

    // No value can smuggle in a second command.
    EXPECT_EQ(command("X").add(argument::raw("1\r\nA2 DELETE INBOX")).serialize("A1", sync).error(),
              errc::invalid_argument);
    EXPECT_FALSE(command("X").add(argument::raw("")).serialize("A1", sync));
    EXPECT_FALSE(command("X").add(argument::atom("a b")).serialize("A1", sync));
    EXPECT_FALSE(command("X").add(argument::atom("a]")).serialize("A1", sync));
    EXPECT_FALSE(command("X").add(argument::atom("")).serialize("A1", sync));
    EXPECT_FALSE(command("X").add(argument::flag("my flag")).serialize("A1", sync));
    EXPECT_FALSE(command("X").add(argument::flag("\\")).serialize("A1", sync));
    EXPECT_FALSE(command("X").add(argument::flag("a\"b")).serialize("A1", sync));
    EXPECT_FALSE(command("X\r\nA2 LOGOUT").serialize("A1", sync));
}

TEST(command_forms, tag_is_checked) {
    EXPECT_TRUE(command("NOOP").serialize("a.1", sync));
    EXPECT_FALSE(command("NOOP").serialize("", sync));
    EXPECT_FALSE(command("NOOP").serialize("A+1", sync));
    EXPECT_FALSE(command("NOOP").serialize("A 1", sync));
    EXPECT_FALSE(command("NOOP").serialize("A*", sync));
}

TEST(command_forms, lists_nest) {
    auto a = argument::list({argument::atom("A"),
                             argument::list({argument::astring("b c"), argument::number(3)}),
                             argument::list({})});
    EXPECT_EQ(one(a), "A1 X (A (\"b c\" 3) ())\r\n");
}

TEST(command_forms, list_mailbox_allows_wildcards) {
    EXPECT_EQ(one(argument::list_mailbox("*")), "A1 X *\r\n");
    EXPECT_EQ(one(argument::list_mailbox("INBOX.%")), "A1 X INBOX.%\r\n");
    EXPECT_EQ(one(argument::list_mailbox("")), "A1 X \"\"\r\n");
    EXPECT_EQ(one(argument::list_mailbox("My Box/*")), "A1 X \"My Box/*\"\r\n");
    // Wildcards are not astring characters.
    EXPECT_EQ(one(argument::mailbox("a*")), "A1 X \"a*\"\r\n");
}

// ---- segments and literal modes ------------------------------------------------------------

TEST(command_segments, synchronizing_literal_waits_for_continuation) {
    auto segs = command("X")
                    .add(argument::literal(literal_data::from_memory("hello")))
                    .add(argument::atom("Y"))
                    .serialize("A1", sync);
    ASSERT_TRUE(segs);
    ASSERT_EQ(segs->size(), 2u);
    EXPECT_EQ((*segs)[0].text, "A1 X {5}\r\n");
    ASSERT_TRUE((*segs)[0].literal);
    EXPECT_EQ(*(*segs)[0].literal->memory(), "hello");
    EXPECT_TRUE((*segs)[0].needs_continuation);
    EXPECT_EQ((*segs)[1].text, " Y\r\n");
    EXPECT_FALSE((*segs)[1].literal);
    EXPECT_FALSE((*segs)[1].needs_continuation);
}

TEST(command_segments, zero_length_literal_still_synchronizes) {
    auto segs =
        command("X").add(argument::literal(literal_data::from_memory(""))).serialize("A1", sync);
    ASSERT_TRUE(segs);
    EXPECT_EQ((*segs)[0].text, "A1 X {0}\r\n");
    EXPECT_TRUE((*segs)[0].needs_continuation);
}

TEST(command_segments, literal_plus_never_waits) {
    const std::string big(100000, 'x');
    auto segs = command("X")
                    .add(argument::literal(literal_data::from_memory(big)))
                    .add(argument::astring("a\nb"))
                    .serialize("A1", plus);
    ASSERT_TRUE(segs);
    ASSERT_EQ(segs->size(), 3u);
    EXPECT_EQ((*segs)[0].text, "A1 X {100000+}\r\n");
    EXPECT_FALSE((*segs)[0].needs_continuation);
    EXPECT_EQ((*segs)[1].text, " {3+}\r\n");
    EXPECT_FALSE((*segs)[1].needs_continuation);
    EXPECT_EQ(*(*segs)[1].literal->memory(), "a\nb");
    EXPECT_EQ((*segs)[2].text, "\r\n");
}

TEST(command_segments, literal_minus_up_to_4096) {
    auto at = [](std::size_t n) {
        return command("X")
            .add(argument::literal(literal_data::from_memory(std::string(n, 'x'))))
            .serialize("A1", minus);
    };
    auto small = at(4096);
    ASSERT_TRUE(small);
    EXPECT_EQ((*small)[0].text, "A1 X {4096+}\r\n");
    EXPECT_FALSE((*small)[0].needs_continuation);
    auto large = at(4097);
    ASSERT_TRUE(large);
    EXPECT_EQ((*large)[0].text, "A1 X {4097}\r\n");
    EXPECT_TRUE((*large)[0].needs_continuation);
}

TEST(command_segments, binary_literal_needs_binary) {
    const std::string with_nul("a\0b", 3);
    // Explicit literal8.
    auto c = command("X").add(argument::literal(literal_data::from_memory("abc"), true));
    EXPECT_EQ(c.serialize("A1", sync).error(), errc::missing_capability);
    EXPECT_EQ(wire(c, binary), "A1 X ~{3}\r\nabc\r\n");
    // RFC 4466: `~{n+}` with LITERAL+ and BINARY.
    EXPECT_EQ(wire(c, wire_options{literal_mode::plus, false, true}), "A1 X ~{3+}\r\nabc\r\n");
    // NUL in memory: literal8 where BINARY is offered, refused elsewhere.
    auto n = command("X").add(argument::literal(literal_data::from_memory(with_nul)));
    std::string detail;
    EXPECT_EQ(n.serialize("A1", plus, &detail).error(), errc::missing_capability);
    EXPECT_NE(detail.find("BINARY"), std::string::npos);
    EXPECT_EQ(wire(n, binary), "A1 X ~{3}\r\n" + with_nul + "\r\n");
}

// ---- literal payloads ----------------------------------------------------------------------

std::string drain(literal_source& s, std::size_t chunk) {
    std::string out;
    std::string buf(chunk, '\0');
    for (;;) {
        auto n = s.read(buf);
        EXPECT_TRUE(n);
        if (!n || *n == 0) break;
        out.append(buf.data(), *n);
    }
    return out;
}

TEST(literal_data, memory_is_shared_not_copied) {
    auto bytes = std::make_shared<const std::string>("0123456789");
    auto d = literal_data::from_shared(bytes);
    auto segs = command("X").add(argument::literal(d)).serialize("A1", plus);
    ASSERT_TRUE(segs);
    EXPECT_EQ((*segs)[0].literal->memory(), bytes.get());
    auto src = d.open();
    ASSERT_TRUE(src);
    EXPECT_EQ((*src)->size(), 10u);
    EXPECT_EQ(drain(**src, 3), "0123456789");
}

TEST(literal_data, file_streams_its_announced_size) {
    tandem::test::temp_dir dir;
    const auto path = dir / "msg.eml";
    std::ofstream(path, std::ios::binary) << "Subject: x\r\n\r\nbody\r\n";
    const std::uint64_t size = std::filesystem::file_size(path);
    auto d = literal_data::from_file(path, size);
    EXPECT_EQ(d.memory(), nullptr);
    ASSERT_NE(d.file(), nullptr);
    EXPECT_EQ(*d.file(), path);
    auto segs = command("APPEND")
                    .add(argument::mailbox("INBOX"))
                    .add(argument::literal(d))
                    .serialize("A1", plus);
    ASSERT_TRUE(segs);
    EXPECT_EQ((*segs)[0].text, "A1 APPEND INBOX {" + std::to_string(size) + "+}\r\n");
    auto src = (*segs)[0].literal->open();
    ASSERT_TRUE(src);
    EXPECT_EQ(drain(**src, 4), "Subject: x\r\n\r\nbody\r\n");

    // Fewer bytes announced than the file holds: only those are sent.
    auto head = literal_data::from_file(path, 7).open();
    ASSERT_TRUE(head);
    EXPECT_EQ(drain(**head, 100), "Subject");
}

TEST(literal_data, file_that_shrank_is_an_error) {
    tandem::test::temp_dir dir;
    const auto path = dir / "short";
    std::ofstream(path, std::ios::binary) << "abc";
    auto src = literal_data::from_file(path, 10).open();
    ASSERT_TRUE(src);
    std::string buf(16, '\0');
    auto n = (*src)->read(buf);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 3u);
    EXPECT_FALSE((*src)->read(buf));
}

TEST(literal_data, missing_file_fails_to_open) {
    tandem::test::temp_dir dir;
    auto src = literal_data::from_file(dir / "none", 1).open();
    ASSERT_FALSE(src);
    EXPECT_EQ(src.error(), boost::system::errc::no_such_file_or_directory);
}

class counting_source final : public literal_source {
  public:
    explicit counting_source(std::size_t n) : n_(n) {}
    std::uint64_t size() const override { return n_; }
    tandem::result<std::size_t> read(std::span<char> buf) override {
        const std::size_t k = std::min(buf.size(), n_ - done_);
        for (std::size_t i = 0; i < k; ++i) buf[i] = static_cast<char>('a' + (done_ + i) % 26);
        done_ += k;
        return k;
    }

  private:
    std::size_t n_;
    std::size_t done_ = 0;
};

TEST(literal_data, caller_source) {
    auto d = literal_data::from_source(std::make_shared<counting_source>(30));
    EXPECT_EQ(d.size(), 30u);
    auto segs = command("X").add(argument::literal(d)).serialize("A1", sync);
    ASSERT_TRUE(segs);
    EXPECT_EQ((*segs)[0].text, "A1 X {30}\r\n");
    auto src = (*segs)[0].literal->open();
    ASSERT_TRUE(src);
    EXPECT_EQ(drain(**src, 7), "abcdefghijklmnopqrstuvwxyzabcd");
}

// ---- redaction -----------------------------------------------------------------------------

TEST(command_redaction, login_password_never_logged) {
    const std::string password = "s3cret pa$$ \"quoted\"";
    auto c = cmd::login("alice@example.org", password);
    const std::string sent = wire(c);
    EXPECT_EQ(sent, "A1 LOGIN alice@example.org \"s3cret pa$$ \\\"quoted\\\"\"\r\n");
    const std::string log = c.redacted("A1");
    EXPECT_EQ(log, "A1 LOGIN alice@example.org ***");
    EXPECT_EQ(log.find("s3cret"), std::string::npos);
}

TEST(command_redaction, password_sent_as_literal_never_logged) {
    const std::string password = "line1\nline2\xc3\xa9";
    auto c = cmd::login("bob", password);
    auto segs = c.serialize("A1", sync);
    ASSERT_TRUE(segs);
    ASSERT_EQ(segs->size(), 2u);
    EXPECT_EQ(*(*segs)[0].literal->memory(), password);
    const std::string log = c.redacted("A1");
    EXPECT_EQ(log, "A1 LOGIN bob ***");
    EXPECT_EQ(log.find("line1"), std::string::npos);
}

TEST(command_redaction, authenticate_payloads_never_logged) {
    for (const auto& c : {cmd::authenticate_plain("alice", "hunter2"),
                          cmd::authenticate_xoauth2("alice", "ya29.token"),
                          cmd::authenticate_oauthbearer("alice", "ya29.token", "imap.x", 993)}) {
        const std::string sent = wire(c);
        const std::string log = c.redacted("A1");
        const std::string b64 = sent.substr(sent.rfind(' ') + 1, sent.size() - sent.rfind(' ') - 3);
        EXPECT_GT(b64.size(), 10u);
        EXPECT_EQ(log.find(b64), std::string::npos) << log;
        EXPECT_EQ(log.find("hunter2"), std::string::npos);
        EXPECT_EQ(log.find("ya29"), std::string::npos);
        EXPECT_EQ(log.substr(log.size() - 4), " ***") << log;
    }
}

TEST(command_redaction, literals_show_their_size) {
    auto c = command("APPEND")
                 .add(argument::mailbox("INBOX"))
                 .add(argument::literal(literal_data::from_memory("From: a\r\n\r\nsecret body")))
                 .add(argument::astring("x\ny"));
    const std::string log = c.redacted("A9");
    EXPECT_EQ(log, "A9 APPEND INBOX {22 bytes} {3 bytes}");
    EXPECT_EQ(log.find("secret"), std::string::npos);
    EXPECT_EQ(log.find('\n'), std::string::npos);
}

// ---- builders ------------------------------------------------------------------------------

TEST(command_builders, simple_commands) {
    EXPECT_EQ(wire(cmd::capability()), "A1 CAPABILITY\r\n");
    EXPECT_EQ(wire(cmd::noop()), "A1 NOOP\r\n");
    EXPECT_EQ(wire(cmd::logout()), "A1 LOGOUT\r\n");
    EXPECT_EQ(wire(cmd::starttls()), "A1 STARTTLS\r\n");
    EXPECT_EQ(wire(cmd::idle()), "A1 IDLE\r\n");
    EXPECT_EQ(cmd::idle_done, "DONE\r\n");
    EXPECT_EQ(wire(cmd::unselect()), "A1 UNSELECT\r\n");
    EXPECT_EQ(wire(cmd::expunge()), "A1 EXPUNGE\r\n");
    EXPECT_EQ(wire(cmd::compress_deflate()), "A1 COMPRESS DEFLATE\r\n");
    EXPECT_EQ(wire(cmd::namespace_list()), "A1 NAMESPACE\r\n");
}

TEST(command_builders, authenticate_plain_sasl_ir) {
    auto c = cmd::authenticate_plain("tim", "tanstaaftanstaaf");
    // RFC 4616 section 4's example.
    EXPECT_EQ(wire(c), "A1 AUTHENTICATE PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
    EXPECT_EQ(cmd::sasl_plain("tim", "tanstaaftanstaaf", "Ursel"),
              std::string("Ursel\0tim\0tanstaaftanstaaf", 26));
    EXPECT_EQ(wire(cmd::authenticate("EXTERNAL", "")), "A1 AUTHENTICATE EXTERNAL =\r\n");
    EXPECT_EQ(wire(cmd::authenticate("PLAIN", std::nullopt)), "A1 AUTHENTICATE PLAIN\r\n");
}

TEST(command_builders, authenticate_xoauth2) {
    EXPECT_EQ(
        cmd::sasl_xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
        "user=someuser@example.com\x01"
        "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01");
    auto sent = wire(cmd::authenticate_xoauth2("someuser@example.com",
                                               "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"));
    // Google's documented initial response for this user and token.
    EXPECT_EQ(sent,
              "A1 AUTHENTICATE XOAUTH2 "
              "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
              "YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n");
}

TEST(command_builders, authenticate_oauthbearer) {
    // RFC 7628 section 4.1's example.
    EXPECT_EQ(cmd::sasl_oauthbearer(
                  "user@example.com",
                  "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143),
              "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
              "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01");
    EXPECT_EQ(cmd::sasl_oauthbearer("a,b=c", "t"),
              "n,a=a=2Cb=3Dc,\x01"
              "auth=Bearer t\x01\x01");
    auto sent = wire(cmd::authenticate_oauthbearer("u", "t", "h", 993));
    const std::string prefix = "A1 AUTHENTICATE OAUTHBEARER ";
    ASSERT_EQ(sent.substr(0, prefix.size()), prefix);
    auto decoded = base64_decode(sent.substr(prefix.size(), sent.size() - prefix.size() - 2));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded,
              "n,a=u,\x01host=h\x01port=993\x01"
              "auth=Bearer t\x01\x01");
}

TEST(command_builders, enable_and_id) {
    EXPECT_EQ(wire(cmd::enable({"QRESYNC", "UTF8=ACCEPT"})), "A1 ENABLE QRESYNC UTF8=ACCEPT\r\n");
    EXPECT_EQ(wire(cmd::id({{"name", "tandem"}, {"version", "0.1.0"}})),
              "A1 ID (\"name\" \"tandem\" \"version\" \"0.1.0\")\r\n");
    EXPECT_EQ(wire(cmd::id({})), "A1 ID NIL\r\n");
}

TEST(command_builders, list) {
    EXPECT_EQ(wire(cmd::list("", "*")), "A1 LIST \"\" *\r\n");
    cmd::list_options o;
    o.return_special_use = true;
    o.status_items = {"UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"};
    EXPECT_EQ(wire(cmd::list("", "*", o)),
              "A1 LIST \"\" * RETURN (SPECIAL-USE STATUS (UIDVALIDITY UIDNEXT HIGHESTMODSEQ))\r\n");
    o = {};
    o.selection = {"SUBSCRIBED"};
    EXPECT_EQ(wire(cmd::list("", "%", o)), "A1 LIST (SUBSCRIBED) \"\" %\r\n");
}

TEST(command_builders, status_select_examine) {
    EXPECT_EQ(wire(cmd::status("Sent Items", {"UIDNEXT", "UIDVALIDITY"})),
              "A1 STATUS \"Sent Items\" (UIDNEXT UIDVALIDITY)\r\n");
    EXPECT_EQ(wire(cmd::select("INBOX")), "A1 SELECT INBOX\r\n");
    EXPECT_EQ(wire(cmd::select("INBOX", {.condstore = true, .qresync = {}})),
              "A1 SELECT INBOX (CONDSTORE)\r\n");
    cmd::select_options q;
    q.qresync = cmd::qresync_params{67890007, 90060115194045000ull, ""};
    EXPECT_EQ(wire(cmd::select("INBOX", q)),
              "A1 SELECT INBOX (QRESYNC (67890007 90060115194045000))\r\n");
    q.qresync->known_uids = "41:211,214:541";
    EXPECT_EQ(wire(cmd::examine("INBOX", q)),
              "A1 EXAMINE INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))\r\n");
}

TEST(command_builders, uid_fetch) {
    EXPECT_EQ(wire(cmd::uid_fetch("1:*", {"UID", "FLAGS", "BODY.PEEK[]"})),
              "A1 UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\n");
    EXPECT_EQ(wire(cmd::uid_fetch("300:500", {"FLAGS"}, cmd::changed_since{12345, true})),
              "A1 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n");
    EXPECT_EQ(wire(cmd::uid_fetch("1:*", {"FLAGS"}, cmd::changed_since{7, false})),
              "A1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7)\r\n");
}

TEST(command_builders, uid_search) {
    EXPECT_EQ(wire(cmd::uid_search({argument::atom("HEADER"), argument::string("Message-ID"),
                                    argument::string("<a b@c>")},
                                   {"ALL"})),
              "A1 UID SEARCH RETURN (ALL) HEADER \"Message-ID\" \"<a b@c>\"\r\n");
    EXPECT_EQ(wire(cmd::uid_search({argument::raw("UID 5:*")})), "A1 UID SEARCH UID 5:*\r\n");
}

TEST(command_builders, uid_store) {
    tandem::mail::flag_set f;
    f.set(tandem::mail::system_flag::seen);
    f.add_keyword("$Forwarded");
    EXPECT_EQ(wire(cmd::uid_store("1:5", cmd::store_mode::add, f)),
              "A1 UID STORE 1:5 +FLAGS.SILENT (\\Seen $Forwarded)\r\n");
    EXPECT_EQ(wire(cmd::uid_store("7", cmd::store_mode::remove, f, true, 320162338)),
              "A1 UID STORE 7 (UNCHANGEDSINCE 320162338) -FLAGS.SILENT (\\Seen $Forwarded)\r\n");
    EXPECT_EQ(wire(cmd::uid_store("7", cmd::store_mode::replace, {}, false)),
              "A1 UID STORE 7 FLAGS ()\r\n");
    tandem::mail::flag_set bad;
    bad.add_keyword("two words");
    EXPECT_FALSE(cmd::uid_store("1", cmd::store_mode::add, bad).serialize("A1", sync));
}

TEST(command_builders, append_one_message) {
    cmd::append_message m{{}, date_time{760686745, -480}, literal_data::from_memory("Hi\r\n")};
    m.flags.set(tandem::mail::system_flag::seen);
    auto c = cmd::append("saved-messages", {m});
    ASSERT_TRUE(c);
    EXPECT_EQ(
        wire(*c, plus),
        "A1 APPEND saved-messages (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {4+}\r\nHi\r\n\r\n");
    auto bare = cmd::append("INBOX", {cmd::append_message{{}, {}, literal_data::from_memory("x")}});
    ASSERT_TRUE(bare);
    EXPECT_EQ(wire(*bare), "A1 APPEND INBOX {1}\r\nx\r\n");
}

TEST(command_builders, multiappend_segments) {
    std::vector<cmd::append_message> ms;
    ms.push_back({{}, {}, literal_data::from_memory("one")});
    ms.push_back({{}, date_time{0, 0}, literal_data::from_memory("two!")});
    ms[1].flags.add_keyword("$Junk");
    auto c = cmd::append("Archive", ms);
    ASSERT_TRUE(c);
    auto segs = c->serialize("A7", sync);
    ASSERT_TRUE(segs);
    ASSERT_EQ(segs->size(), 3u);
    EXPECT_EQ((*segs)[0].text, "A7 APPEND Archive {3}\r\n");
    EXPECT_EQ((*segs)[1].text, " ($Junk) \" 1-Jan-1970 00:00:00 +0000\" {4}\r\n");
    EXPECT_TRUE((*segs)[1].needs_continuation);
    EXPECT_EQ((*segs)[2].text, "\r\n");
}

TEST(command_builders, append_errors) {
    EXPECT_EQ(cmd::append("INBOX", {}).error(), errc::invalid_argument);
    EXPECT_EQ(cmd::append("INBOX", {cmd::append_message{
                                       {}, date_time{0, 6000}, literal_data::from_memory("x")}})
                  .error(),
              errc::invalid_argument);
    auto bin =
        cmd::append("INBOX", {cmd::append_message{{}, {}, literal_data::from_memory("x"), true}});
    ASSERT_TRUE(bin);
    EXPECT_EQ(bin->serialize("A1", plus).error(), errc::missing_capability);
    EXPECT_EQ(wire(*bin, binary), "A1 APPEND INBOX ~{1}\r\nx\r\n");
}

TEST(command_builders, mailbox_management) {
    EXPECT_EQ(wire(cmd::uid_move("1:3", "Archive/2024")), "A1 UID MOVE 1:3 Archive/2024\r\n");
    EXPECT_EQ(wire(cmd::uid_copy("4", "Sent Items")), "A1 UID COPY 4 \"Sent Items\"\r\n");
    EXPECT_EQ(wire(cmd::uid_expunge("4,6:7")), "A1 UID EXPUNGE 4,6:7\r\n");
    EXPECT_EQ(wire(cmd::create("&ZeVnLIqe-")), "A1 CREATE &ZeVnLIqe-\r\n");
    EXPECT_EQ(wire(cmd::create("Sent", {"\\Sent"})), "A1 CREATE Sent (USE (\\Sent))\r\n");
    EXPECT_EQ(wire(cmd::delete_mailbox("Trash/old")), "A1 DELETE Trash/old\r\n");
    EXPECT_EQ(wire(cmd::rename("a", "b c")), "A1 RENAME a \"b c\"\r\n");
    EXPECT_EQ(wire(cmd::subscribe("NIL")), "A1 SUBSCRIBE \"NIL\"\r\n");
}

// ---- base64 --------------------------------------------------------------------------------

TEST(base64, rfc4648_vectors) {
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, b64] : vectors) {
        EXPECT_EQ(base64_encode(plain), b64);
        auto d = base64_decode(b64);
        ASSERT_TRUE(d) << b64;
        EXPECT_EQ(*d, plain);
    }
}

TEST(base64, all_bytes_round_trip) {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (std::size_t n = 0; n <= all.size(); n += 37) {
        const auto s = all.substr(0, n);
        auto d = base64_decode(base64_encode(s));
        ASSERT_TRUE(d);
        EXPECT_EQ(*d, s);
    }
    EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
}

TEST(base64, strict_decoding) {
    for (std::string_view bad : {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm9v YmFy", "Zm9v\r\n",
                                 "=Zm9", "Zg==Zg==", "Zm,v", "Zm9-"}) {
        auto d = base64_decode(bad);
        EXPECT_FALSE(d) << bad;
        if (!d) {
            EXPECT_EQ(d.error(), errc::invalid_argument);
        }
    }
}

}  // namespace
