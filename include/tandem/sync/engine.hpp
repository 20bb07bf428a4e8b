// SPDX-License-Identifier: MIT
// The sync engine: for one channel, collect -> plan -> apply -> commit, over the store
// interface only (IMAP-IMAP and IMAP-Maildir are the same code path).
#pragma once

#include "tandem/journal/journal.hpp"
#include "tandem/mail/side.hpp"
#include "tandem/store/store.hpp"
#include "tandem/sync/planner.hpp"
#include "tandem/util/log.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tandem::sync {

struct channel_job {
    std::string name;
    channel_rules rules;
    // Which canonical mailbox names the channel covers (the config's patterns).
    std::function<bool(const std::string&)> selects = [](const std::string&) { return true; };
    // CHANNEL:MAILBOX on the command line: only these (empty: all that `selects`).
    std::vector<std::string> only;
    bool dry_run = false;
    // Mailboxes that sync at once at most, each on its own connection to each IMAP account
    // (the `connections` setting; store::another). 1: one after the other.
    unsigned connections = 1;
    // Where no store's link is far (a round trip of 1 ms or more), one connection more per
    // this many messages to list or copy (see run::collect_all).
    std::uint64_t lane_work = 500;
};

// Counts by the side that was changed.
struct counts {
    per_side<std::uint64_t> copied;
    per_side<std::uint64_t> bytes;
    per_side<std::uint64_t> flagged;
    per_side<std::uint64_t> moved;
    per_side<std::uint64_t> expunged;
    per_side<std::uint64_t> created;
    per_side<std::uint64_t> removed;
    void add(const counts& o);
    bool any() const;
};

struct mailbox_report {
    std::string mailbox;
    bool collected = false;  // the mailbox had changes on some side and was looked at
    bool failed = false;
    bool guarded = false;
    std::string error;  // names the store, the mailbox, the command, the server's words
    counts done;
    std::vector<std::string> notices;
    std::vector<std::string> planned;  // with dry_run: what would be done
};

struct channel_report {
    std::string channel;
    bool failed = false;  // the channel could not start (a listing failed)
    error_code failure;   // its kind (connection, authentication, ...)
    std::string error;
    std::vector<mailbox_report> mailboxes;
    counts total;
    double seconds = 0;
    bool any_failed() const;
    bool any_guarded() const;
};

// Progress of long work (a first sync): messages and bytes done of the planned total.
struct progress {
    std::string mailbox;
    std::uint64_t messages_done = 0, messages_total = 0;
    std::uint64_t bytes_done = 0, bytes_total = 0;
};
using progress_fn = std::function<void(const progress&)>;

channel_report run_channel(journal::journal& journal, const channel_job& job, store::store& a,
                           store::store& b, const log::logger& log,
                           const progress_fn& on_progress = {});

// Describes an action for --dry-run and -v output ("copy a:INBOX uid 7 -> b").
std::string describe(const action& a);

}  // namespace tandem::sync
