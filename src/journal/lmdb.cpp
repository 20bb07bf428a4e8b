// SPDX-License-Identifier: MIT
#include "tandem/journal/lmdb.hpp"

#include "tandem/util/fs.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <cstdio>
#include <fstream>

#include <sys/mman.h>
#include <sys/stat.h>

namespace tandem::journal::lmdb {
namespace detail {

struct env_state {
    MDB_env* handle = nullptr;
    // mdb_env_set_mapsize is only allowed with no transaction open in the process.
    std::atomic<std::size_t> open_txns{0};
    // A map size change is on: transactions wait to begin. A beginning transaction counts
    // itself in open_txns first and then looks at this flag; a resize sets the flag first
    // and then looks at the count (both sequentially consistent): one of the two sees the
    // other, so no transaction begins while the size changes. No lock is held across
    // mdb_txn_begin, which takes LMDB's writer lock.
    std::atomic<bool> resizing{false};
    std::mutex resize;  // one resize at a time
    // The map's pages stay mapped once touched, and the kernel maps up to 16 pages around
    // each one it faults in (fault-around, in page cache already after a write): a walk
    // over 200,000 records left the whole file resident in this process, 60-90 MB of RSS
    // for pages the walk had passed. Every `release_every` reads and writes the map is
    // unmapped from this process (MADV_DONTNEED on a shared file mapping keeps the pages
    // in the page cache, and LMDB without MDB_WRITEMAP only reads through the map, so the
    // next access faults the same bytes back in); pointers into the map stay valid.
    // A small journal is released more often: what a run of a few changes touches of a
    // 2 MB journal (c5000) was still resident at its peak, 1 MB of 7-9, and releasing every
    // 128 cost no measurable CPU there; at 200,000 messages it cost 40-60 ms of CPU in
    // S3-S6 and 0.8 s in a first sync, so a journal of 16 MB or more keeps 1024.
    // In a small journal a lookup from the root (a get, a put, a cursor positioned by key)
    // counts as `small_lookup_weight` steps of a walk: a walk's next leaf is the page after
    // the one it left, where a lookup lands anywhere and each of its pages brings 16 with
    // it. With every touch counted alike, S3-S6 of c5000 (a few dozen lookups and writes,
    // after the walks) kept 1.5-2 MB of the 3 MB journal resident at their peaks; 0.3-0.5 MB
    // with lookups counted as 8 (peak RSS 6.6-7.6 -> 5.7-6.8 MB). At 200,000 messages the
    // same weight saved no RSS and seemed to cost CPU (one round: first sync 10.6 -> 12.0 s
    // of CPU, S7 0.55 -> 0.74 s), so a large journal counted every touch as one. But
    // after journal::replace_record (a flag change: 2 lookups, not 9), 2,000 changes at
    // 200,000 messages made 1,024 lookups between two releases, each mapping 64 KB: S3
    // peaked at 43 MB and S7 at 63-64 MB. A large journal's lookup now weighs 4 and its
    // interval slows down as a small one's does: S3 24 MB, S7 55 MB, first sync's CPU
    // the same (one round).
    // A step of a walk weighs its entry's bytes (LMDB's 8-byte node header, key, value):
    // the rules above were measured on walks over c5000's records, 160 bytes a step, the
    // unit here. A walk over an index of 24-byte entries (the uids of a side) passes a
    // page in 170 steps, not 25: counted as a step over a record each, it was released
    // after every page it read, and faulted the same pages back. c5000 to a Maildir,
    // releases S3 / S5 / S6 / S7: 61 / 122 / 143 / 95 -> 28 / 56 / 94 / 71; page faults
    // 629 / 1020 / 1100 / 1228 -> 540 / 860 / 963 / 1128; peak RSS the same.
    static constexpr std::size_t unit = 160;
    static constexpr std::size_t release_small = 128 * unit, release_large = 1024 * unit;
    static constexpr std::size_t large_file = 16 << 20;
    static constexpr std::size_t small_lookup_weight = 8 * unit, large_lookup_weight = 4 * unit;
    std::atomic<std::size_t> lookup_weight{small_lookup_weight};
    std::atomic<std::size_t> release_every{release_small};
    // Several threads read at once (the engine's lanes): one of them releases, the others
    // go on.
    std::atomic<std::size_t> touches{0};
    std::atomic<std::size_t> releases{0};
    std::mutex release_turn;
    // Where the map is: LMDB does not say (MDB_envinfo::me_mapaddr is only set for
    // MDB_FIXEDMAP), so /proc/self/maps is asked, again whenever the map size changed
    // (resize_map counts map_changes).
    std::atomic<std::size_t> map_changes{0};
    std::size_t map_seen = ~std::size_t{0};
    void* map_addr = nullptr;
    std::size_t map_size = 0;
    int fd = -1;
    void touched(std::size_t weight) {
        if (touches.fetch_add(weight, std::memory_order_relaxed) + weight <
            release_every.load(std::memory_order_relaxed))
            return;
        std::unique_lock turn(release_turn, std::try_to_lock);
        if (!turn) return;
        touches.store(0, std::memory_order_relaxed);
        if (const auto changes = map_changes.load(); changes != map_seen) {
            MDB_envinfo info{};
            if (mdb_env_info(handle, &info) != 0 || mdb_env_get_fd(handle, &fd) != 0) return;
            map_seen = changes;
            map_size = info.me_mapsize;
            map_addr = find_map(map_size);
        }
        // The file's size, not mdb_env_info's last page: that reads the meta page, which
        // the last release unmapped, and a fault here costs 10-15 us with the 15 pages the
        // kernel maps around it. No transaction reads past the end of the file.
        struct stat file {};
        if (!map_addr || ::fstat(fd, &file) != 0) return;
        const auto used = std::min(map_size, static_cast<std::size_t>(file.st_size));
        // A release costs 0.1-0.3 ms (the unmapping, and the lookups that fault their pages
        // back; c5000's first sync took 0.3-0.45 s more CPU without this): in a small
        // journal a first sync, which looks up tens of thousands of keys, releases half as
        // often after each 128 releases, down to an eighth (every 128 lookups, as before
        // lookups weighed more).
        const bool small = used < large_file;
        const std::size_t slower = std::min<std::size_t>(releases.load() / 128, 3);
        release_every.store((small ? release_small : release_large) << slower,
                            std::memory_order_relaxed);
        lookup_weight.store(small ? small_lookup_weight : large_lookup_weight,
                            std::memory_order_relaxed);
        if (::madvise(map_addr, used, MADV_DONTNEED) == 0) ++releases;
    }
    void stepped(std::size_t entry_bytes) { touched(node_header + entry_bytes); }
    void looked_up() { touched(lookup_weight.load(std::memory_order_relaxed)); }
    static constexpr std::size_t node_header = 8;
    void* find_map(std::size_t size) const {
        struct stat st {};
        if (::fstat(fd, &st) != 0) return nullptr;
        std::ifstream maps("/proc/self/maps");
        std::string line;
        while (std::getline(maps, line)) {
            // "start-end perms offset dev inode path"
            unsigned long start = 0, end = 0, offset = 0, inode = 0;
            char perms[8] = {}, dev[16] = {};
            if (std::sscanf(line.c_str(), "%lx-%lx %7s %lx %15s %lu", &start, &end, perms, &offset,
                            dev, &inode) != 6)
                continue;
            if (inode == st.st_ino && offset == 0 && end - start == size)
                return reinterpret_cast<void*>(start);
        }
        return nullptr;
    }
    ~env_state() {
        if (handle) mdb_env_close(handle);
    }
};

}  // namespace detail

namespace {

constexpr std::array<const char*, 17> call_names = {
    "mdb_env_create",
    "mdb_env_set_mapsize",
    "mdb_env_set_maxdbs",
    "mdb_env_set_maxreaders",
    "mdb_env_open",
    "mdb_env_info",
    "mdb_txn_begin",
    "mdb_txn_commit",
    "mdb_dbi_open",
    "mdb_get",
    "mdb_put",
    "mdb_del",
    "mdb_drop",
    "mdb_cursor_open",
    "mdb_cursor_get",
    "mdb_cursor_put",
    "mdb_cursor_del",
};
static_assert(call_names.size() == static_cast<std::size_t>(call::cursor_del) + 1);

// One category per call, so that the error_code alone can say which call failed.
class lmdb_category final : public boost::system::error_category {
  public:
    explicit lmdb_category(const char* call) : call_(call) {}
    const char* name() const noexcept override { return "lmdb"; }
    std::string message(int rc) const override {
        return std::string(call_) + ": " + mdb_strerror(rc);
    }
    // LMDB passes errno values through (ENOSPC, EACCES, ENOENT ...): those compare
    // equal to std::errc conditions.
    boost::system::error_condition default_error_condition(int rc) const noexcept override {
        if (rc > 0) return boost::system::error_condition(rc, boost::system::generic_category());
        return boost::system::error_condition(rc, *this);
    }

