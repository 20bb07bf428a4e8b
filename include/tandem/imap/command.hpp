// SPDX-License-Identifier: MIT
// IMAP commands as values: a name and arguments, serialised for a given tag and server into the
// segments that the connection sends (text, then a literal, then text...), and into a redacted
// line for logs. No I/O here; literal bodies are only referred to, so that a large APPEND streams
// from its file instead of being copied into the command.
#pragma once

#include "tandem/imap/datetime.hpp"
#include "tandem/imap/uid_set.hpp"
#include "tandem/mail/types.hpp"
#include "tandem/util/error.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::imap {

namespace detail {
class argument_writer;
}

// Bytes that the connection pulls chunk by chunk while it sends a literal.
class literal_source {
  public:
    virtual ~literal_source() = default;
    virtual std::uint64_t size() const = 0;
    // Fills the front of `buffer` with the next bytes and returns how many; 0 only once all
    // size() bytes have been read. An error when the bytes cannot be had (a file that shrank).
    virtual result<std::size_t> read(std::span<char> buffer) = 0;
};

// The payload of a literal: bytes held in memory (shared, never copied by the command), a file
// read when the literal is sent, or a caller's source. Cheap to copy.
class literal_data {
  public:
    static literal_data from_memory(std::string bytes);
    static literal_data from_shared(std::shared_ptr<const std::string> bytes);
    // `size` is what the command announces; sending fails if the file then holds fewer bytes,
    // and only `size` bytes are sent if it holds more.
    static literal_data from_file(std::filesystem::path path, std::uint64_t size);
    // A source is read once: a command holding one can be sent once.
    static literal_data from_source(std::shared_ptr<literal_source> source);

    std::uint64_t size() const { return size_; }
    // The bytes when they are in memory, else nullptr.
    const std::string* memory() const { return memory_.get(); }
    // The file when the bytes are in one, else nullptr.
    const std::filesystem::path* file() const { return file_ ? &*file_ : nullptr; }

    // A reader positioned on the first byte. A file is opened here (its open error is returned).
    result<std::shared_ptr<literal_source>> open() const;

  private:
    literal_data() = default;
    std::uint64_t size_ = 0;
    std::shared_ptr<const std::string> memory_;
    std::optional<std::filesystem::path> file_;
    std::shared_ptr<literal_source> source_;
};

// What the server allows for the forms of arguments; from its capabilities and ENABLEs.
enum class literal_mode {
    synchronizing,  // `{n}`: wait for `+` before each literal (RFC 3501 section 4.3)
    plus,           // LITERAL+: `{n+}` for any size (RFC 7888 section 3)
    minus,  // LITERAL- or IMAP4rev2: `{n+}` up to 4096 bytes, `{n}` above (RFC 7888 section 4)
};

struct wire_options {
    literal_mode literals = literal_mode::synchronizing;
    bool utf8_accept = false;  // after ENABLE UTF8=ACCEPT (RFC 6855 section 3): UTF-8 may be quoted
    bool binary = false;       // BINARY offered: literal8 `~{n}` allowed (RFC 3516 section 4.3)
};

// One step for the connection: send `text`; then, if there is a literal, wait for the server's
// continuation request when `needs_continuation`, send the literal's bytes, and go on with the
// next segment. `text` ends with the literal's `{n}` CRLF header; the last segment has no
// literal and its text ends with the CRLF that ends the command.
struct segment {
    std::string text;
    std::optional<literal_data> literal;
    bool needs_continuation = false;
};

