// SPDX-License-Identifier: MIT
// Two stages. Framing (parser::impl::next) cuts the byte stream into whole responses: lines,
// and after a line that ends in a literal marker ({n}, {n+}, ~{n}) the literal's octets.
// Literals go into the frame, or, for FETCH bodies with a sink, straight to the sink.
// Then a recursive-descent reader turns one complete frame into a typed response. Since
// the reader only ever sees complete frames, byte-by-byte feeding cannot change results.
#include "tandem/imap/parser.hpp"

#include "parser_p.hpp"

#include <algorithm>
#include <cstring>

namespace tandem::imap {
namespace {

using namespace detail;

struct literal_desc {
    std::size_t data_offset = 0;  // in the frame, right after the marker's CRLF
    std::uint64_t size = 0;
    bool streamed = false;  // the octets went to a sink; none are in the frame
};

// Thrown inside this file only and caught at next(): the reader is deeply recursive and
// every token can fail, so a value-returning style would bury the grammar in checks.
struct parse_error {
    errc code;
    std::string what;
    std::size_t pos;
};

// The prefix analysis reached the body literal whose octets have not arrived yet. The
// reader stops there and returns, not throws: this happens once per streamed body, and a
// throw costs the unwinder's tables in memory and time (issue 5).
struct pending_literal {
    std::uint32_t seq = 0;
    std::optional<mail::uid> uid;
    std::string item;
    std::string section;
    std::optional<std::uint32_t> origin;
};

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u >= 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 15];
        } else {
            out += c;
        }
    }
    return out;
}

// The line around pos, cut to a window, with ">>>" where the trouble starts.
std::string excerpt(std::string_view frame, std::size_t pos) {
    pos = std::min(pos, frame.size());
    auto line_start = frame.rfind('\n', pos == 0 ? 0 : pos - 1);
    line_start = (line_start == std::string_view::npos || line_start >= pos) ? 0 : line_start + 1;
    auto line_end = frame.find('\n', pos);
    if (line_end == std::string_view::npos) line_end = frame.size();
    auto from = pos - std::min<std::size_t>(pos - line_start, 40);
    auto to = std::min(line_end, pos + 40);
    std::string out = "\"";
    if (from > line_start) out += "...";
    out += escape(frame.substr(from, pos - from));
    out += ">>>";
    out += escape(frame.substr(pos, to - pos));
    if (to < line_end) out += "...";
    out += '"';
    return out;
}

class reader {
  public:
    reader(std::string_view buf, std::span<const literal_desc> lits, const parser_limits& limits,
           const sink_provider* provider)
        : buf_(buf), lits_(lits), limits_(limits), provider_(provider) {}

    std::size_t pos() const { return pos_; }
    [[noreturn]] void fail(std::string what, errc code = errc::protocol_error) const {
        throw parse_error{code, std::move(what), pos_};
    }

    char peek() const { return pos_ < buf_.size() ? buf_[pos_] : '\0'; }
    bool at_end() const {
        auto rest = buf_.substr(pos_);
        return rest.empty() || rest == "\r\n" || rest == "\n";
    }
    // Servers put two spaces or trailing spaces where one SP belongs; accept any run.
    void skip_spaces() {
        while (pos_ < buf_.size() && buf_[pos_] == ' ') ++pos_;
    }
    void expect_end() {
        skip_spaces();
        if (!at_end()) fail("unexpected data at the end of the response");
    }

    std::string_view rest_of_line() {
        auto end = buf_.find('\n', pos_);
        if (end == std::string_view::npos) end = buf_.size();
        auto text = buf_.substr(pos_, end - pos_);
        pos_ = end;
        while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
        return text;
    }

    // An atom, leniently (parser_p.hpp). "[...]" inside belongs to it, spaces included, so
    // that BODY[HEADER.FIELDS (MESSAGE-ID)]<0> is one token (RFC 3501 7.4.2 section).
    std::string_view read_atom(const char* what = "an atom") {
        auto start = pos_;
        while (pos_ < buf_.size() && is_atom_char(buf_[pos_])) {
            if (buf_[pos_] == '[') {
                ++pos_;
                while (pos_ < buf_.size() && buf_[pos_] != ']') {
                    if (buf_[pos_] == '\r' || buf_[pos_] == '\n' || buf_[pos_] == '\0')
                        fail("unterminated [section]");
                    ++pos_;
                }
                if (pos_ == buf_.size()) fail("unterminated [section]");
            }
            ++pos_;
        }
        if (pos_ == start) fail(std::string("expected ") + what);
        count_item();
        return buf_.substr(start, pos_ - start);
    }

    template <class T>
    T read_number(const char* what, std::uint64_t max = std::numeric_limits<T>::max()) {
        auto start = pos_;
        std::uint64_t v = 0;
        while (pos_ < buf_.size() && is_digit(buf_[pos_])) {
            auto d = static_cast<std::uint64_t>(buf_[pos_] - '0');
            if (v > (max - d) / 10) fail(std::string(what) + " out of range");
            v = v * 10 + d;
            ++pos_;
        }
        if (pos_ == start || (pos_ < buf_.size() && is_atom_char(buf_[pos_]))) {
            pos_ = start;
            fail(std::string("expected a number for ") + what);
        }
        count_item();
        return static_cast<T>(v);
    }

