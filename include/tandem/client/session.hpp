// SPDX-License-Identifier: MIT
// An IMAP session over a net::connection: greeting, STARTTLS, authentication, ENABLE, ID,
// COMPRESS, then commands. The API blocks (each sync worker owns one session in its own
// thread); inside, commands are pipelined: send() queues a command and returns its tag,
// wait() reads until that tag's completion, routing untagged data to the command it belongs
// to and keeping unsolicited mailbox updates (FETCH FLAGS, EXPUNGE, VANISHED, EXISTS) in a
// queue that the caller drains. Not thread-safe; one thread at a time.
#pragma once

#include "tandem/imap/command.hpp"
#include "tandem/imap/parser.hpp"
#include "tandem/imap/response.hpp"
#include "tandem/imap/uid_set.hpp"
#include "tandem/mail/types.hpp"
#include "tandem/net/connection.hpp"
#include "tandem/util/error.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::client {

enum class auth_mechanism {
    automatic,    // AUTHENTICATE PLAIN when offered, else LOGIN
    login,        // the LOGIN command
    plain,        // AUTHENTICATE PLAIN (RFC 4616), SASL-IR when offered (RFC 4959)
    xoauth2,      // Google's XOAUTH2; the secret is the access token
    oauthbearer,  // RFC 7628; the secret is the access token
};

enum class compress_mode {
    no,
    yes,
    automatic,  // compress_pays()
};

// What earlier runs measured of an account's link (journal::link_history, recent samples
// only): the bytes of message bodies fetched a second without and with COMPRESS=DEFLATE;
// 0 where not measured.
struct measured_rates {
    std::uint64_t plain = 0, compressed = 0;
};

// compress_mode::automatic's choice, made after the login. Never on a loopback address,
// through a tunnel, or where the kernel's smoothed round trip is under 1 ms: a LAN's
// gigabit outruns the server's deflate (zlib level 6: 30-60 MB/s), and COMPRESS more than
// doubled interimap's first sync of c5000 on loopback. On a longer or unknown round trip,
// by what earlier runs measured: with both rates, the faster; with only the plain one,
// COMPRESS, to measure it; with none, none. A first sync without COMPRESS over a slow link
// takes at most the compression ratio longer (about 2x for mail), where one with it over
// a fast link took 7x (c5000 at a 20 ms round trip: 11.5 s against 1.6 s, Dovecot's
// deflate the bottleneck on 2 cores).
bool compress_pays(bool loopback, std::optional<std::chrono::microseconds> round_trip,
                   const measured_rates& measured = {});

enum class trace_direction { client, server, info };
// Receives protocol lines without CRLF. Client lines are the builder's redacted form: no
// password, token or SASL response ever reaches it.
using trace_function = std::function<void(trace_direction, std::string_view)>;

