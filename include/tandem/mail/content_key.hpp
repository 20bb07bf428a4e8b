// SPDX-License-Identifier: MIT
// What a message's header says of it, and the content key made from that: both stores
// (IMAP and Maildir) and the sync engine give a message the same key, so that the same mail
// new on both sides pairs. The keys are stored in the journal: their form must not change.
// Plain functions over bytes, here so that the stores and the engine need not include the
// Maildir layer for them; read_header is the one that does I/O (it reads a file's first
// bytes, for a body spooled to a file).
#pragma once

#include "tandem/util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tandem::mail {

// The Message-ID field of a message header (RFC 5322 3.6.4): the first one, unfolded, with
// white space around it trimmed. The header ends at the first empty line or the end of
// `header`. Field names match case-insensitively.
std::optional<std::string> find_message_id(std::string_view header);

// A digest of the header fields that tell two messages apart when they share a Message-ID
// and a size, or have neither Message-ID nor anything else: Date, From, To, Cc and Subject,
// the first of each, unfolded, without CR, runs of white space made one space, trimmed;
// FNV-1a 64 in 16 hex digits. The same for the whole header and for an IMAP
// `BODY[HEADER.FIELDS (...)]` of those fields (their order does not matter).
std::string header_digest(std::string_view header);

struct header_identity {
    std::optional<std::string> message_id;
    std::string digest;  // header_digest
};
header_identity identify_header(std::string_view header);

// The content key both stores give a message, so that the same mail new on both sides
// pairs (first sync of stores that already hold it; a copy whose journal commit was lost):
// "<Message-ID>/<size>/<digest>", or "nomsgid/<size>/<date>/<digest>" without one.
std::string content_key(const header_identity& h, std::uint64_t size, std::int64_t date);

// The header of a message held in memory: its bytes up to the empty line ("\n\n" or
// "\n\r\n") that ends the header, the line end before that line included and the empty
// line not; empty if the message starts with an empty line; all of `message` if no empty
// line ends the header. The functions above stop at that line by themselves: this tells
// a caller how much of a message it needs.
std::string_view header_of(std::string_view message);

// How much of a file read_header reads at most, unless told otherwise.
constexpr std::size_t header_read_limit = std::size_t(1) << 20;  // 1 MiB
// How much of a message the Maildir store reads for its content key and the IMAP store for
// a Message-ID (a header field beyond it is not seen). Smaller than header_read_limit for
// history: the keys already in journals were made with it.
constexpr std::size_t message_id_window = 64 * 1024;

// Reads into the buffer it is given; returns the bytes read, 0 at the end.
using byte_source = std::function<result<std::size_t>(std::span<char>)>;

// The header from `read`, as read_header(file) cuts it; read's errors are returned.
result<std::string> read_header(const byte_source& read, std::size_t limit = header_read_limit);

// The header of the message in `file`, as header_of() cuts it: the file is read from its
// start until the empty line that ends the header, or until `limit` bytes (then those
// bytes, a header without an end in them), or to the end of the file. An error if the file
// cannot be opened or read (a generic errno code).
result<std::string> read_header(const std::filesystem::path& file,
                                std::size_t limit = header_read_limit);

}  // namespace tandem::mail
