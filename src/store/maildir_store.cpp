// SPDX-License-Identifier: MIT
#include "tandem/store/maildir_store.hpp"

#include "tandem/journal/journal.hpp"
#include "tandem/mail/content_key.hpp"
#include "tandem/maildir/filename.hpp"
#include "tandem/maildir/keywords.hpp"
#include "tandem/maildir/watch.hpp"
#include "tandem/util/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace tandem::store {
namespace {

using lmdb_write_txn = journal::lmdb::write_txn;

// Bodies below this size travel in memory; larger ones as their file (store.hpp).
constexpr std::uint64_t memory_body_limit = std::uint64_t{1} << 20;

// The highest UIDVALIDITY this store ever gave out lives in a folder record of its own,
// under a store key that no real store id can produce (ids are paths or names without
// control characters; the journal's keys end a store id with NUL, so no prefix overlap).
// It is what keeps a folder that is removed and created again in the same second from
// getting its old UIDVALIDITY back (RFC 9051 2.3.1.1: a UIDVALIDITY is never reused).
constexpr std::string_view mark_suffix = "\x01uidvalidity";
constexpr std::string_view mark_folder = "high-water mark";

std::string root_id(const std::filesystem::path& root) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(root, ec);
    if (ec) return root.lexically_normal().string();
    auto canon = std::filesystem::weakly_canonical(abs, ec);
    return (ec ? abs.lexically_normal() : canon).string();
}

const char* subdir_name(maildir::subdir s) {
    return s == maildir::subdir::cur ? "cur" : "new";
}

error_code from_errno(int e) {
    if (e == ENOSPC || e == EDQUOT) return errc::storage_full;
    return error_code(e, boost::system::generic_category());
}

// Reads a file that stays its owner's (a non-temporary message_body).
maildir::body_reader fd_reader(int fd) {
    return [fd](std::span<char> b) -> result<std::size_t> {
        for (;;) {
            ssize_t n = ::read(fd, b.data(), b.size());
            if (n >= 0) return static_cast<std::size_t>(n);
            if (errno != EINTR) return from_errno(errno);
        }
    };
}

}  // namespace

struct maildir_store::impl {
    explicit impl(maildir_store_options&& o)
        : journal(o.journal),
          root(root_id(o.root)),
          id(o.store_id.empty() ? root.string() : std::move(o.store_id)),
          mark_key(id + std::string(mark_suffix)),
          logger(std::move(o.logger)),
          tree(root, o.layout, maildir::folder_options{o.separator, o.fsync, o.settle, o.write}) {}

    journal::journal& journal;
    std::filesystem::path root;
    std::string id;
    std::string mark_key;
    log::logger logger;
    maildir::tree tree;
    std::string last_error;
    // Folder objects live across calls: each caches where its files are, so that a fetch
    // after a scan does not list the directory again for every message.
    std::map<std::string, maildir::folder> folders;
    std::set<std::pair<std::string, std::string>> warned;  // (folder, keyword)
    // The flags the engine expects (store::expect_flags), per mailbox as the engine names
    // it and uid; the next operation on that mailbox takes them.
    std::map<std::string, std::unordered_map<mail::uid, mail::flag_set>> expected;

    // This run's own changes (maildir/watch.hpp), per folder directory: the token last
    // reported for it (the state the engine records), the folders written to, and those
    // whose watch did not start from that state.
    std::optional<maildir::change_watch> watch;
    bool watch_failed = false;
    std::map<std::filesystem::path, std::string> reported;
    std::set<std::filesystem::path> written;
    std::set<std::filesystem::path> unvouched;

    // Called before the first change to `f` in this run: watches it from the state last
    // reported, so that status_after_own_changes() can vouch for it. A folder this run
    // created must still be empty once watched.
    void begin_writes(maildir::folder& f, bool created = false) {
        if (!written.insert(f.path()).second) return;
        f.log_own_changes(true);
        (void)f.take_own_changes();
        if (!watch && !watch_failed) {
            auto w = maildir::change_watch::open();
            if (w)
                watch.emplace(std::move(*w));
            else
                watch_failed = true;
        }
        if (!watch || !watch->add(f.path())) {
            unvouched.insert(f.path());
            return;
        }
        if (created) {
            auto s = f.scan(maildir::scan_mode::names, false);
            if (!s || !s->entries.empty()) unvouched.insert(f.path());
            return;
        }
        auto now = f.change_token();
        auto it = reported.find(f.path());
        if (!now || it == reported.end() || it->second != *now || !now->ends_with(" s"))
            unvouched.insert(f.path());
    }
    // Called after each batch of changes to `f`.
    void end_writes(maildir::folder& f) {
        if (watch && written.count(f.path())) watch->own(f.path(), f.take_own_changes());
    }

    // Tells `f` where the messages `uids` (base names `bases`) probably are, from the flags
    // the engine expects, so that a folder nobody changed since the last sync is not listed
    // (200,000 names) to rename, remove or move a few of its files. A message without a
    // hint, or not where its hint says, is found by a listing as before.
    // `known`: the folder's keyword file where the caller has read it already.
    result<void> place(const std::string& mailbox, maildir::folder& f,
                       std::span<const mail::uid> uids, const std::vector<std::string>& bases,
                       const maildir::keyword_file* known = nullptr) {
        auto it = expected.find(mailbox);
        if (it == expected.end()) return {};
        auto hints = std::move(it->second);
        expected.erase(it);
        std::optional<maildir::keyword_file> read;
        if (!known) {
            auto k = keywords(f);
            if (!k) return k.error();
            read.emplace(std::move(*k));
            known = &*read;
        }
        const auto* kw = known;
        for (std::size_t i = 0; i < uids.size(); ++i) {
            auto h = hints.find(uids[i]);
            if (h == hints.end() || bases[i].empty()) continue;
            auto enc = kw->encode(h->second);
            f.expect(bases[i], enc.system, enc.keywords);
        }
        return {};
    }

