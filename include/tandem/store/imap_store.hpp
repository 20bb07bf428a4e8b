// SPDX-License-Identifier: MIT
// The store interface over one IMAP session (DESIGN.md "Cost of a sync"). What it costs per
// call depends on the server's tier, chosen from its capabilities at run time (issue 3):
// QRESYNC (changes in the SELECT itself), CONDSTORE only (CHANGEDSINCE for flags, a UID
// listing for expunges), or neither (a FLAGS scan). Commands that do not depend on each
// other's answers go out in one flight.
//
// Names: the canonical name (UTF-8, '/' between levels, "INBOX") maps to the server's name
// through the hierarchy delimiter that LIST reports and modified UTF-7. A server name with a
// '/' inside one of its levels cannot be written canonically: list() skips it with a warning.
#pragma once

#include "tandem/client/session.hpp"
#include "tandem/store/store.hpp"
#include "tandem/util/log.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace tandem::store {

struct imap_store_options {
    // Where bodies of spool_threshold bytes or more are written as they arrive (fetch()
    // hands them out as temporary files). Empty: $TMPDIR, else /tmp.
    std::filesystem::path spool_dir;
    std::uint64_t spool_threshold = 1024 * 1024;
    // Bodies from this size up to spool_threshold go from the socket's reads straight into
    // their own string, not through the parser's copy of the response first (one copy of
    // the message less at the peak). Smaller ones are not worth the parser's search for
    // which body a literal is.
    std::uint64_t direct_threshold = 64 * 1024;
    // On Dovecot, an INBOX that held this many messages at the last run is selected before
    // the LIST (list_ahead()); 0: never.
    std::uint32_t select_inbox_first = 10000;
};

// What fetch() received and how long it took, over all the connections of one account
// (another() shares it): compress = auto's evidence, kept in the journal by the caller. A
// fetch counts from its first body to its end; the time is the wall time during which some
// connection was so fetching, once however many were: bytes / time is the account's rate,
// its lanes together.
struct fetch_measure {
    std::uint64_t bytes = 0;  // bodies' protocol bytes, before COMPRESS
    std::chrono::nanoseconds time{};
    bool compressed = false;  // all of it came under COMPRESS=DEFLATE
    bool mixed = false;       // some did, some did not: no evidence for either
};

class imap_store final : public store {
  public:
    // Connects and logs in, so that the caller can tell a connection or authentication
    // failure from a later one. On failure `error_text` says which host and which step
    // ("imap alice@mail.example:993: authentication as alice failed: [AUTHENTICATIONFAILED]
    // ..."); it never holds the secret. Capabilities to ignore (QRESYNC on iCloud) are in
    // the endpoint.
    static result<std::unique_ptr<imap_store>> connect(const client::endpoint& ep,
                                                       const log::logger& logger,
                                                       std::string* error_text = nullptr,
                                                       imap_store_options options = {});
    ~imap_store() override;
    imap_store(const imap_store&) = delete;
    imap_store& operator=(const imap_store&) = delete;

    // "imap alice@mail.example:993", or "imap tunnel".
    std::string describe() const override;
    // `APPEND to "Sent" failed: NO [OVERQUOTA] Quota exceeded`.
    const std::string& last_error() const override;