// One argument, with the form chosen at serialisation from the wire options.
class argument {
  public:
    // Sent verbatim: keywords, sequence sets, fetch items, `(\Seen $Forwarded)`. May not hold
    // CR, LF or NUL (checked when serialised, so that no value can inject a command).
    static argument raw(std::string text);
    // 1*ATOM-CHAR (RFC 3501 section 9), checked when serialised.
    static argument atom(std::string text);
    // `\Seen` or a keyword: ["\"] atom (RFC 3501 flag), checked when serialised.
    static argument flag(std::string name);
    static argument number(std::uint64_t n);
    // astring: an atom of ASTRING-CHAR (`]` allowed) when it is one, else a quoted string, else
    // a literal when it holds CR, LF or 8-bit bytes (8-bit UTF-8 is quoted under UTF8=ACCEPT).
    // NUL cannot be sent in any string. `NIL` and the empty string are quoted.
    static argument astring(std::string s);
    // string: as astring but never an atom (search keys, ID values, dates).
    static argument string(std::string s);
    // nstring: NIL or string.
    static argument nstring(std::optional<std::string> s);
    // A mailbox name already in its wire form (modified UTF-7, or UTF-8 under UTF8=ACCEPT).
    static argument mailbox(std::string wire_name);
    // A LIST pattern: an atom when made of list-char (ATOM-CHAR, `%`, `*`, `]`), else a string.
    static argument list_mailbox(std::string pattern);
    // Always a literal; `binary` makes it literal8 `~{n}` (BINARY). A plain literal held in
    // memory that contains NUL is sent as literal8 when BINARY is offered, else refused.
    static argument literal(literal_data data, bool binary = false);
    static argument list(std::vector<argument> items);
    // The same argument, shown as `***` in the redacted form.
    static argument secret(argument inner);

    bool is_secret() const { return secret_; }

  private:
    friend class detail::argument_writer;
    enum class kind { raw, atom, flag, astring, string, list_mailbox, literal, list };
    argument(kind k, std::string text) : kind_(k), text_(std::move(text)) {}

    kind kind_;
    std::string text_;
    std::optional<literal_data> literal_;
    std::vector<argument> items_;
    bool binary_ = false;
    bool secret_ = false;
};

class command {
  public:
    // `name` is sent verbatim after the tag: `SELECT`, `UID FETCH`.
    explicit command(std::string name) : name_(std::move(name)) {}

    command& add(argument a) {
        args_.push_back(std::move(a));
        return *this;
    }

    const std::string& name() const { return name_; }
    const std::vector<argument>& arguments() const { return args_; }

    // The wire form. errc::invalid_argument for a bad tag (RFC 3501 tag: ASTRING-CHAR but `+`),
    // a raw or atom argument that breaks its rule, NUL in a string; errc::missing_capability for
    // literal8 without BINARY. `detail`, when given, says which argument and why.
    result<std::vector<segment>> serialize(std::string_view tag, const wire_options& options,
                                           std::string* detail = nullptr) const;
    // The serialised bytes as one string with the literals inline, for tests and small commands;
    // literals must be in memory.
    result<std::string> wire(std::string_view tag, const wire_options& options) const;

    // One line for logs: secret arguments as `***`, literals as `{n bytes}`, no CRLF.
    std::string redacted(std::string_view tag, const wire_options& options = {}) const;

  private:
    std::string name_;
    std::vector<argument> args_;
};