    error_code fail(error_code ec, std::string text) {
        last_error = std::move(text);
        return ec;
    }
    error_code journal_fail(error_code ec, std::string_view what) {
        return fail(ec, std::string(what) + ": journal: " + ec.message());
    }
    // A failure of the maildir layer, with its words (path and OS error).
    error_code folder_fail(error_code ec, std::string_view what, const maildir::folder& f) {
        if (ec == errc::storage_full)
            return fail(ec, std::string(what) + ": the disk is full: no space left in " +
                                f.path().string() + " (" + f.last_error() + ")");
        return fail(ec, std::string(what) + ": " + f.last_error());
    }

    result<std::string> canonical(std::string_view name) {
        auto c = tree.canonical(name);
        if (!c) return fail(c.error(), tree.last_error());
        return c;
    }

    result<maildir::folder*> open_folder(const std::string& canon) {
        auto it = folders.find(canon);
        if (it != folders.end() && maildir::folder::exists(it->second.path())) return &it->second;
        auto f = tree.open(canon);
        if (!f) {
            if (it != folders.end()) folders.erase(it);
            return fail(f.error(), tree.last_error());
        }
        auto [pos, ignored] = folders.insert_or_assign(canon, std::move(*f));
        return &pos->second;
    }

    // Greater than every UIDVALIDITY given out before by this store, and than none if
    // the clock went back.
    result<mail::uidvalidity> fresh_uidvalidity(lmdb_write_txn& t) {
        auto mark = journal.open_maildir_folder(t, mark_key, mark_folder, 0);
        if (!mark) return mark.error();
        auto now = static_cast<std::uint64_t>(std::max<std::time_t>(std::time(nullptr), 1));
        std::uint64_t uv = std::max<std::uint64_t>(now, std::uint64_t{mark->uidvalidity} + 1);
        if (uv > std::numeric_limits<mail::uidvalidity>::max())
            return make_error_code(errc::invalid_argument);  // 2106, or 4 billion folders
        if (auto r = journal.reset_maildir_folder(t, *mark, static_cast<mail::uidvalidity>(uv)); !r)
            return r.error();
        return static_cast<mail::uidvalidity>(uv);
    }

    // The folder's record, made with a fresh UIDVALIDITY the first time the folder is seen.
    result<journal::maildir_folder> record(lmdb_write_txn& t, const std::string& canon) {
        auto found = journal.find_maildir_folder(t, id, canon);
        if (!found) return found.error();
        if (*found) return **found;
        auto uv = fresh_uidvalidity(t);
        if (!uv) return uv.error();
        return journal.open_maildir_folder(t, id, canon, *uv);
    }

    // Records of many folders: a read transaction, and a write one only for new folders.
    result<std::vector<journal::maildir_folder>> records(const std::vector<std::string>& names,
                                                         std::vector<std::uint32_t>& counts) {
        std::vector<journal::maildir_folder> out(names.size());
        counts.assign(names.size(), 0);
        std::vector<std::size_t> missing;
        {
            auto t = journal.begin_read();
            if (!t) return t.error();
            for (std::size_t i = 0; i < names.size(); ++i) {
                auto f = journal.find_maildir_folder(*t, id, names[i]);
                if (!f) return f.error();
                if (!*f) {
                    missing.push_back(i);
                    continue;
                }
                out[i] = **f;
                auto n = journal.maildir_count(*t, out[i]);
                if (!n) return n.error();
                counts[i] = static_cast<std::uint32_t>(*n);
            }
        }
        if (missing.empty()) return out;
        auto w = journal.write([&](lmdb_write_txn& t) -> result<void> {
            for (auto i : missing) {
                auto r = record(t, names[i]);
                if (!r) return r.error();
                out[i] = *r;
            }
            return {};
        });
        if (!w) return w.error();
        return out;
    }

    result<mailbox_status> status_of(maildir::folder& f, const journal::maildir_folder& rec,
                                     std::uint32_t messages) {
        auto token = f.change_token();
        if (!token) return folder_fail(token.error(), "status", f);
        reported[f.path()] = *token;
        mailbox_status s;
        s.uidvalidity = rec.uidvalidity;
        s.uidnext = rec.next_uid;
        s.messages = messages;
        s.scan_token = std::move(*token);
        return s;
    }

    // The base names of `uids` (empty where the journal has none), from one read txn that
    // ends before anything else happens.
    result<std::vector<std::string>> bases_of(const std::string& canon,
                                              std::span<const mail::uid> uids,
                                              std::optional<journal::maildir_folder>* rec_out) {
        std::vector<std::string> out(uids.size());
        auto t = journal.begin_read();
        if (!t) return journal_fail(t.error(), "read " + canon);
        auto rec = journal.find_maildir_folder(*t, id, canon);
        if (!rec) return journal_fail(rec.error(), "read " + canon);
        if (rec_out) *rec_out = *rec;
        if (!*rec) return out;
        for (std::size_t i = 0; i < uids.size(); ++i) {
            auto n = journal.maildir_name(*t, **rec, uids[i]);
            if (!n) return journal_fail(n.error(), "read " + canon);
            if (*n) out[i] = std::move(**n);
        }
        return out;
    }

    result<maildir::keyword_file> keywords(const maildir::folder& f) {
        auto k = maildir::keyword_file::load(f.path());
        if (!k) return fail(k.error(), "read keywords of " + f.path().string());
        return k;
    }

