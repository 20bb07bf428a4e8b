// SPDX-License-Identifier: MIT
#include "tandem/imap/command.hpp"

#include "tandem/util/base64.hpp"

#include <boost/system/errc.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace tandem::imap {
namespace {

// RFC 3501 section 9 (and RFC 9051 section 9):
//   ATOM-CHAR      = <any CHAR except atom-specials>
//   atom-specials  = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
//   list-wildcards = "%" / "*";  quoted-specials = DQUOTE / "\";  resp-specials = "]"
//   ASTRING-CHAR   = ATOM-CHAR / resp-specials
//   list-char      = ATOM-CHAR / list-wildcards / resp-specials
bool atom_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x1f || u >= 0x7f) return false;  // CTL, and CHAR is 7-bit
    switch (c) {
        case '(':
        case ')':
        case '{':
        case ' ':
        case '%':
        case '*':
        case '"':
        case '\\':
        case ']':
            return false;
        default:
            return true;
    }
}
bool astring_char(char c) {
    return atom_char(c) || c == ']';
}
bool list_char(char c) {
    return astring_char(c) || c == '%' || c == '*';
}

template <class Pred>
bool all_of(std::string_view s, Pred p) {
    return !s.empty() && std::all_of(s.begin(), s.end(), p);
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto lead = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        char32_t c = 0;
        char32_t min = 0;
        if (lead < 0x80) {
            ++i;
            continue;
        } else if ((lead & 0xe0) == 0xc0) {
            len = 2, c = lead & 0x1f, min = 0x80;
        } else if ((lead & 0xf0) == 0xe0) {
            len = 3, c = lead & 0x0f, min = 0x800;
        } else if ((lead & 0xf8) == 0xf0) {
            len = 4, c = lead & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (s.size() - i < len) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xc0) != 0x80) return false;
            c = c << 6 | (b & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

bool has_byte(std::string_view s, char c) {
    return s.find(c) != std::string_view::npos;
}
bool has_8bit(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return (c & 0x80) != 0; });
}

class memory_source final : public literal_source {
  public:
    explicit memory_source(std::shared_ptr<const std::string> bytes) : bytes_(std::move(bytes)) {}
    std::uint64_t size() const override { return bytes_->size(); }
    result<std::size_t> read(std::span<char> buffer) override {
        const std::size_t n = std::min(buffer.size(), bytes_->size() - pos_);
        std::memcpy(buffer.data(), bytes_->data() + pos_, n);
        pos_ += n;
        return n;
    }

  private:
    std::shared_ptr<const std::string> bytes_;
    std::size_t pos_ = 0;
};

class file_source final : public literal_source {
  public:
    file_source(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
    ~file_source() override { ::close(fd_); }
    file_source(const file_source&) = delete;
    file_source& operator=(const file_source&) = delete;

    std::uint64_t size() const override { return size_; }
    result<std::size_t> read(std::span<char> buffer) override {
        const std::uint64_t left = size_ - done_;
        if (left == 0 || buffer.empty()) return std::size_t{0};
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
        for (;;) {
            const ssize_t n = ::read(fd_, buffer.data(), want);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return error_code(errno, boost::system::system_category());
            // The file shrank after its size was announced in `{n}`: the literal cannot be
            // completed, and padding it would store a corrupt message.
            if (n == 0) return make_error_code(boost::system::errc::io_error);
            done_ += static_cast<std::uint64_t>(n);
            return static_cast<std::size_t>(n);
        }
    }

  private:
    int fd_;
    std::uint64_t size_;
    std::uint64_t done_ = 0;
};

// A shared source handed out as is: it reads once, whoever holds it.
class shared_source final : public literal_source {
  public:
    explicit shared_source(std::shared_ptr<literal_source> s) : s_(std::move(s)) {}
    std::uint64_t size() const override { return s_->size(); }
    result<std::size_t> read(std::span<char> buffer) override { return s_->read(buffer); }