struct endpoint {
    std::string host;
    std::uint16_t port = 993;
    net::tls_mode tls = net::tls_mode::implicit;
    std::vector<std::string> tunnel;  // argv; when set, host/port/tls are not used
    std::string ca_file;
    std::string fingerprint;
    // False only with `tls-insecure-skip-verify`: any certificate is accepted (a fingerprint,
    // when set, is still compared).
    bool tls_verify = true;
    std::string user;
    auth_mechanism auth = auth_mechanism::automatic;
    std::string secret;  // password or token; never logged
    std::chrono::milliseconds connect_timeout{30'000};
    std::chrono::milliseconds read_timeout{120'000};
    compress_mode compress = compress_mode::automatic;
    measured_rates measured;  // compress_pays()'s evidence
    // Taken as the link's round trip instead of the kernel's, with the address taken as not
    // a loopback one: the benchmark's far server is a delaying proxy on 127.0.0.1, whose
    // delay the kernel does not see (TANDEM_ROUND_TRIP_MS). Unset otherwise.
    std::optional<std::chrono::microseconds> assumed_round_trip;
    // Capabilities to act as if the server lacked ("QRESYNC" for iCloud, "MOVE" to test the
    // fall-back), case-insensitive. "LITERAL+" masks LITERAL+ only.
    std::vector<std::string> disabled_capabilities;
    // The smallest body a command's sink provider (uid_fetch's `bodies`) takes; smaller ones
    // come in memory without asking it (imap::parser::set_sink_provider).
    std::uint64_t body_sink_min_size = 0;
    // ID (RFC 2971) fields sent after login when the server offers ID; empty: no ID.
    std::vector<std::pair<std::string, std::string>> id = {{"name", "tandem"},
                                                           {"version", "0.1.0"}};
    trace_function trace;
};

// The tagged response that ended a command.
struct completion {
    imap::condition status = imap::condition::ok;
    std::optional<imap::response_code> code;
    std::string text;
    // "[OVERQUOTA] Quota exceeded (mailbox for user is full)"
    std::string describe() const;
};

// An untagged response that no command claimed, with the mailbox selected when it came.
struct unsolicited {
    std::string mailbox;  // UTF-8 name
    imap::response data;  // fetch_data, vanished_data, expunge_data or exists_data
};

struct list_entry {
    std::string raw_name;      // as the server sent it
    std::string name;          // UTF-8 (decoded from modified UTF-7 unless UTF8=ACCEPT)
    bool name_decoded = true;  // false: the raw name did not decode and `name` is the raw one
    std::optional<char> delimiter;
    std::vector<std::string> attributes;           // \Noselect \HasChildren \Sent ...
    std::optional<imap::status_data> status;       // with LIST-STATUS
    bool has_attribute(std::string_view a) const;  // case-insensitive
};

struct select_result;

// Untagged data given to a command's handler; return true to claim it.
using untagged_handler = std::function<bool(imap::response&)>;
using message_callback = std::function<void(imap::fetch_data&&)>;

struct select_options {
    bool read_only = false;  // EXAMINE
    bool condstore = true;   // (CONDSTORE) when offered and QRESYNC is not used
    // (QRESYNC (uidvalidity modseq [known uids])): used only when QRESYNC was enabled;
    // select_result::qresync says whether it was.
    struct qresync_state {
        mail::uidvalidity uidvalidity = 0;
        mail::modseq modseq = 0;
        imap::uid_set known_uids;
    };
    std::optional<qresync_state> qresync;
    // When set, the FETCH items of a QRESYNC select go here as they arrive, in order,
    // instead of into select_result::changed (a mailbox of 200k changed messages is not
    // held as 200k fetch_data).
    message_callback on_changed;
    // Commands sent in the same flight right behind the SELECT, before its answer; their
    // tags are in select_result::pipelined, in order, for wait(). Only commands that are
    // harmless without a selected mailbox belong here (FETCH, SEARCH): a failed SELECT
    // leaves none (RFC 9051 6.3.2), and select() then waits them out itself. Their untagged
    // data reaches their handlers once the SELECT completed, possibly before select()
    // returns.
    std::vector<std::pair<imap::command, untagged_handler>> pipelined;
    // Called at the SELECT's tagged OK with what came so far (before done is set and
    // before any answer of the pipelined commands is read).
    std::function<void(const select_result&)> on_selected;
};

struct select_result {
    mail::uidvalidity uidvalidity = 0;
    mail::uid uidnext = 0;
    // Valid only now that the tagged OK came (RFC 7162 6). 0 with nomodseq.
    mail::modseq highestmodseq = 0;
    bool nomodseq = false;
    std::uint32_t exists = 0;
    std::vector<std::string> flags;
    std::vector<std::string> permanent_flags;
    bool read_only = false;
    bool qresync = false;                   // the QRESYNC parameters were sent
    imap::uid_set vanished;                 // VANISHED (EARLIER) of a QRESYNC select
    std::vector<imap::fetch_data> changed;  // FETCH items of a QRESYNC select (no on_changed)
    std::vector<std::string> pipelined;     // tags of select_options::pipelined
    completion done;
};

// A SELECT sent and not yet waited for (session::select_send).
struct select_state;
struct select_flight {
    std::string tag;
    std::shared_ptr<select_state> state;
};

struct fetch_options {
    std::optional<mail::modseq> changed_since;  // needs CONDSTORE
    bool vanished = false;                      // needs QRESYNC enabled and changed_since
};

struct fetch_result {
    imap::uid_set vanished;  // VANISHED (EARLIER) with fetch_options::vanished
    // The largest MODSEQ among the messages of this command, valid at its tagged OK.
    mail::modseq max_modseq = 0;
    std::size_t messages = 0;
    completion done;
};

// UID FETCH commands sent and not yet waited for (session::uid_fetch_send). The
// answers gather in `result` as the session reads them, whoever waits.
struct fetch_flight {
    std::vector<std::string> tags;
    std::shared_ptr<fetch_result> result;
};

struct store_result {
    imap::uid_set modified;                 // [MODIFIED ...]: UNCHANGEDSINCE failed for these
    std::vector<imap::fetch_data> fetched;  // the server's FETCH answers (new MODSEQ, FLAGS)
    completion done;
};

struct append_item {
    mail::flag_set flags;
    std::optional<imap::date_time> internal_date;
    imap::literal_data content;
};

struct append_result {
    mail::uidvalidity uidvalidity = 0;  // from APPENDUID; 0 without UIDPLUS
    std::vector<mail::uid> uids;        // per message in order; 0 where the server gave none
};

// APPEND commands sent and not yet waited for (session::append_send).
struct append_flight {
    std::vector<std::string> tags;
    std::vector<std::size_t> counts;  // messages per command
};

struct copy_result {
    mail::uidvalidity uidvalidity = 0;                     // of the destination
    std::vector<std::pair<mail::uid, mail::uid>> mapping;  // source -> destination (COPYUID)
};

// Why connect() failed, step by step (for `check-config --connect`).
struct connect_failure {
    // "resolve", "connect", "spawn", "TLS handshake", "TLS verification", "greeting",
    // "STARTTLS", "authentication", "setup"
    std::string step;
    // One line for a person: "authentication as alice failed: [AUTHENTICATIONFAILED] ..."
    std::string message;
    net::failure transport;  // when the transport failed
    completion server;       // the server's answer, when it gave one
};

class session {
  public:
    // Connects and runs the whole opening: greeting, CAPABILITY, STARTTLS (errc::
    // starttls_unavailable when required and not offered), authentication (errc::
    // authentication_failed with the server's text in last_error()), ENABLE, ID, COMPRESS.
    // `why`, when given, tells the failing step and the server's or the TLS layer's words.
    static result<std::unique_ptr<session>> connect(const endpoint& ep,
                                                    connect_failure* why = nullptr);
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    // --- state
    // Capabilities as the server offers them now, minus the disabled ones; upper case.
    bool has(std::string_view capability) const;
    const std::vector<std::string>& capabilities() const;
    bool qresync_enabled() const;
    bool condstore_enabled() const;
    bool utf8_enabled() const;
    bool compressed() const;
    bool encrypted() const;
    // net::connection::round_trip() (or endpoint::assumed_round_trip): what compress_pays()
    // was given.
    std::optional<std::chrono::microseconds> round_trip() const;
    net::connection::counters traffic() const;
    // The selected mailbox (UTF-8), empty when none.
    const std::string& selected() const;
    // The "name" field of the server's ID answer (RFC 2971 3.3), such as "Dovecot"; empty
    // when it gave none.
    const std::string& server_software() const;
    // The last tagged NO/BAD (or BYE), for messages like "APPEND to Sent failed: ...".
    const completion& last_error() const;
    // Unsolicited updates since the last call, oldest first.
    std::deque<unsolicited> take_unsolicited();

    // --- pipelining primitives
    // Queues a command; nothing waits for the server. Fails only when the command cannot be
    // serialised or the session is broken.
    result<std::string> send(const imap::command& cmd, untagged_handler handler = nullptr);
    // Reads until `tag` completes. A tagged NO is errc::command_failed, BAD is
    // errc::command_rejected (the completion is then in last_error()).
    result<completion> wait(const std::string& tag);
    // Sends everything queued (reading meanwhile).
    result<void> flush();

    // --- commands
    // LIST "" pattern, with LIST-STATUS (MESSAGES UIDNEXT UIDVALIDITY [HIGHESTMODSEQ]) and
    // SPECIAL-USE when offered.
    result<std::vector<list_entry>> list(std::string_view pattern = "*");
    // Sends that LIST now and returns without its answer, which the next list() of the
    // same pattern reads: the server works on it while the caller does something else,
    // such as listing another account (a listing can take a server half a second).
    result<void> list_ahead(std::string_view pattern = "*");
    result<imap::status_data> status(std::string_view mailbox,
                                     const std::vector<std::string>& items = {"MESSAGES", "UIDNEXT",
                                                                              "UIDVALIDITY"});
    result<select_result> select(std::string_view mailbox, const select_options& options = {});
    // select() in two halves: the SELECT (and the commands of options.pipelined) go out now,
    // and the mailbox counts as selected from now on; select_wait() reads its answer, which
    // any later wait may read first (its data then waits in the flight).
    result<select_flight> select_send(std::string_view mailbox, const select_options& options = {});
    result<select_result> select_wait(select_flight& flight);
    // UID FETCH with items as given ("FLAGS", "BODY.PEEK[]", ...; UID is added). Each message
    // goes to `on_message` as it completes; bodies go to the sinks that `bodies` returns
    // (in pieces), or stay in fetch_data when it returns nullptr or is empty.
    result<fetch_result> uid_fetch(const imap::uid_set& uids, const std::vector<std::string>& items,
                                   const message_callback& on_message,
                                   const fetch_options& options = {},
                                   imap::sink_provider bodies = nullptr);
    // uid_fetch() in two halves: the commands are queued now (flush() sends them), their
    // answers read by uid_fetch_wait() or by any later wait, and go to the callbacks
    // meanwhile: the server sends while the caller does something else.
    result<fetch_flight> uid_fetch_send(const imap::uid_set& uids,
                                        const std::vector<std::string>& items,
                                        message_callback on_message,
                                        const fetch_options& options = {},
                                        imap::sink_provider bodies = nullptr);
    result<fetch_result> uid_fetch_wait(fetch_flight& flight);
    // UID SEARCH criteria (raw IMAP: "ALL", "UID 1:100 DELETED"); ESEARCH when offered.
    result<imap::uid_set> uid_search(std::string_view criteria);
    result<store_result> uid_store(const imap::uid_set& uids, imap::cmd::store_mode mode,
                                   const mail::flag_set& flags,
                                   std::optional<mail::modseq> unchanged_since = {});
    // With MULTIAPPEND, commands of up to 250 messages or 8 MiB, else one APPEND per message;
    // all in one flight (LITERAL+ sends at once; synchronizing literals wait for `+`). The
    // commands are separate transactions: when one fails, the others may have stored theirs
    // (their UIDs are not returned: the call fails).
    result<append_result> append(std::string_view mailbox, const std::vector<append_item>& items);
    // append() in two halves, so that more can happen between them (the next messages come
    // from another store): the commands are sent (and flushed) now, their answers read by
    // append_wait(), or by any later wait. Several append_send() may share one flight.
    result<void> append_send(std::string_view mailbox, const std::vector<append_item>& items,
                             append_flight& flight);
    result<append_result> append_wait(append_flight& flight);
    // UID MOVE, or UID COPY + UID STORE +FLAGS.SILENT (\Deleted) + UID EXPUNGE without MOVE;
    // without MOVE and UIDPLUS: errc::missing_capability and nothing is done.
    result<copy_result> uid_move(const imap::uid_set& uids, std::string_view destination);
    result<copy_result> uid_copy(const imap::uid_set& uids, std::string_view destination);
    // Needs UIDPLUS (errc::missing_capability otherwise): never expunges others' \Deleted.
    result<completion> uid_expunge(const imap::uid_set& uids);
    result<completion> create(std::string_view mailbox);
    result<completion> delete_mailbox(std::string_view mailbox);
    result<completion> rename(std::string_view from, std::string_view to);
    result<completion> noop();
    // UNSELECT (RFC 3691, in IMAP4rev2): leaves the selected mailbox without the expunge of
    // CLOSE. errc::missing_capability when the server offers neither.
    result<completion> unselect();
    // IDLE until any untagged data comes or `timeout` passes, then DONE. True when data came
    // (it is in take_unsolicited()). errc::missing_capability without IDLE.
    result<bool> idle(std::chrono::milliseconds timeout);
    // Sends LOGOUT and reads its answer for up to `answer_wait` (the BYE, then the tagged
    // OK), then closes the connection whatever came: the end of a run need not wait a whole
    // round trip on a slow link. errc::timeout when the answer did not come in time; zero:
    // closes once the command is sent, and says OK.
    result<completion> logout(
        std::chrono::milliseconds answer_wait = std::chrono::milliseconds(1000));
    // Sends LOGOUT now and returns; logout() then only reads the answer, if it waits.
    result<void> logout_ahead();
    // False once the connection failed or was closed (LOGOUT, BYE).
    bool usable() const;

    // A mailbox name in the form the server takes on the wire now.
    result<std::string> wire_name(std::string_view utf8_name) const;

    struct impl;

  private:
    explicit session(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace tandem::client