    // Gives letters to the keywords of `flags`; those that fit nowhere are reported once.
    result<void> assign_keywords(maildir::keyword_file& kw, const std::string& canon,
                                 const std::vector<std::string>& wanted) {
        if (wanted.empty()) return {};
        auto unfit = kw.assign(wanted);
        if (!unfit) return fail(unfit.error(), "keywords of " + canon + ": " + kw.last_error());
        for (const auto& k : *unfit) {
            if (!warned.emplace(canon, k).second) continue;
            logger.warning("keyword \"" + k + "\" does not fit in the file names of folder \"" +
                           canon + "\" (" + kw.folder().string() +
                           "): dovecot-keywords has no free letter or cannot hold it; "
                           "the files do not carry it");
        }
        return {};
    }
};

maildir_store::maildir_store(maildir_store_options options)
    : impl_(std::make_unique<impl>(std::move(options))) {}

maildir_store::~maildir_store() {
    if (impl_ && impl_->watch) impl_->watch->close_without_waiting();
}

std::string maildir_store::describe() const {
    return "maildir " + impl_->root.string();
}

const std::string& maildir_store::last_error() const {
    return impl_->last_error;
}

const std::string& maildir_store::store_id() const {
    return impl_->id;
}

result<std::vector<mailbox_entry>> maildir_store::list() {
    auto& d = *impl_;
    // A new run (watch mode keeps the store): what the last one wrote is not this one's.
    d.watch.reset();
    d.watch_failed = false;
    d.reported.clear();
    d.written.clear();
    d.unvouched.clear();
    // Whether this store synced folders under the root before (a mark in the journal).
    auto synced_before = [&]() -> result<bool> {
        auto t = d.journal.begin_read();
        if (!t)
            return result<bool>(boost::system::in_place_error,
                                d.journal_fail(t.error(), "list " + d.root.string()));
        auto mark = d.journal.find_maildir_folder(*t, d.mark_key, mark_folder);
        if (!mark)
            return result<bool>(boost::system::in_place_error,
                                d.journal_fail(mark.error(), "list " + d.root.string()));
        return result<bool>(mark->has_value());
    };
    // An unmounted disk looks like a missing or empty root: treating it as a tree whose
    // folders were all removed would let the other side lose them (remove = ...), so it is
    // an error of the whole store, and nothing is synced until the root is back.
    auto unmounted = [&](std::string_view what) -> error_code {
        d.last_error = "the Maildir root " + d.root.string() + std::string(what) +
                       ", but this store synced folders there before: is the file system "
                       "mounted? (delete the journal's state to start afresh)";
        // The mass-removal guard's code: the sync stops (exit 4) and touches nothing.
        return make_error_code(errc::guard_tripped);
    };
    std::error_code ec;
    if (!std::filesystem::is_directory(d.root, ec)) {
        auto known = synced_before();
        if (!known) return known.error();
        if (*known) return unmounted(" does not exist");
        if (auto r = d.tree.create_root(); !r) return d.fail(r.error(), d.tree.last_error());
        d.logger.info("created the Maildir root " + d.root.string());
    }
    auto listing = d.tree.list();
    if (!listing) return d.fail(listing.error(), d.tree.last_error());
    for (const auto& p : listing->skipped)
        if (d.warned.emplace(p.string(), std::string()).second)
            d.logger.warning("skipping the maildir " + p.string() +
                             ": its directory name does not map to a folder name");

    std::vector<std::uint32_t> counts;
    auto recs = d.records(listing->folders, counts);
    if (!recs) return d.journal_fail(recs.error(), "list " + d.root.string());
    std::vector<mailbox_entry> out;
    out.reserve(listing->folders.size());
    for (std::size_t i = 0; i < listing->folders.size(); ++i) {
        const auto& name = listing->folders[i];
        auto f = d.open_folder(name);
        if (!f) {
            if (f.error() == errc::not_found) continue;  // removed since the listing
            return f.error();
        }
        auto s = d.status_of(**f, (*recs)[i], counts[i]);
        if (!s) {
            if (!maildir::folder::exists((*f)->path())) continue;
            return s.error();
        }
        mailbox_entry e;
        e.name = name;
        e.status = std::move(*s);
        out.push_back(std::move(e));
    }
    if (out.empty()) {
        auto known = synced_before();
        if (!known) return known.error();
        if (*known) return unmounted(" holds no folder");
    }
    return out;
}

result<mailbox_status> maildir_store::status(const std::string& mailbox) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto f = d.open_folder(*canon);
    if (!f) return f.error();
    std::vector<std::uint32_t> counts;
    auto recs = d.records({*canon}, counts);
    if (!recs) return d.journal_fail(recs.error(), "status " + *canon);
    return d.status_of(**f, recs->front(), counts.front());
}

