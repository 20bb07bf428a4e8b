// SPDX-License-Identifier: MIT
// A small RAII layer over LMDB, after lmdb++ (hoytech/lmdbxx: destructors abort,
// NOTFOUND is not an error, errors name the failing call) and Monero's src/lmdb
// (read and write transactions are different types; writes retry after MAP_FULL).
//
// Lifetimes, as in LMDB itself: an env outlives its transactions, a transaction
// outlives its cursors, and every std::string_view that a get or a cursor returns
// points into the map and is valid only until the transaction ends or, in a write
// transaction, until the next write. Copy what must be kept.
#pragma once

#include "tandem/util/error.hpp"

#include <lmdb.h>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace tandem::journal::lmdb {

// The LMDB call that failed; each has its own error category so that the message
// says which: "mdb_put: MDB_MAP_FULL: Environment mapsize limit reached".
enum class call : std::uint8_t {
    env_create,
    env_set_mapsize,
    env_set_maxdbs,
    env_set_maxreaders,
    env_open,
    env_info,
    txn_begin,
    txn_commit,
    dbi_open,
    get,
    put,
    del,
    drop,
    cursor_open,
    cursor_get,
    cursor_put,
    cursor_del,
};

// An error_code for `rc` returned by `c`. Codes that are errno values (ENOSPC, EACCES
// ...) compare equal to the matching std::errc condition.
error_code make_error(call c, int rc);
// True if `ec` came from LMDB (any call).
bool is_lmdb_error(const error_code& ec);
// The MDB_* return code behind `ec`, or 0 if `ec` is not an LMDB error.
int lmdb_rc(const error_code& ec);
inline bool is_map_full(const error_code& ec) {
    return lmdb_rc(ec) == MDB_MAP_FULL;
}

struct env_options {
    // false: `path` is a directory holding data.mdb and lock.mdb (created 0700 if
    // missing); true: `path` is the data file and LMDB adds "<path>-lock".
    bool single_file = false;
    std::size_t map_size = std::size_t{16} << 20;  // grown on demand, see env::grow
    unsigned max_dbs = 16;
    unsigned max_readers = 126;
    mode_t file_mode = 0600;
    // Off only in tests that want speed over durability (MDB_NOSYNC).
    bool durable = true;
};

class txn;
class read_txn;
class write_txn;
class env;

// A database handle. Plain value: valid for the env's lifetime once the transaction
// that opened it has committed (mdb_dbi_open).
class dbi {
  public:
    dbi() = default;
    // Opens (with `create`: creates) the named database inside `t`.
    static result<dbi> open(write_txn& t, const char* name, bool create = true);
    static result<dbi> open(read_txn& t, const char* name);
    MDB_dbi handle() const { return handle_; }

  private:
    explicit dbi(MDB_dbi h) : handle_(h) {}
    MDB_dbi handle_ = 0;
};

struct entry {
    std::string_view key;
    std::string_view value;
};

// A cursor over one database inside one transaction; closed in the destructor.
// Positioning calls return the entry they land on, or nullopt at either end.
namespace detail {
struct env_state;
}

class cursor {
  public:
    cursor() = default;
    ~cursor();
    cursor(cursor&& o) noexcept
        : handle_(std::exchange(o.handle_, nullptr)), env_(std::exchange(o.env_, nullptr)) {}
    cursor& operator=(cursor&& o) noexcept;
    cursor(const cursor&) = delete;
    cursor& operator=(const cursor&) = delete;

    result<std::optional<entry>> first();
    result<std::optional<entry>> last();
    result<std::optional<entry>> next();
    result<std::optional<entry>> prev();
    // The first entry whose key is >= `key` (MDB_SET_RANGE).
    result<std::optional<entry>> lower_bound(std::string_view key);
    // The entry with exactly `key`.
    result<std::optional<entry>> find(std::string_view key);
    // Deletes the entry under the cursor (write transactions only); next() then
    // returns the entry that followed it (LMDB's C_DEL state).
    result<void> erase();
    result<std::optional<entry>> current();

    // Calls f(entry) for each key in [from, to) in key order; an empty `to` means "to
    // the end". f returns void, or bool (false stops the walk), or result<void> (an
    // error stops the walk and is returned).
    template <class F>
    result<void> scan(std::string_view from, std::string_view to, F&& f);
    // Same for all keys that start with `prefix`.
    template <class F>
    result<void> scan_prefix(std::string_view prefix, F&& f);

    MDB_cursor* handle() const { return handle_; }

  private:
    friend class txn;
    cursor(MDB_cursor* c, detail::env_state* e) : handle_(c), env_(e) {}
    result<std::optional<entry>> step(MDB_cursor_op op, std::string_view key = {});
    MDB_cursor* handle_ = nullptr;
    detail::env_state* env_ = nullptr;
};

// What read and write transactions share: reads and cursors. Functions that only read
// take a `const txn&`, so that they run inside a write transaction too and see its
// uncommitted writes.
class txn {
  public:
    txn(const txn&) = delete;
    txn& operator=(const txn&) = delete;

    // nullopt when the key is absent: MDB_NOTFOUND is an answer, not an error.
    result<std::optional<std::string_view>> get(dbi d, std::string_view key) const;
    result<cursor> open_cursor(dbi d) const;
    bool active() const { return handle_ != nullptr; }
    MDB_txn* handle() const { return handle_; }

