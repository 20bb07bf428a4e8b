// SPDX-License-Identifier: MIT
// The journal: what both sides of every mailbox pair looked like after the last sync,
// the Maildir UID maps, and the intents of the run in progress (DESIGN.md "Crash
// safety"). One LMDB environment per state directory.
//
// Files (all 0600; the state directory is created 0700):
//   <state_dir>/journal.lock      flock(2) lock file: "<pid>\n<command line>\n" of the holder
//   <state_dir>/journal/data.mdb  LMDB data
//   <state_dir>/journal/lock.mdb  LMDB reader table
//
// Encoding (codec.hpp): integers big-endian, so that memcmp order on keys is numeric
// order and every range is a cursor walk; `str\0` is a string ended by a NUL byte (keys
// only; names never hold a NUL); `str` in a value is a u32 length and the bytes; every
// value starts with a format byte (1 today). `|` separates fields; nothing is padded.
//
// Databases:
//   meta         key: ASCII name
//                "version"     -> [1] u32 schema version (journal::schema_version)
//                "created"     -> [1] i64 creation time, seconds since the epoch
//                "next_id"     -> [1] u64 next pair id / Maildir folder id (never reused)
//                "next_intent" -> [1] u64 next intent sequence number (never reused)
//                "link:" store name -> [1] u64 plain bytes/s | i64 when | u64 compressed
//                              bytes/s | i64 when (link_history; 0 0: not measured)
//   pairs        mailbox pair state, one per channel and mailbox pair
//                key: channel\0 | canonical mailbox name (UTF-8)
//                -> [1] u64 pair id | i64 last sync | u8 status | str error text
//                   | side a | side b, where a side is:
//                   str name | u32 uidvalidity | u32 uidnext | u64 highestmodseq
//                   | u32 message count | str scan token
//   records      pair records, primary, in uid_a order
//                key: u64 pair id | u32 uid_a | u32 uid_b
//                -> [1] u8 system flag bits | u16 n | n x str keyword | str identity a
//                   | str identity b | str content key | u64 size
//                uid 0 = "not known yet"; the full key stays unique because a record
//                has at least one UID, and a non-zero UID is unique on its side.
//   records_b    index by side b: key: u64 pair id | u32 uid_b -> [1] u32 uid_a
//                only records with uid_b != 0; written in the same transaction as
//                `records`, so lookup by either UID is one or two O(log n) gets.
//   md_folders   Maildir folders: key: store id\0 | folder name -> [1] u64 folder id
//   md_state     key: u64 folder id -> [1] u32 uidvalidity | u32 next uid
//   md_names     key: u64 folder id | base name -> [1] u32 uid
//   md_uids      key: u64 folder id | u32 uid -> [1] str base name
//   intents      key: u64 sequence number (recording order)
//                -> [1] u8 kind | u8 side | str channel | str mailbox | str payload
//
// Transactions: every write takes the caller's write_txn, so many changes share one
// commit (grouped commits); reads take a read_txn or a write_txn (lmdb::txn). Views
// never escape: everything returned is copied out of the map.
#pragma once

#include "tandem/journal/lmdb.hpp"
#include "tandem/mail/side.hpp"
#include "tandem/mail/types.hpp"
#include "tandem/util/error.hpp"
#include "tandem/util/fs.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::journal {

using mail::per_side;
using mail::side;

inline constexpr std::uint32_t schema_version = 1;

// ---- mailbox pair state ----

enum class pair_status : std::uint8_t {
    ok = 0,       // the last sync of this pair finished
    pending = 1,  // intents of this pair may be unresolved
    error = 2,    // the last sync failed; see pair_state::error
};

struct side_state {
    std::string name;  // the mailbox's name on this side, as the store spells it
    mail::uidvalidity uidvalidity = 0;
    mail::uid uidnext = 0;
    mail::modseq highestmodseq = 0;  // 0: no CONDSTORE
    std::uint32_t messages = 0;
    std::string scan_token;  // opaque to the journal (Maildir: directory mtimes)
    friend bool operator==(const side_state&, const side_state&) = default;
};

