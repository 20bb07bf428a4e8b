// SPDX-License-Identifier: MIT
#include "tandem/journal/journal.hpp"

#include "tandem/journal/codec.hpp"

#include <ctime>
#include <limits>

namespace tandem::journal {
namespace {

using codec::reader;
using codec::writer;

constexpr std::uint8_t format_1 = 1;

error_code corrupt() {
    return make_error_code(std::errc::bad_message);
}
error_code invalid() {
    return make_error_code(errc::invalid_argument);
}

// An error on its way out of a function returning any result<T>. Needed because
// result<bool> cannot be built from an error_code implicitly (error_code converts to bool).
struct propagate {
    error_code ec;
    template <class T>
    operator result<T>() const {
        return result<T>(boost::system::in_place_error, ec);
    }
};

// Propagates the error of a result<T> expression; otherwise names its value `var`.
#define TANDEM_TRY(var, expr)                        \
    auto var##_r = (expr);                           \
    if (!var##_r) return propagate{var##_r.error()}; \
    auto& var = *var##_r

#define TANDEM_CHECK(expr)                                       \
    do {                                                         \
        if (auto r_ = (expr); !r_) return propagate{r_.error()}; \
    } while (0)

// A value's reader with its format byte checked.
std::optional<reader> open_value(std::string_view v) {
    reader r(v);
    if (r.u8() != format_1 || !r.ok()) return std::nullopt;
    return r;
}

std::string pair_key(std::string_view channel, std::string_view mailbox) {
    return writer().cstr(channel).raw(mailbox).take();
}

void write_side(writer& w, const side_state& s) {
    w.str(s.name)
        .u32(s.uidvalidity)
        .u32(s.uidnext)
        .u64(s.highestmodseq)
        .u32(s.messages)
        .str(s.scan_token);
}

void read_side(reader& r, side_state& s) {
    s.name = r.str();
    s.uidvalidity = r.u32();
    s.uidnext = r.u32();
    s.highestmodseq = r.u64();
    s.messages = r.u32();
    s.scan_token = r.str();
}

std::string encode_pair(const pair_state& p) {
    auto w = writer::value(format_1);
    w.u64(p.id).i64(p.last_sync).u8(static_cast<std::uint8_t>(p.status)).str(p.error);
    write_side(w, p.sides.a);
    write_side(w, p.sides.b);
    return w.take();
}

result<pair_state> decode_pair(std::string_view v) {
    auto r = open_value(v);
    if (!r) return corrupt();
    pair_state p;
    p.id = r->u64();
    p.last_sync = r->i64();
    auto status = r->u8();
    if (status > static_cast<std::uint8_t>(pair_status::error)) return corrupt();
    p.status = static_cast<pair_status>(status);
    p.error = r->str();
    read_side(*r, p.sides.a);
    read_side(*r, p.sides.b);
    if (!r->done()) return corrupt();
    return p;
}

std::string full_record_key(std::uint64_t pair, mail::uid a, mail::uid b) {
    return writer().u64(pair).u32(a).u32(b).take();
}

std::string encode_record(const pair_record& rec) {
    return writer::value(format_1)
        .flags(rec.flags)
        .str(rec.identity.a)
        .str(rec.identity.b)
        .str(rec.content_key)
        .u64(rec.size)
        .take();
}

result<pair_record> decode_record(std::string_view key, std::string_view v) {
    if (key.size() != 16) return corrupt();
    auto r = open_value(v);
    if (!r) return corrupt();
    pair_record rec;
    rec.uid.a = codec::load_be32(key.substr(8));
    rec.uid.b = codec::load_be32(key.substr(12));
    rec.flags = r->flags();
    rec.identity.a = r->str();
    rec.identity.b = r->str();
    rec.content_key = r->str();
    rec.size = r->u64();
    if (!r->done()) return corrupt();
    return rec;
}

std::string encode_intent(const intent& i) {
    return writer::value(format_1)
        .u8(static_cast<std::uint8_t>(i.kind))
        .u8(static_cast<std::uint8_t>(i.on))
        .str(i.channel)
        .str(i.mailbox)
        .str(i.payload)
        .take();
}

result<intent> decode_intent(std::string_view key, std::string_view v) {
    if (key.size() != 8) return corrupt();
    auto r = open_value(v);
    if (!r) return corrupt();
    intent i;
    i.seq = codec::load_be64(key);
    auto kind = r->u8();
    if (kind < static_cast<std::uint8_t>(intent_kind::append) ||
        kind > static_cast<std::uint8_t>(intent_kind::rename_mailbox))
        return corrupt();
    i.kind = static_cast<intent_kind>(kind);
    auto s = r->u8();
    if (s > 1) return corrupt();
    i.on = static_cast<side>(s);
    i.channel = r->str();
    i.mailbox = r->str();
    i.payload = r->str();
    if (!r->done()) return corrupt();
    return i;
}

result<std::uint64_t> decode_u64_value(std::string_view v) {
    auto r = open_value(v);
    if (!r) return corrupt();
    auto n = r->u64();
    if (!r->done()) return corrupt();
    return n;
}

std::string u64_value(std::uint64_t n) {
    return writer::value(format_1).u64(n).take();
}

result<mail::uid> decode_uid_value(std::string_view v) {
    auto r = open_value(v);
    if (!r) return corrupt();
    auto n = r->u32();
    if (!r->done()) return corrupt();
    return n;
}

std::string uid_value(mail::uid u) {
    return writer::value(format_1).u32(u).take();
}

// uidvalidity, next_uid[, count]: a value without the count is from a journal written
// before it was kept, and reads as "not counted".
std::string md_state_value(const maildir_folder& f) {
    auto w = writer::value(format_1).u32(f.uidvalidity).u32(f.next_uid);
    if (f.count) w.u32(*f.count);
    return w.take();
}

result<void> decode_md_state(std::string_view v, maildir_folder& f) {
    auto r = open_value(v);
    if (!r) return corrupt();
    f.uidvalidity = r->u32();
    f.next_uid = r->u32();
    f.count.reset();
    if (r->ok() && !r->done()) f.count = r->u32();
    if (!r->done()) return corrupt();
    return {};
}

// Deletes every key of `d` that starts with `prefix`; returns how many.
result<std::size_t> erase_prefix(lmdb::write_txn& t, lmdb::dbi d, std::string_view prefix) {
    TANDEM_TRY(c, t.open_cursor(d));
    std::size_t n = 0;
    auto e = c.lower_bound(prefix);
    for (;;) {
        if (!e) return e.error();
        if (!*e || (*e)->key.substr(0, prefix.size()) != prefix) return n;
        TANDEM_CHECK(c.erase());
        ++n;
        e = c.next();  // after a delete, MDB_NEXT lands on the entry that followed
    }
}

}  // namespace

// ---- open ----

result<journal> journal::open(const journal_options& options, std::string* diagnostic) {
    auto fail = [&](error_code ec, std::string text) -> result<journal> {
        if (diagnostic) *diagnostic = std::move(text);
        return ec;
    };
    const auto& dir = options.state_dir;
    if (auto r = fs::create_private_dir(dir); !r)
        return fail(r.error(), "cannot create the state directory " + dir.string() + ": " +
                                   r.error().message());

    fs::lock_holder holder;
    auto lock = fs::lock_file::acquire(dir / "journal.lock", options.lock_wait, &holder);
    if (!lock) {
        if (lock.error() == std::errc::resource_unavailable_try_again)
            return fail(errc::journal_locked,
                        "journal " + dir.string() + " is in use by " + holder.describe());
        return fail(lock.error(), "cannot lock " + (dir / "journal.lock").string() + ": " +
                                      lock.error().message());
    }

    lmdb::env_options eo;
    eo.map_size = options.map_size;
    eo.durable = options.durable;
    eo.file_mode = 0600;
    auto env = lmdb::env::open(dir / "journal", eo);
    if (!env)
        return fail(env.error(),
                    "cannot open journal " + dir.string() + ": " + env.error().message());

    journal j;
    j.lock_ = std::move(*lock);
    j.env_ = std::move(*env);
    j.state_dir_ = dir;

    std::uint32_t found_version = 0;
    auto r = j.env_.write([&](lmdb::write_txn& t) -> result<void> {
        const std::pair<lmdb::dbi*, const char*> names[] = {
            {&j.db_.meta, "meta"},           {&j.db_.pairs, "pairs"},
            {&j.db_.records, "records"},     {&j.db_.records_a, "records_a"},
            {&j.db_.records_b, "records_b"}, {&j.db_.md_folders, "md_folders"},
            {&j.db_.md_state, "md_state"},   {&j.db_.md_names, "md_names"},
            {&j.db_.md_uids, "md_uids"},     {&j.db_.intents, "intents"},
        };
        for (auto [d, name] : names) {
            TANDEM_TRY(h, lmdb::dbi::open(t, name));
            *d = h;
        }
        TANDEM_TRY(v, t.get(j.db_.meta, "version"));
        if (v) {
            auto rd = open_value(*v);
            if (!rd) return corrupt();
            found_version = rd->u32();
            if (!rd->done()) return corrupt();
            if (found_version != schema_version) return errc::journal_version;
            TANDEM_TRY(c, t.get(j.db_.meta, "created"));
            if (!c) return corrupt();
            auto rc = open_value(*c);
            if (!rc) return corrupt();
            j.created_ = rc->i64();
            if (!rc->done()) return corrupt();
            return j.index_records_a(t);
        }
        j.created_ = static_cast<std::int64_t>(std::time(nullptr));
        TANDEM_CHECK(
            t.put(j.db_.meta, "version", writer::value(format_1).u32(schema_version).bytes()));
        TANDEM_CHECK(t.put(j.db_.meta, "created", writer::value(format_1).i64(j.created_).bytes()));
        TANDEM_CHECK(t.put(j.db_.meta, "next_id", u64_value(1)));
        TANDEM_CHECK(t.put(j.db_.meta, "next_intent", u64_value(1)));
        TANDEM_CHECK(t.put(j.db_.meta, "records_a", u64_value(1)));
        return {};
    });
    if (!r) {
        if (r.error() == errc::journal_version)
            return fail(r.error(), "journal " + dir.string() + " has schema version " +
                                       std::to_string(found_version) +
                                       "; this tandem reads version " +
                                       std::to_string(schema_version));
        return fail(r.error(), "cannot read journal " + dir.string() + ": " + r.error().message());
    }
    return j;
}

result<std::uint64_t> journal::next_counter(lmdb::write_txn& t, std::string_view name) {
    TANDEM_TRY(v, t.get(db_.meta, name));
    if (!v) return corrupt();
    TANDEM_TRY(n, decode_u64_value(*v));
    std::uint64_t id = n;
    TANDEM_CHECK(t.put(db_.meta, name, u64_value(id + 1)));
    return id;
}

// ---- link measurements ----

namespace {

std::string link_key(std::string_view store) {
    return "link:" + std::string(store);
}

}  // namespace

result<link_history> journal::find_link(const lmdb::txn& t, std::string_view store) const {
    TANDEM_TRY(v, t.get(db_.meta, link_key(store)));
    link_history h;
    if (!v) return h;
    auto r = open_value(*v);
    if (!r) return corrupt();
    h.plain.bytes_per_second = r->u64();
    h.plain.when = r->i64();
    h.compressed.bytes_per_second = r->u64();
    h.compressed.when = r->i64();
    if (!r->done()) return corrupt();
    return h;
}

result<void> journal::put_link(lmdb::write_txn& t, std::string_view store, const link_history& h) {
    auto w = writer::value(format_1)
                 .u64(h.plain.bytes_per_second)
                 .i64(h.plain.when)
                 .u64(h.compressed.bytes_per_second)
                 .i64(h.compressed.when);
    return t.put(db_.meta, link_key(store), w.bytes());
}

// ---- mailbox pair state ----

result<std::optional<pair_state>> journal::find_pair(const lmdb::txn& t, std::string_view channel,
                                                     std::string_view mailbox) const {
    if (codec::has_nul(channel) || codec::has_nul(mailbox)) return invalid();
    TANDEM_TRY(v, t.get(db_.pairs, pair_key(channel, mailbox)));
    if (!v) return std::optional<pair_state>();
    TANDEM_TRY(p, decode_pair(*v));
    return std::optional<pair_state>(std::move(p));
}

result<pair_state> journal::open_pair(lmdb::write_txn& t, std::string_view channel,
                                      std::string_view mailbox) {
    TANDEM_TRY(found, find_pair(t, channel, mailbox));
    if (found) return std::move(*found);
    pair_state p;
    TANDEM_TRY(id, next_counter(t, "next_id"));
    p.id = id;
    TANDEM_CHECK(t.put(db_.pairs, pair_key(channel, mailbox), encode_pair(p)));
    return p;
}

result<void> journal::put_pair(lmdb::write_txn& t, std::string_view channel,
                               std::string_view mailbox, const pair_state& state) {
    TANDEM_TRY(found, find_pair(t, channel, mailbox));
    pair_state p = state;
    if (found) {
        if (p.id == 0) p.id = found->id;
        if (p.id != found->id) return invalid();
    } else {
        if (p.id != 0) return invalid();
        TANDEM_TRY(id, next_counter(t, "next_id"));
        p.id = id;
    }
    return t.put(db_.pairs, pair_key(channel, mailbox), encode_pair(p));
}

result<std::vector<pair_entry>> journal::list_pairs(const lmdb::txn& t,
                                                    std::string_view channel) const {
    if (codec::has_nul(channel)) return invalid();
    auto prefix = writer().cstr(channel).take();
    TANDEM_TRY(c, t.open_cursor(db_.pairs));
    std::vector<pair_entry> out;
    TANDEM_CHECK(c.scan_prefix(prefix, [&](const lmdb::entry& e) -> result<void> {
        TANDEM_TRY(p, decode_pair(e.value));
        out.push_back(pair_entry{std::string(e.key.substr(prefix.size())), std::move(p)});
        return {};
    }));
    return out;
}

result<bool> journal::erase_pair(lmdb::write_txn& t, std::string_view channel,
                                 std::string_view mailbox) {
    TANDEM_TRY(found, find_pair(t, channel, mailbox));
    if (!found) return false;
    TANDEM_CHECK(erase_records(t, found->id));
    TANDEM_CHECK(t.erase(db_.pairs, pair_key(channel, mailbox)));
    return true;
}

// ---- pair records ----

// records_a came after the first journals: one built from `records` when it is missing.
result<void> journal::index_records_a(lmdb::write_txn& t) {
    TANDEM_TRY(done, t.get(db_.meta, "records_a"));
    if (done) return {};
    std::vector<std::pair<std::string, std::string>> index;
    {
        TANDEM_TRY(c, t.open_cursor(db_.records));
        TANDEM_CHECK(c.scan({}, {}, [&](const lmdb::entry& e) -> result<void> {
            if (e.key.size() != 16) return corrupt();
            if (codec::load_be32(e.key.substr(8)) == 0) return {};
            index.emplace_back(std::string(e.key.substr(0, 12)),
                               uid_value(codec::load_be32(e.key.substr(12))));
            return {};
        }));
    }
    for (const auto& [k, v] : index) TANDEM_CHECK(t.put(db_.records_a, k, v));
    return t.put(db_.meta, "records_a", u64_value(1));
}

result<std::optional<std::string>> journal::record_key(const lmdb::txn& t, std::uint64_t pair,
                                                       side s, mail::uid uid) const {
    if (uid == 0) return std::optional<std::string>();
    if (s == side::b) {
        TANDEM_TRY(v, t.get(db_.records_b, writer().u64(pair).u32(uid).bytes()));
        if (!v) return std::optional<std::string>();
        TANDEM_TRY(a, decode_uid_value(*v));
        return std::optional<std::string>(full_record_key(pair, a, uid));
    }
    // uid_a is unique within the pair, so the first key at or after (pair, uid, 0) is
    // the record if it has the same (pair, uid).
    auto prefix = writer().u64(pair).u32(uid).take();
    TANDEM_TRY(c, t.open_cursor(db_.records));
    TANDEM_TRY(e, c.lower_bound(prefix));
    if (!e || e->key.size() != 16 || e->key.substr(0, 12) != prefix)
        return std::optional<std::string>();
    return std::optional<std::string>(std::string(e->key));
}

result<void> journal::erase_record_key(lmdb::write_txn& t, std::string_view key) {
    TANDEM_CHECK(t.erase(db_.records, key));
    if (codec::load_be32(key.substr(8)) != 0)
        TANDEM_CHECK(t.erase(db_.records_a, key.substr(0, 12)));
    auto uid_b = codec::load_be32(key.substr(12));
    if (uid_b != 0) {
        auto bkey = writer().raw(key.substr(0, 8)).u32(uid_b).take();
        TANDEM_CHECK(t.erase(db_.records_b, bkey));
    }
    return {};
}

result<void> journal::put_record(lmdb::write_txn& t, std::uint64_t pair, const pair_record& r) {
    if (r.uid.a == 0 && r.uid.b == 0) return invalid();
    for (side s : mail::both_sides) {
        TANDEM_TRY(old, record_key(t, pair, s, r.uid[s]));
        if (old) TANDEM_CHECK(erase_record_key(t, *old));
    }
    TANDEM_CHECK(t.put(db_.records, full_record_key(pair, r.uid.a, r.uid.b), encode_record(r)));
    if (r.uid.a != 0)
        TANDEM_CHECK(
            t.put(db_.records_a, writer().u64(pair).u32(r.uid.a).bytes(), uid_value(r.uid.b)));
    if (r.uid.b != 0)
        TANDEM_CHECK(
            t.put(db_.records_b, writer().u64(pair).u32(r.uid.b).bytes(), uid_value(r.uid.a)));
    return {};
}

// A record's key holds both its uids, and no other record shares either (put_record), so
// the record under that key is the one both indexes point at.
result<bool> journal::replace_record(lmdb::write_txn& t, std::uint64_t pair, const pair_record& r) {
    if (r.uid.a == 0 && r.uid.b == 0) return result<bool>(boost::system::in_place_error, invalid());
    const auto key = full_record_key(pair, r.uid.a, r.uid.b);
    TANDEM_TRY(v, t.get(db_.records, key));
    if (!v) return false;
    TANDEM_CHECK(t.put(db_.records, key, encode_record(r)));
    return true;
}

result<bool> journal::erase_record(lmdb::write_txn& t, std::uint64_t pair, side s, mail::uid uid) {
    TANDEM_TRY(key, record_key(t, pair, s, uid));
    if (!key) return false;
    TANDEM_CHECK(erase_record_key(t, *key));
    return true;
}

result<std::optional<pair_record>> journal::find_record(const lmdb::txn& t, std::uint64_t pair,
                                                        side s, mail::uid uid) const {
    TANDEM_TRY(key, record_key(t, pair, s, uid));
    if (!key) return std::optional<pair_record>();
    TANDEM_TRY(v, t.get(db_.records, *key));
    // records_b points at a key that `records` lacks: the indexes disagree.
    if (!v) return corrupt();
    TANDEM_TRY(rec, decode_record(*key, *v));
    return std::optional<pair_record>(std::move(rec));
}

result<void> journal::for_each_record(const lmdb::txn& t, std::uint64_t pair,
                                      const std::function<bool(const pair_record&)>& f) const {
    TANDEM_TRY(c, t.open_cursor(db_.records));
    bool stopped = false;
    auto r = c.scan_prefix(codec::be64(pair), [&](const lmdb::entry& e) -> result<void> {
        TANDEM_TRY(rec, decode_record(e.key, e.value));
        if (!f(rec)) {
            stopped = true;
            return make_error_code(std::errc::operation_canceled);
        }
        return {};
    });
    if (!r && !stopped) return r;
    return {};
}

result<pair_record> journal::record_view::decode() const {
    return decode_record(key, value);
}

result<void> journal::for_each_record_view(
    const lmdb::txn& t, std::uint64_t pair,
    const std::function<result<bool>(const record_view&)>& f) const {
    TANDEM_TRY(c, t.open_cursor(db_.records));
    bool stopped = false;
    auto r = c.scan_prefix(codec::be64(pair), [&](const lmdb::entry& e) -> result<void> {
        if (e.key.size() != 16) return corrupt();
        auto rd = open_value(e.value);
        if (!rd) return corrupt();
        record_view v;
        v.uid.a = codec::load_be32(e.key.substr(8));
        v.uid.b = codec::load_be32(e.key.substr(12));
        v.flags = rd->flags();
        if (!rd->ok()) return corrupt();
        v.key = e.key;
        v.value = e.value;
        TANDEM_TRY(go_on, f(v));
        if (!go_on) {
            stopped = true;
            return make_error_code(std::errc::operation_canceled);
        }
        return {};
    });
    if (!r && !stopped) return r;
    return {};
}

result<std::vector<pair_record>> journal::records(const lmdb::txn& t, std::uint64_t pair) const {
    std::vector<pair_record> out;
    TANDEM_CHECK(for_each_record(t, pair, [&](const pair_record& r) {
        out.push_back(r);
        return true;
    }));
    return out;
}

// From the uid indexes, not `records`: a walk over keys with small values touches a tenth
// of the pages (a 200,000-message mailbox: 5 MB instead of 40 MB mapped).
result<std::vector<mail::uid>> journal::uids(const lmdb::txn& t, std::uint64_t pair, side s) const {
    TANDEM_TRY(c, t.open_cursor(s == side::a ? db_.records_a : db_.records_b));
    std::vector<mail::uid> out;
    TANDEM_CHECK(c.scan_prefix(codec::be64(pair), [&](const lmdb::entry& e) -> result<void> {
        if (e.key.size() < 12) return corrupt();
        auto u = codec::load_be32(e.key.substr(8));
        if (u != 0) out.push_back(u);
        return {};
    }));
    return out;
}

result<std::size_t> journal::count_uids(const lmdb::txn& t, std::uint64_t pair, side s) const {
    TANDEM_TRY(c, t.open_cursor(s == side::a ? db_.records_a : db_.records_b));
    std::size_t n = 0;
    TANDEM_CHECK(c.scan_prefix(codec::be64(pair), [&](const lmdb::entry& e) -> result<void> {
        if (e.key.size() < 12) return corrupt();
        if (codec::load_be32(e.key.substr(8)) != 0) ++n;
        return {};
    }));
    return n;
}

result<std::size_t> journal::count_records(const lmdb::txn& t, std::uint64_t pair) const {
    TANDEM_TRY(c, t.open_cursor(db_.records));
    std::size_t n = 0;
    TANDEM_CHECK(c.scan_prefix(codec::be64(pair), [&](const lmdb::entry&) { ++n; }));
    return n;
}

result<std::size_t> journal::erase_records(lmdb::write_txn& t, std::uint64_t pair) {
    auto prefix = codec::be64(pair);
    TANDEM_TRY(n, erase_prefix(t, db_.records, prefix));
    TANDEM_CHECK(erase_prefix(t, db_.records_a, prefix));
    TANDEM_CHECK(erase_prefix(t, db_.records_b, prefix));
    return n;
}

// ---- Maildir UID map ----

result<std::optional<maildir_folder>> journal::find_maildir_folder(const lmdb::txn& t,
                                                                   std::string_view store,
                                                                   std::string_view folder) const {
    if (codec::has_nul(store) || codec::has_nul(folder)) return invalid();
    TANDEM_TRY(v, t.get(db_.md_folders, writer().cstr(store).raw(folder).bytes()));
    if (!v) return std::optional<maildir_folder>();
    TANDEM_TRY(id, decode_u64_value(*v));
    maildir_folder f;
    f.id = id;
    TANDEM_TRY(s, t.get(db_.md_state, codec::be64(f.id)));
    if (!s) return corrupt();
    TANDEM_CHECK(decode_md_state(*s, f));
    return std::optional<maildir_folder>(f);
}

result<maildir_folder> journal::open_maildir_folder(lmdb::write_txn& t, std::string_view store,
                                                    std::string_view folder,
                                                    mail::uidvalidity uidvalidity) {
    TANDEM_TRY(found, find_maildir_folder(t, store, folder));
    if (found) return *found;
    maildir_folder f;
    TANDEM_TRY(id, next_counter(t, "next_id"));
    f.id = id;
    f.uidvalidity = uidvalidity;
    f.next_uid = 1;
    f.count = 0;
    TANDEM_CHECK(t.put(db_.md_folders, writer().cstr(store).raw(folder).bytes(), u64_value(f.id)));
    TANDEM_CHECK(t.put(db_.md_state, codec::be64(f.id), md_state_value(f)));
    return f;
}

result<void> journal::reset_maildir_folder(lmdb::write_txn& t, maildir_folder& f,
                                           mail::uidvalidity uidvalidity) {
    auto prefix = codec::be64(f.id);
    TANDEM_CHECK(erase_prefix(t, db_.md_names, prefix));
    TANDEM_CHECK(erase_prefix(t, db_.md_uids, prefix));
    maildir_folder next = f;
    next.uidvalidity = uidvalidity;
    next.next_uid = 1;
    next.count = 0;
    TANDEM_CHECK(t.put(db_.md_state, prefix, md_state_value(next)));
    f = next;
    return {};
}

result<bool> journal::erase_maildir_folder(lmdb::write_txn& t, std::string_view store,
                                           std::string_view folder) {
    TANDEM_TRY(found, find_maildir_folder(t, store, folder));
    if (!found) return false;
    auto prefix = codec::be64(found->id);
    TANDEM_CHECK(erase_prefix(t, db_.md_names, prefix));
    TANDEM_CHECK(erase_prefix(t, db_.md_uids, prefix));
    TANDEM_CHECK(t.erase(db_.md_state, prefix));
    TANDEM_CHECK(t.erase(db_.md_folders, writer().cstr(store).raw(folder).bytes()));
    return true;
}

result<std::optional<mail::uid>> journal::maildir_uid(const lmdb::txn& t, const maildir_folder& f,
                                                      std::string_view name) const {
    TANDEM_TRY(v, t.get(db_.md_names, writer().u64(f.id).raw(name).bytes()));
    if (!v) return std::optional<mail::uid>();
    TANDEM_TRY(u, decode_uid_value(*v));
    return std::optional<mail::uid>(u);
}

result<std::optional<std::string>> journal::maildir_name(const lmdb::txn& t,
                                                         const maildir_folder& f,
                                                         mail::uid uid) const {
    TANDEM_TRY(v, t.get(db_.md_uids, writer().u64(f.id).u32(uid).bytes()));
    if (!v) return std::optional<std::string>();
    auto r = open_value(*v);
    if (!r) return corrupt();
    std::string name(r->str());
    if (!r->done()) return corrupt();
    return std::optional<std::string>(std::move(name));
}

result<mail::uid> journal::maildir_assign(lmdb::write_txn& t, maildir_folder& f,
                                          std::string_view name) {
    if (name.empty()) return invalid();
    TANDEM_TRY(existing, maildir_uid(t, f, name));
    if (existing) return *existing;
    // Read the folder's counter from the transaction, not from `f`: another copy of the
    // folder handle may have assigned UIDs since `f` was read.
    TANDEM_TRY(s, t.get(db_.md_state, codec::be64(f.id)));
    if (!s) return make_error_code(errc::not_found);
    maildir_folder cur = f;
    TANDEM_CHECK(decode_md_state(*s, cur));
    mail::uid uid = cur.next_uid;
    if (uid == 0 || uid == std::numeric_limits<mail::uid>::max()) return invalid();
    TANDEM_TRY(n, maildir_count(t, cur));
    cur.next_uid = uid + 1;
    cur.count = static_cast<std::uint32_t>(n + 1);
    TANDEM_CHECK(t.put(db_.md_state, codec::be64(f.id), md_state_value(cur)));
    TANDEM_CHECK(t.put(db_.md_names, writer().u64(f.id).raw(name).bytes(), uid_value(uid)));
    TANDEM_CHECK(t.put(db_.md_uids, writer().u64(f.id).u32(uid).bytes(),
                       writer::value(format_1).str(name).bytes()));
    f = cur;
    return uid;
}

result<bool> journal::maildir_forget(lmdb::write_txn& t, const maildir_folder& f,
                                     std::string_view name) {
    TANDEM_TRY(uid, maildir_uid(t, f, name));
    if (!uid) return false;
    TANDEM_TRY(s, t.get(db_.md_state, codec::be64(f.id)));
    if (!s) return result<bool>(boost::system::in_place_error, make_error_code(errc::not_found));
    maildir_folder cur = f;
    TANDEM_CHECK(decode_md_state(*s, cur));
    TANDEM_TRY(n, maildir_count(t, cur));  // before the erase: a walk would miss the name
    cur.count = static_cast<std::uint32_t>(n > 0 ? n - 1 : 0);
    TANDEM_CHECK(t.put(db_.md_state, codec::be64(f.id), md_state_value(cur)));
    TANDEM_CHECK(t.erase(db_.md_names, writer().u64(f.id).raw(name).bytes()));
    TANDEM_CHECK(t.erase(db_.md_uids, writer().u64(f.id).u32(*uid).bytes()));
    return true;
}

result<std::vector<maildir_entry>> journal::maildir_list(const lmdb::txn& t,
                                                         const maildir_folder& f) const {
    TANDEM_TRY(c, t.open_cursor(db_.md_uids));
    std::vector<maildir_entry> out;
    TANDEM_CHECK(c.scan_prefix(codec::be64(f.id), [&](const lmdb::entry& e) -> result<void> {
        if (e.key.size() != 12) return corrupt();
        auto r = open_value(e.value);
        if (!r) return corrupt();
        maildir_entry m;
        m.uid = codec::load_be32(e.key.substr(8));
        m.name = r->str();
        if (!r->done()) return corrupt();
        out.push_back(std::move(m));
        return {};
    }));
    return out;
}

result<void> journal::maildir_for_each_name(
    const lmdb::txn& t, const maildir_folder& f,
    const std::function<result<void>(std::string_view name, mail::uid uid)>& fn) const {
    TANDEM_TRY(c, t.open_cursor(db_.md_names));
    return c.scan_prefix(codec::be64(f.id), [&](const lmdb::entry& e) -> result<void> {
        TANDEM_TRY(u, decode_uid_value(e.value));
        return fn(e.key.substr(8), u);
    });
}

result<std::size_t> journal::maildir_count(const lmdb::txn& t, const maildir_folder& f) const {
    if (f.count) return *f.count;
    TANDEM_TRY(c, t.open_cursor(db_.md_uids));
    std::size_t n = 0;
    TANDEM_CHECK(c.scan_prefix(codec::be64(f.id), [&](const lmdb::entry&) { ++n; }));
    return n;
}

// ---- intents ----

result<std::uint64_t> journal::record_intent(lmdb::write_txn& t, const intent& i) {
    TANDEM_TRY(seq, next_counter(t, "next_intent"));
    std::uint64_t s = seq;
    TANDEM_CHECK(t.put(db_.intents, codec::be64(s), encode_intent(i)));
    return s;
}

result<std::vector<intent>> journal::intents(const lmdb::txn& t) const {
    TANDEM_TRY(c, t.open_cursor(db_.intents));
    std::vector<intent> out;
    TANDEM_CHECK(c.scan({}, {}, [&](const lmdb::entry& e) -> result<void> {
        TANDEM_TRY(i, decode_intent(e.key, e.value));
        out.push_back(std::move(i));
        return {};
    }));
    return out;
}

result<bool> journal::erase_intent(lmdb::write_txn& t, std::uint64_t seq) {
    return t.erase(db_.intents, codec::be64(seq));
}

result<void> journal::erase_all_intents(lmdb::write_txn& t) {
    return t.clear(db_.intents);
}

}  // namespace tandem::journal
