// SPDX-License-Identifier: MIT
// The vocabulary every layer shares: UIDs, mod-sequences, flag sets, identities.
// Plain values with no I/O, so that no layer has to include one above it (DESIGN.md).
#pragma once

#include <compare>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::mail {

using uid = std::uint32_t;          // RFC 3501 2.3.1.1: nz-number, 32 bits
using uidvalidity = std::uint32_t;  // RFC 3501 2.3.1.1
using modseq = std::uint64_t;       // RFC 7162 3.1: 63-bit mod-sequence-value

// The system flags tandem syncs. \Recent is session state and never synced (RFC 3501 2.3.2).
enum class system_flag : std::uint8_t {
    seen = 1 << 0,
    answered = 1 << 1,
    flagged = 1 << 2,
    deleted = 1 << 3,
    draft = 1 << 4,
};

// A message's flags: the system flags as bits, keywords ($Forwarded, NotJunk, ...) as a
// sorted list without duplicates. Keywords compare case-sensitively as stored.
class flag_set {
public:
    flag_set() = default;

    bool has(system_flag f) const { return (bits_ & static_cast<std::uint8_t>(f)) != 0; }
    void set(system_flag f) { bits_ |= static_cast<std::uint8_t>(f); }
    void clear(system_flag f) { bits_ &= static_cast<std::uint8_t>(~static_cast<std::uint8_t>(f)); }
    bool has_keyword(std::string_view k) const;
    void add_keyword(std::string_view k);
    void remove_keyword(std::string_view k);

    // Adds an IMAP flag atom (`\Seen`, `$Forwarded`). `\Recent` and `\*` are ignored.
    // System flag names match case-insensitively (RFC 9051 2.3.2).
    void add_imap(std::string_view atom);
    // Flags in IMAP syntax, system flags first: `\Seen \Flagged $Forwarded`.
    std::string to_imap() const;
    std::vector<std::string> imap_atoms() const;

    std::uint8_t system_bits() const { return bits_; }
    void set_system_bits(std::uint8_t bits) { bits_ = bits & 0x1f; }
    const std::vector<std::string>& keywords() const { return keywords_; }
    bool empty() const { return bits_ == 0 && keywords_.empty(); }

    // Three-way merge helpers: the flags in `this` that are not in `other`.
    flag_set minus(const flag_set& other) const;
    flag_set united(const flag_set& other) const;

    friend bool operator==(const flag_set&, const flag_set&) = default;

private:
    std::uint8_t bits_ = 0;
    std::vector<std::string> keywords_;
};

// What a store knows of one message without its body.
struct message_info {
    mail::uid uid = 0;
    flag_set flags;
    std::uint64_t size = 0;          // RFC822.SIZE, or the file's size
    std::int64_t internal_date = 0;  // seconds since the epoch (INTERNALDATE, Maildir mtime)
    mail::modseq modseq = 0;         // 0 where the store has none
    // Stable on this side across moves between folders: the server's id (X-GUID, EMAILID,
    // X-GM-MSGID) or the Maildir file's unique base name. Empty when the store has none.
    std::string identity;
    // Comparable across the two sides: "<Message-ID>/size" (the size is the same on both sides
    // since bodies are copied byte for byte). Empty when not fetched or no Message-ID.
    std::string content_key;
};

}  // namespace tandem::mail
