// SPDX-License-Identifier: MIT
// The parsed form of one server response (RFC 3501 7, RFC 9051 7): a std::variant of small
// structs, one per response kind. Untagged data is dispatched by type, not by command
// (RFC 3501 2.2.2), so every struct stands on its own. Strings hold the raw bytes the
// server sent (mailbox names stay modified UTF-7; decoding them is the caller's business).
#pragma once

#include "tandem/imap/uid_set.hpp"
#include "tandem/mail/types.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace tandem::imap {

// A generic argument, for what the model has no field for (unknown FETCH items, unknown
// untagged responses, extended LIST data). Atoms keep their spelling; NIL keeps "NIL" in
// text; strings hold the unescaped content of a quoted string or a literal's bytes.
struct value {
    enum class kind : std::uint8_t { atom, string, nil, list };
    kind type = kind::atom;
    std::string text;
    std::vector<value> items;  // for lists
    bool literal = false;      // the string came as a literal ({n}, {n+} or ~{n})
    friend bool operator==(const value&, const value&) = default;
};

// A response code: `[UIDNEXT 42]` (RFC 3501 7.1, RFC 4315, RFC 7162, RFC 5530).
struct response_code {
    enum class kind : std::uint8_t {
        other,  // unknown or without a field here: see name and raw
        alert,
        badcharset,
        capability,
        parse,
        permanentflags,
        read_only,
        read_write,
        trycreate,
        uidnext,
        uidvalidity,
        unseen,
        highestmodseq,
        nomodseq,
        modified,
        appenduid,
        copyuid,
        uidnotsticky,
        closed,
        overquota,
    };
    kind type = kind::other;
    std::string name;  // upper-cased: "APPENDUID"
    std::string raw;   // what followed the name up to ']', without the separating space
    // UIDNEXT, UIDVALIDITY, UNSEEN, HIGHESTMODSEQ; and APPENDUID/COPYUID's uidvalidity.
    std::uint64_t number = 0;
    // APPENDUID's UIDs (a set with MULTIAPPEND), COPYUID's source UIDs, MODIFIED's set.
    // Sorted: a server lists COPYUID/MULTIAPPEND UIDs pairwise in order, so whoever pairs
    // them element by element reads `raw` (RFC 4315 3) when the order matters.
    uid_set uids;
    uid_set dest_uids;  // COPYUID's destination UIDs
    // CAPABILITY, PERMANENTFLAGS, BADCHARSET atoms.
    std::vector<std::string> atoms;
    friend bool operator==(const response_code&, const response_code&) = default;
};

enum class condition : std::uint8_t { ok, no, bad, preauth, bye };

// `tag OK/NO/BAD text` and `* OK/NO/BAD/PREAUTH/BYE text`.
struct status_response {
    std::string tag;  // empty when untagged
    condition cond = condition::ok;
    std::optional<response_code> code;
    std::string text;  // human-readable, trailing spaces removed
    bool tagged() const { return !tag.empty(); }
    friend bool operator==(const status_response&, const status_response&) = default;
};

// `+ text` or `+ base64` (RFC 3501 7.5): text holds the rest of the line as sent.
struct continuation_request {
    std::optional<response_code> code;
    std::string text;
    friend bool operator==(const continuation_request&, const continuation_request&) = default;
};

struct capability_data {  // * CAPABILITY
    std::vector<std::string> capabilities;
    friend bool operator==(const capability_data&, const capability_data&) = default;
};
struct enabled_data {  // * ENABLED (RFC 5161)
    std::vector<std::string> capabilities;
    friend bool operator==(const enabled_data&, const enabled_data&) = default;
};
struct flags_data {  // * FLAGS
    std::vector<std::string> flags;
    friend bool operator==(const flags_data&, const flags_data&) = default;
};
struct exists_data {
    std::uint32_t count = 0;
    friend bool operator==(const exists_data&, const exists_data&) = default;
};
struct recent_data {
    std::uint32_t count = 0;
    friend bool operator==(const recent_data&, const recent_data&) = default;
};
struct expunge_data {
    std::uint32_t seq = 0;
    friend bool operator==(const expunge_data&, const expunge_data&) = default;
};
// * VANISHED [(EARLIER)] uids (RFC 7162 3.2.10)
struct vanished_data {
    bool earlier = false;
    uid_set uids;
    friend bool operator==(const vanished_data&, const vanished_data&) = default;
};

// One BODY[section]<origin>, BINARY[section]<origin> or RFC822(.HEADER/.TEXT) item.
struct body_section {
    std::string item;     // "BODY", "BINARY", "RFC822", "RFC822.HEADER", "RFC822.TEXT"
    std::string section;  // between the brackets, as sent: "HEADER.FIELDS (MESSAGE-ID)"
    std::optional<std::uint32_t> origin;  // <origin> of a partial fetch
    bool nil = false;                     // the server answered NIL
    // The bytes went to the sink that the parser's sink_provider returned; data is empty.
    bool streamed = false;
    std::uint64_t size = 0;  // octets of the body (streamed or not)
    std::string data;        // the body when not streamed
    friend bool operator==(const body_section&, const body_section&) = default;
};