    std::uint32_t read_u32(const char* what) { return read_number<std::uint32_t>(what); }
    // mod-sequence-value = 1*DIGIT; 63 bits (RFC 7162 7). Size numbers share the bound.
    std::uint64_t read_u63(const char* what) {
        return read_number<std::uint64_t>(what, std::numeric_limits<std::int64_t>::max());
    }

    // A set in sequence-set syntax: one atom.
    uid_set read_set(const char* what) {
        auto start = pos_;
        auto text = read_atom(what);
        auto set = uid_set::parse(text);
        if (!set) {
            pos_ = start;
            fail(std::string("bad ") + what + " \"" + escape(text) + "\"");
        }
        return *set;
    }

    struct literal_ref {
        std::uint64_t size = 0;
        bool streamed = false;
        std::string_view data;
    };

    bool at_literal() const {
        auto c = peek();
        return c == '{' || (c == '~' && pos_ + 1 < buf_.size() && buf_[pos_ + 1] == '{');
    }

    literal_ref read_literal() {
        auto lit = read_literal_if_arrived();
        if (!lit) fail("literal marker without its literal");
        return *lit;
    }

    // literal = "{" number64 ["+"] "}" CRLF *CHAR8; literal8 = "~{" number64 "}" CRLF
    // (RFC 9051 9, RFC 7888, RFC 3516). The framing stage already checked the marker and
    // recorded the octets; this matches marker to record. nullopt: the marker ends the
    // frame so far, and its octets have not arrived.
    std::optional<literal_ref> read_literal_if_arrived() {
        if (peek() == '~') ++pos_;
        ++pos_;  // '{'
        auto close = buf_.find('}', pos_);
        if (close == std::string_view::npos) fail("unterminated literal marker");
        pos_ = close + 1;
        if (buf_.substr(pos_, 2) == "\r\n")
            pos_ += 2;
        else if (peek() == '\n')
            ++pos_;
        else
            fail("literal marker not at the end of a line");
        if (next_literal_ == lits_.size()) return std::nullopt;
        const auto& lit = lits_[next_literal_];
        if (lit.data_offset != pos_) fail("literal marker out of place");
        ++next_literal_;
        count_item();
        literal_ref ref{lit.size, lit.streamed, {}};
        if (!lit.streamed) {
            ref.data = buf_.substr(pos_, static_cast<std::size_t>(lit.size));
            pos_ += static_cast<std::size_t>(lit.size);
        }
        return ref;
    }

    // quoted = DQUOTE *QUOTED-CHAR DQUOTE. Any escaped char is taken as itself, a lenient
    // reading of "\" quoted-specials.
    std::string read_quoted() {
        ++pos_;
        std::string out;
        for (;;) {
            if (pos_ >= buf_.size() || !is_quoted_char(buf_[pos_]))
                fail("unterminated quoted string");
            char c = buf_[pos_++];
            if (c == '"') break;
            if (c == '\\') {
                if (pos_ >= buf_.size() || !is_quoted_char(buf_[pos_]))
                    fail("unterminated quoted string");
                c = buf_[pos_++];
            }
            out += c;
        }
        count_item();
        return out;
    }

    value read_value(std::size_t depth = 0) {
        value v;
        char c = peek();
        if (c == '(') {
            if (depth + 1 > limits_.max_depth)
                fail("lists nested deeper than " + std::to_string(limits_.max_depth),
                     errc::nesting_too_deep);
            ++pos_;
            count_item();
            v.type = value::kind::list;
            for (;;) {
                skip_spaces();
                if (peek() == ')') {
                    ++pos_;
                    break;
                }
                if (at_end() || peek() == '\r' || peek() == '\n') fail("unterminated list");
                v.items.push_back(read_value(depth + 1));
            }
        } else if (c == '"') {
            v.type = value::kind::string;
            v.text = read_quoted();
        } else if (at_literal()) {
            auto lit = read_literal();
            if (lit.streamed) fail("a streamed literal where no body belongs");
            v.type = value::kind::string;
            v.literal = true;
            v.text = lit.data;
        } else if (pos_ < buf_.size() && is_atom_char(c)) {
            v.text = read_atom();
            v.type = iequals(v.text, "NIL") ? value::kind::nil : value::kind::atom;
        } else {
            fail(at_end() ? "unexpected end of response" : "unexpected character");
        }
        return v;
    }

    // astring / nstring content: atoms, strings and NIL alike (servers mix them up).
    std::string read_string_like(const char* what) {
        auto v = read_value();
        if (v.type == value::kind::list) fail(std::string("expected ") + what + ", got a list");
        return std::move(v.text);
    }

