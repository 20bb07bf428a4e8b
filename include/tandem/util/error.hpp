// SPDX-License-Identifier: MIT
// Error codes of tandem's own, graded by how much of a sync they stop (after isync's
// DRV_MSG_BAD / DRV_BOX_BAD / DRV_STORE_BAD): a message, a mailbox, a store.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <type_traits>

namespace tandem {

using boost::system::error_code;
template <class T>
using result = boost::system::result<T, error_code>;

enum class errc {
    ok = 0,
    // protocol level
    protocol_error = 1,     // the server sent something that does not parse
    line_too_long,          // a response line over the parser's limit
    literal_too_large,      // a literal over the parser's limit
    nesting_too_deep,       // parenthesised lists nested beyond the limit
    command_failed,         // tagged NO
    command_rejected,       // tagged BAD
    server_bye,             // the server closed the session (BYE)
    missing_capability,     // the server lacks an extension that is required
    // connection level
    connection_closed,      // EOF from the server
    timeout,                // no answer within the configured time
    tls_failed,             // handshake or verification failed
    starttls_unavailable,   // STARTTLS required but not offered
    authentication_failed,  // LOGIN/AUTHENTICATE answered NO
    // local data
    invalid_mailbox_name,   // a name that cannot be encoded or decoded
    invalid_argument,
    not_found,
    journal_version,        // a journal written by another schema version
    journal_locked,         // another process holds the journal
    storage_full,           // ENOSPC/EDQUOT on the local side
    guard_tripped,          // mass-removal guard
    uidvalidity_changed,    // a mailbox was recreated while the run used its UIDs
    config_error,
};

const boost::system::error_category& tandem_category() noexcept;

inline error_code make_error_code(errc e) noexcept {
    return error_code(static_cast<int>(e), tandem_category());
}

}  // namespace tandem

template <>
struct boost::system::is_error_code_enum<tandem::errc> : std::true_type {};