result<mailbox_changes> maildir_store::changes(const std::string& mailbox,
                                               const known_state& known) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto fo = d.open_folder(*canon);
    if (!fo) return fo.error();
    maildir::folder& f = **fo;
    // The folder's record, and how many names the journal maps for it: about as many as the
    // scan will find, so that its entries are allocated once instead of grown by doubling
    // (a hint only: a journal from before the count was kept gives none).
    std::optional<journal::maildir_folder> found;
    {
        auto t = d.journal.begin_read();
        if (!t) return d.journal_fail(t.error(), "scan " + *canon);
        auto r = d.journal.find_maildir_folder(*t, d.id, *canon);
        if (!r) return d.journal_fail(r.error(), "scan " + *canon);
        found = *r;
    }
    const std::size_t expected = found && found->count ? *found->count : 0;
    // Names only: a stat per file would cost more than the rest of the scan together; the
    // files that need their size or date are stat'ed below.
    auto scan = f.scan(maildir::scan_mode::names, false, expected);
    if (!scan) return d.folder_fail(scan.error(), "scan " + *canon, f);
    auto kw = d.keywords(f);
    if (!kw) return kw.error();

    // The scan's entries are found by base name (the listing's index), to meet the journal's
    // map (in its order) with one lookup each: a sort of 200,000 names cost more than the
    // rest of the listing.
    auto& entries = scan->entries;
    // Two files of one base name in cur/ (a client's link-then-unlink rename caught half-way)
    // are one message: the first one stands for it.
    std::vector<char> skip(entries.size(), 0);
    for (std::uint32_t i = 0; i < entries.size(); ++i)
        if (entries.find(entries[i].base()) != i) skip[i] = 1;
    std::vector<mail::uid> uids(entries.size(), 0);
    std::vector<char> fresh(entries.size(), 0);
    std::vector<std::string> gone;
    if (found) {
        auto t = d.journal.begin_read();
        if (!t) return d.journal_fail(t.error(), "scan " + *canon);
        auto w = d.journal.maildir_for_each_name(
            *t, *found, [&](std::string_view name, mail::uid u) -> result<void> {
                auto pos = entries.find(name);
                if (pos != maildir::entry_list::npos)
                    uids[pos] = u;
                else
                    gone.emplace_back(name);
                return {};
            });
        if (!w) return d.journal_fail(w.error(), "scan " + *canon);
    }
    // New names get their UIDs in name order, which is delivery order for the usual
    // unique names.
    std::vector<std::uint32_t> order;
    for (std::uint32_t i = 0; i < entries.size(); ++i)
        if (!skip[i] && uids[i] == 0) {
            fresh[i] = 1;
            order.push_back(i);
        }
    std::sort(order.begin(), order.end(), [&](std::uint32_t x, std::uint32_t y) {
        return entries[x].base() < entries[y].base();
    });
    const bool any_fresh = std::find(fresh.begin(), fresh.end(), 1) != fresh.end();
    journal::maildir_folder rec = found.value_or(journal::maildir_folder{});
    // Only a scan that found new or gone names writes: one transaction where a new base name
    // gets the next UID (in name order, which is delivery order for the usual unique names)
    // and a gone one is forgotten (its UID is never given out again).
    if (!found || any_fresh || !gone.empty()) {
        auto w = d.journal.write([&](lmdb_write_txn& t) -> result<void> {
            auto r = d.record(t, *canon);
            if (!r) return r.error();
            rec = *r;
            for (auto i : order) {
                if (!fresh[i]) continue;
                auto u = d.journal.maildir_assign(t, rec, entries[i].base());
                if (!u) return u.error();
                uids[i] = *u;
            }
            for (const auto& name : gone)
                if (auto g = d.journal.maildir_forget(t, rec, name); !g) return g.error();
            return {};
        });
        if (!w) return d.journal_fail(w.error(), "scan " + *canon);
    }
    const auto listed = static_cast<std::size_t>(std::count(skip.begin(), skip.end(), 0));
    order = {};
    gone = {};

    mailbox_changes out;
    out.status.uidvalidity = rec.uidvalidity;
    out.status.uidnext = rec.next_uid;
    out.status.messages = static_cast<std::uint32_t>(listed);
    out.status.scan_token = scan->token;
    d.reported[f.path()] = scan->token;
    out.uidvalidity_changed =
        known.status.uidvalidity != 0 && known.status.uidvalidity != rec.uidvalidity;
    // Content keys cost a read of each header: only for messages the engine has not seen
    // under these UIDs, unless it asks for all.
    // Every key after a UIDVALIDITY change or when asked; otherwise only files that got
    // their UID in this scan or that the records do not know: the others are paired.
    const bool all_keys = known.full || (known.status.uidvalidity != 0 &&
                                         known.status.uidvalidity != rec.uidvalidity);
    // The date (and a size the name does not give) of a message the engine may copy: one
    // that is new, unknown to its records, or any in a full listing. The others keep 0: an
    // unchanged message already paired is never copied in a run that does not list all.
    // A side without state yet (a folder the last run created and filled) is no exception:
    // its paired messages are in known.uids, and the others are stat'ed as unknown. (It
    // was, and the run after a first sync stat'ed every file: 5,000 stats, 40 ms.)
    const bool all_dates = all_keys || known.full;
    // With the records' flags at hand, a message that still has them is left out and the
    // report lists changes only (known_state::synced_flags).
    const bool changes_only =
        !all_dates && !known.synced_flags.empty() && known.synced_flags.size() == known.uids.size();
    out.complete = !changes_only;
    auto unchanged = [&](const maildir::entry& e, mail::uid u) {
        auto it = std::lower_bound(known.uids.begin(), known.uids.end(), u);
        if (it == known.uids.end() || *it != u) return false;
        const std::uint8_t synced =
            known.synced_flags[static_cast<std::size_t>(it - known.uids.begin())];
        if (synced == known_state::synced_unknown || e.keyword_bits() != 0) return false;
        // A system letter may stand for a keyword too (P is $Forwarded).
        const auto flags = kw->decode(e.system(), {});
        return flags.keywords().empty() && flags.system_bits() == synced;
    };
    // An unchanged message whose file is where the engine's hint will say (expect_flags
    // before any operation names it: cur/, the record's flags in order) need not be
    // remembered. Every folder's locations stay until the run ends, so at c5000 (10
    // folders) S7 held 5,000 entries, about 600 KB, where 50 will do. A name the hint does
    // not give is kept; a hint that misses costs a listing, never a wrong file.
    std::size_t to_forget = 0;
    std::vector<char> forget(entries.size(), 0);
    std::array<std::string, 256> hint_suffix;  // by system flags: ":2,FS", made when needed
    auto where_the_hint_says = [&](const maildir::entry& e) {
        if (e.subdir != maildir::subdir::cur) return false;
        const auto flags = kw->decode(e.system(), {});
        auto& suffix = hint_suffix[flags.system_bits()];
        if (suffix.empty()) {
            const auto enc = kw->encode(flags);
            suffix = maildir::cur_name("", enc.system, enc.keywords, f.options().separator);
        }
        const std::string_view name = e.file_name();
        return name.size() == e.base().size() + suffix.size() && name.ends_with(suffix);
    };
    std::vector<mail::uid> present;  // the listed uids, also those left out
    present.reserve(listed);
    if (!changes_only) out.messages.reserve(listed);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        auto& e = entries[i];
        if (skip[i]) continue;
        if (changes_only && !fresh[i] && unchanged(e, uids[i])) {
            present.push_back(uids[i]);
            if (where_the_hint_says(e)) {
                forget[i] = 1;
                ++to_forget;
            }
            continue;
        }
        // Not in the records: an earlier scan may have given the file its UID in a run
        // that was killed before it recorded anything.
        const bool unrecorded = !std::binary_search(known.uids.begin(), known.uids.end(), uids[i]);
        if (all_dates || fresh[i] || !maildir::size_hint(e.base()) || unrecorded) {
            auto there = f.stat(e);
            if (!there) return d.folder_fail(there.error(), "scan " + *canon, f);
            if (!*there) continue;  // gone since the listing: the next scan forgets it
        }
        mail::message_info m;
        m.uid = uids[i];
        m.flags = kw->decode(e.system(), e.keywords());
        m.size = e.size;
        m.internal_date = e.mtime;
        m.identity = e.base();
        // A file unknown to the records needs its key even when an earlier scan gave it its
        // UID: a message moved here by a mail client is found again by its key.
        if ((all_keys || fresh[i] || unrecorded) && known.want_keys) {
            auto id = f.identify(e);
            if (!id) return d.folder_fail(id.error(), "read " + *canon, f);
            // A file gone since the scan has no key; the next scan sees it gone.
            // The same key the IMAP store makes, so that the two sides pair (the date is
            // copied to the other side exactly).
            if (*id) m.content_key = mail::content_key(**id, e.size, e.mtime);
        }
        present.push_back(m.uid);
        out.messages.push_back(std::move(m));
    }
    // The folder keeps the locations for the calls to come (fetch, set_flags), taken from
    // the entries now that they are no longer needed here.
    if (to_forget == 0) {
        f.remember(std::move(entries));
    } else {
        maildir::entry_list kept;
        kept.reserve(entries.size() - to_forget);
        for (std::size_t i = 0; i < entries.size(); ++i)
            if (!forget[i]) kept.push_back(std::move(entries[i]));
        entries.clear();
        f.remember(std::move(kept));
    }
    std::sort(out.messages.begin(), out.messages.end(),
              [](const auto& a, const auto& b) { return a.uid < b.uid; });
    std::sort(present.begin(), present.end());
    std::set_difference(known.uids.begin(), known.uids.end(), present.begin(), present.end(),
                        std::back_inserter(out.vanished));
    return out;
}

