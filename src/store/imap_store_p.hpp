// SPDX-License-Identifier: MIT
// The IMAP store's pure pieces, apart so that tests reach them without a server: name
// translation, content keys, grouping of flag changes.
#pragma once

#include "tandem/imap/uid_set.hpp"
#include "tandem/mail/types.hpp"
#include "tandem/store/store.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::store::detail {

// A server name (UTF-8, levels split by `delimiter`) as a canonical one: levels joined by
// '/', a first level INBOX in any case written "INBOX". nullopt when a level holds '/' (with
// another delimiter, or with none): it could not be told from a level boundary.
std::optional<std::string> canonical_name(std::string_view server_name,
                                          std::optional<char> delimiter);
// The reverse; nullopt when a level of `canonical` holds the server's delimiter, or when
// there is a '/' and the server has no hierarchy.
std::optional<std::string> server_name(std::string_view canonical, std::optional<char> delimiter);

// The RFC 6154 use of a mailbox from its LIST attributes ("\\Sent"), or empty.
std::string special_use(const std::vector<std::string>& attributes);

struct flag_group {
    mail::flag_set flags;
    imap::uid_set uids;
};
// Additions grouped by identical added sets, removals by identical removed sets, so that one
// UID STORE covers every message that takes the same delta. Empty deltas are left out.
struct flag_groups {
    std::vector<flag_group> add;
    std::vector<flag_group> remove;
};
flag_groups group_flag_changes(std::span<const flag_change> changes);

// The k-th message with a given Message-ID gets the k-th UID found for it: pairs messages
// appended without APPENDUID with the results of one search per distinct Message-ID.
// `ids[i]` is message i's Message-ID (nullopt: none); `found[j]` the ascending UIDs of
// distinct id j in the order of `distinct`.
std::vector<mail::uid> assign_found_uids(const std::vector<std::optional<std::string>>& ids,
                                         const std::vector<std::string>& distinct,
                                         const std::vector<std::vector<mail::uid>>& found);

// SEARCH criteria, as tokens, that match a message whose flags differ from `flags` in a
// system flag, a keyword of `universe` (the mailbox's FLAGS, RFC 9051 7.3.5: every keyword
// in use there) or a keyword of `flags`: `OR UNSEEN OR FLAGGED ... KEYWORD $Junk`. \Recent
// is the session's, not the message's, and is left out. nullopt when the universe has a
// system flag that SEARCH cannot name: no such criteria exist then.
std::optional<std::vector<std::string>> flag_mismatch_criteria(
    const std::vector<std::string>& universe, const mail::flag_set& flags);

// Whether a mailbox whose SELECT gave `permanent` (PERMANENTFLAGS, RFC 9051 7.1) keeps each
// flag of `added` that a STORE sets: a system flag listed there, a keyword listed there or
// allowed by \*. An empty list keeps nothing.
bool keeps_flags(const std::vector<std::string>& permanent, const mail::flag_set& added);

}  // namespace tandem::store::detail