    std::vector<std::string> read_atom_list(const char* what) {
        if (peek() != '(') fail(std::string("expected a list of ") + what);
        auto v = read_value();
        std::vector<std::string> out;
        out.reserve(v.items.size());
        for (auto& item : v.items) {
            if (item.type == value::kind::list) fail(std::string("nested list in ") + what);
            out.push_back(std::move(item.text));
        }
        return out;
    }

    const sink_provider* provider() const { return provider_; }

    // The body whose literal has not arrived: the reader stops there (read_fetch returns).
    void stop_at(pending_literal body) { pending_ = std::move(body); }
    bool stopped() const { return pending_.has_value(); }
    std::optional<pending_literal> take_pending() { return std::move(pending_); }

    void advance() { ++pos_; }
    void open_list() {
        if (limits_.max_depth < 1) fail("lists nested too deeply", errc::nesting_too_deep);
        ++pos_;
        count_item();
    }
    [[noreturn]] void fail_at(std::size_t at, std::string what) const {
        throw parse_error{errc::protocol_error, std::move(what), at};
    }

  private:
    void count_item() {
        if (++items_ > limits_.max_items)
            fail("more than " + std::to_string(limits_.max_items) + " items in one response");
    }

    std::string_view buf_;
    std::size_t pos_ = 0;
    std::span<const literal_desc> lits_;
    std::size_t next_literal_ = 0;
    parser_limits limits_;           // by value: readers are made from temporaries
    const sink_provider* provider_;  // null in the prefix analysis: no side effects there
    std::size_t items_ = 0;
    std::optional<pending_literal> pending_;
};

// ---- response codes ----------------------------------------------------------------------

response_code parse_code(std::string_view inner, const parser_limits& limits) {
    response_code code;
    auto sp = inner.find(' ');
    code.name = upper(inner.substr(0, sp));
    code.raw = sp == std::string_view::npos ? std::string() : std::string(inner.substr(sp + 1));
    reader r(code.raw, {}, limits, nullptr);
    using k = response_code::kind;
    struct entry {
        const char* name;
        k type;
    };
    static constexpr entry names[] = {
        {"ALERT", k::alert},
        {"BADCHARSET", k::badcharset},
        {"CAPABILITY", k::capability},
        {"PARSE", k::parse},
        {"PERMANENTFLAGS", k::permanentflags},
        {"READ-ONLY", k::read_only},
        {"READ-WRITE", k::read_write},
        {"TRYCREATE", k::trycreate},
        {"UIDNEXT", k::uidnext},
        {"UIDVALIDITY", k::uidvalidity},
        {"UNSEEN", k::unseen},
        {"HIGHESTMODSEQ", k::highestmodseq},
        {"NOMODSEQ", k::nomodseq},
        {"MODIFIED", k::modified},
        {"APPENDUID", k::appenduid},
        {"COPYUID", k::copyuid},
        {"UIDNOTSTICKY", k::uidnotsticky},
        {"CLOSED", k::closed},
        {"OVERQUOTA", k::overquota},
    };
    for (const auto& e : names)
        if (code.name == e.name) code.type = e.type;
    switch (code.type) {
        case k::uidnext:
        case k::uidvalidity:
        case k::unseen:
            code.number = r.read_u32(code.name.c_str());
            break;
        case k::highestmodseq:
            code.number = r.read_u63("HIGHESTMODSEQ");
            break;
        case k::modified:
            code.uids = r.read_set("MODIFIED set");
            break;
        case k::appenduid:
            code.number = r.read_u32("APPENDUID uidvalidity");
            r.skip_spaces();
            code.uids = r.read_set("APPENDUID uid-set");
            break;
        case k::copyuid:
            code.number = r.read_u32("COPYUID uidvalidity");
            r.skip_spaces();
            code.uids = r.read_set("COPYUID source set");
            r.skip_spaces();
            code.dest_uids = r.read_set("COPYUID destination set");
            break;
        case k::capability:
            while (r.skip_spaces(), !r.at_end())
                code.atoms.push_back(r.read_string_like("a capability"));
            break;
        case k::permanentflags:
            code.atoms = r.read_atom_list("flags");
            break;
        case k::badcharset:
            r.skip_spaces();
            if (!r.at_end()) code.atoms = r.read_atom_list("charsets");
            break;
        default:
            return code;  // no arguments we read; raw keeps them
    }
    r.expect_end();
    return code;
}

// resp-text = ["[" resp-text-code "]" SP] text. The code ends at the "]" that is outside
// quotes and parentheses ([BADCHARSET ("x]")] is legal).
template <class T>
void read_resp_text(reader& r, std::string_view frame, const parser_limits& limits, T& out) {
    r.skip_spaces();
    auto line = r.rest_of_line();
    if (!line.empty() && line.front() == '[') {
        auto base = static_cast<std::size_t>(line.data() - frame.data());
        std::size_t depth = 0;
        bool quoted = false;
        std::size_t end = std::string_view::npos;
        for (std::size_t i = 1; i < line.size(); ++i) {
            char c = line[i];
            if (quoted) {
                if (c == '\\')
                    ++i;
                else if (c == '"')
                    quoted = false;
            } else if (c == '"') {
                quoted = true;
            } else if (c == '(') {
                ++depth;
            } else if (c == ')') {
                if (depth) --depth;
            } else if (c == ']' && depth == 0) {
                end = i;
                break;
            }
        }
        if (end == std::string_view::npos)
            throw parse_error{errc::protocol_error, "unterminated response code", base};
        try {
            out.code = parse_code(line.substr(1, end - 1), limits);
        } catch (parse_error& e) {
            auto sp = line.find(' ');
            auto name_len = sp == std::string_view::npos || sp > end ? end : sp + 1;
            e.what += " in response code";
            e.pos += base + name_len;
            throw;
        }
        line.remove_prefix(end + 1);
        while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    }
    out.text = line;
}