result<void> maildir_store::fetch(
    const std::string& mailbox, std::span<const mail::uid> uids,
    const std::function<result<void>(mail::uid, message_body&&)>& deliver) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto fo = d.open_folder(*canon);
    if (!fo) return fo.error();
    maildir::folder& f = **fo;
    auto bases = d.bases_of(*canon, uids, nullptr);
    if (!bases) return bases.error();
    for (std::size_t i = 0; i < uids.size(); ++i) {
        const auto& base = (*bases)[i];
        if (base.empty()) continue;
        auto file = f.open(base);
        if (!file) return d.folder_fail(file.error(), "fetch from " + *canon, f);
        if (!*file) continue;  // expunged by a mail client since the scan
        message_body body;
        body.size = (*file)->size();
        if (body.size < memory_body_limit) {
            auto data = (*file)->read_all();
            if (!data)
                return d.fail(data.error(), "fetch from " + *canon + ": read " +
                                                (*file)->file_name() + ": " +
                                                data.error().message());
            body.data = std::move(*data);
            body.size = body.data.size();
        } else {
            // The descriptor stays open while the receiver reads, but the receiver wants a
            // path: the current one, found again if a mail client renamed the file.
            auto e = f.find(base);
            if (!e) return d.folder_fail(e.error(), "fetch from " + *canon, f);
            if (!*e) continue;
            body.file = f.path() / subdir_name((*e)->subdir) / (*e)->file_name();
        }
        if (auto r = deliver(uids[i], std::move(body)); !r) {
            d.last_error = "fetch from " + *canon + ": uid " + std::to_string(uids[i]) + ": " +
                           r.error().message();
            return r.error();
        }
    }
    return {};
}

// One delivery batch that grows as messages come.
class maildir_store::delivery final : public appender {
  public:
    delivery(impl& d, std::string canon, maildir::folder& f, maildir::keyword_file kw)
        : d_(d), canon_(std::move(canon)), folder_(f), kw_(std::move(kw)), batch_(f) {}
    ~delivery() override {
        if (writing_) d_.end_writes(folder_);  // the batch removes its tmp/ files
        if (!finished_) remove_flushed();      // dropped: the call fails as a whole
    }