// A FETCH item the model has no field for (BODYSTRUCTURE, ENVELOPE, X-GM-LABELS, ...).
struct fetch_item {
    std::string name;  // upper-cased
    value val;
    friend bool operator==(const fetch_item&, const fetch_item&) = default;
};

// * n FETCH (...) (RFC 3501 7.4.2; RFC 7162; RFC 8474; Gmail X-GM-EXT-1; Dovecot X-GUID)
struct fetch_data {
    std::uint32_t seq = 0;
    std::optional<mail::uid> uid;
    std::optional<std::vector<std::string>> flags;  // raw flag atoms as sent
    std::optional<mail::modseq> modseq;
    std::optional<std::string> internaldate_text;  // "17-Jul-1996 02:44:25 -0700"
    std::optional<std::int64_t> internaldate;      // seconds since the epoch, zone applied
    std::optional<std::uint64_t> rfc822_size;
    std::vector<body_section> bodies;
    std::optional<std::string> emailid;   // RFC 8474
    std::optional<std::string> threadid;  // RFC 8474; NIL leaves it empty
    std::optional<std::uint64_t> x_gm_msgid;
    std::optional<std::uint64_t> x_gm_thrid;
    std::optional<std::string> x_guid;  // Dovecot
    std::vector<fetch_item> other;

    // The flags as the shared vocabulary (\Recent dropped), or an empty set without FLAGS.
    mail::flag_set flag_set() const;
    friend bool operator==(const fetch_data&, const fetch_data&) = default;
};

// * SEARCH 2 3 6 [(MODSEQ n)] (RFC 3501 7.2.5, RFC 7162 3.1.5)
struct search_data {
    std::vector<std::uint32_t> numbers;
    std::optional<mail::modseq> modseq;
    friend bool operator==(const search_data&, const search_data&) = default;
};

// * ESEARCH [(TAG "a")] [UID] MIN 1 MAX 9 COUNT 4 ALL 1:3,9 [MODSEQ n] (RFC 4731)
struct esearch_data {
    std::optional<std::string> tag;
    bool uid = false;
    std::optional<std::uint32_t> min;
    std::optional<std::uint32_t> max;
    std::optional<std::uint32_t> count;
    std::optional<uid_set> all;
    std::optional<mail::modseq> modseq;
    std::vector<std::pair<std::string, value>> other;  // unknown return data
    friend bool operator==(const esearch_data&, const esearch_data&) = default;
};

// * LIST / * LSUB (RFC 3501 7.2.2, RFC 5258, RFC 6154)
struct list_data {
    bool lsub = false;
    std::vector<std::string> attributes;  // \HasNoChildren \Sent ...
    std::optional<char> delimiter;        // NIL: a flat namespace
    std::string mailbox;                  // raw bytes (modified UTF-7, or UTF-8 with UTF8=ACCEPT)
    std::vector<std::string> childinfo;   // RFC 5258 CHILDINFO ("SUBSCRIBED")
    std::optional<std::string> oldname;   // RFC 5465 OLDNAME
    std::vector<std::pair<std::string, value>> extended;  // other mbox-list-extended items
    friend bool operator==(const list_data&, const list_data&) = default;
};

// * STATUS mailbox (...) (RFC 3501 7.2.4; also what LIST-STATUS sends, RFC 5819)
struct status_data {
    std::string mailbox;
    std::optional<std::uint32_t> messages;
    std::optional<std::uint32_t> recent;
    std::optional<mail::uid> uidnext;
    std::optional<mail::uidvalidity> uidvalidity;
    std::optional<std::uint32_t> unseen;
    std::optional<mail::modseq> highestmodseq;  // 0: no persistent modseqs (RFC 7162 3.1.7)
    std::optional<std::uint64_t> size;          // RFC 8438
    std::vector<std::pair<std::string, std::uint64_t>> items;  // every item, as sent
    friend bool operator==(const status_data&, const status_data&) = default;
};

// Untagged data the model does not know: `* NAMESPACE ...`, `* ID (...)`, `* 3 XYZ`.
struct generic_data {
    std::string name;                     // upper-cased
    std::optional<std::uint32_t> number;  // `* 3 XYZ`
    std::vector<value> args;
    friend bool operator==(const generic_data&, const generic_data&) = default;
};

using response =
    std::variant<status_response, continuation_request, capability_data, enabled_data, flags_data,
                 exists_data, recent_data, expunge_data, vanished_data, fetch_data, search_data,
                 esearch_data, list_data, status_data, generic_data>;

// Parses an INTERNALDATE / date-time string ("17-Jul-1996 02:44:25 -0700", day may be
// space-padded) to seconds since the epoch in UTC. nullopt if it does not parse.
std::optional<std::int64_t> parse_internaldate(std::string_view text);

// Flag atoms to the shared vocabulary (\Recent and \* dropped).
mail::flag_set make_flag_set(std::span<const std::string> atoms);

}  // namespace tandem::imap