  private:
    const char* call_;
};

const std::array<lmdb_category, 17>& categories() {
    static const std::array<lmdb_category, 17> cats = {
        lmdb_category(call_names[0]),  lmdb_category(call_names[1]),  lmdb_category(call_names[2]),
        lmdb_category(call_names[3]),  lmdb_category(call_names[4]),  lmdb_category(call_names[5]),
        lmdb_category(call_names[6]),  lmdb_category(call_names[7]),  lmdb_category(call_names[8]),
        lmdb_category(call_names[9]),  lmdb_category(call_names[10]), lmdb_category(call_names[11]),
        lmdb_category(call_names[12]), lmdb_category(call_names[13]), lmdb_category(call_names[14]),
        lmdb_category(call_names[15]), lmdb_category(call_names[16]),
    };
    return cats;
}

MDB_val to_val(std::string_view s) {
    return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view from_val(const MDB_val& v) {
    return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

}  // namespace

error_code make_error(call c, int rc) {
    return error_code(rc, categories()[static_cast<std::size_t>(c)]);
}

bool is_lmdb_error(const error_code& ec) {
    if (!ec) return false;
    for (const auto& cat : categories()) {
        if (ec.category() == cat) return true;
    }
    return false;
}

int lmdb_rc(const error_code& ec) {
    return is_lmdb_error(ec) ? ec.value() : 0;
}

// ---- dbi ----

result<dbi> dbi::open(write_txn& t, const char* name, bool create) {
    MDB_dbi h = 0;
    if (int rc = mdb_dbi_open(t.handle(), name, create ? MDB_CREATE : 0, &h))
        return make_error(call::dbi_open, rc);
    return dbi(h);
}

result<dbi> dbi::open(read_txn& t, const char* name) {
    MDB_dbi h = 0;
    if (int rc = mdb_dbi_open(t.handle(), name, 0, &h)) return make_error(call::dbi_open, rc);
    return dbi(h);
}

// ---- cursor ----

cursor::~cursor() {
    if (handle_) mdb_cursor_close(handle_);
}

cursor& cursor::operator=(cursor&& o) noexcept {
    if (this != &o) {
        if (handle_) mdb_cursor_close(handle_);
        handle_ = std::exchange(o.handle_, nullptr);
        env_ = std::exchange(o.env_, nullptr);
    }
    return *this;
}

result<std::optional<entry>> cursor::step(MDB_cursor_op op, std::string_view key) {
    MDB_val k = to_val(key);
    MDB_val v{0, nullptr};
    int rc = mdb_cursor_get(handle_, &k, &v, op);
    if (env_) {
        const bool walks = op == MDB_NEXT || op == MDB_PREV || op == MDB_GET_CURRENT;
        walks ? env_->stepped(rc == 0 ? k.mv_size + v.mv_size : 0) : env_->looked_up();
    }
    if (rc == MDB_NOTFOUND) return std::optional<entry>();
    if (rc) return make_error(call::cursor_get, rc);
    return std::optional<entry>(entry{from_val(k), from_val(v)});
}

result<std::optional<entry>> cursor::first() {
    return step(MDB_FIRST);
}
result<std::optional<entry>> cursor::last() {
    return step(MDB_LAST);
}
result<std::optional<entry>> cursor::next() {
    return step(MDB_NEXT);
}
result<std::optional<entry>> cursor::prev() {
    return step(MDB_PREV);
}
result<std::optional<entry>> cursor::current() {
    return step(MDB_GET_CURRENT);
}
result<std::optional<entry>> cursor::lower_bound(std::string_view key) {
    return step(MDB_SET_RANGE, key);
}
result<std::optional<entry>> cursor::find(std::string_view key) {
    return step(MDB_SET_KEY, key);
}

result<void> cursor::erase() {
    if (int rc = mdb_cursor_del(handle_, 0)) return make_error(call::cursor_del, rc);
    return {};
}

// ---- txn ----

txn& txn::operator=(txn&& o) noexcept {
    if (this != &o) {
        abort();
        env_ = std::exchange(o.env_, nullptr);
        handle_ = std::exchange(o.handle_, nullptr);
    }
    return *this;
}

txn::~txn() {
    abort();
}

void txn::abort() noexcept {
    if (!handle_) return;
    mdb_txn_abort(handle_);
    handle_ = nullptr;
    if (env_) env_->open_txns.fetch_sub(1);
}

result<void> txn::commit_impl() {
    if (!handle_) return make_error_code(std::errc::invalid_argument);
    // mdb_txn_commit frees the transaction whatever it returns.
    int rc = mdb_txn_commit(std::exchange(handle_, nullptr));
    if (env_) env_->open_txns.fetch_sub(1);
    if (rc) return make_error(call::txn_commit, rc);
    return {};
}

result<std::optional<std::string_view>> txn::get(dbi d, std::string_view key) const {
    MDB_val k = to_val(key);
    MDB_val v{0, nullptr};
    int rc = mdb_get(handle_, d.handle(), &k, &v);
    if (env_) env_->looked_up();
    if (rc == MDB_NOTFOUND) return std::optional<std::string_view>();
    if (rc) return make_error(call::get, rc);
    return std::optional<std::string_view>(from_val(v));
}

result<cursor> txn::open_cursor(dbi d) const {
    MDB_cursor* c = nullptr;
    if (int rc = mdb_cursor_open(handle_, d.handle(), &c)) return make_error(call::cursor_open, rc);
    return cursor(c, env_);
}

result<void> write_txn::put(dbi d, std::string_view key, std::string_view value) {
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    if (int rc = mdb_put(handle_, d.handle(), &k, &v, 0)) return make_error(call::put, rc);
    if (env_) env_->looked_up();
    return {};
}

result<bool> write_txn::insert(dbi d, std::string_view key, std::string_view value) {
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    int rc = mdb_put(handle_, d.handle(), &k, &v, MDB_NOOVERWRITE);
    if (env_) env_->looked_up();
    if (rc == MDB_KEYEXIST) return false;
    if (rc) return result<bool>(boost::system::in_place_error, make_error(call::put, rc));
    return true;
}

result<bool> write_txn::erase(dbi d, std::string_view key) {
    MDB_val k = to_val(key);
    int rc = mdb_del(handle_, d.handle(), &k, nullptr);
    if (env_) env_->looked_up();
    if (rc == MDB_NOTFOUND) return false;
    if (rc) return result<bool>(boost::system::in_place_error, make_error(call::del, rc));
    return true;
}

result<void> write_txn::clear(dbi d) {
    if (int rc = mdb_drop(handle_, d.handle(), 0)) return make_error(call::drop, rc);
    return {};
}

// ---- env ----

env::env() = default;
env::~env() = default;
env::env(env&&) noexcept = default;
env& env::operator=(env&&) noexcept = default;

MDB_env* env::handle() const {
    return state_ ? state_->handle : nullptr;
}

result<env> env::open(const std::filesystem::path& path, const env_options& options) {
    auto state = std::make_unique<detail::env_state>();
    if (int rc = mdb_env_create(&state->handle)) {
        state->handle = nullptr;
        return make_error(call::env_create, rc);
    }
    if (int rc = mdb_env_set_mapsize(state->handle, options.map_size))
        return make_error(call::env_set_mapsize, rc);
    if (int rc = mdb_env_set_maxdbs(state->handle, options.max_dbs))
        return make_error(call::env_set_maxdbs, rc);
    if (int rc = mdb_env_set_maxreaders(state->handle, options.max_readers))
        return make_error(call::env_set_maxreaders, rc);
    unsigned flags = MDB_NOTLS;
    if (options.single_file) {
        flags |= MDB_NOSUBDIR;
    } else if (auto r = fs::create_private_dir(path); !r) {
        return r.error();
    }
    if (!options.durable) flags |= MDB_NOSYNC;
    if (int rc = mdb_env_open(state->handle, path.c_str(), flags, options.file_mode))
        return make_error(call::env_open, rc);
    env e;
    e.state_ = std::move(state);
    return e;
}

std::size_t env::map_size() const {
    MDB_envinfo info{};
    mdb_env_info(handle(), &info);
    return info.me_mapsize;
}

std::size_t env::used_size() const {
    MDB_envinfo info{};
    mdb_env_info(handle(), &info);
    MDB_stat st{};
    mdb_env_stat(handle(), &st);
    return (info.me_last_pgno + 1) * static_cast<std::size_t>(st.ms_psize);
}

std::size_t env::open_transactions() const {
    return state_ ? state_->open_txns.load() : 0;
}

std::size_t env::page_releases() const {
    return state_ ? state_->releases.load() : 0;
}

// Changes the map size (0: adopt the size another process gave the file) once no
// transaction of this process is open, waiting up to `patience` for those open to end
// (new ones wait meanwhile); busy when they did not.
static result<void> resize_map(detail::env_state& st, std::size_t size,
                               std::chrono::milliseconds patience = {}) {
    std::lock_guard one(st.resize);
    st.resizing.store(true);
    for (auto waited = std::chrono::milliseconds(0); st.open_txns.load() != 0;
         waited += std::chrono::milliseconds(10)) {
        if (waited >= patience) {
            st.resizing.store(false);
            return make_error_code(std::errc::device_or_resource_busy);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const int rc = mdb_env_set_mapsize(st.handle, size);
    if (!rc) ++st.map_changes;
    st.resizing.store(false);
    if (rc) return make_error(call::env_set_mapsize, rc);
    return {};
}

result<void> env::grow() {
    return resize_map(*state_, map_size() * 2);
}

// A transaction that stays open meanwhile (its thread waits for something else) makes it
// give up after 2 s.
bool env::grow_when_alone() {
    return static_cast<bool>(resize_map(*state_, map_size() * 2, std::chrono::seconds(2)));
}

// Counts a transaction in before it begins, once no resize is on (env_state::resizing).
static void count_in(detail::env_state& st) {
    for (;;) {
        st.open_txns.fetch_add(1);
        if (!st.resizing.load()) return;
        st.open_txns.fetch_sub(1);
        while (st.resizing.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

// Begins a transaction; another process's larger map (MDB_MAP_RESIZED) is adopted first
// where no transaction is open here.
static result<MDB_txn*> begin_txn(detail::env_state& st, unsigned flags) {
    for (int attempt = 0;; ++attempt) {
        MDB_txn* t = nullptr;
        count_in(st);
        const int rc = mdb_txn_begin(st.handle, nullptr, flags, &t);
        if (rc == 0) return t;
        st.open_txns.fetch_sub(1);
        if (rc == MDB_MAP_RESIZED && attempt < 3) {
            if (auto r = resize_map(st, 0); !r) {
                if (r.error() == std::errc::device_or_resource_busy)
                    return make_error(call::txn_begin, rc);
                return r.error();
            }
            continue;
        }
        return make_error(call::txn_begin, rc);
    }
}

result<read_txn> env::begin_read() const {
    auto t = begin_txn(*state_, MDB_RDONLY);
    if (!t) return t.error();
    return read_txn(state_.get(), *t);
}

result<write_txn> env::begin_write() {
    if (state_->open_txns.load() == 0 && used_size() > map_size() / 4 * 3) {
        // Another thread's transaction may have begun since: then the next write grows it.
        if (auto g = grow(); !g && g.error() != std::errc::device_or_resource_busy)
            return g.error();
    }
    auto t = begin_txn(*state_, 0);
    if (!t) return t.error();
    return write_txn(state_.get(), *t);
}

}  // namespace tandem::journal::lmdb