// Builders for the commands the client sends; each returns the command without its tag. UID
// sets come formatted (`1:5,9`, `1:*`).
namespace cmd {

command capability();
command noop();
command logout();
command starttls();
command idle();  // the connection ends it with idle_done after the server's `+`
inline constexpr std::string_view idle_done = "DONE\r\n";
command unselect();
command expunge();
command compress_deflate();
command namespace_list();

// LOGIN user password; the password is secret.
command login(std::string_view user, std::string_view password);

// SASL initial responses, raw (not base64).
// PLAIN (RFC 4616): authzid NUL authcid NUL passwd.
std::string sasl_plain(std::string_view user, std::string_view password,
                       std::string_view authzid = {});
// XOAUTH2 (Google): "user=" user ^A "auth=Bearer " token ^A ^A.
std::string sasl_xoauth2(std::string_view user, std::string_view token);
// OAUTHBEARER (RFC 7628 section 3.1): gs2 header "n,a=user," (`,` and `=` escaped as in
// RFC 5801 saslname) then ^A-separated host, port (left out when empty or 0) and auth.
std::string sasl_oauthbearer(std::string_view user, std::string_view token,
                             std::string_view host = {}, std::uint16_t port = 0);

// AUTHENTICATE mechanism [initial-response]: the response is base64-encoded here and secret; an
// empty one is sent as `=` (RFC 4959 section 3). Without SASL-IR pass nullopt and send the
// base64 of the response as a line after the server's `+`.
command authenticate(std::string_view mechanism, std::optional<std::string_view> initial_response);
command authenticate_plain(std::string_view user, std::string_view password,
                           std::string_view authzid = {});
command authenticate_xoauth2(std::string_view user, std::string_view token);
command authenticate_oauthbearer(std::string_view user, std::string_view token,
                                 std::string_view host, std::uint16_t port);

command enable(const std::vector<std::string>& capabilities);
// ID (RFC 2971): ID ("name" "tandem" ...), or ID NIL when there are no fields.
command id(const std::vector<std::pair<std::string, std::string>>& fields);

// LIST (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE).
struct list_options {
    std::vector<std::string> selection;     // SUBSCRIBED, SPECIAL-USE, REMOTE, RECURSIVEMATCH
    bool return_special_use = false;        // RETURN (SPECIAL-USE)
    std::vector<std::string> status_items;  // RETURN (STATUS (UIDVALIDITY UIDNEXT ...))
};
command list(std::string_view reference, std::string_view pattern, const list_options& = {});

command status(std::string_view mailbox, const std::vector<std::string>& items);

// SELECT/EXAMINE parameters (RFC 7162 sections 3.1.8 and 3.2.5).
struct qresync_params {
    mail::uidvalidity uidvalidity = 0;
    mail::modseq modseq = 0;
    std::string known_uids;  // a UID set, or empty
};
struct select_options {
    bool condstore = false;                 // (CONDSTORE); ignored when qresync is given
    std::optional<qresync_params> qresync;  // (QRESYNC (uidvalidity modseq [known-uids]))
};
command select(std::string_view mailbox, const select_options& = {});
command examine(std::string_view mailbox, const select_options& = {});

// UID FETCH set (items) [(CHANGEDSINCE n [VANISHED])] (RFC 7162 sections 3.1.4, 3.2.6).
// VANISHED is only allowed with CHANGEDSINCE, hence its place here.
struct changed_since {
    mail::modseq modseq = 0;
    bool vanished = false;
};
command uid_fetch(std::string_view uids, const std::vector<std::string>& items,
                  std::optional<changed_since> since = {});

// UID SEARCH [RETURN (options)] criteria (RFC 4731 ESEARCH when return_options is given).
command uid_search(std::vector<argument> criteria,
                   const std::vector<std::string>& return_options = {});

// UID STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] (flags) (RFC 7162 section 3.1.3).
enum class store_mode { add, remove, replace };
command uid_store(std::string_view uids, store_mode mode, const mail::flag_set& flags,
                  bool silent = true, std::optional<mail::modseq> unchanged_since = {});

// APPEND mailbox 1*([flags] [date-time] literal): one message, or several with MULTIAPPEND
// (RFC 3502). errc::invalid_argument when there is no message or a date cannot be written.
struct append_message {
    mail::flag_set flags;
    std::optional<date_time> internal_date;
    literal_data content;
    bool binary = false;  // literal8 (RFC 3516 section 4.4)
};
result<command> append(std::string_view mailbox, const std::vector<append_message>& messages);

command uid_move(std::string_view uids, std::string_view mailbox);
command uid_copy(std::string_view uids, std::string_view mailbox);
command uid_expunge(std::string_view uids);
// CREATE mailbox [(USE (\Sent ...))] (RFC 6154 section 5.2).
command create(std::string_view mailbox, const std::vector<std::string>& special_use = {});
command delete_mailbox(std::string_view mailbox);
command rename(std::string_view from, std::string_view to);
command subscribe(std::string_view mailbox);

// The same with a uid_set; an empty set makes a command that fails to serialise (no command
// may name no message), so check for emptiness before building one.
inline command uid_fetch(const uid_set& uids, const std::vector<std::string>& items,
                         std::optional<changed_since> since = {}) {
    return uid_fetch(uids.to_string(), items, since);
}
inline command uid_store(const uid_set& uids, store_mode mode, const mail::flag_set& flags,
                         bool silent = true, std::optional<mail::modseq> unchanged_since = {}) {
    return uid_store(uids.to_string(), mode, flags, silent, unchanged_since);
}
inline command uid_move(const uid_set& uids, std::string_view mailbox) {
    return uid_move(uids.to_string(), mailbox);
}
inline command uid_copy(const uid_set& uids, std::string_view mailbox) {
    return uid_copy(uids.to_string(), mailbox);
}
inline command uid_expunge(const uid_set& uids) {
    return uid_expunge(uids.to_string());
}

}  // namespace cmd
}  // namespace tandem::imap