  private:
    std::shared_ptr<literal_source> s_;
};

constexpr std::uint64_t literal_minus_limit = 4096;  // RFC 7888 section 4

}  // namespace

namespace detail {

// The walk shared by the wire form and the log form: appends to `text`, and at each literal
// closes a segment.
class argument_writer {
  public:
    argument_writer(const wire_options& o, bool log, std::string* detail)
        : opts_(o), log_(log), detail_(detail) {}

    error_code write(const argument& a, std::size_t index) {
        if (log_ && a.secret_) {
            text += "***";
            return {};
        }
        using k = argument::kind;
        switch (a.kind_) {
            case k::raw:
                if (has_byte(a.text_, '\r') || has_byte(a.text_, '\n') || has_byte(a.text_, '\0'))
                    return fail(index, "raw text holds CR, LF or NUL");
                if (a.text_.empty()) return fail(index, "empty raw text");
                text += a.text_;
                return {};
            case k::atom:
                if (!all_of(a.text_, atom_char)) return fail(index, "not an atom");
                text += a.text_;
                return {};
            case k::flag: {
                const std::string_view body = !a.text_.empty() && a.text_[0] == '\\'
                                                  ? std::string_view(a.text_).substr(1)
                                                  : std::string_view(a.text_);
                if (!all_of(body, atom_char)) return fail(index, "not a flag atom");
                text += a.text_;
                return {};
            }
            case k::astring:
                if (all_of(a.text_, astring_char) && !iequals(a.text_, "NIL")) {
                    text += a.text_;
                    return {};
                }
                return string(a.text_, index);
            case k::list_mailbox:
                if (all_of(a.text_, list_char) && !iequals(a.text_, "NIL")) {
                    text += a.text_;
                    return {};
                }
                return string(a.text_, index);
            case k::string:
                return string(a.text_, index);
            case k::literal:
                return literal(*a.literal_, a.binary_, index);
            case k::list: {
                text += '(';
                for (std::size_t i = 0; i < a.items_.size(); ++i) {
                    if (i > 0) text += ' ';
                    if (auto ec = write(a.items_[i], index)) return ec;
                }
                text += ')';
                return {};
            }
        }
        return fail(index, "unknown argument kind");
    }

    error_code fail(std::size_t index, std::string_view why) {
        if (detail_) *detail_ = "argument " + std::to_string(index + 1) + ": " + std::string(why);
        return errc::invalid_argument;
    }

    std::vector<segment> segments;
    std::string text;

  private:
    // string = quoted / literal (RFC 3501 section 4.3, RFC 9051 section 4.3).
    error_code string(const std::string& s, std::size_t index) {
        // No form of string carries NUL: CHAR8 and TEXT-CHAR both leave it out.
        if (has_byte(s, '\0')) return fail(index, "NUL in a string");
        const bool eight_bit = has_8bit(s);
        const bool quotable = !has_byte(s, '\r') && !has_byte(s, '\n') &&
                              (!eight_bit || (opts_.utf8_accept && valid_utf8(s)));
        if (!quotable) return literal(literal_data::from_memory(s), false, index);
        text += '"';
        for (char c : s) {
            if (c == '"' || c == '\\') text += '\\';
            text += c;
        }
        text += '"';
        return {};
    }