// ---- FETCH -------------------------------------------------------------------------------

// "BODY[1.2]<0>" -> item BODY, section 1.2, origin 0. False if name is no body item.
bool split_body_name(std::string_view name, body_section& out) {
    auto bracket = name.find('[');
    if (bracket == std::string_view::npos) {
        auto u = upper(name);
        if (u == "RFC822" || u == "RFC822.HEADER" || u == "RFC822.TEXT") {
            out.item = u;
            return true;
        }
        return false;
    }
    auto item = upper(name.substr(0, bracket));
    if (item != "BODY" && item != "BINARY") return false;
    auto close = name.find(']', bracket);
    if (close == std::string_view::npos) return false;
    out.item = item;
    out.section = name.substr(bracket + 1, close - bracket - 1);
    auto rest = name.substr(close + 1);
    if (!rest.empty()) {
        if (rest.size() < 3 || rest.front() != '<' || rest.back() != '>') return false;
        std::uint64_t v = 0;
        for (char c : rest.substr(1, rest.size() - 2)) {
            if (!is_digit(c)) return false;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
            if (v > std::numeric_limits<std::uint32_t>::max()) return false;
        }
        out.origin = static_cast<std::uint32_t>(v);
    }
    return true;
}

void read_body(reader& r, fetch_data& f, body_section body) {
    if (r.at_literal()) {
        auto lit = r.read_literal_if_arrived();
        if (!lit) {
            // The prefix analysis asks: which body is this literal?
            r.stop_at({f.seq, f.uid, body.item, body.section, body.origin});
            return;
        }
        body.size = lit->size;
        body.streamed = lit->streamed;
        if (!lit->streamed) body.data = lit->data;
    } else {
        auto v = r.read_value();
        if (v.type == value::kind::list) r.fail("expected a body string, got a list");
        if (v.type == value::kind::nil) {
            body.nil = true;
        } else {
            // Yahoo sends small sections as quoted strings (protocol.md 1.1).
            body.size = v.text.size();
            body.data = std::move(v.text);
            if (r.provider() && *r.provider()) {
                body_context ctx{f.seq, f.uid, body.item, body.section, body.origin, body.size};
                if (auto sink = (*r.provider())(ctx)) {
                    sink->write(std::span<const char>(body.data.data(), body.data.size()));
                    sink->finish();
                    body.streamed = true;
                    body.data.clear();
                }
            }
        }
    }
    f.bodies.push_back(std::move(body));
}

// RFC 8474: objectid = 1*255(ALPHA / DIGIT / "_" / "-"), in parentheses.
std::string read_objectid(reader& r, const char* what) {
    auto v = r.read_value();
    if (v.type == value::kind::list && v.items.size() == 1 && v.items[0].type != value::kind::list)
        return std::move(v.items[0].text);
    if (v.type == value::kind::nil) return {};
    r.fail(std::string("expected (objectid) for ") + what);
}

fetch_data read_fetch(reader& r, std::uint32_t seq) {
    fetch_data f;
    f.seq = seq;
    r.skip_spaces();
    if (r.peek() != '(') r.fail("expected ( after FETCH");
    r.open_list();
    for (;;) {
        r.skip_spaces();
        if (r.peek() == ')') {
            r.advance();
            break;
        }
        if (r.at_end()) r.fail("unterminated FETCH list");
        auto name_at = r.pos();
        auto name = r.read_atom("a FETCH item");
        auto u = upper(name);
        r.skip_spaces();
        if (r.at_end() || r.peek() == ')')
            r.fail("FETCH item " + escape(name) + " without a value");
        body_section body;
        if (u == "UID") {
            f.uid = r.read_u32("UID");
        } else if (u == "FLAGS") {
            f.flags = r.read_atom_list("flags");
        } else if (u == "MODSEQ") {
            // MODSEQ (n) (RFC 7162 3.1.4)
            auto at = r.pos();
            auto v = r.read_value();
            if (v.type != value::kind::list || v.items.size() != 1 ||
                v.items[0].type != value::kind::atom)
                r.fail_at(at, "expected (mod-sequence) after MODSEQ");
            reader n(v.items[0].text, {}, parser_limits{}, nullptr);
            try {
                f.modseq = n.read_u63("MODSEQ");
            } catch (parse_error& e) {
                r.fail_at(at, e.what);
            }
        } else if (u == "INTERNALDATE") {
            auto text = r.read_string_like("a date-time");
            f.internaldate = parse_internaldate(text);
            f.internaldate_text = std::move(text);
        } else if (u == "RFC822.SIZE") {
            f.rfc822_size = r.read_u63("RFC822.SIZE");
        } else if (u == "EMAILID") {
            f.emailid = read_objectid(r, "EMAILID");
        } else if (u == "THREADID") {
            f.threadid = read_objectid(r, "THREADID");
        } else if (u == "X-GM-MSGID") {
            f.x_gm_msgid = r.read_number<std::uint64_t>("X-GM-MSGID");
        } else if (u == "X-GM-THRID") {
            f.x_gm_thrid = r.read_number<std::uint64_t>("X-GM-THRID");
        } else if (u == "X-GUID") {
            f.x_guid = r.read_string_like("X-GUID");
        } else if (split_body_name(name, body)) {
            read_body(r, f, std::move(body));
            if (r.stopped()) return f;
        } else if (u.find('[') != std::string::npos && u.find(']') == std::string::npos) {
            r.fail_at(name_at, "bad FETCH item name");
        } else {
            f.other.push_back({std::move(u), r.read_value()});
        }
    }
    r.expect_end();
    return f;
}

