// SPDX-License-Identifier: MIT
// Every response form, malformed input for each, the limits, and the same results whatever
// the chunking (whole, byte by byte, split at every offset) over fixtures that include real
// Dovecot 2.3 transcripts (tests/fuzz/corpus/parser/, see tests/fuzz/README.md).
#include "tandem/imap/parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tandem::imap {
namespace {

using namespace std::string_view_literals;

// ---- a canonical text form of responses, to compare runs ---------------------------------

std::string show(const value& v) {
    switch (v.type) {
        case value::kind::atom:
            return v.text;
        case value::kind::nil:
            return "NIL";
        case value::kind::string:
            return (v.literal ? "{" : "\"") + v.text + (v.literal ? "}" : "\"");
        case value::kind::list: {
            std::string s = "(";
            for (std::size_t i = 0; i < v.items.size(); ++i) s += (i ? " " : "") + show(v.items[i]);
            return s + ")";
        }
    }
    return "?";
}

template <class T>
std::string opt(const std::optional<T>& o) {
    if (!o) return "-";
    std::ostringstream s;
    if constexpr (std::is_same_v<T, char>)
        s << '\'' << *o << '\'';
    else
        s << *o;
    return s.str();
}

std::string join(const std::vector<std::string>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "|" : "") + v[i];
    return s + "]";
}

std::string show(const response_code& c) {
    return "[" + c.name + " t=" + std::to_string(static_cast<int>(c.type)) + " raw=" + c.raw +
           " n=" + std::to_string(c.number) + " uids=" + c.uids.to_string() +
           " dest=" + c.dest_uids.to_string() + " atoms=" + join(c.atoms) + "]";
}

struct shower {
    std::string operator()(const status_response& s) const {
        return "status tag=" + s.tag + " cond=" + std::to_string(static_cast<int>(s.cond)) +
               " code=" + (s.code ? show(*s.code) : "-") + " text=" + s.text;
    }
    std::string operator()(const continuation_request& c) const {
        return "cont code=" + (c.code ? show(*c.code) : "-") + " text=" + c.text;
    }
    std::string operator()(const capability_data& c) const {
        return "capability " + join(c.capabilities);
    }
    std::string operator()(const enabled_data& c) const {
        return "enabled " + join(c.capabilities);
    }
    std::string operator()(const flags_data& f) const { return "flags " + join(f.flags); }
    std::string operator()(const exists_data& e) const {
        return "exists " + std::to_string(e.count);
    }
    std::string operator()(const recent_data& e) const {
        return "recent " + std::to_string(e.count);
    }
    std::string operator()(const expunge_data& e) const {
        return "expunge " + std::to_string(e.seq);
    }
    std::string operator()(const vanished_data& v) const {
        return std::string("vanished ") + (v.earlier ? "earlier " : "") + v.uids.to_string();
    }
    std::string operator()(const fetch_data& f) const {
        std::string s = "fetch " + std::to_string(f.seq) + " uid=" + opt(f.uid) +
                        " flags=" + (f.flags ? join(*f.flags) : "-") + " modseq=" + opt(f.modseq) +
                        " date=" + opt(f.internaldate_text) + "@" + opt(f.internaldate) +
                        " size=" + opt(f.rfc822_size) + " emailid=" + opt(f.emailid) +
                        " threadid=" + opt(f.threadid) + " gm=" + opt(f.x_gm_msgid) + "/" +
                        opt(f.x_gm_thrid) + " guid=" + opt(f.x_guid);
        for (const auto& b : f.bodies)
            s += " body{" + b.item + "[" + b.section + "]<" + opt(b.origin) +
                 "> nil=" + std::to_string(b.nil) + " streamed=" + std::to_string(b.streamed) +
                 " size=" + std::to_string(b.size) + " data=" + b.data + "}";
        for (const auto& o : f.other) s += " " + o.name + "=" + show(o.val);
        return s;
    }
    std::string operator()(const search_data& d) const {
        std::string s = "search";
        for (auto n : d.numbers) s += " " + std::to_string(n);
        return s + " modseq=" + opt(d.modseq);
    }
    std::string operator()(const esearch_data& e) const {
        std::string s = "esearch tag=" + opt(e.tag) + " uid=" + std::to_string(e.uid) +
                        " min=" + opt(e.min) + " max=" + opt(e.max) + " count=" + opt(e.count) +
                        " all=" + (e.all ? e.all->to_string() : "-") + " modseq=" + opt(e.modseq);
        for (const auto& [k, v] : e.other) s += " " + k + "=" + show(v);
        return s;
    }
    std::string operator()(const list_data& l) const {
        std::string s = std::string(l.lsub ? "lsub " : "list ") + join(l.attributes) +
                        " delim=" + opt(l.delimiter) + " name=" + l.mailbox +
                        " childinfo=" + join(l.childinfo) + " oldname=" + opt(l.oldname);
        for (const auto& [k, v] : l.extended) s += " " + k + "=" + show(v);
        return s;
    }
    std::string operator()(const status_data& d) const {
        std::string s = "mailbox-status " + d.mailbox + " messages=" + opt(d.messages) +
                        " recent=" + opt(d.recent) + " uidnext=" + opt(d.uidnext) +
                        " uidvalidity=" + opt(d.uidvalidity) + " unseen=" + opt(d.unseen) +
                        " hms=" + opt(d.highestmodseq) + " size=" + opt(d.size) + " items=";
        for (const auto& [k, v] : d.items) s += k + ":" + std::to_string(v) + ",";
        return s;
    }
    std::string operator()(const generic_data& g) const {
        std::string s = "generic " + g.name + " n=" + opt(g.number);
        for (const auto& a : g.args) s += " " + show(a);
        return s;
    }
};