    error_code literal(const literal_data& data, bool binary, std::size_t index) {
        if (!binary && data.memory() && has_byte(*data.memory(), '\0')) {
            // CHAR8 excludes NUL; literal8 (RFC 3516 section 4.3) carries any OCTET.
            if (!opts_.binary) {
                if (detail_)
                    *detail_ = "argument " + std::to_string(index + 1) +
                               ": NUL in a literal and no BINARY";
                return errc::missing_capability;
            }
            binary = true;
        }
        if (binary && !opts_.binary) {
            if (detail_)
                *detail_ = "argument " + std::to_string(index + 1) + ": literal8 needs BINARY";
            return errc::missing_capability;
        }
        const std::uint64_t n = data.size();
        if (log_) {
            text += binary ? "~{" : "{";
            text += std::to_string(n);
            text += " bytes}";
            return {};
        }
        // RFC 4466 section 4 allows `~{n+}` where both LITERAL+ and BINARY are offered.
        const bool plus = opts_.literals == literal_mode::plus ||
                          (opts_.literals == literal_mode::minus && n <= literal_minus_limit);
        text += binary ? "~{" : "{";
        text += std::to_string(n);
        if (plus) text += '+';
        text += "}\r\n";
        segments.push_back(segment{std::move(text), data, !plus});
        text.clear();
        return {};
    }

    const wire_options& opts_;
    bool log_;
    std::string* detail_;
};

}  // namespace detail