// ---- mailbox data ------------------------------------------------------------------------

list_data read_list(reader& r, bool lsub) {
    list_data l;
    l.lsub = lsub;
    r.skip_spaces();
    l.attributes = r.read_atom_list("mailbox attributes");
    r.skip_spaces();
    auto at = r.pos();
    auto delim = r.read_value();
    if (delim.type == value::kind::list) r.fail_at(at, "expected a hierarchy delimiter");
    if (delim.type != value::kind::nil) {
        if (delim.text.size() != 1) r.fail_at(at, "hierarchy delimiter is not one character");
        l.delimiter = delim.text[0];
    }
    r.skip_spaces();
    // mailbox: astring; NIL here is the mailbox named NIL (RFC 9051 4.5)
    l.mailbox = r.read_string_like("a mailbox name");
    r.skip_spaces();
    if (!r.at_end()) {
        // mbox-list-extended = "(" [mbox-list-extended-item *(SP ...)] ")" (RFC 5258 9)
        at = r.pos();
        auto ext = r.read_value();
        if (ext.type != value::kind::list || ext.items.size() % 2 != 0)
            r.fail_at(at, "bad extended LIST data");
        for (std::size_t i = 0; i < ext.items.size(); i += 2) {
            auto tag = upper(ext.items[i].text);
            auto& val = ext.items[i + 1];
            if (tag == "CHILDINFO" && val.type == value::kind::list) {
                for (auto& item : val.items) l.childinfo.push_back(item.text);
            } else if (tag == "OLDNAME" && val.type == value::kind::list && val.items.size() == 1) {
                l.oldname = val.items[0].text;
            } else {
                l.extended.emplace_back(std::move(tag), std::move(val));
            }
        }
    }
    r.expect_end();
    return l;
}

status_data read_status(reader& r) {
    status_data s;
    r.skip_spaces();
    s.mailbox = r.read_string_like("a mailbox name");
    r.skip_spaces();
    if (r.peek() != '(') r.fail("expected ( of STATUS items");
    r.open_list();
    for (;;) {
        r.skip_spaces();
        if (r.peek() == ')') {
            r.advance();
            break;
        }
        if (r.at_end()) r.fail("unterminated STATUS list");
        auto name = upper(r.read_atom("a STATUS item"));
        r.skip_spaces();
        if (r.peek() == '(' || r.peek() == '"' || r.at_literal()) {
            (void)r.read_value();  // MAILBOXID (RFC 8474) and other non-numeric items
            continue;
        }
        auto n = r.read_u63(name.c_str());
        auto as32 = [&](std::optional<std::uint32_t>& field) {
            if (n > std::numeric_limits<std::uint32_t>::max()) r.fail(name + " out of range");
            field = static_cast<std::uint32_t>(n);
        };
        if (name == "MESSAGES")
            as32(s.messages);
        else if (name == "RECENT")
            as32(s.recent);
        else if (name == "UIDNEXT")
            as32(s.uidnext);
        else if (name == "UIDVALIDITY")
            as32(s.uidvalidity);
        else if (name == "UNSEEN")
            as32(s.unseen);
        else if (name == "HIGHESTMODSEQ")
            s.highestmodseq = n;
        else if (name == "SIZE")
            s.size = n;
        s.items.emplace_back(std::move(name), n);
    }
    r.expect_end();
    return s;
}