std::string show(const response& r) {
    return std::visit(shower{}, r);
}

// ---- driving the parser ------------------------------------------------------------------

struct outcome {
    std::vector<std::string> responses;
    std::vector<response> raw;
    error_code error;
    std::string detail;
};

// Feeds `input` cut at the given offsets, draining the parser after each piece.
outcome run(std::string_view input, const std::vector<std::size_t>& cuts, parser_limits limits = {},
            bool text = true) {
    parser p(limits);
    outcome out;
    std::size_t from = 0;
    auto drain = [&] {
        for (;;) {
            auto r = p.next();
            if (!r) {
                out.error = r.error();
                out.detail = p.last_error_detail();
                return false;
            }
            if (!*r) return true;
            if (text) out.responses.push_back(show(**r));
            out.raw.push_back(std::move(**r));
        }
    };
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        auto to = i < cuts.size() ? cuts[i] : input.size();
        p.feed(input.substr(from, to - from));
        from = to;
        if (!drain()) return out;
    }
    return out;
}

outcome whole(std::string_view input, parser_limits limits = {}) {
    return run(input, {}, limits);
}

template <class T>
T one(std::string_view input) {
    auto o = whole(input);
    EXPECT_FALSE(o.error) << o.detail;
    EXPECT_EQ(o.raw.size(), 1u) << input;
    if (o.raw.size() != 1 || !std::holds_alternative<T>(o.raw[0])) {
        ADD_FAILURE() << "wrong response for " << input
                      << (o.raw.empty() ? std::string() : ": " + o.responses[0]);
        return T{};
    }
    return std::get<T>(o.raw[0]);
}

void expect_error(std::string_view input, errc code, std::string_view in_detail = {},
                  parser_limits limits = {}) {
    auto o = whole(input, limits);
    EXPECT_EQ(o.error, make_error_code(code)) << "input: " << input << " detail: " << o.detail;
    EXPECT_FALSE(o.detail.empty());
    if (!in_detail.empty()) {
        EXPECT_NE(o.detail.find(in_detail), std::string::npos) << o.detail;
    }
}

// ---- status responses, continuations, codes ----------------------------------------------

TEST(parser, tagged_status_responses) {
    auto ok = one<status_response>("a1 OK [READ-WRITE] Select completed.\r\n");
    EXPECT_EQ(ok.tag, "a1");
    EXPECT_TRUE(ok.tagged());
    EXPECT_EQ(ok.cond, condition::ok);
    ASSERT_TRUE(ok.code);
    EXPECT_EQ(ok.code->type, response_code::kind::read_write);
    EXPECT_EQ(ok.text, "Select completed.");
    auto no = one<status_response>("A0002 no [TRYCREATE] Mailbox doesn't exist\r\n");
    EXPECT_EQ(no.cond, condition::no);
    EXPECT_EQ(no.code->type, response_code::kind::trycreate);
    auto bad = one<status_response>("x BAD Error in IMAP command FOO: Unknown command\r\n");
    EXPECT_EQ(bad.cond, condition::bad);
    EXPECT_FALSE(bad.code);
    EXPECT_EQ(bad.text, "Error in IMAP command FOO: Unknown command");
    // No text at all, and trailing spaces (servers deviate).
    EXPECT_EQ(one<status_response>("t OK\r\n").text, "");
    EXPECT_EQ(one<status_response>("t OK done   \r\n").text, "done");
    // "{5}" at the end of text is text, not a literal.
    auto brace = one<status_response>("t NO weird {5}\r\n");
    EXPECT_EQ(brace.text, "weird {5}");
}

TEST(parser, untagged_status_responses) {
    auto pre = one<status_response>("* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n");
    EXPECT_FALSE(pre.tagged());
    EXPECT_EQ(pre.cond, condition::preauth);
    EXPECT_EQ(pre.code->type, response_code::kind::capability);
    EXPECT_EQ(pre.code->atoms, (std::vector<std::string>{"IMAP4rev1", "LITERAL+"}));
    auto bye = one<status_response>("* BYE Logging out\r\n");
    EXPECT_EQ(bye.cond, condition::bye);
    EXPECT_EQ(bye.text, "Logging out");
    auto alert = one<status_response>("* NO [ALERT] Too many simultaneous connections\r\n");
    EXPECT_EQ(alert.code->type, response_code::kind::alert);
    EXPECT_EQ(alert.text, "Too many simultaneous connections");
}

TEST(parser, continuation_requests) {
    EXPECT_EQ(one<continuation_request>("+ OK\r\n").text, "OK");
    EXPECT_EQ(one<continuation_request>("+ idling\r\n").text, "idling");
    EXPECT_EQ(one<continuation_request>("+\r\n").text, "");
    EXPECT_EQ(one<continuation_request>("+ \r\n").text, "");
    EXPECT_EQ(one<continuation_request>("+ YGgGCSqGSIb3EgECAgIBAAD/////6jcy==\r\n").text,
              "YGgGCSqGSIb3EgECAgIBAAD/////6jcy==");
    auto c = one<continuation_request>("+ [ALERT] send it {12}\r\n");
    ASSERT_TRUE(c.code);
    EXPECT_EQ(c.code->type, response_code::kind::alert);
    EXPECT_EQ(c.text, "send it {12}");
}

response_code code_of(std::string_view line) {
    auto s = one<status_response>(line);
    EXPECT_TRUE(s.code) << line;
    return s.code ? *s.code : response_code{};
}