struct pair_state {
    std::uint64_t id = 0;  // stable and never reused; assigned by the journal
    per_side<side_state> sides;
    std::int64_t last_sync = 0;  // seconds since the epoch; 0: never synced
    pair_status status = pair_status::ok;
    std::string error;  // the last failure, when status == error
    friend bool operator==(const pair_state&, const pair_state&) = default;
};

struct pair_entry {
    std::string mailbox;
    pair_state state;
};

// ---- pair records ----

// One message known on both sides, or on one side only (the other UID 0: not known yet,
// or deliberately not copied). The same shape as sync::pair_record.
struct pair_record {
    per_side<mail::uid> uid;
    mail::flag_set flags;            // as both sides had them after the last sync
    per_side<std::string> identity;  // message_info::identity on each side
    std::string content_key;         // message_info::content_key
    std::uint64_t size = 0;
    friend bool operator==(const pair_record&, const pair_record&) = default;
};

// ---- Maildir UID map ----

struct maildir_folder {
    std::uint64_t id = 0;  // the journal's handle for the folder
    mail::uidvalidity uidvalidity = 0;
    mail::uid next_uid = 1;
    // How many names the folder maps, kept with the state so that a listing needs no walk
    // over them; nullopt in a journal written before it was kept (counted on first need).
    std::optional<std::uint32_t> count;
};

struct maildir_entry {
    mail::uid uid = 0;
    std::string name;  // the file's unique base name (without ":2,<flags>")
};

// ---- intents ----

enum class intent_kind : std::uint8_t {
    append = 1,
    store_flags = 2,
    expunge = 3,
    move = 4,
    copy = 5,
    create_mailbox = 6,
    delete_mailbox = 7,
    rename_mailbox = 8,
};

struct intent {
    std::uint64_t seq = 0;  // assigned by record_intent; increasing, never reused
    intent_kind kind = intent_kind::append;
    side on = side::a;  // the side whose store is about to change
    std::string channel;
    std::string mailbox;
    std::string payload;  // encoded by the executor; opaque here
    friend bool operator==(const intent&, const intent&) = default;
};

// ---- what earlier runs measured of an IMAP account's link ----

// The bytes of message bodies a run fetched a second, with and without COMPRESS=DEFLATE,
// and when (seconds since the epoch; 0: never): compress = auto's evidence
// (client::compress_pays).
struct link_sample {
    std::uint64_t bytes_per_second = 0;
    std::int64_t when = 0;
    friend bool operator==(const link_sample&, const link_sample&) = default;
};
struct link_history {
    link_sample plain, compressed;
    friend bool operator==(const link_history&, const link_history&) = default;
};

// ---- the journal ----

struct journal_options {
    std::filesystem::path state_dir;
    // How long to wait for another process's lock; zero: fail at once.
    std::chrono::milliseconds lock_wait{0};
    // Address space only: LMDB (without MDB_WRITEMAP) grows the file as pages are written.
    // Large enough that a run rarely grows it: a growth waits for every other thread's
    // transaction to end (lmdb::env::grow_when_alone), and a run on several connections
    // rarely has none (about 400 bytes a message: 256 MiB holds some 600,000).
    std::size_t map_size = std::size_t{256} << 20;  // initial; grows on demand
    bool durable = true;                            // false only in tests (MDB_NOSYNC)
};

// Errors of the journal's own: errc::journal_locked, errc::journal_version,
// errc::invalid_argument (a name with a NUL, a record without a UID),
// std::errc::bad_message (a value that does not decode), and LMDB's (lmdb.hpp).
class journal {
  public:
    // Creates the state directory (0700) if missing, takes `journal.lock` in it, opens
    // or creates the LMDB environment and checks the schema version. On failure, fills
    // `diagnostic` (if given) with a sentence for the user, e.g. "journal /x is in use
    // by pid 1234 (tandem sync work)" or "journal /x has schema version 2; this tandem
    // reads version 1".
    static result<journal> open(const journal_options& options, std::string* diagnostic = nullptr);