search_data read_search(reader& r) {
    search_data s;
    for (;;) {
        r.skip_spaces();
        if (r.at_end()) break;
        if (r.peek() == '(') {
            // search-sort-mod-seq = "(" "MODSEQ" SP mod-sequence-value ")" (RFC 7162 7)
            auto at = r.pos();
            auto v = r.read_value();
            if (v.items.size() != 2 || !iequals(v.items[0].text, "MODSEQ"))
                r.fail_at(at, "expected (MODSEQ n)");
            reader n(v.items[1].text, {}, parser_limits{}, nullptr);
            try {
                s.modseq = n.read_u63("MODSEQ");
            } catch (parse_error& e) {
                r.fail_at(at, e.what);
            }
            r.expect_end();
            break;
        }
        s.numbers.push_back(r.read_u32("a SEARCH result"));
    }
    return s;
}

esearch_data read_esearch(reader& r) {
    esearch_data e;
    r.skip_spaces();
    if (r.peek() == '(') {
        // search-correlator = SP "(" "TAG" SP tag-string ")" (RFC 4731 3.1)
        auto at = r.pos();
        auto v = r.read_value();
        if (v.items.size() != 2 || !iequals(v.items[0].text, "TAG"))
            r.fail_at(at, "expected (TAG \"...\")");
        e.tag = std::move(v.items[1].text);
    }
    for (;;) {
        r.skip_spaces();
        if (r.at_end()) break;
        auto name = upper(r.read_atom("ESEARCH return data"));
        if (name == "UID") {
            e.uid = true;
            continue;
        }
        r.skip_spaces();
        if (name == "MIN")
            e.min = r.read_u32("MIN");
        else if (name == "MAX")
            e.max = r.read_u32("MAX");
        else if (name == "COUNT")
            e.count = r.read_u32("COUNT");
        else if (name == "ALL")
            e.all = r.read_set("ALL set");
        else if (name == "MODSEQ")
            e.modseq = r.read_u63("MODSEQ");
        else
            e.other.emplace_back(std::move(name), r.read_value());
    }
    return e;
}

vanished_data read_vanished(reader& r) {
    vanished_data v;
    r.skip_spaces();
    if (r.peek() == '(') {
        auto at = r.pos();
        auto mod = r.read_value();
        if (mod.items.size() != 1 || !iequals(mod.items[0].text, "EARLIER"))
            r.fail_at(at, "expected (EARLIER)");
        v.earlier = true;
        r.skip_spaces();
    }
    v.uids = r.read_set("VANISHED uid set");
    r.expect_end();
    return v;
}

std::vector<std::string> read_atoms_to_end(reader& r, const char* what) {
    std::vector<std::string> out;
    while (r.skip_spaces(), !r.at_end()) out.push_back(r.read_string_like(what));
    return out;
}

std::optional<condition> condition_of(std::string_view word) {
    if (iequals(word, "OK")) return condition::ok;
    if (iequals(word, "NO")) return condition::no;
    if (iequals(word, "BAD")) return condition::bad;
    if (iequals(word, "PREAUTH")) return condition::preauth;
    if (iequals(word, "BYE")) return condition::bye;
    return std::nullopt;
}

response read_response(reader& r, std::string_view frame, const parser_limits& limits) {
    if (r.peek() == '+') {
        // continue-req = "+" SP (resp-text / base64) CRLF
        r.advance();
        continuation_request c;
        read_resp_text(r, frame, limits, c);
        return c;
    }
    auto tag = r.read_atom("a tag");
    if (r.peek() != ' ') r.fail("expected SP after the tag");
    r.skip_spaces();
    if (tag != "*") {
        auto word_at = r.pos();
        auto cond = condition_of(r.read_atom("OK, NO or BAD"));
        if (!cond || *cond == condition::preauth || *cond == condition::bye)
            r.fail_at(word_at, "a tagged response must be OK, NO or BAD");
        status_response s;
        s.tag = tag;
        s.cond = *cond;
        read_resp_text(r, frame, limits, s);
        return s;
    }
    std::optional<std::uint32_t> number;
    if (is_digit(r.peek())) {
        number = r.read_u32("a message number");
        if (r.peek() != ' ') r.fail("expected SP after the number");
        r.skip_spaces();
    }
    auto name = upper(r.read_atom("a response name"));
    if (number) {
        if (name == "EXISTS" || name == "RECENT" || name == "EXPUNGE") {
            r.expect_end();
            if (name == "EXISTS") return exists_data{*number};
            if (name == "RECENT") return recent_data{*number};
            if (*number == 0) r.fail("EXPUNGE of message 0");
            return expunge_data{*number};
        }
        if (name == "FETCH") {
            if (*number == 0) r.fail("FETCH of message 0");
            return read_fetch(r, *number);
        }
    } else if (auto cond = condition_of(name)) {
        status_response s;
        s.cond = *cond;
        read_resp_text(r, frame, limits, s);
        return s;
    } else if (name == "CAPABILITY") {
        return capability_data{read_atoms_to_end(r, "a capability")};
    } else if (name == "ENABLED") {
        return enabled_data{read_atoms_to_end(r, "a capability")};
    } else if (name == "FLAGS") {
        r.skip_spaces();
        flags_data f{r.read_atom_list("flags")};
        r.expect_end();
        return f;
    } else if (name == "LIST" || name == "LSUB") {
        return read_list(r, name == "LSUB");
    } else if (name == "STATUS") {
        return read_status(r);
    } else if (name == "SEARCH") {
        return read_search(r);
    } else if (name == "ESEARCH") {
        return read_esearch(r);
    } else if (name == "VANISHED") {
        return read_vanished(r);
    }
    generic_data g;
    g.name = std::move(name);
    g.number = number;
    while (r.skip_spaces(), !r.at_end()) g.args.push_back(r.read_value());
    return g;
}