TEST(parser, response_codes) {
    using k = response_code::kind;
    auto c = code_of("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n");
    EXPECT_EQ(c.type, k::uidvalidity);
    EXPECT_EQ(c.number, 3857529045u);
    c = code_of("* OK [UIDNEXT 4392] Predicted next UID\r\n");
    EXPECT_EQ(c.type, k::uidnext);
    EXPECT_EQ(c.number, 4392u);
    c = code_of("* OK [HIGHESTMODSEQ 715194045007] Highest\r\n");
    EXPECT_EQ(c.type, k::highestmodseq);
    EXPECT_EQ(c.number, 715194045007u);
    EXPECT_EQ(code_of("* OK [NOMODSEQ] Sorry\r\n").type, k::nomodseq);
    EXPECT_EQ(code_of("* OK [CLOSED] Previous mailbox closed.\r\n").type, k::closed);
    EXPECT_EQ(code_of("a NO [OVERQUOTA] Quota exceeded\r\n").type, k::overquota);
    EXPECT_EQ(code_of("a OK [READ-ONLY] Examined\r\n").type, k::read_only);
    EXPECT_EQ(code_of("* OK [UNSEEN 12] First unseen.\r\n").number, 12u);
    c = code_of("a OK [APPENDUID 38505 3955] APPEND completed\r\n");
    EXPECT_EQ(c.type, k::appenduid);
    EXPECT_EQ(c.number, 38505u);
    EXPECT_EQ(c.uids.to_string(), "3955");
    c = code_of("a OK [APPENDUID 38505 3955:3957,3960] MULTIAPPEND completed\r\n");
    EXPECT_EQ(c.uids.to_string(), "3955:3957,3960");
    c = code_of("a OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n");
    EXPECT_EQ(c.type, k::copyuid);
    EXPECT_EQ(c.number, 38505u);
    EXPECT_EQ(c.uids.to_string(), "304,319:320");
    EXPECT_EQ(c.dest_uids.to_string(), "3956:3958");
    EXPECT_EQ(c.raw, "38505 304,319:320 3956:3958");
    c = code_of("c OK [MODIFIED 7,9] Conditional STORE failed\r\n");
    EXPECT_EQ(c.type, k::modified);
    EXPECT_EQ(c.uids.to_string(), "7,9");
    c = code_of("* OK [PERMANENTFLAGS (\\Answered \\Flagged $Forwarded \\*)] Flags permitted.\r\n");
    EXPECT_EQ(c.type, k::permanentflags);
    EXPECT_EQ(c.atoms, (std::vector<std::string>{"\\Answered", "\\Flagged", "$Forwarded", "\\*"}));
    EXPECT_TRUE(code_of("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n").atoms.empty());
    c = code_of("a NO [BADCHARSET (UTF-8 \"x]y\")] Unsupported\r\n");
    EXPECT_EQ(c.type, k::badcharset);
    EXPECT_EQ(c.atoms, (std::vector<std::string>{"UTF-8", "x]y"}));
    // Unknown codes are kept as name + raw text (RFC 9051 7.1: clients ignore them).
    c = code_of("a NO [X-WEIRD-THING 1 (2 3) \"four\"] whatever\r\n");
    EXPECT_EQ(c.type, k::other);
    EXPECT_EQ(c.name, "X-WEIRD-THING");
    EXPECT_EQ(c.raw, "1 (2 3) \"four\"");
    c = code_of("a NO [cannot] Generic mailbox attributes not enabled\r\n");
    EXPECT_EQ(c.name, "CANNOT");
    EXPECT_EQ(c.raw, "");
}

// ---- untagged data -----------------------------------------------------------------------

TEST(parser, message_counts) {
    EXPECT_EQ(one<exists_data>("* 23 EXISTS\r\n").count, 23u);
    EXPECT_EQ(one<exists_data>("* 0 EXISTS\r\n").count, 0u);
    EXPECT_EQ(one<recent_data>("* 5 recent\r\n").count, 5u);
    EXPECT_EQ(one<expunge_data>("* 44 EXPUNGE\r\n").seq, 44u);
}

TEST(parser, vanished) {
    auto v = one<vanished_data>("* VANISHED 405,407,410:425\r\n");
    EXPECT_FALSE(v.earlier);
    EXPECT_EQ(v.uids.size(), 18u);
    v = one<vanished_data>("* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n");
    EXPECT_TRUE(v.earlier);
    EXPECT_EQ(v.uids.to_string(), "41,43:116,118,120:211,214:540");
}

TEST(parser, capability_enabled_flags) {
    auto c = one<capability_data>("* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN LITERAL+ \r\n");
    EXPECT_EQ(c.capabilities,
              (std::vector<std::string>{"IMAP4rev1", "STARTTLS", "AUTH=PLAIN", "LITERAL+"}));
    EXPECT_EQ(one<enabled_data>("* ENABLED QRESYNC CONDSTORE\r\n").capabilities,
              (std::vector<std::string>{"QRESYNC", "CONDSTORE"}));
    EXPECT_TRUE(one<enabled_data>("* ENABLED\r\n").capabilities.empty());  // iCloud
    EXPECT_EQ(one<flags_data>("* FLAGS (\\Answered \\Seen $Forwarded)\r\n").flags,
              (std::vector<std::string>{"\\Answered", "\\Seen", "$Forwarded"}));
}