    journal(journal&&) noexcept = default;
    journal& operator=(journal&&) noexcept = default;
    ~journal() = default;

    result<lmdb::read_txn> begin_read() const { return env_.begin_read(); }
    result<lmdb::write_txn> begin_write() { return env_.begin_write(); }
    // begin_write + f(write_txn&) + commit, run again after growing the map on
    // MDB_MAP_FULL: f must be restartable.
    template <class F>
    result<void> write(F&& f) {
        return env_.write(std::forward<F>(f));
    }

    lmdb::env& env() { return env_; }
    const std::filesystem::path& state_dir() const { return state_dir_; }
    std::int64_t created() const { return created_; }

    // -- mailbox pair state --
    result<std::optional<pair_state>> find_pair(const lmdb::txn& t, std::string_view channel,
                                                std::string_view mailbox) const;
    // The pair's state, created (with a new id, everything else zero) if absent.
    result<pair_state> open_pair(lmdb::write_txn& t, std::string_view channel,
                                 std::string_view mailbox);
    // Stores `state`. state.id 0 takes the existing pair's id, or a new one; any other id
    // must be the pair's own (errc::invalid_argument otherwise).
    result<void> put_pair(lmdb::write_txn& t, std::string_view channel, std::string_view mailbox,
                          const pair_state& state);
    // All pairs of `channel`, in mailbox name (byte) order.
    result<std::vector<pair_entry>> list_pairs(const lmdb::txn& t, std::string_view channel) const;
    // Removes the pair's state and all its records; false if there was none.
    result<bool> erase_pair(lmdb::write_txn& t, std::string_view channel, std::string_view mailbox);

    // -- pair records (pair = pair_state::id) --
    // Inserts or replaces: an existing record with the same non-zero uid.a or the same
    // non-zero uid.b is replaced (both indexes updated). errc::invalid_argument if both
    // UIDs are 0.
    result<void> put_record(lmdb::write_txn& t, std::uint64_t pair, const pair_record& r);
    // Replaces the record whose uids are exactly r.uid, in one write: the indexes point at
    // it already (a flag change). false, changing nothing, where there is none.
    result<bool> replace_record(lmdb::write_txn& t, std::uint64_t pair, const pair_record& r);
    // false if no record has `uid` on side `s` (uid 0 never matches).
    result<bool> erase_record(lmdb::write_txn& t, std::uint64_t pair, side s, mail::uid uid);
    result<std::optional<pair_record>> find_record(const lmdb::txn& t, std::uint64_t pair, side s,
                                                   mail::uid uid) const;
    // Calls f for each record of the pair in uid.a order (uid.a 0 first, by uid.b);
    // f returns false to stop.
    result<void> for_each_record(const lmdb::txn& t, std::uint64_t pair,
                                 const std::function<bool(const pair_record&)>& f) const;
    result<std::vector<pair_record>> records(const lmdb::txn& t, std::uint64_t pair) const;
    // A record as a walk finds it: its uids and flags decoded, the rest (identities, content
    // key, size: three allocations) only by decode(), for the records a caller keeps.
    struct record_view {
        per_side<mail::uid> uid;
        mail::flag_set flags;
        std::string_view key, value;  // valid during the call only
        result<pair_record> decode() const;
    };
    // Like for_each_record; f returns false to stop, or an error that ends the walk.
    result<void> for_each_record_view(
        const lmdb::txn& t, std::uint64_t pair,
        const std::function<result<bool>(const record_view&)>& f) const;
    // The non-zero UIDs of side `s` in the pair's records, ascending (a key walk of
    // `records_a` or `records_b`; no value decoded): store::known_state::uids.
    result<std::vector<mail::uid>> uids(const lmdb::txn& t, std::uint64_t pair, side s) const;
    // How many records have a non-zero UID on side `s` (the same key walk, nothing kept).
    result<std::size_t> count_uids(const lmdb::txn& t, std::uint64_t pair, side s) const;
    // A range walk over the pair's keys (O(n), no values decoded).
    result<std::size_t> count_records(const lmdb::txn& t, std::uint64_t pair) const;
    // Returns how many were removed.
    result<std::size_t> erase_records(lmdb::write_txn& t, std::uint64_t pair);

