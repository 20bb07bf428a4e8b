// SPDX-License-Identifier: MIT
// Maildir file names (cr.yp.to/proto/maildir.html; protocol.md 4.1, 4.4): the unique base
// name, the ":2," info with its flag letters, the ",S=" size hint, and new unique names.
// Pure: no I/O except next_unique_parts(), which reads the clock, the pid and the host name.
#pragma once

#include "tandem/mail/types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::maildir {

// The spec's info separator. Where a file system cannot store ':' (FAT, SMB shares), a
// store may use another one ('!' as offlineimap does, ';' as mbsync on Windows); every
// function that splits or builds names takes it as a parameter.
inline constexpr char default_separator = ':';

// One file name of cur/ or new/, split. The base name is the text before the first separator,
// kept byte for byte: it is what a mail client preserves when it renames the file for
// flags, so it is the message's identity within the tree (a move keeps it too).
struct file_name {
    std::string base;
    bool has_info = false;  // a separator was present
    // The letters of a "2," info, each in ASCII order without duplicates: `system` holds every
    // letter that is not a-z (D F P R S T, and unknown upper-case letters kept as found),
    // `keywords` the letters a-z (Dovecot's keywords, see keywords.hpp).
    std::string system;
    std::string keywords;
    // Info text we do not interpret, kept as is: from a second ',' of a "2," info on
    // (Dovecot leaves it alone too), or, when `flags_info` is false, the whole info (a "1,"
    // experimental info, or anything else).
    std::string rest;
    bool flags_info = true;

    friend bool operator==(const file_name&, const file_name&) = default;
};

file_name parse_name(std::string_view name, char separator = default_separator);
// base, then (if has_info) separator, "2,", system, keywords, rest. Letters are sorted and
// deduplicated, as the spec requires ASCII order.
std::string format_name(const file_name& name, char separator = default_separator);
// The name of a message in cur/ with these letters: base + separator + "2," + letters.
std::string cur_name(std::string_view base, std::string_view system, std::string_view keywords,
                     char separator = default_separator);

// The ",S=<size>" (file size) and ",W=<vsize>" (RFC822.SIZE with CRLF, Dovecot) fields of a
// base name: the fields after its first ','. Absent or not a number: nullopt.
std::optional<std::uint64_t> size_hint(std::string_view base);
std::optional<std::uint64_t> vsize_hint(std::string_view base);

// Sorts and deduplicates flag letters.
std::string sorted_letters(std::string_view letters);

// Maildir's system letters of a flag set, in ASCII order: D \Draft, F \Flagged, P the
// keyword $Forwarded ("passed": resent, forwarded, bounced; as mbsync 1.4), R \Answered,
// S \Seen, T \Deleted ("trashed").
std::string system_letters(const mail::flag_set& flags);
// Adds the flags of system letters to `flags`; letters other than DFPRST are ignored.
void add_system_letters(std::string_view letters, mail::flag_set& flags);
// True for D F P R S T: the letters that system_letters() owns. Others are kept on rename.
bool is_known_system_letter(char c);

// The parts of a new unique name: <seconds>.M<usec>P<pid>Q<counter>R<random>.<host>
struct unique_parts {
    std::int64_t seconds = 0;
    std::uint32_t microseconds = 0;
    std::uint32_t pid = 0;
    std::uint64_t counter = 0;  // per process, so two deliveries in one microsecond differ
    std::uint64_t random = 0;   // against pid reuse across containers sharing a host name
    std::string host;           // raw; escaped by format_unique()
};

// The host name as it goes into a unique name: '/' becomes \057 and ':' \072 (the spec), and
// likewise ',' (\054, which would start a field), '\\' (\134), the separator and any byte
// below 0x21 or 0x7f, as \ooo octal.
std::string escape_host(std::string_view host, char separator = default_separator);
// "<seconds>.M<usec>P<pid>Q<counter>R<random hex>.<escaped host>" and ",S=<size>" if given.
std::string format_unique(const unique_parts& parts, std::optional<std::uint64_t> size = {},
                          char separator = default_separator);
// Fresh parts: the real-time clock, getpid(), a process-wide counter, a random value drawn from
// a seed that getrandom() gave once per process, and the host name read once.
unique_parts next_unique_parts();

}  // namespace tandem::maildir