TEST(parser, search_and_esearch) {
    auto s = one<search_data>("* SEARCH 2 3 6\r\n");
    EXPECT_EQ(s.numbers, (std::vector<std::uint32_t>{2, 3, 6}));
    EXPECT_FALSE(s.modseq);
    s = one<search_data>("* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n");
    EXPECT_EQ(s.numbers.size(), 10u);
    EXPECT_EQ(s.modseq, 917162500u);
    EXPECT_TRUE(one<search_data>("* SEARCH\r\n").numbers.empty());
    EXPECT_TRUE(one<search_data>("* SEARCH \r\n").numbers.empty());

    auto e = one<esearch_data>("* ESEARCH (TAG \"a18\") UID MIN 1 MAX 4 ALL 1:4 COUNT 4\r\n");
    EXPECT_EQ(e.tag, "a18");
    EXPECT_TRUE(e.uid);
    EXPECT_EQ(e.min, 1u);
    EXPECT_EQ(e.max, 4u);
    EXPECT_EQ(e.count, 4u);
    ASSERT_TRUE(e.all);
    EXPECT_EQ(e.all->to_string(), "1:4");
    e = one<esearch_data>("* ESEARCH (TAG \"a\") ALL 7,9:3800 MODSEQ 12345 PARTIAL (1:10 1,2)\r\n");
    EXPECT_FALSE(e.uid);
    EXPECT_EQ(e.all->size(), 3793u);
    EXPECT_EQ(e.modseq, 12345u);
    ASSERT_EQ(e.other.size(), 1u);
    EXPECT_EQ(e.other[0].first, "PARTIAL");
    e = one<esearch_data>("* ESEARCH\r\n");
    EXPECT_FALSE(e.tag);
    EXPECT_FALSE(e.count);
}