// Status responses and continuation requests end in free text, where "{5}" at the end of
// the line is text, not a literal (RFC 3501 9: resp-text).
bool is_text_response(std::string_view frame) {
    if (frame.starts_with("+")) return true;
    auto sp = frame.find(' ');
    if (sp == std::string_view::npos) return false;
    auto rest = frame.substr(sp + 1);
    while (rest.starts_with(" ")) rest.remove_prefix(1);
    auto end = rest.find_first_of(" \r\n[");
    return condition_of(rest.substr(0, end)).has_value();
}

// "* 12 FETCH": the only responses whose literals can go to a body sink.
bool is_fetch_response(std::string_view frame) {
    if (!frame.starts_with("* ")) return false;
    std::size_t i = 2;
    if (i >= frame.size() || !is_digit(frame[i])) return false;
    while (i < frame.size() && is_digit(frame[i])) ++i;
    return istarts_with(frame.substr(i), " FETCH ");
}

// The token before the marker at the frame's end could be a body item ("BODY[...]<n>",
// "RFC822.TEXT"): a cheap test that spares ENVELOPE strings a re-read of the frame.
bool may_name_a_body(std::string_view frame) {
    auto brace = frame.rfind('{');
    if (brace == std::string_view::npos) return false;
    auto before = frame.substr(0, brace);
    if (before.ends_with("~")) before.remove_suffix(1);
    while (before.ends_with(" ")) before.remove_suffix(1);
    if (before.ends_with("]") || before.ends_with(">")) return true;
    auto sp = before.find_last_of(" (");
    auto word = before.substr(sp == std::string_view::npos ? 0 : sp + 1);
    return istarts_with(word, "RFC822");
}

}  // namespace

struct parser::impl {
    enum class state { line, literal_in_memory, literal_to_sink, failed };

    parser_limits limits;
    sink_provider provider;
    std::uint64_t sink_min_size = 0;
    state st = state::line;

    std::string in;  // fed bytes; [pos, size) not consumed yet
    std::size_t pos = 0;
    std::size_t scanned = 0;  // bytes after pos known to hold no LF

    std::string frame;  // the response being assembled: its lines and in-memory literals
    std::vector<literal_desc> literals;
    std::size_t frame_text = 0;      // bytes of lines (the line limit excludes literals)
    std::size_t frame_literals = 0;  // bytes of in-memory literals
    std::uint64_t remaining = 0;     // octets of the current literal still to come
    std::unique_ptr<body_sink> sink;

    error_code error;
    std::string detail;
    std::size_t peak = 0;

    std::size_t buffered() const { return (in.size() - pos) + frame.size(); }
    void note_peak() { peak = std::max(peak, buffered()); }

    void compact() {
        if (pos == in.size()) {
            in.clear();
            if (in.capacity() > 256 * 1024) std::string().swap(in);
            pos = 0;
        } else if (pos > 0) {
            in.erase(0, pos);
            pos = 0;
        }
    }

    void reset_frame() {
        frame.clear();
        if (frame.capacity() > 256 * 1024) std::string().swap(frame);
        literals.clear();
        frame_text = 0;
        frame_literals = 0;
    }

    error_code fail(errc code, std::string what, std::string_view where, std::size_t at) {
        st = state::failed;
        error = make_error_code(code);
        detail = std::move(what);
        if (!where.empty()) {
            detail += " at byte " + std::to_string(at) + " of the response: ";
            detail += excerpt(where, at);
        }
        sink.reset();  // abandoned without finish(): the body is incomplete
        in.clear();
        pos = 0;
        reset_frame();
        return error;
    }

    // A line that ends in a literal marker: returns its size and where it starts, or
    // nullopt. ("~")"{" number64 ["+"] "}" before CRLF (RFC 9051 9, RFC 7888).
    struct marker {
        std::uint64_t size;
        bool too_big;
    };
    static std::optional<marker> literal_marker(std::string_view line) {
        if (line.ends_with("\r\n"))
            line.remove_suffix(2);
        else
            line.remove_suffix(1);
        if (!line.ends_with('}')) return std::nullopt;
        line.remove_suffix(1);
        if (line.ends_with('+')) line.remove_suffix(1);
        std::size_t digits = 0;
        while (digits < line.size() && is_digit(line[line.size() - 1 - digits])) ++digits;
        if (digits == 0 || digits == line.size() || line[line.size() - 1 - digits] != '{')
            return std::nullopt;
        auto num = line.substr(line.size() - digits);
        if (digits > 19) return marker{0, true};
        std::uint64_t v = 0;
        for (char c : num) v = v * 10 + static_cast<std::uint64_t>(c - '0');
        return marker{v, false};
    }

