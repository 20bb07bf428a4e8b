// SPDX-License-Identifier: MIT
// The one interface the sync engine sees, implemented by the IMAP store and the Maildir
// store. Names are canonical: UTF-8, '/' between levels, "INBOX" for the inbox; each store
// translates them to its own (separator, modified UTF-7, Maildir layout).
//
// Calls are blocking and not thread-safe: one store object serves one thread. A store with
// several connections is several store objects. Every operation names its mailbox; the store
// selects or opens it as needed. Failures are values: the error_code says what kind
// (tandem::errc), and last_error() the details (the command, the server's words, the path).
#pragma once

#include "tandem/mail/types.hpp"
#include "tandem/util/error.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::store {

struct mailbox_status {
    mail::uidvalidity uidvalidity = 0;
    mail::uid uidnext = 0;
    mail::modseq highestmodseq = 0;  // 0: the store has no mod-sequences
    std::uint32_t messages = 0;
    std::string scan_token;  // store-private change marker (Maildir directory times)
    // False where an unchanged status does not prove that no flag changed (an IMAP server
    // without CONDSTORE): such a mailbox is always scanned.
    bool tracks_flag_changes = true;
    friend bool operator==(const mailbox_status&, const mailbox_status&) = default;
};

struct mailbox_entry {
    std::string name;         // canonical
    std::string special_use;  // "\\Sent", "\\Trash", ... or empty
    bool selectable = true;
    std::optional<mailbox_status> status;  // when the listing brought it cheaply
};

// What the journal remembers of a mailbox on this side, as of the last sync.
struct known_state {
    mailbox_status status;        // uidvalidity 0: never synced
    std::vector<mail::uid> uids;  // the uids of this side in the journal, ascending
    // Offered to a store that wants_synced_flags(), where the engine needs no complete
    // listing: per uid of `uids`, the flags its record last synced, as system bits, or
    // synced_unknown (a record with keywords). A store that must list every message to find
    // its changes (a Maildir rescan) then leaves out the messages that still have these
    // flags and reports the rest as changes (complete = false, the gone ones in vanished):
    // the 199,950 unchanged messages of a rescan are never handed to the planner.
    std::vector<std::uint8_t> synced_flags;
    static constexpr std::uint8_t synced_unknown = 0x80;
    bool full = false;  // list every message (mailbox_changes::complete)
    // Whether new messages need their content key (a read of their headers). The engine
    // says no when the other side holds nothing they could pair with (a first sync into an
    // empty or missing mailbox); a store without stable identities makes keys anyway, since
    // its records need them to find a message that moved between folders.
    bool want_keys = true;
    // Whether new messages need their size before they are fetched (a max-size rule, or the
    // content keys). Without, an IMAP store asks for no RFC822.SIZE, which Dovecot works out
    // by reading every message file whose name lacks ",W=" (a first sync of 200,000 small
    // messages: ~3 s of 18-21): the size comes with the body. 0 then stands for unknown.
    bool want_sizes = true;
};

// What changed in a mailbox since `known_state` (see sync::side_report for the meaning).
struct mailbox_changes {
    mailbox_status status;  // as found now, before this run changes anything
    bool uidvalidity_changed = false;
    bool complete = false;
    std::vector<mail::message_info> messages;
    std::vector<mail::uid> vanished;
};

// A message body in transit: small ones in memory, large ones in a file. A `temporary`
// file is a spool file that the receiver takes over (renames into place, or deletes once
// it has read it); any other file belongs to its store and is only read.
struct message_body {
    std::string data;  // used when `file` is empty
    std::filesystem::path file;
    bool temporary = false;
    std::uint64_t size = 0;
    // The server's RFC822.SIZE, asked for with the body (0: none came). Some servers' is not
    // the body's length; a record keeps the listed size, the one a later listing compares.
    std::uint64_t server_size = 0;
};

// Deletes the spool file of a `temporary` body (its receiver owns it); nothing otherwise.
void discard_spool(const message_body& body);

struct outgoing_message {
    mail::flag_set flags;
    std::int64_t internal_date = 0;  // seconds since the epoch
    message_body body;
};

struct flag_change {
    mail::uid uid = 0;
    mail::flag_set add;
    mail::flag_set remove;
};

// Adds messages one at a time as their bodies arrive (from the other store's fetch), so
// that a batch of copies never holds all its bodies at once: a Maildir writes each to tmp/
// at once, an IMAP server gets each APPEND command as soon as it is full, while the fetch
// goes on. add() takes the message over (a temporary body file included, whatever happens).
// finish() returns the new uids in the order of add() (0 where the store could not tell),
// or the first failure; a tagged NO (errc::command_failed) may come only there. An appender
// dropped without finish() adds nothing that its store can take back: a Maildir removes its
// tmp/ files; APPEND commands already sent stay (the engine's intent covers them).
class appender {
  public:
    virtual ~appender() = default;
    virtual result<void> add(outgoing_message&& message) = 0;
    virtual result<std::vector<mail::uid>> finish() = 0;
};

// A mailbox of a store as the journal recorded it at the last run: its name as the store
// spells it and how many messages it held.
struct known_mailbox {
    std::string name;
    std::uint32_t messages = 0;
};

class store {
  public:
    virtual ~store() = default;

    // "imap user@host" or "maildir /path", for messages.
    virtual std::string describe() const = 0;
    // What the last failed call was doing and what the other end said.
    virtual const std::string& last_error() const = 0;