TEST(parser, list_and_lsub) {
    auto l = one<list_data>("* LIST (\\HasNoChildren) \"/\" INBOX\r\n");
    EXPECT_FALSE(l.lsub);
    EXPECT_EQ(l.attributes, std::vector<std::string>{"\\HasNoChildren"});
    EXPECT_EQ(l.delimiter, '/');
    EXPECT_EQ(l.mailbox, "INBOX");
    l = one<list_data>("* LIST (\\Noselect \\HasChildren) \"/\" \"[Gmail]\"\r\n");
    EXPECT_EQ(l.mailbox, "[Gmail]");
    l = one<list_data>("* LIST () NIL Flat\r\n");
    EXPECT_FALSE(l.delimiter);
    l = one<list_data>("* LIST () \".\" \"INBOX.Entw&APw-rfe\"\r\n");  // raw modified UTF-7
    EXPECT_EQ(l.mailbox, "INBOX.Entw&APw-rfe");
    l = one<list_data>("* LIST () \"\\\\\" \"a\\\\b \\\"c\\\"\"\r\n");
    EXPECT_EQ(l.delimiter, '\\');
    EXPECT_EQ(l.mailbox, "a\\b \"c\"");
    l = one<list_data>("* LIST () \"/\" {11}\r\nweird\r\nname\r\n");
    EXPECT_EQ(l.mailbox, "weird\r\nname");
    l = one<list_data>("* LIST () \"/\" NIL\r\n");  // the mailbox named NIL (RFC 9051 4.5)
    EXPECT_EQ(l.mailbox, "NIL");
    l = one<list_data>("* LIST (\\HasChildren) \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
    EXPECT_EQ(l.childinfo, std::vector<std::string>{"SUBSCRIBED"});
    l = one<list_data>("* LIST () \"/\" \"New\" (\"OLDNAME\" (\"Old\") \"X-FOO\" (1 2))\r\n");
    EXPECT_EQ(l.oldname, "Old");
    ASSERT_EQ(l.extended.size(), 1u);
    EXPECT_EQ(l.extended[0].first, "X-FOO");
    EXPECT_EQ(l.extended[0].second.items.size(), 2u);
    auto s = one<list_data>("* LSUB () \"/\" Archive\r\n");
    EXPECT_TRUE(s.lsub);
    EXPECT_EQ(s.mailbox, "Archive");
}

TEST(parser, mailbox_status) {
    auto s = one<status_data>(
        "* STATUS \"Project/Sub Folder\" (MESSAGES 3 UIDNEXT 17 UIDVALIDITY 1795636839 UNSEEN 1 "
        "HIGHESTMODSEQ 90060115205545359 SIZE 948 RECENT 2)\r\n");
    EXPECT_EQ(s.mailbox, "Project/Sub Folder");
    EXPECT_EQ(s.messages, 3u);
    EXPECT_EQ(s.uidnext, 17u);
    EXPECT_EQ(s.uidvalidity, 1795636839u);
    EXPECT_EQ(s.unseen, 1u);
    EXPECT_EQ(s.highestmodseq, 90060115205545359u);
    EXPECT_EQ(s.size, 948u);
    EXPECT_EQ(s.recent, 2u);
    EXPECT_EQ(s.items.size(), 7u);
    s = one<status_data>(
        "* STATUS {5}\r\nA b c (MESSAGES 0 MAILBOXID (F2212ea87) X-UNKNOWN 5)\r\n");
    EXPECT_EQ(s.mailbox, "A b c");
    EXPECT_EQ(s.messages, 0u);
    EXPECT_EQ(s.items.size(), 2u);  // the list-valued MAILBOXID is skipped
    EXPECT_TRUE(one<status_data>("* STATUS blurdybloop ()\r\n").items.empty());
}

TEST(parser, unknown_untagged_responses_are_kept_generically) {
    auto g = one<generic_data>("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    EXPECT_EQ(g.name, "NAMESPACE");
    ASSERT_EQ(g.args.size(), 3u);
    EXPECT_EQ(show(g.args[0]), "((\"\" \"/\"))");
    EXPECT_EQ(g.args[1].type, value::kind::nil);
    g = one<generic_data>("* 3 XSTUFF a\r\n");
    EXPECT_EQ(g.number, 3u);
    EXPECT_EQ(g.name, "XSTUFF");
}

// ---- FETCH -------------------------------------------------------------------------------

TEST(parser, fetch_attributes) {
    auto f = one<fetch_data>(
        "* 12 FETCH (UID 4 FLAGS (\\Seen \\Recent $Forwarded) MODSEQ (65402) INTERNALDATE "
        "\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 EMAILID (M6d99ac3275bb4e) THREADID "
        "(T64b478a75b7ea9) X-GM-MSGID 1278455344230334865 X-GM-THRID 1266894439832287888 "
        "X-GUID 1795636837.M19131P15134.vm,S=282,W=292)\r\n");
    EXPECT_EQ(f.seq, 12u);
    EXPECT_EQ(f.uid, 4u);
    ASSERT_TRUE(f.flags);
    EXPECT_EQ(f.flags->size(), 3u);
    EXPECT_TRUE(f.flag_set().has(mail::system_flag::seen));
    EXPECT_TRUE(f.flag_set().has_keyword("$Forwarded"));
    EXPECT_EQ(f.modseq, 65402u);
    EXPECT_EQ(f.internaldate_text, "17-Jul-1996 02:44:25 -0700");
    EXPECT_EQ(f.internaldate, 837596665);  // 1996-07-17T09:44:25Z
    EXPECT_EQ(f.rfc822_size, 4286u);
    EXPECT_EQ(f.emailid, "M6d99ac3275bb4e");
    EXPECT_EQ(f.threadid, "T64b478a75b7ea9");
    EXPECT_EQ(f.x_gm_msgid, 1278455344230334865u);
    EXPECT_EQ(f.x_gm_thrid, 1266894439832287888u);
    EXPECT_EQ(f.x_guid, "1795636837.M19131P15134.vm,S=282,W=292");
    EXPECT_TRUE(f.bodies.empty());
    EXPECT_EQ(one<fetch_data>("* 1 FETCH (THREADID NIL)\r\n").threadid, "");
}

TEST(parser, fetch_internaldate_zones) {
    EXPECT_EQ(parse_internaldate(" 7-Feb-1994 21:52:25 -0800"), 760686745);
    EXPECT_EQ(parse_internaldate("08-Feb-1994 05:52:25 +0000"), 760686745);
    EXPECT_EQ(parse_internaldate("8-feb-1994 06:52:25 +0100"), 760686745);
    EXPECT_EQ(parse_internaldate("01-Jan-1970 00:00:00 +0000"), 0);
    EXPECT_EQ(parse_internaldate("29-Feb-2024 12:00:00 +0530"), 1709188200);
    EXPECT_FALSE(parse_internaldate("32-Jan-1970 00:00:00 +0000"));
    EXPECT_FALSE(parse_internaldate("01-Foo-1970 00:00:00 +0000"));
    EXPECT_FALSE(parse_internaldate("01-Jan-1970 00:00:00"));
    EXPECT_FALSE(parse_internaldate("01-Jan-1970 25:00:00 +0000"));
    // An unparseable date keeps its text and has no number (tolerance).
    auto f = one<fetch_data>("* 1 FETCH (INTERNALDATE \"yesterday\")\r\n");
    EXPECT_EQ(f.internaldate_text, "yesterday");
    EXPECT_FALSE(f.internaldate);
}

TEST(parser, fetch_body_sections) {
    auto f = one<fetch_data>(
        "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {30}\r\n"
        "Message-ID: <m1@example.org>\r\n BODY[TEXT]<0> {10}\r\nHello Bob, BINARY[2] ~{4}\r\n"
        "\0\1\2\3 BODY[1.MIME] NIL BODY[] \"quoted body\" RFC822.HEADER {2}\r\n\r\n)\r\n"sv);
    ASSERT_EQ(f.bodies.size(), 6u);
    EXPECT_EQ(f.bodies[0].item, "BODY");
    EXPECT_EQ(f.bodies[0].section, "HEADER.FIELDS (MESSAGE-ID SUBJECT)");
    EXPECT_EQ(f.bodies[0].data, "Message-ID: <m1@example.org>\r\n");
    EXPECT_EQ(f.bodies[0].size, 30u);
    EXPECT_FALSE(f.bodies[0].origin);
    EXPECT_EQ(f.bodies[1].section, "TEXT");
    EXPECT_EQ(f.bodies[1].origin, 0u);
    EXPECT_EQ(f.bodies[1].data, "Hello Bob,");
    EXPECT_EQ(f.bodies[2].item, "BINARY");
    EXPECT_EQ(f.bodies[2].data, std::string("\0\1\2\3", 4));
    EXPECT_TRUE(f.bodies[3].nil);
    EXPECT_EQ(f.bodies[4].data, "quoted body");  // Yahoo: a quoted string, not a literal
    EXPECT_EQ(f.bodies[5].item, "RFC822.HEADER");
    EXPECT_EQ(f.bodies[5].data, "\r\n");
    EXPECT_EQ(f.other.size(), 0u);
    EXPECT_EQ(f.uid, 1u);
}

TEST(parser, fetch_unknown_items_are_kept) {
    auto f = one<fetch_data>(
        "* 2 FETCH (BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 "
        "1)"
        " X-GM-LABELS (\\Inbox \"Work stuff\") BINARY.SIZE[2] 10 ENVELOPE (NIL {3}\r\nabc "
        "NIL))\r\n");
    ASSERT_EQ(f.other.size(), 4u);
    EXPECT_EQ(f.other[0].name, "BODYSTRUCTURE");
    EXPECT_EQ(f.other[0].val.items.size(), 8u);
    EXPECT_EQ(f.other[1].name, "X-GM-LABELS");
    EXPECT_EQ(show(f.other[1].val), "(\\Inbox \"Work stuff\")");
    EXPECT_EQ(f.other[2].name, "BINARY.SIZE[2]");
    EXPECT_EQ(f.other[3].name, "ENVELOPE");
    EXPECT_EQ(show(f.other[3].val), "(NIL {abc} NIL)");
    EXPECT_TRUE(f.other[3].val.items[1].literal);
}

// ---- tolerance ---------------------------------------------------------------------------

TEST(parser, tolerates_common_deviations) {
    // Bare LF, doubled and trailing spaces, lower case, a string where an atom is expected.
    EXPECT_EQ(one<exists_data>("* 3 EXISTS\n").count, 3u);
    EXPECT_EQ(one<fetch_data>("*  5  fetch  ( uid  7  flags ( \\Seen )  ) \r\n").uid, 7u);
    EXPECT_EQ(one<capability_data>("* CAPABILITY \"IMAP4rev1\"\r\n").capabilities,
              std::vector<std::string>{"IMAP4rev1"});
    EXPECT_EQ(one<list_data>("* LIST () \"/\" \"\"\r\n").mailbox, "");
    EXPECT_EQ(one<list_data>("* LIST (\\Noselect) \"/\" {0}\r\n\r\n").mailbox, "");
    auto s = one<status_response>("a  OK  [READ-WRITE]  done \r\n");
    EXPECT_EQ(s.code->type, response_code::kind::read_write);
    EXPECT_EQ(s.text, "done");
}

// ---- malformed input ---------------------------------------------------------------------

TEST(parser, malformed_input_is_a_protocol_error_with_an_excerpt) {
    struct bad_case {
        std::string_view input;
        std::string_view detail;
    };
    const bad_case cases[] = {
        {"\r\n", "expected a tag"},
        {"a1\r\n", "expected SP after the tag"},
        {"a1 HELLO there\r\n", "must be OK, NO or BAD"},
        {"a1 PREAUTH hi\r\n", "must be OK, NO or BAD"},
        {"* OK [UIDNEXT x] hi\r\n", "UIDNEXT"},
        {"* OK [UIDNEXT 5 hi\r\n", "unterminated response code"},
        {"* OK [UIDVALIDITY 99999999999] hi\r\n", "out of range"},
        {"* OK [HIGHESTMODSEQ 9223372036854775808] hi\r\n", "out of range"},
        {"a OK [APPENDUID 1 0] x\r\n", "APPENDUID uid-set"},
        {"a OK [COPYUID 1 2:3] x\r\n", "COPYUID destination set"},
        {"a OK [MODIFIED] x\r\n", "MODIFIED"},
        {"* OK [PERMANENTFLAGS \\Seen] x\r\n", "list of flags"},
        {"* 3 EXISTS 4\r\n", "unexpected data"},
        {"* 0 EXPUNGE\r\n", "EXPUNGE of message 0"},
        {"* 4294967296 EXISTS\r\n", "out of range"},
        {"* VANISHED\r\n", "VANISHED uid set"},
        {"* VANISHED (LATER) 1:3\r\n", "expected (EARLIER)"},
        {"* VANISHED 1:0\r\n", "bad VANISHED uid set"},
        {"* SEARCH 1 x 3\r\n", "SEARCH result"},
        {"* SEARCH 1 (MODSEQ x)\r\n", "MODSEQ"},
        {"* SEARCH 1 (FOO 3)\r\n", "expected (MODSEQ n)"},
        {"* ESEARCH (TAG) COUNT 3\r\n", "expected (TAG"},
        {"* ESEARCH COUNT x\r\n", "COUNT"},
        {"* ESEARCH ALL 3:,4\r\n", "ALL set"},
        {"* FLAGS \\Seen\r\n", "list of flags"},
        {"* FLAGS (\\Seen\r\n", "unterminated list"},
        {"* LIST \\Noselect \"/\" x\r\n", "mailbox attributes"},
        {"* LIST () \"//\" x\r\n", "not one character"},
        {"* LIST () \"/\"\r\n", "unexpected end"},
        {"* LIST () \"/\" (x)\r\n", "got a list"},
        {"* LIST () \"/\" x (\"CHILDINFO\")\r\n", "extended LIST data"},
        {"* LIST () \"/\" \"unterminated\r\n", "unterminated quoted string"},
        {"* STATUS x MESSAGES 1\r\n", "expected ( of STATUS"},
        {"* STATUS x (MESSAGES)\r\n", "MESSAGES"},
        {"* STATUS x (MESSAGES 4294967296)\r\n", "out of range"},
        {"* STATUS x (MESSAGES 1\r\n", "unterminated STATUS list"},
        {"* 1 FETCH UID 3\r\n", "expected ( after FETCH"},
        {"* 1 FETCH (UID)\r\n", "without a value"},
        {"* 1 FETCH (UID x)\r\n", "UID"},
        {"* 1 FETCH (UID 3\r\n", "unterminated FETCH list"},
        {"* 1 FETCH (MODSEQ 5)\r\n", "expected (mod-sequence)"},
        {"* 1 FETCH (MODSEQ (x))\r\n", "MODSEQ"},
        {"* 1 FETCH (FLAGS \\Seen)\r\n", "list of flags"},
        {"* 1 FETCH (FLAGS (\\Seen (x)))\r\n", "nested list in flags"},
        {"* 1 FETCH (RFC822.SIZE -1)\r\n", "RFC822.SIZE"},
        {"* 1 FETCH (EMAILID M1)\r\n", "objectid"},
        {"* 1 FETCH (BODY[] (a))\r\n", "got a list"},
        {"* 1 FETCH (BODY[HEADER x)\r\n", "unterminated [section]"},
        {"* 1 FETCH (UID 1) extra\r\n", "unexpected data"},
        {"* 0 FETCH (UID 1)\r\n", "FETCH of message 0"},
        {"* 1 FETCH (BODY[] {3}x\r\n", "literal marker not at the end"},
        {"* 1 FETCH (X \"a\\\r\n", "unterminated quoted string"},
        {"* CAPABILITY a\0b\r\n"sv, "unexpected"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.input));
        expect_error(c.input, errc::protocol_error, c.detail);
    }
}

TEST(parser, error_detail_shows_where) {
    auto o = whole("* 1 FETCH (UID 3 RFC822.SIZE abc)\r\n");
    EXPECT_EQ(o.error, make_error_code(errc::protocol_error));
    EXPECT_NE(o.detail.find("at byte 29"), std::string::npos) << o.detail;
    EXPECT_NE(o.detail.find("RFC822.SIZE >>>abc)"), std::string::npos) << o.detail;
}

TEST(parser, errors_are_sticky) {
    parser p;
    p.feed("* OK good\r\n* BAD [UIDNEXT x] bad\r\n* OK good again\r\n"sv);
    auto first = p.next();
    ASSERT_TRUE(first && *first);
    auto err = p.next();
    ASSERT_FALSE(err);
    EXPECT_TRUE(p.failed());
    auto detail = p.last_error_detail();
    p.feed("* OK more\r\n"sv);
    auto again = p.next();
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), err.error());
    EXPECT_EQ(p.last_error_detail(), detail);
    EXPECT_EQ(p.buffered_bytes(), 0u);
}