    // One round trip with LIST-STATUS; else LIST, then STATUS of every selectable mailbox in
    // one flight. The mailbox selected at the time gets no status (RFC 9051 6.3.11: STATUS of
    // the selected mailbox may be stale): ask status() for it.
    result<std::vector<mailbox_entry>> list() override;
    // Dovecot keeps INBOX out of its mailbox list index, and once a LIST has run in a
    // session, its status costs a full read of a Maildir's dovecot-uidlist (0.13-0.19 s for
    // 200,000 messages, Dovecot 2.3.19): a large INBOX (imap_store_options::
    // select_inbox_first) is selected before, and its status comes from the open mailbox.
    bool list_ahead(std::span<const known_mailbox> known) override;
    bool is_open(const std::string& mailbox) override;
    void select_ahead(const std::string& mailbox) override;
    result<mailbox_status> status(const std::string& mailbox) override;
    // The status returned is the one of the SELECT (HIGHESTMODSEQ as of its tagged OK, RFC
    // 7162 6), so that anything that happens later shows up again in the next run. Updates
    // that arrive meanwhile (EXPUNGE, VANISHED, FETCH FLAGS) are folded into the answer.
    result<mailbox_changes> changes(const std::string& mailbox, const known_state& known) override;
    // Bodies under spool_threshold come in memory; larger ones as temporary files in the
    // spool directory, written as the bytes arrive.
    result<void> fetch(
        const std::string& mailbox, std::span<const mail::uid> uids,
        const std::function<result<void>(mail::uid, message_body&&)>& deliver) override;
    // Sends the UID FETCH, if the mailbox is the one selected; what comes before fetch()
    // takes it stays in the socket's buffers.
    void fetch_ahead(const std::string& mailbox, std::span<const mail::uid> uids) override;
    // UIDs from APPENDUID; without UIDPLUS, found again by Message-ID among the UIDs from the
    // UIDNEXT before the APPEND (0 when there is none). Temporary bodies are deleted
    // whatever the outcome.
    result<std::vector<mail::uid>> append(const std::string& mailbox,
                                          std::vector<outgoing_message>&& messages) override;
    // With UIDPLUS, the messages go out in APPEND commands of about 1 MiB as they come (the
    // server stores them while the next ones are fetched); without, append() at finish().
    result<std::unique_ptr<appender>> begin_append(const std::string& mailbox) override;
    // +FLAGS.SILENT / -FLAGS.SILENT deltas only, never the replacing FLAGS: a flag another
    // client changes meanwhile survives.
    result<void> set_flags(const std::string& mailbox,
                           std::span<const flag_change> changes) override;
    result<std::vector<mail::uid>> move(const std::string& from, std::span<const mail::uid> uids,
                                        const std::string& to) override;
    // UID EXPUNGE (UIDPLUS). Without UIDPLUS a plain EXPUNGE, but only when no other message
    // carries \Deleted; otherwise the given messages keep \Deleted and the call fails
    // (errc::missing_capability) saying why.
    result<void> expunge(const std::string& mailbox, std::span<const mail::uid> uids) override;
    // Vouches for a mailbox that this run only appended to since its last reported status,
    // with CONDSTORE and ESEARCH: a fresh SELECT, then one flight of UID SEARCH RETURN
    // (COUNT) that checks that the messages held before are all there and unchanged (MODSEQ
    // above the HIGHESTMODSEQ of then), that each appended message is there with exactly its
    // flags, and (with EXISTS) that nothing else is. The SELECT's status is returned:
    // anything later has a higher mod-sequence or UID, and the next run sees it. Any other
    // change by this run (flags, move, expunge, an append without APPENDUID), or appends of
    // fewer than 1/8 of the messages the mailbox held, says nullopt.
    result<std::optional<mailbox_status>> status_after_own_changes(
        const std::string& mailbox) override;
    // Two seconds: Dovecot on loopback committed the APPENDs of a killed run up to 120 ms
    // after the kill (about 1 MiB in flight); a slow uplink drains the same bytes slower.
    std::chrono::milliseconds late_write_window() const override;
    result<void> create(const std::string& mailbox) override;
    result<void> remove(const std::string& mailbox) override;
    // Logs in again with the same endpoint (the secret kept from the first login: a
    // password command is not run twice); its trace lines say which connection ("#2").
    opener another() override;
    // None through a tunnel.
    std::optional<std::chrono::microseconds> round_trip() const override;
    void close_ahead() override;

    fetch_measure measured_fetches() const;

    // The session underneath, for what the interface does not cover (IDLE, counters).
    client::session& session();

    struct impl;

  private:
    class streaming_append;
    explicit imap_store(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace tandem::store