    // Which body, if any, the literal at the end of the frame is. Runs the FETCH reader
    // over the frame so far until it reaches the marker.
    std::optional<pending_literal> body_at_end() const {
        if (!is_fetch_response(frame) || !may_name_a_body(frame)) return std::nullopt;
        reader r(frame, literals, limits, nullptr);
        try {
            (void)read_response(r, frame, limits);
        } catch (parse_error&) {
            return std::nullopt;
        }
        return r.take_pending();
    }

    result<std::optional<response>> parse_frame() {
        reader r(frame, literals, limits, &provider);
        try {
            auto resp = read_response(r, frame, limits);
            if (r.stopped()) r.fail("literal marker without its literal");
            if (!r.at_end()) r.fail("unexpected data at the end of the response");
            reset_frame();
            return std::optional<response>(std::move(resp));
        } catch (parse_error& e) {
            return fail(e.code, std::move(e.what), frame, e.pos);
        }
    }

    result<std::optional<response>> next() {
        for (;;) {
            switch (st) {
                case state::failed:
                    return error;
                case state::literal_in_memory:
                case state::literal_to_sink: {
                    auto n = static_cast<std::size_t>(
                        std::min<std::uint64_t>(remaining, in.size() - pos));
                    if (n > 0) {
                        if (st == state::literal_to_sink)
                            sink->write(std::span<const char>(in.data() + pos, n));
                        else
                            frame.append(in, pos, n);
                        pos += n;
                        remaining -= n;
                        note_peak();
                    }
                    if (remaining > 0) {
                        compact();
                        return std::optional<response>();
                    }
                    if (st == state::literal_to_sink) {
                        auto done = std::move(sink);
                        done->finish();
                    }
                    st = state::line;
                    break;
                }
                case state::line: {
                    auto lf = in.find('\n', pos + scanned);
                    if (lf == std::string::npos) {
                        scanned = in.size() - pos;
                        if (frame_text + scanned > limits.max_line)
                            return fail(errc::line_too_long,
                                        "response longer than " + std::to_string(limits.max_line) +
                                            " bytes outside literals",
                                        std::string_view(in).substr(pos, 80), 0);
                        compact();
                        return std::optional<response>();
                    }
                    auto line = std::string_view(in).substr(pos, lf + 1 - pos);
                    if (frame_text + line.size() > limits.max_line)
                        return fail(errc::line_too_long,
                                    "response longer than " + std::to_string(limits.max_line) +
                                        " bytes outside literals",
                                    line.substr(0, 80), 0);
                    frame.append(line);
                    frame_text += line.size();
                    pos = lf + 1;
                    scanned = 0;
                    note_peak();
                    auto mark = literal_marker(line);
                    if (!mark || is_text_response(frame)) {
                        auto r = parse_frame();
                        if (pos > 64 * 1024 && pos * 2 > in.size()) compact();
                        return r;
                    }
                    if (mark->too_big)
                        return fail(errc::literal_too_large, "literal size out of range", frame,
                                    frame.size() - 2);
                    if (provider && mark->size >= sink_min_size) {
                        if (auto body = body_at_end()) {
                            body_context ctx{body->seq,     body->uid,    body->item,
                                             body->section, body->origin, mark->size};
                            sink = provider(ctx);
                        }
                    }
                    literals.push_back({frame.size(), mark->size, sink != nullptr});
                    remaining = mark->size;
                    if (sink) {
                        st = state::literal_to_sink;
                        break;
                    }
                    if (mark->size > limits.max_literal ||
                        frame_literals + mark->size > limits.max_response_literals)
                        return fail(errc::literal_too_large,
                                    "literal of " + std::to_string(mark->size) +
                                        " bytes over the in-memory limit of " +
                                        std::to_string(limits.max_literal),
                                    frame, frame.size() - 2);
                    frame_literals += static_cast<std::size_t>(mark->size);
                    st = state::literal_in_memory;
                    break;
                }
            }
        }
    }
};

parser::parser(parser_limits limits) : impl_(std::make_unique<impl>()) {
    impl_->limits = limits;
}
parser::~parser() = default;
parser::parser(parser&&) noexcept = default;
parser& parser::operator=(parser&&) noexcept = default;

void parser::feed(std::span<const char> bytes) {
    if (impl_->st == impl::state::failed) return;
    impl_->in.append(bytes.data(), bytes.size());
    impl_->note_peak();
}

result<std::optional<response>> parser::next() {
    return impl_->next();
}

void parser::set_sink_provider(sink_provider provider, std::uint64_t min_size) {
    impl_->provider = std::move(provider);
    impl_->sink_min_size = min_size;
}

const std::string& parser::last_error_detail() const {
    return impl_->detail;
}
bool parser::failed() const {
    return impl_->st == impl::state::failed;
}
std::size_t parser::buffered_bytes() const {
    return impl_->buffered();
}
std::size_t parser::peak_buffered_bytes() const {
    return impl_->peak;
}

}  // namespace tandem::imap