// ---- limits ------------------------------------------------------------------------------

TEST(parser, line_limit) {
    parser_limits limits;
    limits.max_line = 100;
    std::string ok = "* CAPABILITY " + std::string(80, 'A') + "\r\n";
    EXPECT_FALSE(whole(ok, limits).error);
    std::string long_line = "* CAPABILITY " + std::string(200, 'A') + "\r\n";
    expect_error(long_line, errc::line_too_long, "longer than 100", limits);
    // Without a line end the parser must not wait for ever, holding all of it.
    auto o = run(std::string(1000, 'A'), {10, 20, 50, 99, 101, 500}, limits);
    EXPECT_EQ(o.error, make_error_code(errc::line_too_long));
    // Literals do not count toward the line limit, but the lines around them do.
    std::string with_literal = "* LIST () \"/\" {150}\r\n" + std::string(150, 'x') + "\r\n";
    EXPECT_FALSE(whole(with_literal, limits).error);
    std::string many_lines;
    many_lines = "* 1 FETCH (X1 {1}\r\na";
    for (int i = 0; i < 20; ++i) many_lines += " X2 {1}\r\na";
    many_lines += ")\r\n";
    expect_error(many_lines, errc::line_too_long, {}, limits);
}

TEST(parser, literal_limit) {
    parser_limits limits;
    limits.max_literal = 1000;
    expect_error("* LIST () \"/\" {1001}\r\n", errc::literal_too_large, "1001", limits);
    expect_error("* 1 FETCH (BODY[] {99999999999999999999999}\r\n", errc::literal_too_large);
    limits.max_literal = 600;
    limits.max_response_literals = 1000;
    std::string two = "* 1 FETCH (BODY[1] {600}\r\n" + std::string(600, 'x') +
                      " BODY[2] {600}\r\n" + std::string(600, 'x') + ")\r\n";
    expect_error(two, errc::literal_too_large, {}, limits);
}