    result<void> add(outgoing_message&& m) override {
        struct drop_spool {  // the body's temporary file is ours from here on
            const message_body& b;
            ~drop_spool() { discard_spool(b); }
        } on_exit{m.body};
        if (auto r = d_.assign_keywords(kw_, canon_, m.flags.keywords()); !r) return r.error();
        if (!writing_) {
            d_.begin_writes(folder_);
            writing_ = true;
        }
        const std::uint64_t size = m.body.file.empty() ? m.body.data.size() : m.body.size;
        auto enc = kw_.encode(m.flags);
        maildir::new_message nm{enc.system, enc.keywords, m.internal_date};
        result<void> r;
        if (m.body.file.empty()) {
            r = batch_.add(m.body.data, nm);
        } else if (m.body.temporary) {
            // A rename into tmp/ on the same file system, else a copy (the spool file goes).
            r = batch_.add_file(m.body.file, nm);
        } else {
            fs::unique_fd in(::open(m.body.file.c_str(), O_RDONLY | O_CLOEXEC));
            if (!in) {
                int e = errno;
                return d_.fail(from_errno(e),
                               what() + ": open " + m.body.file.string() + ": " + std::strerror(e));
            }
            r = batch_.add(fd_reader(in.get()), nm);
        }
        if (!r) return d_.folder_fail(r.error(), what(), folder_);
        pending_bytes_ += size;
        if (pending_bytes_ >= flush_bytes) return flush();
        return {};
    }

    result<std::vector<mail::uid>> finish() override {
        if (auto r = flush(); !r) return r.error();
        finished_ = true;
        return std::move(uids_);
    }

  private:
    // The engine's batch may be large (5,000 messages whose sizes a first sync does not
    // list): every `flush_bytes` the files written so far go to cur/ and get their uids, so
    // that a kill leaves at most that much in tmp/ to fetch again (what reached cur/ without
    // the engine's records is paired by content key on the next run, as after a kill between
    // finish() and the engine's commit).
    static constexpr std::uint64_t flush_bytes = 32u << 20;

    result<void> flush() {
        pending_bytes_ = 0;
        if (!writing_) return {};
        auto done = batch_.commit();
        if (!done) {
            auto ec = d_.folder_fail(done.error(), what(), folder_);
            // The call fails as a whole: files that reached cur/ would come back as new
            // messages in the next scan and be copied a second time.
            for (const auto& b : batch_.committed()) (void)folder_.remove(b);
            remove_flushed();
            return ec;
        }
        d_.end_writes(folder_);
        writing_ = false;
        const auto& bases = *done;
        std::vector<mail::uid> out(bases.size());
        auto w = d_.journal.write([&](lmdb_write_txn& t) -> result<void> {
            auto rec = d_.record(t, canon_);
            if (!rec) return rec.error();
            for (std::size_t i = 0; i < bases.size(); ++i) {
                auto u = d_.journal.maildir_assign(t, *rec, bases[i]);
                if (!u) return u.error();
                out[i] = *u;
            }
            return {};
        });
        if (!w) {
            auto ec = d_.journal_fail(w.error(), what());
            for (const auto& b : bases) (void)folder_.remove(b);
            remove_flushed();
            return ec;
        }
        flushed_.insert(flushed_.end(), bases.begin(), bases.end());
        uids_.insert(uids_.end(), out.begin(), out.end());
        return {};
    }

    // Files of earlier flushes, when the call as a whole fails or is dropped: their uids stay
    // in the journal, and the next scan finds them gone (no record pairs them with anything).
    void remove_flushed() {
        for (const auto& b : flushed_) (void)folder_.remove(b);
        if (!flushed_.empty() || writing_) (void)folder_.sync();
        flushed_.clear();
        uids_.clear();
    }

    std::string what() const { return "append to " + canon_; }

    impl& d_;
    std::string canon_;
    maildir::folder& folder_;
    maildir::keyword_file kw_;
    maildir::delivery_batch batch_;
    bool writing_ = false;
    bool finished_ = false;
    std::uint64_t pending_bytes_ = 0;
    std::vector<std::string> flushed_;  // bases that reached cur/ in earlier flushes
    std::vector<mail::uid> uids_;       // theirs, in the order of add()
};

result<std::unique_ptr<appender>> maildir_store::begin_append(const std::string& mailbox) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto fo = d.open_folder(*canon);
    if (!fo) return fo.error();
    auto kw = d.keywords(**fo);
    if (!kw) return kw.error();
    return std::unique_ptr<appender>(
        std::make_unique<delivery>(d, std::move(*canon), **fo, std::move(*kw)));
}

result<std::vector<mail::uid>> maildir_store::append(const std::string& mailbox,
                                                     std::vector<outgoing_message>&& messages) {
    // The temporary bodies are ours from here on: whatever happens, none is left behind.
    std::size_t taken = 0;
    struct drop_rest {
        std::vector<outgoing_message>& m;
        std::size_t& taken;
        ~drop_rest() {
            for (std::size_t i = taken; i < m.size(); ++i) discard_spool(m[i].body);
        }
    } on_exit{messages, taken};
    auto app = begin_append(mailbox);
    if (!app) return app.error();
    for (auto& m : messages) {
        ++taken;
        if (auto r = (*app)->add(std::move(m)); !r) return r.error();
    }
    return (*app)->finish();
}