    virtual result<std::vector<mailbox_entry>> list() = 0;
    // Starts the listing that the next list() returns, so that two stores list at the same
    // time: an IMAP store sends its LIST and returns true. Errors show in list(). `known` is
    // what the journal holds of the store's mailboxes from the last run (a store may open one
    // first that is costly to list otherwise).
    virtual bool list_ahead(std::span<const known_mailbox> known) {
        (void)known;
        return false;
    }
    virtual result<mailbox_status> status(const std::string& mailbox) = 0;
    // Whether the store has `mailbox` open now (an IMAP store: selected), so that its
    // changes() cost least before another mailbox is opened.
    virtual bool is_open(const std::string& mailbox) {
        (void)mailbox;
        return false;
    }
    virtual result<mailbox_changes> changes(const std::string& mailbox,
                                            const known_state& known) = 0;
    // Gets `mailbox` ready for the writes that the run may bring there (an IMAP store
    // SELECTs it), while the other side's store lists its changes. A failure is not
    // reported here: the write that follows meets it again.
    virtual void select_ahead(const std::string& mailbox) { (void)mailbox; }

    // Streams the bodies of `uids`; `deliver` is called once per message, in any order. A uid
    // that is gone is skipped (not an error).
    virtual result<void> fetch(
        const std::string& mailbox, std::span<const mail::uid> uids,
        const std::function<result<void>(mail::uid, message_body&&)>& deliver) = 0;
    // Starts the fetch() of `uids` that comes next, so that the other end sends their
    // bodies while the caller finishes with the ones before (an IMAP store sends its UID
    // FETCH now, into the mailbox selected). A fetch() of anything else, or a SELECT, drops
    // it. Errors show in that fetch().
    virtual void fetch_ahead(const std::string& mailbox, std::span<const mail::uid> uids) {
        (void)mailbox;
        (void)uids;
    }
    // Adds messages; returns their new uids in order (0 where the store could not tell).
    virtual result<std::vector<mail::uid>> append(const std::string& mailbox,
                                                  std::vector<outgoing_message>&& messages) = 0;
    // The same, one message at a time (see appender). This default holds the messages and
    // calls append() at finish().
    virtual result<std::unique_ptr<appender>> begin_append(const std::string& mailbox);
    virtual result<void> set_flags(const std::string& mailbox,
                                   std::span<const flag_change> changes) = 0;
    // Moves messages to another mailbox of this store; returns the new uids in the order of
    // `uids` (0 where unknown).
    virtual result<std::vector<mail::uid>> move(const std::string& from,
                                                std::span<const mail::uid> uids,
                                                const std::string& to) = 0;
    virtual result<void> expunge(const std::string& mailbox, std::span<const mail::uid> uids) = 0;
    // The mailbox's status now, if the store can vouch that every change to it since the
    // status it last reported in this run was its own (the engine then records this one:
    // the next run need not look at what it just did). nullopt: record the earlier one.
    virtual result<std::optional<mailbox_status>> status_after_own_changes(
        const std::string& mailbox) {
        (void)mailbox;
        return std::optional<mailbox_status>();
    }
    // The flags message `uid` had when the journal last saw it (its record), said before
    // set_flags, expunge, move or fetch name it: a store may use them to find the message
    // without listing the mailbox (a Maildir file's name carries its flags). A stale hint
    // costs that listing, never a wrong result.
    virtual void expect_flags(const std::string& mailbox, mail::uid uid,
                              const mail::flag_set& flags) {
        (void)mailbox;
        (void)uid;
        (void)flags;
    }
    // Whether changes() can use known_state::synced_flags (it lists every message to find
    // what changed); the engine reads them from the records only for such a store.
    virtual bool wants_synced_flags() const { return false; }
    // Whether changes() reads or writes the journal (a Maildir keeps its UIDs there). The
    // engine asks both sides at once only when at most one of them does: the journal is
    // used by one thread at a time.
    virtual bool changes_use_the_journal() const { return false; }
    // Whether `mailbox` can carry `keyword` at all. A keyword that a record has and a
    // message lacks was removed on this side only if the side could hold it: a Maildir
    // folder whose dovecot-keywords has no letter for it never could (26 at most).
    virtual bool keeps_keyword(const std::string& mailbox, std::string_view keyword) {
        (void)mailbox;
        (void)keyword;
        return true;
    }
    // How long after its writer died a write may still land: a server goes on reading an
    // APPEND or MOVE whose bytes were on their way (socket buffers) when the process was
    // killed, and commits it then. A run that recovers an earlier run's intent on this store
    // lists the mailbox only once this much passed since the run started, or it copies
    // again what is about to land. Zero for a local store: a dead process writes no more.
    virtual std::chrono::milliseconds late_write_window() const { return {}; }
    virtual result<void> create(const std::string& mailbox) = 0;
    virtual result<void> remove(const std::string& mailbox) = 0;

    // Another store on the same account, for mailboxes that sync beside this one's (the
    // `connections` setting): how to open it, a function that may run on another thread
    // while this store goes on working. An IMAP store's logs in once more and hands the new
    // store what this one had learned of the account when another() was called (the
    // server's names of the mailboxes, their listed status). Empty where a second object
    // adds nothing (a Maildir has no connection to add: the engine shares this one, one
    // call at a time). A failure (the server refused one more login) is the caller's to
    // work around: it syncs on the stores it has.
    using opener = std::function<result<std::unique_ptr<store>>()>;
    virtual opener another() { return {}; }
    // The link's round trip as the kernel measured it (TCP), where there is one: each
    // mailbox costs a few of them, which several connections overlap.
    virtual std::optional<std::chrono::microseconds> round_trip() const { return std::nullopt; }
    // The store will not be used again: it may start ending its session now (an IMAP
    // store sends its LOGOUT), the rest in its destructor. The engine calls it on every
    // lane's stores before it destroys any, so that no destructor waits on another's.
    virtual void close_ahead() {}
};

}  // namespace tandem::store