  protected:
    txn() = default;
    txn(detail::env_state* e, MDB_txn* h) : env_(e), handle_(h) {}
    txn(txn&& o) noexcept
        : env_(std::exchange(o.env_, nullptr)), handle_(std::exchange(o.handle_, nullptr)) {}
    txn& operator=(txn&& o) noexcept;
    ~txn();
    void abort() noexcept;
    result<void> commit_impl();

    detail::env_state* env_ = nullptr;
    MDB_txn* handle_ = nullptr;
};

// A read-only snapshot. Move-only; aborted (released) in the destructor.
class read_txn : public txn {
  public:
    read_txn() = default;
    read_txn(read_txn&&) noexcept = default;
    read_txn& operator=(read_txn&&) noexcept = default;
    ~read_txn() = default;
    // Ends the snapshot early.
    void release() noexcept { abort(); }

  private:
    friend class env;
    read_txn(detail::env_state* e, MDB_txn* h) : txn(e, h) {}
};

// The one write transaction of the env. Move-only; aborted in the destructor, so
// nothing is written unless commit() is called and succeeds. LMDB allows one writer at
// a time: a second begin_write() waits for the first to end (in the same thread it
// would wait forever).
class write_txn : public txn {
  public:
    write_txn() = default;
    write_txn(write_txn&&) noexcept = default;
    write_txn& operator=(write_txn&&) noexcept = default;
    ~write_txn() = default;

    result<void> put(dbi d, std::string_view key, std::string_view value);
    // Inserts only if the key is absent: false (no error) if it was there.
    result<bool> insert(dbi d, std::string_view key, std::string_view value);
    // false (no error) if the key was absent.
    result<bool> erase(dbi d, std::string_view key);
    // Empties the database (mdb_drop with del = 0).
    result<void> clear(dbi d);

    // Makes the writes durable. A failed commit is an error that must be handled: the
    // writes are lost (the transaction is gone either way).
    [[nodiscard]] result<void> commit() && { return commit_impl(); }
    // Drops the writes now rather than in the destructor.
    void abort() noexcept { txn::abort(); }

  private:
    friend class env;
    write_txn(detail::env_state* e, MDB_txn* h) : txn(e, h) {}
};

// An LMDB environment. Move-only; closed in the destructor (after its transactions).
class env {
  public:
    env();
    ~env();
    env(env&&) noexcept;
    env& operator=(env&&) noexcept;

    // Opens or creates the environment at `path` (see env_options::single_file) with
    // files of mode options.file_mode. MDB_NOTLS: a read_txn is not tied to a thread.
    static result<env> open(const std::filesystem::path& path, const env_options& options = {});

    result<read_txn> begin_read() const;
    // Grows the map first when it is more than 3/4 used and no transaction is open.
    result<write_txn> begin_write();

    // Runs f(write_txn&) -> result<void> and commits. On MDB_MAP_FULL (from f or from
    // the commit) the transaction is aborted, the map grown and f run again from the
    // start, up to `attempts` times: f must be restartable (Monero's try_write).
    template <class F>
    result<void> write(F&& f, unsigned attempts = 8);

    // Doubles the map size (mdb_env_set_mapsize). LMDB allows this only while no
    // transaction of this env is open in the process: fails with
    // std::errc::device_or_resource_busy otherwise.
    result<void> grow();
    // grow(), waiting up to 2 s for other threads' transactions to end (the engine's
    // lanes read while one of them writes); false when it could not.
    bool grow_when_alone();
    std::size_t map_size() const;
    // Bytes used by the data file up to its last page.
    std::size_t used_size() const;
    std::size_t open_transactions() const;
    // How many times the map's pages were unmapped from this process (see env_state).
    std::size_t page_releases() const;

    MDB_env* handle() const;

  private:
    std::unique_ptr<detail::env_state> state_;
};

// ---- templates ----

template <class F>
result<void> cursor::scan(std::string_view from, std::string_view to, F&& f) {
    auto e = from.empty() ? first() : lower_bound(from);
    for (;;) {
        if (!e) return e.error();
        if (!*e) return {};
        const entry& cur = **e;
        if (!to.empty() && cur.key.compare(to) >= 0) return {};
        using ret = std::invoke_result_t<F&, const entry&>;
        if constexpr (std::is_void_v<ret>) {
            f(cur);
        } else if constexpr (std::is_same_v<ret, bool>) {
            if (!f(cur)) return {};
        } else {
            result<void> r = f(cur);
            if (!r) return r;
        }
        e = next();
    }
}

template <class F>
result<void> cursor::scan_prefix(std::string_view prefix, F&& f) {
    using ret = std::invoke_result_t<F&, const entry&>;
    bool stop = false;
    result<void> err;
    auto r = scan(prefix, {}, [&](const entry& cur) -> bool {
        if (cur.key.substr(0, prefix.size()) != prefix) return false;
        if constexpr (std::is_void_v<ret>) {
            f(cur);
            return true;
        } else if constexpr (std::is_same_v<ret, bool>) {
            return f(cur);
        } else {
            err = f(cur);
            stop = !err;
            return !stop;
        }
    });
    if (!r) return r;
    return err;
}

template <class F>
result<void> env::write(F&& f, unsigned attempts) {
    for (;;) {
        result<void> r;
        {
            auto t = begin_write();
            if (!t) return t.error();
            r = f(*t);
            if (r) r = std::move(*t).commit();
        }  // the transaction is gone here, so that grow() may run
        if (r || !is_map_full(r.error()) || attempts <= 1) return r;
        --attempts;
        if (!grow_when_alone()) return r;
    }
}

}  // namespace tandem::journal::lmdb