result<void> maildir_store::set_flags(const std::string& mailbox,
                                      std::span<const flag_change> changes) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto fo = d.open_folder(*canon);
    if (!fo) return fo.error();
    maildir::folder& f = **fo;
    std::vector<mail::uid> uids;
    uids.reserve(changes.size());
    for (const auto& c : changes) uids.push_back(c.uid);
    auto bases = d.bases_of(*canon, uids, nullptr);
    if (!bases) return bases.error();
    auto kw = d.keywords(f);
    if (!kw) return kw.error();
    if (auto r = d.place(mailbox, f, uids, *bases, &*kw); !r) return r.error();
    std::vector<std::string> wanted;
    for (const auto& c : changes)
        for (const auto& k : c.add.keywords())
            if (std::find(wanted.begin(), wanted.end(), k) == wanted.end()) wanted.push_back(k);
    if (auto r = d.assign_keywords(*kw, *canon, wanted); !r) return r.error();

    const std::string what = "set flags in " + *canon;
    d.begin_writes(f);
    for (std::size_t i = 0; i < changes.size(); ++i) {
        const auto& base = (*bases)[i];
        if (base.empty()) continue;
        // The file's flags as they are now: a mail client may have changed others since the
        // scan, and only the flags of this change are ours to set.
        auto e = f.find(base);
        if (!e) return d.folder_fail(e.error(), what, f);
        if (!*e) continue;
        auto now = kw->decode((*e)->system(), (*e)->keywords());
        auto next = now.minus(changes[i].remove).united(changes[i].add);
        auto enc = kw->encode(next);
        // Letters without a line in dovecot-keywords mean something to someone: keep them.
        std::string letters = enc.keywords;
        for (char c : (*e)->keywords())
            if (!kw->keyword_of(c)) letters += c;
        auto o = f.set_flags(base, enc.system, maildir::sorted_letters(letters));
        if (!o) return d.folder_fail(o.error(), what, f);
    }
    d.end_writes(f);
    if (auto r = f.sync(); !r) return d.folder_fail(r.error(), what, f);
    return {};
}

result<std::vector<mail::uid>> maildir_store::move(const std::string& from,
                                                   std::span<const mail::uid> uids,
                                                   const std::string& to) {
    auto& d = *impl_;
    auto src_name = d.canonical(from);
    if (!src_name) return src_name.error();
    auto dst_name = d.canonical(to);
    if (!dst_name) return dst_name.error();
    auto src_f = d.open_folder(*src_name);
    if (!src_f) return src_f.error();
    auto dst_f = d.open_folder(*dst_name);
    if (!dst_f) return dst_f.error();
    maildir::folder& src = **src_f;
    maildir::folder& dst = **dst_f;
    std::optional<journal::maildir_folder> src_rec;
    auto bases = d.bases_of(*src_name, uids, &src_rec);
    if (!bases) return bases.error();
    std::vector<mail::uid> out(uids.size(), 0);
    if (!src_rec) return out;

    const std::string what = "move from " + *src_name + " to " + *dst_name;
    auto src_kw = d.keywords(src);
    if (!src_kw) return src_kw.error();
    if (auto r = d.place(from, src, uids, *bases, &*src_kw); !r) return r.error();
    auto dst_kw = d.keywords(dst);
    if (!dst_kw) return dst_kw.error();
    // Keyword letters are per folder: the destination's may differ, so first give every
    // keyword that goes along a letter there.
    std::vector<std::optional<mail::flag_set>> flags(uids.size());
    std::vector<std::string> wanted;
    for (std::size_t i = 0; i < uids.size(); ++i) {
        if ((*bases)[i].empty()) continue;
        auto e = src.find((*bases)[i]);
        if (!e) return d.folder_fail(e.error(), what, src);
        if (!*e) continue;
        flags[i] = src_kw->decode((*e)->system(), (*e)->keywords());
        for (const auto& k : flags[i]->keywords())
            if (std::find(wanted.begin(), wanted.end(), k) == wanted.end()) wanted.push_back(k);
    }
    if (auto r = d.assign_keywords(*dst_kw, *dst_name, wanted); !r) return r.error();

    std::vector<std::size_t> moved;
    error_code failed;
    d.begin_writes(src);
    d.begin_writes(dst);
    for (std::size_t i = 0; i < uids.size() && !failed; ++i) {
        if (!flags[i]) continue;
        auto letters = dst_kw->encode(*flags[i]).keywords;
        auto o = src.move_to((*bases)[i], dst, std::nullopt, std::string_view(letters));
        if (!o) {
            failed = d.folder_fail(o.error(), what, src);
            break;
        }
        if (*o == maildir::outcome::done) moved.push_back(i);
    }
    d.end_writes(src);
    d.end_writes(dst);
    // Renames are durable once both directories are; only then does the journal say so.
    if (auto r = src.sync(); !r) return d.folder_fail(r.error(), what, src);
    if (auto r = dst.sync(); !r) return d.folder_fail(r.error(), what, dst);
    // What moved is recorded even if a later one failed: the files are where they are.
    auto w = d.journal.write([&](lmdb_write_txn& t) -> result<void> {
        auto dst_rec = d.record(t, *dst_name);
        if (!dst_rec) return dst_rec.error();
        for (auto i : moved) {
            if (auto g = d.journal.maildir_forget(t, *src_rec, (*bases)[i]); !g) return g.error();
            auto u = d.journal.maildir_assign(t, *dst_rec, (*bases)[i]);
            if (!u) return u.error();
            out[i] = *u;
        }
        return {};
    });
    if (!w) return d.journal_fail(w.error(), what);
    if (failed) return failed;
    return out;
}

result<void> maildir_store::expunge(const std::string& mailbox, std::span<const mail::uid> uids) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto fo = d.open_folder(*canon);
    if (!fo) return fo.error();
    maildir::folder& f = **fo;
    std::optional<journal::maildir_folder> rec;
    auto bases = d.bases_of(*canon, uids, &rec);
    if (!bases) return bases.error();
    if (!rec) return {};
    if (auto r = d.place(mailbox, f, uids, *bases); !r) return r.error();
    const std::string what = "expunge from " + *canon;
    std::vector<std::size_t> removed;
    error_code failed;
    d.begin_writes(f);
    for (std::size_t i = 0; i < uids.size(); ++i) {
        if ((*bases)[i].empty()) continue;
        auto o = f.remove((*bases)[i]);
        if (!o) {
            failed = d.folder_fail(o.error(), what, f);
            break;
        }
        removed.push_back(i);  // done or already gone: either way the UID is void
    }
    d.end_writes(f);
    if (auto r = f.sync(); !r) return d.folder_fail(r.error(), what, f);
    auto w = d.journal.write([&](lmdb_write_txn& t) -> result<void> {
        for (auto i : removed)
            if (auto g = d.journal.maildir_forget(t, *rec, (*bases)[i]); !g) return g.error();
        return {};
    });
    if (!w) return d.journal_fail(w.error(), what);
    if (failed) return failed;
    return {};
}