TEST(parser, nesting_limit) {
    parser_limits limits;
    limits.max_depth = 8;
    auto nested = [](int depth) {
        return "* 1 FETCH (BODYSTRUCTURE " + std::string(static_cast<std::size_t>(depth), '(') +
               std::string(static_cast<std::size_t>(depth), ')') + ")\r\n";
    };
    EXPECT_FALSE(whole(nested(8), limits).error);
    expect_error(nested(9), errc::nesting_too_deep, "nested deeper than 8", limits);
    // The default limit stops a hostile depth without exhausting the stack.
    expect_error(nested(100000), errc::nesting_too_deep);
}

TEST(parser, item_limit) {
    parser_limits limits;
    limits.max_items = 100;
    std::string many = "* SEARCH";
    for (int i = 1; i <= 200; ++i) many += " " + std::to_string(i);
    expect_error(many + "\r\n", errc::protocol_error, "more than 100 items", limits);
}

// ---- chunking: the same result for every split ---------------------------------------------

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::filesystem::path> transcripts() {
    std::vector<std::filesystem::path> out;
    for (const auto& e :
         std::filesystem::directory_iterator(TANDEM_SOURCE_DIR "/tests/fuzz/corpus/parser"))
        if (e.path().filename().string().starts_with("dovecot-")) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

constexpr std::string_view synthetic_fixture =
    "* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n"
    "+ idling\r\n"
    "* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\nMessage-ID: "
    "<a@b>\r\n\r\n"
    " BINARY[1] ~{3}\r\n\0\r\n BODY[] \"q\\\"x\" ENVELOPE (NIL {2}\r\n{} NIL))\r\n"
    "* LIST (\\HasNoChildren) \"/\" {4}\r\nA\r\nB (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
    "* STATUS {1}\r\nX (MESSAGES 1 UIDNEXT 2)\r\n"
    "* VANISHED (EARLIER) 1:3,5\r\n"
    "* ESEARCH (TAG \"a\") UID ALL 1:4\r\n"
    "* 3 EXPUNGE\r\n"
    "a OK [COPYUID 1 1:2 3:4] done {5}\r\n"sv;

void check_every_split(const std::string& input) {
    auto reference = whole(input);
    ASSERT_FALSE(reference.error) << reference.detail;
    ASSERT_FALSE(reference.responses.empty());
    std::vector<std::size_t> bytes;
    for (std::size_t i = 1; i < input.size(); ++i) bytes.push_back(i);
    auto by_byte = run(input, bytes);
    ASSERT_FALSE(by_byte.error) << by_byte.detail;
    EXPECT_EQ(by_byte.responses, reference.responses);
    EXPECT_EQ(by_byte.raw, reference.raw);
    // Structural equality (operator==) here: the text form is only for readable failures.
    for (std::size_t cut = 1; cut < input.size(); ++cut) {
        auto split = run(input, {cut}, {}, false);
        ASSERT_FALSE(split.error) << "split at " << cut << ": " << split.detail;
        ASSERT_TRUE(split.raw == reference.raw)
            << "split at " << cut << ": " << ::testing::PrintToString(run(input, {cut}).responses);
    }
    // Three pieces, at pseudo-random places.
    for (std::size_t i = 1; i < 200; ++i) {
        auto a = (i * 7919) % input.size();
        auto b = (i * 104729) % input.size();
        auto split = run(input, {std::min(a, b), std::max(a, b)}, {}, false);
        ASSERT_TRUE(split.raw == reference.raw) << a << "," << b;
    }
}

TEST(parser, every_split_of_a_synthetic_fixture_gives_the_same_responses) {
    std::string input(synthetic_fixture);
    auto o = whole(input);
    ASSERT_FALSE(o.error) << o.detail;
    EXPECT_EQ(o.raw.size(), 9u);
    check_every_split(input);
}

TEST(parser, dovecot_transcripts_parse_whole_and_split) {
    auto files = transcripts();
    ASSERT_GE(files.size(), 3u);
    for (const auto& f : files) {
        SCOPED_TRACE(f.filename().string());
        auto input = read_file(f);
        ASSERT_FALSE(input.empty());
        auto o = whole(input);
        ASSERT_FALSE(o.error) << o.detail;
        // Every line that starts a response was parsed: tagged ends match the tags sent.
        std::size_t tagged = 0;
        for (const auto& r : o.raw)
            if (auto s = std::get_if<status_response>(&r); s && s->tagged()) ++tagged;
        EXPECT_GE(tagged, 9u);
        check_every_split(input);
    }
}

TEST(parser, every_split_of_the_synthetic_seed_corpus_file) {
    auto input = read_file(TANDEM_SOURCE_DIR "/tests/fuzz/corpus/parser/synthetic-all-forms.txt");
    auto o = whole(input);
    ASSERT_FALSE(o.error) << o.detail;
    EXPECT_EQ(o.raw.size(), 21u);  // one per line that starts a response
    check_every_split(input);
}

TEST(parser, dovecot_transcript_values) {
    auto o = whole(
        read_file(TANDEM_SOURCE_DIR "/tests/fuzz/corpus/parser/dovecot-session-select-fetch.txt"));
    ASSERT_FALSE(o.error) << o.detail;
    bool binary = false, multiappend = false, copyuid = false, list_status = false, header = false,
         cont = false;
    for (const auto& r : o.raw) {
        if (auto f = std::get_if<fetch_data>(&r)) {
            for (const auto& b : f->bodies) {
                if (b.item == "BINARY" && b.section == "2") {
                    EXPECT_EQ(b.data, std::string("\0\1\2\3\4\5\6\7\10\11", 10));
                    binary = true;
                }
                if (b.section == "HEADER.FIELDS (MESSAGE-ID SUBJECT)" && f->uid == 3u) {
                    EXPECT_EQ(b.data, "Subject: three\r\nMessage-ID: <m3@example.org>\r\n\r\n");
                    header = true;
                }
            }
        } else if (auto s = std::get_if<status_response>(&r); s && s->code) {
            if (s->code->type == response_code::kind::appenduid && s->code->uids.size() == 2) {
                EXPECT_EQ(s->code->uids.to_string(), "3:4");  // MULTIAPPEND
                multiappend = true;
            }
            if (s->code->type == response_code::kind::copyuid && s->tag == "a22") {
                EXPECT_EQ(s->code->uids.to_string(), "1:3");
                EXPECT_EQ(s->code->dest_uids.to_string(), "1:3");
                copyuid = true;
            }
        } else if (auto st = std::get_if<status_data>(&r); st && st->mailbox == "Entw&APw-rfe") {
            EXPECT_EQ(st->messages, 0u);
            EXPECT_EQ(st->uidnext, 1u);
            EXPECT_EQ(st->size, 0u);
            list_status = true;
        } else if (std::holds_alternative<continuation_request>(r)) {
            cont = true;
        }
    }
    EXPECT_TRUE(binary);
    EXPECT_TRUE(multiappend);
    EXPECT_TRUE(copyuid);
    EXPECT_TRUE(list_status);
    EXPECT_TRUE(header);
    EXPECT_TRUE(cont);
}

}  // namespace
}  // namespace tandem::imap