result<std::shared_ptr<literal_source>> literal_data::open() const {
    if (memory_) return std::shared_ptr<literal_source>(std::make_shared<memory_source>(memory_));
    if (source_) return std::shared_ptr<literal_source>(std::make_shared<shared_source>(source_));
    int fd = -1;
    do {
        fd = ::open(file_->c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return error_code(errno, boost::system::system_category());
    return std::shared_ptr<literal_source>(std::make_shared<file_source>(fd, size_));
}

literal_data literal_data::from_memory(std::string bytes) {
    return from_shared(std::make_shared<const std::string>(std::move(bytes)));
}

literal_data literal_data::from_shared(std::shared_ptr<const std::string> bytes) {
    literal_data d;
    d.size_ = bytes->size();
    d.memory_ = std::move(bytes);
    return d;
}

literal_data literal_data::from_file(std::filesystem::path path, std::uint64_t size) {
    literal_data d;
    d.size_ = size;
    d.file_ = std::move(path);
    return d;
}

literal_data literal_data::from_source(std::shared_ptr<literal_source> source) {
    literal_data d;
    d.size_ = source->size();
    d.source_ = std::move(source);
    return d;
}

argument argument::raw(std::string text) {
    return argument(kind::raw, std::move(text));
}
argument argument::atom(std::string text) {
    return argument(kind::atom, std::move(text));
}
argument argument::flag(std::string name) {
    return argument(kind::flag, std::move(name));
}
argument argument::number(std::uint64_t n) {
    return argument(kind::raw, std::to_string(n));
}
argument argument::astring(std::string s) {
    return argument(kind::astring, std::move(s));
}
argument argument::string(std::string s) {
    return argument(kind::string, std::move(s));
}
argument argument::nstring(std::optional<std::string> s) {
    return s ? string(std::move(*s)) : raw("NIL");
}
argument argument::mailbox(std::string wire_name) {
    return astring(std::move(wire_name));
}
argument argument::list_mailbox(std::string pattern) {
    return argument(kind::list_mailbox, std::move(pattern));
}
argument argument::literal(literal_data data, bool binary) {
    argument a(kind::literal, {});
    a.literal_ = std::move(data);
    a.binary_ = binary;
    return a;
}
argument argument::list(std::vector<argument> items) {
    argument a(kind::list, {});
    a.items_ = std::move(items);
    return a;
}
argument argument::secret(argument inner) {
    inner.secret_ = true;
    return inner;
}

namespace {

bool valid_tag(std::string_view tag) {
    return all_of(tag, [](char c) { return astring_char(c) && c != '+'; });
}

}  // namespace

result<std::vector<segment>> command::serialize(std::string_view tag, const wire_options& options,
                                                std::string* detail) const {
    if (!valid_tag(tag)) {
        if (detail) *detail = "invalid tag";
        return errc::invalid_argument;
    }
    if (name_.empty() || has_byte(name_, '\r') || has_byte(name_, '\n') || has_byte(name_, '\0')) {
        if (detail) *detail = "invalid command name";
        return errc::invalid_argument;
    }
    detail::argument_writer w(options, false, detail);
    w.text.reserve(tag.size() + name_.size() + 64);
    w.text += tag;
    w.text += ' ';
    w.text += name_;
    for (std::size_t i = 0; i < args_.size(); ++i) {
        w.text += ' ';
        if (auto ec = w.write(args_[i], i)) return ec;
    }
    w.text += "\r\n";
    w.segments.push_back(segment{std::move(w.text), std::nullopt, false});
    return std::move(w.segments);
}

result<std::string> command::wire(std::string_view tag, const wire_options& options) const {
    auto segs = serialize(tag, options);
    if (!segs) return segs.error();
    std::string out;
    for (const auto& s : *segs) {
        out += s.text;
        if (!s.literal) continue;
        if (!s.literal->memory()) return errc::invalid_argument;
        out += *s.literal->memory();
    }
    return out;
}

std::string command::redacted(std::string_view tag, const wire_options& options) const {
    detail::argument_writer w(options, true, nullptr);
    w.text += tag;
    w.text += ' ';
    w.text += name_;
    for (std::size_t i = 0; i < args_.size(); ++i) {
        w.text += ' ';
        const std::size_t mark = w.text.size();
        // An argument that cannot be sent still gets a line in the log, without its bytes.
        if (w.write(args_[i], i)) {
            w.text.resize(mark);
            w.text += "<invalid>";
        }
    }
    return std::move(w.text);
}

namespace cmd {
namespace {

command bare(std::string name) {
    return command(std::move(name));
}

argument atom_list(const std::vector<std::string>& items) {
    std::vector<argument> out;
    out.reserve(items.size());
    for (const auto& i : items) out.push_back(argument::atom(i));
    return argument::list(std::move(out));
}

argument raw_list(const std::vector<std::string>& items) {
    std::vector<argument> out;
    out.reserve(items.size());
    for (const auto& i : items) out.push_back(argument::raw(i));
    return argument::list(std::move(out));
}

argument flag_list(const mail::flag_set& flags) {
    std::vector<argument> out;
    for (auto& f : flags.imap_atoms()) out.push_back(argument::flag(std::move(f)));
    return argument::list(std::move(out));
}

// RFC 5801 section 4: saslname escapes `,` and `=`.
std::string saslname(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == ',')
            out += "=2C";
        else if (c == '=')
            out += "=3D";
        else
            out += c;
    }
    return out;
}

command select_like(std::string name, std::string_view mailbox, const select_options& o) {
    command c(std::move(name));
    c.add(argument::mailbox(std::string(mailbox)));
    if (o.qresync) {
        std::vector<argument> params{argument::number(o.qresync->uidvalidity),
                                     argument::number(o.qresync->modseq)};
        if (!o.qresync->known_uids.empty()) params.push_back(argument::raw(o.qresync->known_uids));
        c.add(argument::list({argument::atom("QRESYNC"), argument::list(std::move(params))}));
    } else if (o.condstore) {
        c.add(argument::list({argument::atom("CONDSTORE")}));
    }
    return c;
}

command set_and_mailbox(std::string name, std::string_view uids, std::string_view mailbox) {
    command c(std::move(name));
    c.add(argument::raw(std::string(uids)));
    c.add(argument::mailbox(std::string(mailbox)));
    return c;
}

}  // namespace

command capability() {
    return bare("CAPABILITY");
}
command noop() {
    return bare("NOOP");
}
command logout() {
    return bare("LOGOUT");
}
command starttls() {
    return bare("STARTTLS");
}
command idle() {
    return bare("IDLE");
}
command unselect() {
    return bare("UNSELECT");
}
command expunge() {
    return bare("EXPUNGE");
}
command compress_deflate() {
    return bare("COMPRESS DEFLATE");
}
command namespace_list() {
    return bare("NAMESPACE");
}

command login(std::string_view user, std::string_view password) {
    command c("LOGIN");
    c.add(argument::astring(std::string(user)));
    c.add(argument::secret(argument::astring(std::string(password))));
    return c;
}

std::string sasl_plain(std::string_view user, std::string_view password, std::string_view authzid) {
    std::string out;
    out.reserve(authzid.size() + user.size() + password.size() + 2);
    out += authzid;
    out += '\0';
    out += user;
    out += '\0';
    out += password;
    return out;
}

std::string sasl_xoauth2(std::string_view user, std::string_view token) {
    std::string out = "user=";
    out += user;
    out +=
        "\x01"
        "auth=Bearer ";
    out += token;
    out += "\x01\x01";
    return out;
}

std::string sasl_oauthbearer(std::string_view user, std::string_view token, std::string_view host,
                             std::uint16_t port) {
    // gs2-header = gs2-cbind-flag "," [authzid] ","; "n": no channel binding (RFC 7628 3.1).
    std::string out = "n,";
    if (!user.empty()) out += "a=" + saslname(user);
    out += ",\x01";
    if (!host.empty()) {
        out += "host=";
        out += host;
        out += '\x01';
    }
    if (port != 0) {
        out += "port=" + std::to_string(port);
        out += '\x01';
    }
    out += "auth=Bearer ";
    out += token;
    out += "\x01\x01";
    return out;
}

command authenticate(std::string_view mechanism, std::optional<std::string_view> initial_response) {
    command c("AUTHENTICATE");
    c.add(argument::atom(std::string(mechanism)));
    if (initial_response) {
        // RFC 4959 section 3: a zero-length initial response is sent as "=".
        std::string b64 =
            initial_response->empty() ? std::string("=") : util::base64_encode(*initial_response);
        c.add(argument::secret(argument::raw(std::move(b64))));
    }
    return c;
}

command authenticate_plain(std::string_view user, std::string_view password,
                           std::string_view authzid) {
    return authenticate("PLAIN", sasl_plain(user, password, authzid));
}

command authenticate_xoauth2(std::string_view user, std::string_view token) {
    return authenticate("XOAUTH2", sasl_xoauth2(user, token));
}

command authenticate_oauthbearer(std::string_view user, std::string_view token,
                                 std::string_view host, std::uint16_t port) {
    return authenticate("OAUTHBEARER", sasl_oauthbearer(user, token, host, port));
}

command enable(const std::vector<std::string>& capabilities) {
    command c("ENABLE");
    for (const auto& cap : capabilities) c.add(argument::atom(cap));
    return c;
}

command id(const std::vector<std::pair<std::string, std::string>>& fields) {
    command c("ID");
    if (fields.empty()) {
        c.add(argument::raw("NIL"));
        return c;
    }
    std::vector<argument> items;
    items.reserve(fields.size() * 2);
    for (const auto& [key, value] : fields) {
        items.push_back(argument::string(key));
        items.push_back(argument::string(value));
    }
    c.add(argument::list(std::move(items)));
    return c;
}

command list(std::string_view reference, std::string_view pattern, const list_options& o) {
    command c("LIST");
    if (!o.selection.empty()) c.add(atom_list(o.selection));
    c.add(argument::mailbox(std::string(reference)));
    c.add(argument::list_mailbox(std::string(pattern)));
    std::vector<argument> ret;
    if (o.return_special_use) ret.push_back(argument::atom("SPECIAL-USE"));
    if (!o.status_items.empty()) {
        ret.push_back(argument::atom("STATUS"));
        ret.push_back(atom_list(o.status_items));
    }
    if (!ret.empty()) {
        c.add(argument::atom("RETURN"));
        c.add(argument::list(std::move(ret)));
    }
    return c;
}

command status(std::string_view mailbox, const std::vector<std::string>& items) {
    command c("STATUS");
    c.add(argument::mailbox(std::string(mailbox)));
    c.add(atom_list(items));
    return c;
}

command select(std::string_view mailbox, const select_options& o) {
    return select_like("SELECT", mailbox, o);
}

command examine(std::string_view mailbox, const select_options& o) {
    return select_like("EXAMINE", mailbox, o);
}

command uid_fetch(std::string_view uids, const std::vector<std::string>& items,
                  std::optional<changed_since> since) {
    command c("UID FETCH");
    c.add(argument::raw(std::string(uids)));
    c.add(raw_list(items));
    if (since) {
        std::vector<argument> mods{argument::atom("CHANGEDSINCE"), argument::number(since->modseq)};
        if (since->vanished) mods.push_back(argument::atom("VANISHED"));
        c.add(argument::list(std::move(mods)));
    }
    return c;
}

command uid_search(std::vector<argument> criteria, const std::vector<std::string>& return_options) {
    command c("UID SEARCH");
    if (!return_options.empty()) {
        c.add(argument::atom("RETURN"));
        c.add(atom_list(return_options));
    }
    for (auto& a : criteria) c.add(std::move(a));
    return c;
}

command uid_store(std::string_view uids, store_mode mode, const mail::flag_set& flags, bool silent,
                  std::optional<mail::modseq> unchanged_since) {
    command c("UID STORE");
    c.add(argument::raw(std::string(uids)));
    if (unchanged_since)
        c.add(
            argument::list({argument::atom("UNCHANGEDSINCE"), argument::number(*unchanged_since)}));
    std::string item = mode == store_mode::add      ? "+FLAGS"
                       : mode == store_mode::remove ? "-FLAGS"
                                                    : "FLAGS";
    if (silent) item += ".SILENT";
    c.add(argument::atom(std::move(item)));
    c.add(flag_list(flags));
    return c;
}

result<command> append(std::string_view mailbox, const std::vector<append_message>& messages) {
    if (messages.empty()) return errc::invalid_argument;
    command c("APPEND");
    c.add(argument::mailbox(std::string(mailbox)));
    for (const auto& m : messages) {
        // RFC 3501 6.3.11: the flag list and the date are optional; an empty list says nothing.
        if (!m.flags.empty()) c.add(flag_list(m.flags));
        if (m.internal_date) {
            auto date = format_date_time(*m.internal_date);
            if (!date) return date.error();
            c.add(argument::string(std::move(*date)));
        }
        c.add(argument::literal(m.content, m.binary));
    }
    return c;
}

command uid_move(std::string_view uids, std::string_view mailbox) {
    return set_and_mailbox("UID MOVE", uids, mailbox);
}

command uid_copy(std::string_view uids, std::string_view mailbox) {
    return set_and_mailbox("UID COPY", uids, mailbox);
}

command uid_expunge(std::string_view uids) {
    command c("UID EXPUNGE");
    c.add(argument::raw(std::string(uids)));
    return c;
}

command create(std::string_view mailbox, const std::vector<std::string>& special_use) {
    command c("CREATE");
    c.add(argument::mailbox(std::string(mailbox)));
    if (!special_use.empty()) {
        std::vector<argument> uses;
        for (const auto& u : special_use) uses.push_back(argument::flag(u));
        c.add(argument::list({argument::atom("USE"), argument::list(std::move(uses))}));
    }
    return c;
}

command delete_mailbox(std::string_view mailbox) {
    command c("DELETE");
    c.add(argument::mailbox(std::string(mailbox)));
    return c;
}

command rename(std::string_view from, std::string_view to) {
    command c("RENAME");
    c.add(argument::mailbox(std::string(from)));
    c.add(argument::mailbox(std::string(to)));
    return c;
}

command subscribe(std::string_view mailbox) {
    command c("SUBSCRIBE");
    c.add(argument::mailbox(std::string(mailbox)));
    return c;
}

}  // namespace cmd
}  // namespace tandem::imap