result<void> maildir_store::create(const std::string& mailbox) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto path = d.tree.path_of(*canon);
    if (!path) return d.fail(path.error(), d.tree.last_error());
    const bool existed = maildir::folder::exists(*path);
    auto f = d.tree.create(*canon);
    if (!f) return d.fail(f.error(), "create " + *canon + ": " + d.tree.last_error());
    d.folders.erase(*canon);
    if (existed) return {};
    // A new folder: a record left from an earlier folder of this name (removed by a mail
    // client) must not lend it its UIDs.
    auto w = d.journal.write([&](lmdb_write_txn& t) -> result<void> {
        if (auto e = d.journal.erase_maildir_folder(t, d.id, *canon); !e) return e.error();
        auto r = d.record(t, *canon);
        if (!r) return r.error();
        return {};
    });
    if (!w) return d.journal_fail(w.error(), "create " + *canon);
    // Watched from its first moment, a folder this run fills can be vouched for.
    if (auto fo = d.open_folder(*canon)) d.begin_writes(**fo, true);
    return {};
}

result<std::optional<mailbox_status>> maildir_store::status_after_own_changes(
    const std::string& mailbox) {
    auto& d = *impl_;
    const auto none = std::optional<mailbox_status>();
    auto canon = d.canonical(mailbox);
    if (!canon) return none;
    auto fo = d.open_folder(*canon);
    if (!fo) return none;
    maildir::folder& f = **fo;
    if (!d.watch || !d.written.count(f.path()) || d.unvouched.count(f.path())) return none;
    // The token must be settled (a change in the same clock tick as the last write would
    // not move it): this run's last write was just now, so wait out the tick, briefly.
    auto settled = f.settled_change_token(std::chrono::milliseconds(40));
    if (!settled || !settled->ends_with(" s")) return none;
    std::optional<std::string> token = std::move(*settled);
    // Events up to now, read after the token was taken: a change by anyone else, before or
    // during this run's writes, is among them.
    if (!token || !d.watch->clean(f.path())) return none;
    auto t = d.journal.begin_read();
    if (!t) return d.journal_fail(t.error(), "status " + *canon);
    auto rec = d.journal.find_maildir_folder(*t, d.id, *canon);
    if (!rec) return d.journal_fail(rec.error(), "status " + *canon);
    if (!*rec) return none;
    auto n = d.journal.maildir_count(*t, **rec);
    if (!n) return d.journal_fail(n.error(), "status " + *canon);
    mailbox_status s;
    s.uidvalidity = (*rec)->uidvalidity;
    s.uidnext = (*rec)->next_uid;
    s.messages = static_cast<std::uint32_t>(*n);
    s.scan_token = std::move(*token);
    return std::optional<mailbox_status>(std::move(s));
}

result<void> maildir_store::remove(const std::string& mailbox) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return canon.error();
    auto fo = d.open_folder(*canon);
    if (!fo) return fo.error();
    maildir::folder& f = **fo;
    const std::string what = "remove " + *canon;
    auto scan = f.scan(maildir::scan_mode::names);
    if (!scan) return d.folder_fail(scan.error(), what, f);
    std::size_t unknown = 0;
    std::string example;
    {
        auto t = d.journal.begin_read();
        if (!t) return d.journal_fail(t.error(), what);
        auto rec = d.journal.find_maildir_folder(*t, d.id, *canon);
        if (!rec) return d.journal_fail(rec.error(), what);
        for (const auto& e : scan->entries) {
            std::optional<mail::uid> u;
            if (*rec) {
                auto r = d.journal.maildir_uid(*t, **rec, e.base());
                if (!r) return d.journal_fail(r.error(), what);
                u = *r;
            }
            if (u) continue;
            if (unknown++ == 0) example = e.file_name();
        }
    }
    if (unknown > 0)
        return d.fail(error_code(static_cast<int>(std::errc::directory_not_empty),
                                 boost::system::generic_category()),
                      what + ": " + f.path().string() + " holds " + std::to_string(unknown) +
                          " message(s) that were never synced (e.g. " + example +
                          "); not removing it");
    if (auto r = d.tree.remove(*canon, true); !r)
        return d.fail(r.error(), what + ": " + d.tree.last_error());
    d.folders.erase(*canon);
    auto w = d.journal.write([&](lmdb_write_txn& t) -> result<void> {
        auto e = d.journal.erase_maildir_folder(t, d.id, *canon);
        if (!e) return e.error();
        return {};
    });
    if (!w) return d.journal_fail(w.error(), what);
    return {};
}

const maildir::folder* maildir_store::folder_of(const std::string& mailbox) {
    auto canon = impl_->canonical(mailbox);
    if (!canon) return nullptr;
    auto it = impl_->folders.find(*canon);
    return it == impl_->folders.end() ? nullptr : &it->second;
}

void maildir_store::expect_flags(const std::string& mailbox, mail::uid uid,
                                 const mail::flag_set& flags) {
    impl_->expected[mailbox][uid] = flags;
}

bool maildir_store::keeps_keyword(const std::string& mailbox, std::string_view keyword) {
    auto& d = *impl_;
    auto canon = d.canonical(mailbox);
    if (!canon) return true;
    auto f = d.open_folder(*canon);
    if (!f) return true;
    auto kw = d.keywords(**f);
    if (!kw) return true;  // unknown: treat an absence as a real change
    return kw->holds(keyword);
}

}  // namespace tandem::store