    // -- Maildir UID map (store id: the Maildir store's own name for itself) --
    result<std::optional<maildir_folder>> find_maildir_folder(const lmdb::txn& t,
                                                              std::string_view store,
                                                              std::string_view folder) const;
    // The folder, created with `uidvalidity` and next uid 1 if absent.
    result<maildir_folder> open_maildir_folder(lmdb::write_txn& t, std::string_view store,
                                               std::string_view folder,
                                               mail::uidvalidity uidvalidity);
    // Forgets every UID of the folder and starts again at 1 under a new UIDVALIDITY.
    result<void> reset_maildir_folder(lmdb::write_txn& t, maildir_folder& f,
                                      mail::uidvalidity uidvalidity);
    result<bool> erase_maildir_folder(lmdb::write_txn& t, std::string_view store,
                                      std::string_view folder);
    result<std::optional<mail::uid>> maildir_uid(const lmdb::txn& t, const maildir_folder& f,
                                                 std::string_view name) const;
    result<std::optional<std::string>> maildir_name(const lmdb::txn& t, const maildir_folder& f,
                                                    mail::uid uid) const;
    // The name's UID: the one it has, or the folder's next uid (which then moves on;
    // `f.next_uid` is updated too).
    result<mail::uid> maildir_assign(lmdb::write_txn& t, maildir_folder& f, std::string_view name);
    result<bool> maildir_forget(lmdb::write_txn& t, const maildir_folder& f, std::string_view name);
    // In UID order.
    result<std::vector<maildir_entry>> maildir_list(const lmdb::txn& t,
                                                    const maildir_folder& f) const;
    // Calls f(name, uid) for each name of the folder in byte order of the names, straight
    // from the cursor: the views are valid only during the call. f returns an error to stop.
    result<void> maildir_for_each_name(
        const lmdb::txn& t, const maildir_folder& f,
        const std::function<result<void>(std::string_view name, mail::uid uid)>& fn) const;
    // How many names the folder maps: the kept count, or a key walk in an older journal.
    result<std::size_t> maildir_count(const lmdb::txn& t, const maildir_folder& f) const;

    // -- link measurements (store: the IMAP store's name in the configuration) --
    // Nothing measured: an empty history.
    result<link_history> find_link(const lmdb::txn& t, std::string_view store) const;
    result<void> put_link(lmdb::write_txn& t, std::string_view store, const link_history& h);

    // -- intents --
    // Appends `i` (its seq is ignored) and returns the sequence number given to it.
    result<std::uint64_t> record_intent(lmdb::write_txn& t, const intent& i);
    // In recording order.
    result<std::vector<intent>> intents(const lmdb::txn& t) const;
    result<bool> erase_intent(lmdb::write_txn& t, std::uint64_t seq);
    result<void> erase_all_intents(lmdb::write_txn& t);

  private:
    struct dbis {
        lmdb::dbi meta, pairs, records, records_a, records_b, md_folders, md_state, md_names,
            md_uids, intents;
    };
    journal() = default;
    result<std::uint64_t> next_counter(lmdb::write_txn& t, std::string_view name);
    result<std::optional<std::string>> record_key(const lmdb::txn& t, std::uint64_t pair, side s,
                                                  mail::uid uid) const;
    result<void> erase_record_key(lmdb::write_txn& t, std::string_view key);
    result<void> index_records_a(lmdb::write_txn& t);

    fs::lock_file lock_;  // first member: released after the env is closed
    lmdb::env env_;
    dbis db_;
    std::filesystem::path state_dir_;
    std::int64_t created_ = 0;
};

}  // namespace tandem::journal
