// SPDX-License-Identifier: MIT
// Builds the stores a channel names, from their configuration sections.
#pragma once

#include "tandem/client/session.hpp"
#include "tandem/config/config.hpp"
#include "tandem/journal/journal.hpp"
#include "tandem/store/store.hpp"
#include "tandem/util/log.hpp"

#include <memory>
#include <string>

namespace tandem::cli {

struct store_failure {
    error_code code;      // errc::authentication_failed, errc::tls_failed, a socket error...
    std::string message;  // names the store and what failed, never the secret
};

// The client endpoint of an IMAP store, with its secret fetched (password command or file).
boost::system::result<client::endpoint, store_failure> make_endpoint(const config::imap_store& s,
                                                                     const log::logger& log);

// Connects (IMAP) or opens (Maildir) a store. An IMAP store's compress = auto gets what
// earlier runs measured of its link (remember_link) as evidence.
boost::system::result<std::unique_ptr<store::store>, store_failure> open_store(
    const config::store& cfg, journal::journal& journal, const log::logger& log);

// Keeps in the journal the rate at which an IMAP store's bodies came in this run, with or
// without COMPRESS, for the next runs' compress = auto; a run that fetched under 4 MiB of
// bodies is not evidence and keeps nothing. A Maildir store has nothing to keep.
void remember_link(journal::journal& journal, const config::store& cfg, const store::store& st,
                   const log::logger& log);

}  // namespace tandem::cli
