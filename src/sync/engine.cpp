// SPDX-License-Identifier: MIT
#include "tandem/sync/engine.hpp"

#include "tandem/mail/content_key.hpp"
#include "tandem/store/shared_store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace tandem::sync {
namespace {

// What the header of a message body in transit says of it (identify_header reads up to the
// blank line that ends the header; of a spooled body, at most its file's first 1 MiB is
// read, for a header without an end). A spool file that cannot be read counts as a message
// without a header.
mail::header_identity identify_body(const store::message_body& body) {
    if (body.file.empty()) return mail::identify_header(body.data);
    auto head = mail::read_header(body.file);
    return mail::identify_header(head ? std::string_view(*head) : std::string_view());
}

using mail::both_sides;
using mail::opposite;

// Copies go in batches: one intent, one UID FETCH, one delivery commit (grouped fsyncs) and one
// journal commit per batch. The bodies stream through a store::appender and are not held for the
// batch; the bound keeps the work that a kill can leave undone small (the next run pairs what
// landed by content key). Each batch costs a round trip, a pause of the server while the delivery
// commits, and the server's own cost of a command (in a 200,000-message folder the machine's busy
// CPU fell by ~3 s with 360 fewer FETCHes): a first sync of 200,000 small messages took 16-22 s in
// batches of 500 messages or 8 MB and 14.4-14.6 s in batches of 5000 or 32 MB; c5000 2.3 -> 2.1 s,
// RSS 11.7 -> 12.5 MB.
constexpr std::size_t copy_batch_messages = 5000;
constexpr std::uint64_t copy_batch_bytes = 32u << 20;

pair_record from_journal(const journal::pair_record& r) {
    pair_record out;
    out.uid = r.uid;
    out.flags = r.flags;
    out.identity = r.identity;
    out.content_key = r.content_key;
    out.size = r.size;
    return out;
}

journal::pair_record to_journal(const pair_record& r) {
    journal::pair_record out;
    out.uid = r.uid;
    out.flags = r.flags;
    out.identity = r.identity;
    out.content_key = r.content_key;
    out.size = r.size;
    return out;
}

journal::side_state to_side_state(const std::string& name, const store::mailbox_status& s) {
    journal::side_state out;
    out.name = name;
    out.uidvalidity = s.uidvalidity;
    out.uidnext = s.uidnext;
    out.highestmodseq = s.highestmodseq;
    out.messages = s.messages;
    out.scan_token = s.scan_token;
    return out;
}

bool unchanged_since(const store::mailbox_status& now, const journal::side_state& then) {
    return now.tracks_flag_changes && then.uidvalidity != 0 &&
           now.uidvalidity == then.uidvalidity && now.uidnext == then.uidnext &&
           now.highestmodseq == then.highestmodseq && now.messages == then.messages &&
           now.scan_token == then.scan_token;
}

// A server's words without what differs from one answer to the next: Dovecot ends its
// tagged answers with the time it took, "NO Quota exceeded (0.001 + 0.000 secs).".
std::string_view steady_words(std::string_view text) {
    auto open = text.rfind(" (");
    if (open == std::string_view::npos) return text;
    auto tail = text.substr(open + 2);
    if (tail.ends_with('.')) tail.remove_suffix(1);
    if (!tail.ends_with(" secs)")) return text;
    tail.remove_suffix(6);
    if (tail.find_first_not_of("0123456789.+ ") != std::string_view::npos) return text;
    return text.substr(0, open);
}

std::string side_label(side s) {
    return std::string(mail::name(s));
}

// One mailbox pair through the run.
struct mailbox_work {
    std::string name;
    per_side<std::optional<store::mailbox_entry>> entry;
    std::optional<journal::pair_state> state;
    per_side<std::optional<store::mailbox_status>> status;  // as found now
    per_side<bool> collected{false, false};
    // What the planner sees: the records that matter to this run and both sides' reports,
    // each listing in uid order with each uid once. It outlives the plan: the executor
    // reads the listed messages' dates from it.
    mailbox_input input;
    // Set by the mailbox's lane, or by another lane whose journal commit held its writes.
    std::atomic<bool> failed{false};
    bool guarded = false;
    bool kept_untouched = false;  // the planner's mailbox_gone: its state is not recorded
    // A server refused some message (a tagged NO to its APPEND): the pair ends failed, but
    // unlike `failed` the run goes on with the mailbox's other messages and actions.
    bool refused = false;
    // The highest uid that this run's copies and moves gave a side: with the UIDNEXT found
    // before the run, what tells whether a refused APPEND left nothing behind.
    per_side<mail::uid> made_max{0, 0};
    // Copies to that side stopped after refusals of everything (see do_copy).
    per_side<bool> gave_up{false, false};
    // Intents left by an earlier run that stopped while changing this mailbox (crash,
    // kill, lost connection): it is listed in full on both sides and re-planned, which
    // pairs copies that landed by content key; the intents go once it synced.
    std::vector<std::uint64_t> leftover_intents;
    // The sides those intents were about to change.
    per_side<bool> leftover_writes{false, false};
    mailbox_report* report = nullptr;
    // The pair of stores that collects and changes this mailbox (run::lanes_).
    std::size_t lane = 0;
};

class run {
  public:
    run(journal::journal& j, const channel_job& job, store::store& a, store::store& b,
        const log::logger& log, const progress_fn& on_progress)
        : journal_(j), job_(job), lanes_{{&a, &b}}, log_(log), on_progress_(on_progress) {}
    // The lanes' own connections end together: every LOGOUT goes out before any answer is
    // waited for (the channel's stores are the caller's).
    ~run() {
        for (auto& lane : lane_stores_)
            for (side s : both_sides)
                if (lane[s]) lane[s]->close_ahead();
    }
    run(const run&) = delete;
    run& operator=(const run&) = delete;

    channel_report go();

  private:
    // The channel's own stores (the listing), and those of the lane that syncs `w`.
    store::store& st(side s) { return *lanes_[0][s]; }
    store::store& st(const mailbox_work& w, side s) { return *lanes_[w.lane][s]; }

    bool list_mailboxes();
    std::uint64_t work_estimate(const mailbox_work& w) const;
    bool far_link() const;
    void collect_all();
    bool open_lane(std::size_t lane, const per_side<store::store*>& channel,
                   const per_side<store::store::opener>& open);
    void in_lanes(const std::function<void(std::size_t)>& f);
    void execute_range(const plan& p, std::size_t begin, std::size_t end, bool created = false);
    void set_error(mailbox_work& w, const std::string& text);
    void report_progress(const progress& p);
    bool wanted(const std::string& name) const;
    void wait_for_late_writes(const mailbox_work& w);
    // `alone`: the only mailbox to collect, on one connection; the quiet side's store may
    // then select it while the changed side lists (with more, the next one's SELECT would
    // undo it).
    void collect(mailbox_work& w, bool alone = false);
    result<void> read_records(mailbox_work& w, bool everything,
                              const per_side<std::optional<std::size_t>>& counted);
    void execute(const plan& p);
    void commit_states();

    // Journal writes wait in `pending_` until a commit is due (see commit_pending).
    using journal_write = std::function<result<void>(journal::lmdb::write_txn&)>;
    void defer(mailbox_work& w, journal_write f);
    bool commit_pending(mailbox_work* w = nullptr, const journal_write& also = {});
    template <class Action>
    void defer_record_changes(mailbox_work& w, const std::vector<const Action*>& batch);
    std::optional<std::uint64_t> commit_intent(mailbox_work& w, journal::intent i);

    void fail(mailbox_work& w, std::string_view what, side s, error_code ec);
    void hold_for_move(mailbox_work& w, const move_message& m, const mailbox_work& failed);
    mailbox_work* work_for(const std::string& mailbox);
    result<std::uint64_t> pair_id(journal::lmdb::write_txn& t, const std::string& mailbox);
    result<void> apply_record_change(journal::lmdb::write_txn& t, const std::string& mailbox,
                                     const std::optional<pair_record>& old_record,
                                     const std::optional<pair_record>& new_record);

    void do_create(const create_mailbox& a);
    void do_remove(const remove_mailbox& a);
    void do_update_records(const std::vector<const update_record*>& batch);
    void do_set_flags(const std::vector<const set_flags*>& batch);
    void do_expunge(const std::vector<const expunge_message*>& batch);
    result<void> read_synced_flags(const journal::lmdb::txn& t, std::uint64_t pair, side s,
                                   std::vector<mail::uid>& uids, std::vector<std::uint8_t>& flags);
    void do_copy(const std::vector<const copy_message*>& batch);
    enum class append_outcome { done, refused, failed };
    append_outcome copy_range(mailbox_work& w, const std::vector<const copy_message*>& batch,
                              std::size_t begin, std::size_t end, std::uint64_t intent_seq,
                              bool erase_intent, std::span<const mail::uid> fetch_next = {});
    bool nothing_landed(mailbox_work& w, side on);
    void refuse(mailbox_work& w, const copy_message& m);
    void do_move(const std::vector<const move_message*>& batch);

    journal::journal& journal_;
    const channel_job& job_;
    // Pairs of stores on which mailboxes sync at once (job_.connections): the channel's own
    // first, then those collect_all() opened (null where a login failed). A store without
    // connections to add (a Maildir) is one store behind a shared_store in each lane.
    std::vector<per_side<store::store*>> lanes_;
    per_side<std::mutex> turns_;                                        // of a side's shared_stores
    std::vector<per_side<std::unique_ptr<store::store>>> lane_stores_;  // by lane
    // Guards what lanes share: pending_, the reports' errors, the progress callback.
    std::mutex mutex_;
    // The first mailbox whose listing failed in this run (empty: none). See do_expunge.
    std::string unlisted_;
    const log::logger& log_;
    const progress_fn& on_progress_;
    channel_report report_;
    std::map<std::string, mailbox_work> work_;
    std::map<std::string, std::uint64_t> pair_ids_;
    std::vector<std::pair<mailbox_work*, journal_write>> pending_;
    const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

bool run::wanted(const std::string& name) const {
    if (!job_.selects(name)) return false;
    if (job_.only.empty()) return true;
    return std::find(job_.only.begin(), job_.only.end(), name) != job_.only.end();
}

bool run::list_mailboxes() {
    auto unreadable = [&](error_code ec) {
        report_.failed = true;
        report_.failure = ec;
        report_.error = "reading the journal failed: " + ec.message();
        return false;
    };
    auto t = journal_.begin_read();
    if (!t) return unreadable(t.error());
    auto pairs = journal_.list_pairs(*t, job_.name);
    if (!pairs) return unreadable(pairs.error());
    per_side<std::vector<store::known_mailbox>> known;
    for (const auto& p : *pairs)
        if (wanted(p.mailbox))
            for (side s : both_sides)
                if (const auto& k = p.state.sides[s]; !k.name.empty())
                    known[s].push_back({k.name, k.messages});
    // Both accounts work on their listings at once (Dovecot takes half a second for the
    // status of a 200,000-message mailbox); a Maildir is listed while a server works.
    per_side<bool> ahead{st(side::a).list_ahead(known.a), st(side::b).list_ahead(known.b)};
    const std::array<side, 2> order = ahead.a && !ahead.b ? std::array<side, 2>{side::b, side::a}
                                                          : std::array<side, 2>{side::a, side::b};
    for (side s : order) {
        auto listing = st(s).list();
        if (!listing) {
            report_.failed = true;
            report_.failure = listing.error();
            report_.error =
                "listing the mailboxes of " + st(s).describe() + " failed: " + st(s).last_error();
            return false;
        }
        for (auto& e : *listing) {
            if (!e.selectable || !wanted(e.name)) continue;
            auto& w = work_[e.name];
            w.name = e.name;
            w.entry[s] = std::move(e);
        }
    }
    for (auto& p : *pairs) {
        if (!wanted(p.mailbox)) continue;
        auto& w = work_[p.mailbox];
        w.name = p.mailbox;
        w.state = std::move(p.state);
        pair_ids_[p.mailbox] = w.state->id;
    }
    auto intents = journal_.intents(*t);
    if (!intents) return unreadable(intents.error());
    for (const auto& i : *intents) {
        if (i.channel != job_.name) continue;
        // A move names its destination in the payload: both mailboxes are listed again.
        for (const auto& name : {i.mailbox, i.payload}) {
            auto it = work_.find(name);
            if (it == work_.end()) continue;
            it->second.leftover_intents.push_back(i.seq);
            it->second.leftover_writes[i.on] = true;
        }
        log_.info("resolving an unfinished " +
                  std::string(i.kind == journal::intent_kind::move ? "move" : "copy") + " in " +
                  i.mailbox + " from an earlier run");
    }
    return true;
}

// What collect() will ask the stores of `w`, roughly in messages to list: 0 when it asks
// nothing (unchanged on both sides by the listing's status), 1 for a STATUS or a small
// change, a side's message count for a first listing.
std::uint64_t run::work_estimate(const mailbox_work& w) const {
    const bool whole = !w.state || !w.entry.a || !w.entry.b || !w.leftover_intents.empty();
    std::uint64_t n = 0;
    for (side s : both_sides) {
        if (!w.entry[s]) continue;
        const auto& now = w.entry[s]->status;
        if (!now) {
            n += 1;
        } else if (whole) {
            n += 1 + now->messages;
        } else if (!unchanged_since(*now, w.state->sides[s])) {
            const auto then = w.state->sides[s].uidnext;
            n += 1 + (now->uidnext > then ? now->uidnext - then : 0);
        }
    }
    return n;
}

// Whether a store's link has round trips worth overlapping: 1 ms or more (not a loopback
// or a wired LAN, where a login costs more than a mailbox's few round trips).
bool run::far_link() const {
    for (side s : both_sides) {
        auto rtt = lanes_[0][s]->round_trip();
        if (rtt && *rtt >= std::chrono::milliseconds(1)) return true;
    }
    return false;
}

// Collects every mailbox. With job_.connections above 1 and more than one mailbox for the
// stores to look at, several at once, each on a lane (a pair of stores): the first lane
// starts at once on the channel's own stores, the others as soon as their logins went
// through (one more connection to each IMAP account; a Maildir is shared), and each lane
// takes the next mailbox, the largest (work_estimate) first. A lane that cannot log in
// takes none; one that logs in after the last mailbox was taken still takes parts of the
// plan (execute). On a near link, one lane more per job_.lane_work messages: c5000 on
// loopback (2 cores) synced its first 5,000 messages 16-20% faster on two lanes than on
// one, while 50-100 changed messages took as long or up to 30 ms longer (the logins). The
// plan is the same: the rules of DESIGN.md do not depend on the order of mailboxes.
void run::collect_all() {
    std::vector<std::pair<std::uint64_t, mailbox_work*>> busy;
    for (auto& [name, w] : work_) {
        if (auto n = work_estimate(w); n != 0)
            busy.emplace_back(n, &w);
        else
            collect(w);  // asks no store
    }
    std::stable_sort(busy.begin(), busy.end(),
                     [](const auto& x, const auto& y) { return x.first > y.first; });
    // A mailbox that a store has open (the INBOX an IMAP store selected before its listing)
    // goes first: opening another closes it, and opening it again costs Dovecot a full read
    // of a Maildir's uid list (0.4 s at 200,000 messages).
    std::stable_partition(busy.begin(), busy.end(), [&](const auto& b) {
        return st(side::a).is_open(b.second->name) || st(side::b).is_open(b.second->name);
    });
    std::uint64_t work = 0;
    for (const auto& [n, w] : busy) work += n;
    const std::size_t wanted = std::min<std::size_t>(
        {job_.connections, busy.size(), far_link() ? busy.size() : 1 + work / job_.lane_work});
    std::vector<per_side<store::store::opener>> openers(wanted > 1 ? wanted - 1 : 0);
    for (auto& o : openers)
        for (side s : both_sides) o[s] = st(s).another();
    const per_side<bool> shared{openers.empty() || !openers.front().a,
                                openers.empty() || !openers.front().b};
    if (wanted < 2 || (shared.a && shared.b)) {
        for (auto& [n, w] : busy) collect(*w, busy.size() == 1);
        return;
    }
    const per_side<store::store*> channel = lanes_[0];
    lanes_.resize(wanted);
    lane_stores_.resize(wanted);
    for (side s : both_sides)
        if (shared[s]) {
            lane_stores_[0][s] = std::make_unique<store::shared_store>(*channel[s], turns_[s]);
            lanes_[0][s] = lane_stores_[0][s].get();
        }
    std::atomic<std::size_t> next{0};
    in_lanes([&](std::size_t lane) {
        if (lane != 0 && !open_lane(lane, channel, openers[lane - 1])) return;
        for (std::size_t i; (i = next++) < busy.size();) {
            busy[i].second->lane = lane;
            collect(*busy[i].second);
        }
    });
    std::size_t used = 0;
    for (const auto& l : lanes_) used += l.a != nullptr;
    log_.debug(std::to_string(busy.size()) + " mailboxes to look at, on " + std::to_string(used) +
               " connections");
}

// Opens lane `lane`'s stores (both logins at once) or shares the channel's; false, with a
// warning, when a login failed.
bool run::open_lane(std::size_t lane, const per_side<store::store*>& channel,
                    const per_side<store::store::opener>& open) {
    auto& own = lane_stores_[lane];
    auto open_side = [&](side s) -> result<void> {
        if (!open[s]) {
            own[s] = std::make_unique<store::shared_store>(*channel[s], turns_[s]);
            return {};
        }
        auto r = open[s]();
        if (!r) return r.error();
        own[s] = std::move(*r);
        return {};
    };
    std::future<result<void>> b;
    try {
        b = std::async(std::launch::async, open_side, side::b);
    } catch (const std::system_error&) {
    }
    per_side<result<void>> done{open_side(side::a), b.valid() ? b.get() : open_side(side::b)};
    for (side s : both_sides) {
        if (done[s]) continue;
        log_.warning("connection " + std::to_string(lane + 1) + " to " + channel[s]->describe() +
                     " failed (" + done[s].error().message() + "): syncing on fewer");
        own = {};
        return false;
    }
    lanes_[lane] = {own.a.get(), own.b.get()};
    return true;
}

// Runs f(lane) for each lane at once: the first on this thread, the others on their own.
void run::in_lanes(const std::function<void(std::size_t)>& f) {
    std::vector<std::future<void>> others;
    std::vector<std::size_t> here{0};
    for (std::size_t k = 1; k < lanes_.size(); ++k) {
        try {
            others.push_back(std::async(std::launch::async, f, k));
        } catch (const std::system_error&) {
            here.push_back(k);  // no thread to be had: after the first, on this one
        }
    }
    for (auto k : here) f(k);
    for (auto& o : others) o.get();
}

void run::fail(mailbox_work& w, std::string_view what, side s, error_code ec) {
    std::string text =
        std::string(what) + " " + w.name + " on " + st(w, s).describe() + " failed: ";
    const auto& detail = st(w, s).last_error();
    text += detail.empty() ? ec.message() : detail;
    log_.error(text);
    w.failed = true;
    set_error(w, text);
}

// The first error of a mailbox is the one its report gives.
void run::set_error(mailbox_work& w, const std::string& text) {
    std::lock_guard lock(mutex_);
    if (w.report->failed) return;
    w.report->failed = true;
    w.report->error = text;
}

void run::report_progress(const progress& p) {
    if (!on_progress_) return;
    std::lock_guard lock(mutex_);
    on_progress_(p);
}

// The uids of side `s` in the pair's records, ascending, and beside each the flags it last
// synced (store::known_state::synced_flags): one walk over the records, their uids and
// flags decoded only.
result<void> run::read_synced_flags(const journal::lmdb::txn& t, std::uint64_t pair, side s,
                                    std::vector<mail::uid>& uids,
                                    std::vector<std::uint8_t>& flags) {
    std::vector<std::pair<mail::uid, std::uint8_t>> found;
    auto r = journal_.for_each_record_view(
        t, pair, [&](const journal::journal::record_view& v) -> result<bool> {
            if (v.uid[s] == 0) return true;
            found.emplace_back(v.uid[s], v.flags.keywords().empty()
                                             ? v.flags.system_bits()
                                             : store::known_state::synced_unknown);
            return true;
        });
    if (!r) return r.error();
    if (!std::is_sorted(found.begin(), found.end())) std::sort(found.begin(), found.end());
    uids.clear();
    flags.clear();
    uids.reserve(found.size());
    flags.reserve(found.size());
    for (const auto& [u, f] : found) {
        uids.push_back(u);
        flags.push_back(f);
    }
    return {};
}

// An earlier run that died in the middle of an APPEND or MOVE may still see it land: the
// server reads what was on its way and commits it (store::late_write_window). The listing
// that recovers the intent waits for that, or it would copy those messages once more.
void run::wait_for_late_writes(const mailbox_work& w) {
    std::chrono::milliseconds window{0};
    for (side s : both_sides)
        if (w.leftover_writes[s]) window = std::max(window, st(w, s).late_write_window());
    const auto until = started_ + window;
    const auto now = std::chrono::steady_clock::now();
    if (until <= now) return;  // waited already, or the run's start took that long
    log_.debug(
        "waiting " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()) +
        " ms for what the earlier run may still have on its way to " + w.name);
    std::this_thread::sleep_until(until);
}

// Decides whether a side changed since the journal's state and, where it did, asks the
// store what changed. A mailbox unchanged on both sides costs nothing more.
void run::collect(mailbox_work& w, bool alone) {
    for (side s : both_sides) {
        if (!w.entry[s]) continue;
        if (w.entry[s]->status) {
            w.status[s] = w.entry[s]->status;
        } else {
            auto status = st(w, s).status(w.name);
            if (!status) return fail(w, "STATUS of", s, status.error());
            w.status[s] = *status;
        }
    }
    per_side<bool> changed{false, false};
    bool one_side_missing = !w.entry.a || !w.entry.b;
    bool recovering = !w.leftover_intents.empty();
    if (recovering) wait_for_late_writes(w);
    for (side s : both_sides) {
        if (!w.entry[s]) continue;
        changed[s] = !w.state || one_side_missing || recovering ||
                     !unchanged_since(*w.status[s], w.state->sides[s]);
    }
    if (w.state && !w.entry.a && !w.entry.b) changed.a = true;  // gone on both: forget it
    if (!changed.a && !changed.b) return;

    w.report->collected = true;
    auto& in = w.input;
    in.name = w.name;
    in.known = w.state.has_value();
    for (side s : both_sides) in.sides[s].exists = w.entry[s].has_value();
    // The uids of a side are all its store needs of the journal (a keys-only walk): the
    // records themselves are read once the changes are known, and only those that matter.
    per_side<std::vector<mail::uid>> known_uids;
    per_side<std::vector<std::uint8_t>> synced_flags;
    per_side<std::optional<std::size_t>> counted;  // records with a uid on that side
    // What makes the stores list every message, and the planner keep every record.
    const bool full =
        one_side_missing || recovering || (w.state && w.state->status != journal::pair_status::ok);
    if (w.state) {
        auto t = journal_.begin_read();
        if (!t) return fail(w, "reading the journal for", side::a, t.error());
        for (side s : both_sides) {
            if (!w.entry[s] || !changed[s]) continue;
            if (!full && w.state->sides[s].uidvalidity != 0 && st(w, s).wants_synced_flags()) {
                auto r = read_synced_flags(*t, w.state->id, s, known_uids[s], synced_flags[s]);
                if (!r) return fail(w, "reading the journal for", s, r.error());
            } else {
                auto uids = journal_.uids(*t, w.state->id, s);
                if (!uids) return fail(w, "reading the journal for", s, uids.error());
                known_uids[s] = std::move(*uids);
            }
            counted[s] = known_uids[s].size();
        }
    }
    bool everything =
        !w.state || one_side_missing || recovering || w.state->status != journal::pair_status::ok;
    // The side with fewer messages is listed first: when it turns out empty (a first sync
    // into a new mailbox), the other side's messages need no content keys, which cost a
    // read of every message's headers (S1: 200,000 header reads on the server).
    auto messages_of = [&](side s) {
        return w.status[s] ? w.status[s]->messages : std::uint32_t{0};
    };
    const std::array<side, 2> order = messages_of(side::b) < messages_of(side::a)
                                          ? std::array<side, 2>{side::b, side::a}
                                          : std::array<side, 2>{side::a, side::b};
    auto known_of = [&](side s) {
        const side o = mail::opposite(s);
        store::known_state known;
        known.want_keys =
            w.entry[o] && !(w.collected[o] && in.sides[o].complete && in.sides[o].messages.empty());
        known.want_sizes = known.want_keys || job_.rules.max_size != 0;
        if (w.state) {
            const auto& then = w.state->sides[s];
            known.status.uidvalidity = then.uidvalidity;
            known.status.uidnext = then.uidnext;
            known.status.highestmodseq = then.highestmodseq;
            known.status.messages = then.messages;
            known.status.scan_token = then.scan_token;
            // A side this run's copies filled without state yet (adoption).
            if (then.uidvalidity == 0) everything = true;
        }
        known.uids = std::move(known_uids[s]);
        known.synced_flags = std::move(synced_flags[s]);
        // A mailbox missing on the other side needs a full listing: the planner must know
        // whether this side holds anything unsynced before it removes or re-creates.
        known.full = full;
        return known;
    };
    auto take = [&](side s, result<store::mailbox_changes>& changes) {
        if (!changes) {
            fail(w, "reading the changes of", s, changes.error());
            return false;
        }
        w.collected[s] = true;
        w.status[s] = changes->status;
        auto& rep = in.sides[s];
        rep.uidvalidity_changed = changes->uidvalidity_changed;
        rep.complete = changes->complete;
        rep.messages = std::move(changes->messages);
        rep.vanished = std::move(changes->vanished);
        if (rep.uidvalidity_changed) everything = true;
        return true;
    };
    // Both sides changed since a sync that went well: their stores answer at the same time
    // (each SELECT of a 200,000-message mailbox takes Dovecot 0.15-0.7 s). Otherwise one
    // after the other: the second side's listing depends on what the first one held.
    const bool at_once =
        w.state && !full && w.entry.a && w.entry.b && changed.a && changed.b &&
        !(st(w, side::a).changes_use_the_journal() && st(w, side::b).changes_use_the_journal());
    if (at_once) {
        per_side<store::known_state> known{known_of(side::a), known_of(side::b)};
        auto second = std::async(std::launch::async,
                                 [&] { return st(w, order[1]).changes(w.name, known[order[1]]); });
        auto first = st(w, order[0]).changes(w.name, known[order[0]]);
        auto later = second.get();
        if (!take(order[0], first) || !take(order[1], later)) return;
    } else {
        // Only one side changed since a sync that went well, with the UIDNEXT recorded: an IMAP
        // side lists flag changes and expunges then, which go to the other side's mailbox (a
        // Maildir's UIDNEXT moves only when its scan numbers new files: those may come, and
        // the SELECT was then not needed by their APPEND). The other store selects it
        // meanwhile, which otherwise waits for the listing: 0.14 of 1.4 s for 50 flags changed
        // among 200,000 messages IMAP-IMAP (each SELECT there is Dovecot's work: 0.1-0.4 s).
        std::future<void> ahead;
        if (alone && w.state && !full && w.entry.a && w.entry.b && changed.a != changed.b) {
            const side s = changed.a ? side::a : side::b;
            if (w.status[s] && w.status[s]->uidnext == w.state->sides[s].uidnext)
                ahead = std::async(std::launch::async, [&, quiet = mail::opposite(s)] {
                    st(w, quiet).select_ahead(w.name);
                });
        }
        for (side s : order) {
            if (!w.entry[s] || !changed[s]) continue;
            auto changes = st(w, s).changes(w.name, known_of(s));
            if (!take(s, changes)) return;
        }
    }
    if (auto r = read_records(w, everything, counted); !r)
        return fail(w, "reading the journal for", side::a, r.error());
}

// Reads the pair records this run's plan depends on into w.input (sync::input_filter):
// with `everything` (first listing of a side, UIDVALIDITY change, leftover intents, a
// failed last sync, a mailbox missing on a side) all of them, else only those that a side
// names. `counted`: the records with a uid on a side, where collect() counted them.
result<void> run::read_records(mailbox_work& w, bool everything,
                               const per_side<std::optional<std::size_t>>& counted) {
    auto& in = w.input;
    // Also sorts the listings, which info() searches.
    input_filter filter(in, everything, [&](side s, std::string_view keyword) {
        return st(w, s).keeps_keyword(w.name, keyword);
    });
    if (!w.state) return {};
    const std::uint64_t id = w.state->id;
    auto t = journal_.begin_read();
    if (!t) return t.error();
    per_side<std::size_t> counts{0, 0};
    std::size_t known = 0;
    if (!everything) {
        for (side s : both_sides) {
            // Removals on s come only from messages the other side reports gone (vanished,
            // or left out of a complete listing); the mass-removal guard weighs them against
            // s's records, counted exactly then. Otherwise s's message count of the last
            // sync serves to choose lookups over a walk, without a walk over s's keys.
            const auto& other = in.sides[mail::opposite(s)];
            if (counted[s]) {
                counts[s] = *counted[s];
            } else if (other.complete || !other.vanished.empty()) {
                auto n = journal_.count_uids(*t, id, s);
                if (!n) return n.error();
                counts[s] = *n;
            } else {
                counts[s] = w.state->sides[s].messages;
            }
            known = std::max(known, counts[s]);
        }
    }
    // Changes reported as such (no complete listing), and few of them: the records they
    // name, one lookup each. Else one walk over the pair's records.
    std::size_t named = 0;
    bool complete = false;
    for (side s : both_sides) {
        named += in.sides[s].messages.size() + in.sides[s].vanished.size();
        complete = complete || in.sides[s].complete;
    }
    if (!everything && !complete && named * 8 < known) {
        std::set<std::pair<mail::uid, mail::uid>> seen;
        for (side s : both_sides) {
            // Copied first: offer() may put keywords back into the listing it walks.
            std::vector<mail::uid> uids;
            uids.reserve(in.sides[s].messages.size() + in.sides[s].vanished.size());
            for (const auto& m : in.sides[s].messages) uids.push_back(m.uid);
            uids.insert(uids.end(), in.sides[s].vanished.begin(), in.sides[s].vanished.end());
            for (auto u : uids) {
                auto r = journal_.find_record(*t, id, s, u);
                if (!r) return r.error();
                if (*r && seen.emplace((*r)->uid.a, (*r)->uid.b).second)
                    filter.offer(from_journal(**r));
            }
        }
    } else {
        // Most records match their listing and are dropped: decoded in full only when kept.
        auto r = journal_.for_each_record_view(
            *t, id, [&](const journal::journal::record_view& v) -> result<bool> {
                if (!filter.keeps(v.uid, v.flags)) return true;
                auto rec = v.decode();
                if (!rec) return result<bool>(boost::system::in_place_error, rec.error());
                filter.take(from_journal(*rec));
                return true;
            });
        if (!r) return r;
    }
    filter.finish(counts);
    return {};
}

mailbox_work* run::work_for(const std::string& mailbox) {
    auto it = work_.find(mailbox);
    return it == work_.end() ? nullptr : &it->second;
}

result<std::uint64_t> run::pair_id(journal::lmdb::write_txn& t, const std::string& mailbox) {
    if (auto it = pair_ids_.find(mailbox); it != pair_ids_.end()) return it->second;
    auto state = journal_.open_pair(t, job_.name, mailbox);
    if (!state) return state.error();
    // Not cached: the transaction may still abort; cached once it committed (see callers).
    return state->id;
}

result<void> run::apply_record_change(journal::lmdb::write_txn& t, const std::string& mailbox,
                                      const std::optional<pair_record>& old_record,
                                      const std::optional<pair_record>& new_record) {
    auto id = pair_id(t, mailbox);
    if (!id) return id.error();
    if (old_record && new_record && old_record->uid.a == new_record->uid.a &&
        old_record->uid.b == new_record->uid.b) {
        // Flags or identities changed, the uids did not: the indexes stay as they are.
        auto replaced = journal_.replace_record(t, *id, to_journal(*new_record));
        if (!replaced) return replaced.error();
        if (*replaced) return {};
    }
    if (old_record) {
        side key_side = old_record->uid.a != 0 ? side::a : side::b;
        auto erased = journal_.erase_record(t, *id, key_side, old_record->uid[key_side]);
        if (!erased) return erased.error();
    }
    if (new_record && (new_record->uid.a != 0 || new_record->uid.b != 0)) {
        auto put = journal_.put_record(t, *id, to_journal(*new_record));
        if (!put) return put.error();
    }
    return {};
}

// Journal writes are grouped (DESIGN.md "Cost of a sync"): a record may be committed after
// the store change it describes (a crash in between only makes the next run merge that
// message again), so record changes and pair states wait here, in order, and go in as few
// commits as the crash rules allow: one before each store change that an intent protects
// (the intent must be durable first), and one at the end of the run. A mailbox's state goes
// in the same commit as its last records or a later one, never before them.
void run::defer(mailbox_work& w, journal_write f) {
    std::lock_guard lock(mutex_);
    pending_.emplace_back(&w, std::move(f));
}

// The record changes of a batch of actions, for the next commit. `batch` points into the
// plan, which outlives every commit of the run.
template <class Action>
void run::defer_record_changes(mailbox_work& w, const std::vector<const Action*>& batch) {
    defer(w, [this, batch](journal::lmdb::write_txn& t) -> result<void> {
        for (const auto* a : batch)
            if (auto r = apply_record_change(t, a->mailbox, a->old_record, a->new_record); !r)
                return r;
        return {};
    });
}

// Commits `i` with the waiting writes, before the store change it protects (DESIGN.md,
// crash safety); its sequence number, or nullopt when the commit failed (`w` is failed).
std::optional<std::uint64_t> run::commit_intent(mailbox_work& w, journal::intent i) {
    i.channel = job_.name;
    std::uint64_t seq = 0;
    bool recorded = commit_pending(&w, [&](journal::lmdb::write_txn& t) -> result<void> {
        auto r = journal_.record_intent(t, i);
        if (!r) return r.error();
        seq = *r;
        return {};
    });
    if (!recorded) return std::nullopt;
    return seq;
}

// Commits the waiting writes, and `also` after them, in one transaction. On failure every
// mailbox with a write in it is marked failed (its next sync lists everything again).
bool run::commit_pending(mailbox_work* w, const journal_write& also) {
    std::lock_guard lock(mutex_);
    if (pending_.empty() && !also) return true;
    auto r = journal_.write([&](journal::lmdb::write_txn& t) -> result<void> {
        for (auto& [owner, f] : pending_)
            if (auto e = f(t); !e) return e;
        if (also) return also(t);
        return {};
    });
    if (!r) {
        const std::string text = "writing the journal failed: " + r.error().message();
        log_.error("journal: " + r.error().message());
        // mutex_ is held (not set_error: a mailbox refused before, failed in its report
        // only, gets this error instead).
        auto mark = [&](mailbox_work* x) {
            if (!x || x->failed.exchange(true)) return;
            x->report->failed = true;
            x->report->error = text;
        };
        for (auto& p : pending_) mark(p.first);
        mark(w);
    }
    pending_.clear();
    return static_cast<bool>(r);
}

void run::do_create(const create_mailbox& a) {
    auto* w = work_for(a.mailbox);
    if (!w || w->failed) return;
    if (job_.dry_run) return;
    log_.info("creating " + a.mailbox + " on " + st(*w, a.on).describe());
    if (auto r = st(*w, a.on).create(a.mailbox); !r) return fail(*w, "CREATE of", a.on, r.error());
    ++w->report->done.created[a.on];
    // The new mailbox's state is unknown until it is listed: zero, so the next run lists it.
    w->entry[a.on] = store::mailbox_entry{a.mailbox, {}, true, std::nullopt};
}

void run::do_remove(const remove_mailbox& a) {
    auto* w = work_for(a.mailbox);
    if (!w || w->failed) return;
    if (job_.dry_run) return;
    log_.info("removing " + a.mailbox + " on " + st(*w, a.on).describe());
    if (auto r = st(*w, a.on).remove(a.mailbox); !r) return fail(*w, "DELETE of", a.on, r.error());
    ++w->report->done.removed[a.on];
    defer(*w, [this, mailbox = a.mailbox](journal::lmdb::write_txn& t) -> result<void> {
        auto erased = journal_.erase_pair(t, job_.name, mailbox);
        if (!erased) return erased.error();
        return {};
    });
    w->state.reset();
    w->entry.a.reset();
    w->entry.b.reset();
}

void run::do_update_records(const std::vector<const update_record*>& batch) {
    auto* w = work_for(batch.front()->mailbox);
    if (!w || w->failed || job_.dry_run) return;
    defer_record_changes(*w, batch);
}

void run::do_set_flags(const std::vector<const set_flags*>& batch) {
    const auto& first = *batch.front();
    auto* w = work_for(first.mailbox);
    if (!w || w->failed || job_.dry_run) return;
    std::vector<store::flag_change> changes;
    changes.reserve(batch.size());
    for (const auto* a : batch) {
        changes.push_back({a->uid, a->add, a->remove});
        if (a->old_record)
            st(*w, first.on).expect_flags(first.mailbox, a->uid, a->old_record->flags);
    }
    if (auto r = st(*w, first.on).set_flags(first.mailbox, changes); !r)
        return fail(*w, "STORE of flags in", first.on, r.error());
    w->report->done.flagged[first.on] += batch.size();
    defer_record_changes(*w, batch);
}

void run::do_expunge(const std::vector<const expunge_message*>& batch) {
    const auto& first = *batch.front();
    auto* w = work_for(first.mailbox);
    if (!w || w->failed || job_.dry_run) return;
    if (!unlisted_.empty()) {
        // A message gone from here on the other side may have moved to the mailbox that
        // could not be listed, where the planner could not see it arrive: expunged now,
        // the flags changed on this copy would be lost. The mailbox waits for a run that
        // lists both (its state is not recorded: the next run lists it in full).
        std::string text = std::to_string(batch.size()) + " expunge(s) on " +
                           st(*w, first.on).describe() + " held back, as " + unlisted_ +
                           " could not be listed; the next run looks again";
        log_.warning(w->name + ": " + text);
        w->failed = true;
        return set_error(*w, text);
    }
    std::vector<mail::uid> uids;
    for (const auto* a : batch) {
        uids.push_back(a->uid);
        if (a->old_record)
            st(*w, first.on).expect_flags(first.mailbox, a->uid, a->old_record->flags);
    }
    if (auto r = st(*w, first.on).expunge(first.mailbox, uids); !r)
        return fail(*w, "EXPUNGE in", first.on, r.error());
    w->report->done.expunged[first.on] += batch.size();
    defer_record_changes(*w, batch);
}

// Fetches messages [begin, end) of `batch` and appends them to the other side; records the
// copies that got a uid (and, with `erase_intent`, drops the intent in the same commit).
// A tagged NO leaves the mailbox going (the caller decides); anything else fails it.
// `fetch_next`, the uids of the next range, are fetched ahead once this range's bodies are
// in: the source sends them while the other side stores these.
run::append_outcome run::copy_range(mailbox_work& w, const std::vector<const copy_message*>& batch,
                                    std::size_t begin, std::size_t end, std::uint64_t intent_seq,
                                    bool erase_intent, std::span<const mail::uid> fetch_next) {
    const auto& first = *batch[begin];
    const side from = first.from;
    const side to = opposite(from);
    std::vector<mail::uid> uids;
    std::unordered_map<mail::uid, std::size_t> position;
    for (std::size_t i = begin; i < end; ++i) {
        uids.push_back(batch[i]->uid);
        position[batch[i]->uid] = i;
    }
    // Each body goes to the other store as it arrives: a batch never holds all its bodies.
    auto appender = st(w, to).begin_append(first.mailbox);
    if (!appender) {
        fail(w, "APPEND of messages to", to, appender.error());
        return append_outcome::failed;
    }
    std::optional<error_code> append_error;  // add() failed: the fetch stopped for it
    std::vector<const copy_message*> sent;
    std::vector<std::string> sent_keys;     // parallel to `sent`: keys made from the bodies
    std::vector<std::uint64_t> sent_sizes;  // parallel to `sent`
    std::uint64_t sent_bytes = 0;
    auto deliver = [&](mail::uid uid, store::message_body&& body) -> result<void> {
        auto it = position.find(uid);
        if (it == position.end()) return {};
        const auto* a = batch[it->second];
        store::outgoing_message m;
        m.flags = a->flags();
        m.internal_date = a->source->internal_date;
        // A listing that skipped the headers (a first sync into an empty mailbox) left the
        // key empty: the record gets it from the body, so that a later move between folders
        // or a UIDVALIDITY change still finds the message by content.
        // A listing without sizes (want_sizes) left 0: the server's size that came with the
        // body, else the body's own.
        const std::uint64_t size = a->size() != 0          ? a->size()
                                   : body.server_size != 0 ? body.server_size
                                                           : body.size;
        std::string key;
        if (a->source->content_key.empty())
            key = mail::content_key(identify_body(body), size, m.internal_date);
        sent_bytes += body.size;
        m.body = std::move(body);
        if (auto r = (*appender)->add(std::move(m)); !r) {
            append_error = r.error();
            return r.error();
        }
        sent.push_back(a);
        sent_keys.push_back(std::move(key));
        sent_sizes.push_back(size);
        return {};
    };
    auto fetched = st(w, from).fetch(first.mailbox, uids, deliver);
    if (!fetched && !append_error) {
        fail(w, "FETCH of messages from", from, fetched.error());
        return append_outcome::failed;
    }
    if (fetched && !append_error && !fetch_next.empty())
        st(w, from).fetch_ahead(first.mailbox, fetch_next);
    auto new_uids =
        append_error ? result<std::vector<mail::uid>>(*append_error) : (*appender)->finish();
    appender->reset();
    if (!new_uids) {
        // Only a tagged NO refuses the messages and leaves the session usable (RFC 3501
        // 6.3.11; RFC 3502: nothing of a refused MULTIAPPEND is kept). BAD, BYE, a lost
        // connection or a timeout stop the mailbox.
        if (new_uids.error() == errc::command_failed) return append_outcome::refused;
        fail(w, "APPEND of messages to", to, new_uids.error());
        return append_outcome::failed;
    }
    std::vector<pair_record> made;
    made.reserve(sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        pair_record r = sent[i]->new_record();
        r.uid[to] = i < new_uids->size() ? (*new_uids)[i] : 0;
        if (r.content_key.empty()) r.content_key = std::move(sent_keys[i]);
        r.size = sent_sizes[i];
        // Without the new uid (no UIDPLUS and not found again), record nothing: the
        // next run pairs the two copies by content key instead of copying again.
        if (r.uid[to] != 0) {
            w.made_max[to] = std::max(w.made_max[to], r.uid[to]);
            made.push_back(std::move(r));
        }
    }
    defer(w,
          [this, mailbox = first.mailbox, made = std::move(made), intent_seq,
           erase_intent](journal::lmdb::write_txn& t) -> result<void> {
              for (const auto& r : made)
                  if (auto res = apply_record_change(t, mailbox, std::nullopt, r); !res) return res;
              if (erase_intent)
                  if (auto e = journal_.erase_intent(t, intent_seq); !e) return e.error();
              return {};
          });
    w.report->done.copied[to] += sent.size();
    w.report->done.bytes[to] += sent_bytes;
    return append_outcome::done;
}

// Whether a refused APPEND of several messages added none of them: the store may have sent
// them in several commands (chunks, or one APPEND each without MULTIAPPEND), and those
// before the refused one stay. Nothing landed if the UIDNEXT is still the one found before
// the run or just past this run's own copies; anything else (a delivery meanwhile, a copy
// without a known uid) counts as landed, and the intent's recovery sorts it out next run.
bool run::nothing_landed(mailbox_work& w, side on) {
    auto now = st(w, on).status(w.name);
    if (!now || now->uidnext == 0) return false;
    mail::uid expected = w.made_max[on] + 1;
    if (w.status[on]) expected = std::max(expected, w.status[on]->uidnext);
    // What landed now is left to this batch's intent: later batches compare with this.
    w.made_max[on] = std::max(w.made_max[on], now->uidnext - 1);
    return now->uidnext <= expected;
}

void run::refuse(mailbox_work& w, const copy_message& m) {
    const side to = opposite(m.from);
    std::ostringstream text;
    text << "copying message uid " << m.uid << " (" << m.size() << " bytes) of " << w.name
         << " from " << st(w, m.from).describe() << " to " << st(w, to).describe()
         << " was refused: ";
    const auto& detail = st(w, to).last_error();
    text << (detail.empty() ? std::string("the server said NO") : detail);
    log_.error(text.str());
    w.refused = true;
    set_error(w, text.str());
}

void run::do_copy(const std::vector<const copy_message*>& batch) {
    const auto& first = *batch.front();
    auto* w = work_for(first.mailbox);
    if (!w || w->failed || job_.dry_run) return;
    const side to = opposite(first.from);
    if (w->gave_up[to]) return;

    progress prog;
    prog.mailbox = first.mailbox;
    prog.messages_total = batch.size();
    for (const auto* a : batch) prog.bytes_total += a->size();

    // Refusals of single messages in a row with the same words, before any single one went
    // through: a server that refuses everything (OVERQUOTA, RFC 5530) is not asked 500 times.
    constexpr std::size_t refusals_to_give_up = 3;
    std::size_t same_refusals = 0;
    std::string last_refusal;
    bool single_went_through = false;
    bool given_up = false;
    auto single_refused = [&](const copy_message& m) {
        refuse(*w, m);
        const std::string words(steady_words(st(*w, to).last_error()));
        same_refusals = same_refusals > 0 && words == last_refusal ? same_refusals + 1 : 1;
        last_refusal = words;
        if (!single_went_through && same_refusals >= refusals_to_give_up) {
            given_up = true;
            w->gave_up[to] = true;
            log_.error("giving up copying to " + st(*w, to).describe() + " in " + w->name +
                       " after " + std::to_string(same_refusals) + " refusals in a row");
        }
    };

    // One batch from `begin`: up to copy_batch_messages messages or copy_batch_bytes bytes
    // (of the sizes listed: a first sync into an empty mailbox lists none, and the count
    // bounds it). Returns its end and its bytes.
    auto batch_from = [&](std::size_t begin) {
        std::size_t end = begin;
        std::uint64_t bytes = 0;
        while (end < batch.size() && end - begin < copy_batch_messages &&
               (end == begin || bytes + batch[end]->size() <= copy_batch_bytes)) {
            bytes += batch[end]->size();
            ++end;
        }
        return std::pair{end, bytes};
    };
    std::vector<mail::uid> next_uids;  // of the batch after the one going now
    std::size_t next = 0;
    while (next < batch.size() && !w->failed && !given_up) {
        const auto [end, bytes] = batch_from(next);
        next_uids.clear();
        for (std::size_t i = end, after = batch_from(end).first; i < after; ++i)
            next_uids.push_back(batch[i]->uid);
        // The intent is durable before the other store changes; the commit that records the
        // copies erases it.
        journal::intent intent;
        intent.kind = journal::intent_kind::append;
        intent.on = to;
        intent.mailbox = first.mailbox;
        auto seq = commit_intent(*w, std::move(intent));
        if (!seq) return;
        const std::uint64_t intent_seq = *seq;
        const std::uint64_t sent_before = w->report->done.bytes[to];
        // Sizes a listing left out (0) are known once the bodies went.
        auto bytes_went = [&] {
            return bytes != 0 ? bytes : w->report->done.bytes[to] - sent_before;
        };
        auto outcome = copy_range(*w, batch, next, end, intent_seq, true, next_uids);
        if (outcome == append_outcome::failed) return;
        if (outcome == append_outcome::refused) {
            if (end - next == 1) {
                single_refused(*batch[next]);
            } else {
                // One message may spoil the batch (a zero-byte file, one over the server's
                // size limit): each one alone, fetched again (the bodies sent are gone),
                // under the same intent, which stays durable until the last of them.
                const std::string batch_error = st(*w, to).last_error();
                if (!nothing_landed(*w, to)) {
                    // Part of the batch may be there without its uids: the intent stays, and
                    // the next run, which lists the pair in full, pairs what landed by
                    // content key and copies the rest. Later batches go on meanwhile.
                    std::string text = "APPEND of messages to " + w->name + " on " +
                                       st(*w, to).describe() + " failed: " + batch_error;
                    log_.error(text);
                    w->refused = true;
                    set_error(*w, text);
                    prog.messages_done += end - next;
                    prog.bytes_done += bytes_went();
                    report_progress(prog);
                    next = end;
                    continue;
                }
                log_.warning(w->name + ": " + st(*w, to).describe() + " refused a batch of " +
                             std::to_string(end - next) + " messages (" + batch_error +
                             "): copying them one at a time");
                for (std::size_t i = next; i < end && !given_up; ++i) {
                    auto one = copy_range(*w, batch, i, i + 1, intent_seq, false);
                    if (one == append_outcome::failed) return;
                    if (one == append_outcome::refused) {
                        single_refused(*batch[i]);
                    } else {
                        single_went_through = true;
                        same_refusals = 0;
                    }
                }
            }
            // Whatever was refused is not on the other side: the intent has nothing to
            // resolve once the copies that went through are recorded.
            defer(*w, [this, intent_seq](journal::lmdb::write_txn& t) -> result<void> {
                if (auto e = journal_.erase_intent(t, intent_seq); !e) return e.error();
                return {};
            });
        } else if (end - next == 1) {
            single_went_through = true;
            same_refusals = 0;
        }
        prog.messages_done += end - next;
        prog.bytes_done += bytes_went();
        report_progress(prog);
        next = end;
    }
}

// A move that did not happen leaves both of its mailboxes as they were found: the
// destination's state recorded now would hide the moved message there from the next run,
// which would then take its absence from the source for an expunge and remove the other
// side's copy. Failed, the mailbox is listed in full next time, and the move found again.
void run::hold_for_move(mailbox_work& w, const move_message& m, const mailbox_work& failed) {
    if (w.failed) return;
    std::string text = "not recorded as synced: moving messages from " + m.from_mailbox + " to " +
                       m.to_mailbox + " on " + st(w, m.on).describe() + " did not happen, as " +
                       failed.name + " failed; the next run lists both mailboxes again";
    log_.error(w.name + ": " + text);
    w.failed = true;
    set_error(w, text);
}

void run::do_move(const std::vector<const move_message*>& batch) {
    const auto& first = *batch.front();
    auto* from_w = work_for(first.from_mailbox);
    auto* to_w = work_for(first.to_mailbox);
    if (!from_w || !to_w || job_.dry_run) return;
    if (from_w->failed || to_w->failed) {
        hold_for_move(*from_w, first, *to_w);
        hold_for_move(*to_w, first, *from_w);
        return;
    }
    std::vector<mail::uid> uids;
    for (const auto* a : batch) {
        uids.push_back(a->uid);
        st(*from_w, first.on).expect_flags(first.from_mailbox, a->uid, a->old_record.flags);
    }
    journal::intent intent;
    intent.kind = journal::intent_kind::move;
    intent.on = first.on;
    intent.mailbox = first.from_mailbox;
    intent.payload = first.to_mailbox;
    auto seq = commit_intent(*from_w, std::move(intent));
    if (!seq) return;
    const std::uint64_t intent_seq = *seq;
    auto moved = st(*from_w, first.on).move(first.from_mailbox, uids, first.to_mailbox);
    if (!moved) {
        fail(*from_w, "MOVE of messages from", first.on, moved.error());
        return hold_for_move(*to_w, first, *from_w);
    }
    from_w->report->done.moved[first.on] += batch.size();
    std::vector<store::flag_change> flag_changes;
    std::vector<pair_record> made(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto* a = batch[i];
        made[i] = a->new_record;
        made[i].uid[a->on] = i < moved->size() ? (*moved)[i] : 0;
        to_w->made_max[a->on] = std::max(to_w->made_max[a->on], made[i].uid[a->on]);
        if (made[i].uid[a->on] != 0 && (!a->add.empty() || !a->remove.empty()))
            flag_changes.push_back({made[i].uid[a->on], a->add, a->remove});
    }
    // The moved copies keep their flags until the STORE: if it fails, their records keep
    // the flags last synced, so that the next run merges the two sides' changes again
    // instead of reading the flags not stored as removed where they were set.
    if (!flag_changes.empty()) {
        if (auto r = st(*from_w, first.on).set_flags(first.to_mailbox, flag_changes); !r) {
            fail(*to_w, "STORE of flags in", first.on, r.error());
            for (std::size_t i = 0; i < batch.size(); ++i)
                made[i].flags = batch[i]->old_record.flags;
        }
    }
    defer(*to_w,
          [this, batch, made = std::move(made),
           intent_seq](journal::lmdb::write_txn& t) -> result<void> {
              for (std::size_t i = 0; i < batch.size(); ++i) {
                  const auto* a = batch[i];
                  if (auto r = apply_record_change(t, a->from_mailbox, a->old_record, std::nullopt);
                      !r)
                      return r;
                  if (made[i].uid[a->on] == 0) continue;  // found again by content key next run
                  if (auto r = apply_record_change(t, a->to_mailbox, std::nullopt, made[i]); !r)
                      return r;
              }
              if (auto e = journal_.erase_intent(t, intent_seq); !e) return e.error();
              return {};
          });
}

// Groups consecutive actions of one kind on one mailbox (and side) into one store call.
template <class T>
bool same_batch(const T& x, const T& y);
template <>
bool same_batch(const update_record& x, const update_record& y) {
    return x.mailbox == y.mailbox;
}
// Flag changes of one mailbox and side go in one call whatever they change: the stores
// group them by flag themselves (an IMAP store sends every UID STORE in one flight), so a
// mailbox costs one round trip, not one per distinct change (S7 over a 20 ms link: ~4 per
// folder). The planner gives a record at most one set_flags per side.
template <>
bool same_batch(const set_flags& x, const set_flags& y) {
    return x.mailbox == y.mailbox && x.on == y.on;
}
template <>
bool same_batch(const expunge_message& x, const expunge_message& y) {
    return x.mailbox == y.mailbox && x.on == y.on;
}
template <>
bool same_batch(const copy_message& x, const copy_message& y) {
    return x.mailbox == y.mailbox && x.from == y.from;
}
template <>
bool same_batch(const move_message& x, const move_message& y) {
    return x.on == y.on && x.from_mailbox == y.from_mailbox && x.to_mailbox == y.to_mailbox;
}

void run::execute(const plan& p) {
    for (const auto& n : p.notices) {
        std::string text = n.text.empty() ? std::string("notice") : n.text;
        auto* w = work_for(n.mailbox);
        if (w) w->report->notices.push_back(text);
        // Kept untouched on one side while gone on the other (perhaps only for now: a
        // folder that is briefly not one): nothing of it synced, so its state stays as it
        // was, or what arrived on the kept side would never be looked at again.
        if (w && n.what == notice::kind::mailbox_gone) w->kept_untouched = true;
        log_.warning(n.mailbox + ": " + text);
    }
    for (const auto& g : p.guarded_mailboxes)
        if (auto* w = work_for(g)) {
            w->guarded = true;
            w->report->guarded = true;
        }
    if (job_.dry_run) {
        for (const auto& a : p.actions) {
            std::string mailbox = visit_action(
                [](const auto& x) -> std::string {
                    if constexpr (requires { x.mailbox; })
                        return x.mailbox;
                    else
                        return x.from_mailbox;
                },
                a);
            if (auto* w = work_for(mailbox)) w->report->planned.push_back(describe(a));
        }
        return;
    }
    if (lanes_.size() == 1) return execute_range(p, 0, p.actions.size());
    // Each mailbox's part of the plan runs on one lane, the lanes at once: the parts between
    // two that must run alone go to the lanes the largest first, each to the lane with the
    // fewest actions so far; the mailbox keeps that lane for its state (commit_states). A
    // part that removes a mailbox or moves messages to another one runs alone, once every
    // lane has done the parts before it, on its mailbox's lane. Mailboxes are created first,
    // one after the other in plan order, each by the lane that fills it: a parent before
    // its children (a server that creates the parents of "a/b" itself would refuse "a"
    // after it), and the creating store knows that the mailbox held nothing else (it
    // vouches for the appends, status_after_own_changes).
    const auto home_of = [](const action& a) -> const std::string& {
        return visit_action(
            [](const auto& x) -> const std::string& {
                if constexpr (requires { x.mailbox; })
                    return x.mailbox;
                else
                    return x.from_mailbox;
            },
            a);
    };
    struct part {
        std::size_t begin, end;
        mailbox_work* w;
        bool alone;
    };
    std::vector<part> parts;
    for (std::size_t i = 0; i < p.actions.size();) {
        const std::string& home = home_of(p.actions[i]);
        part x{i, i, work_for(home), false};
        for (; x.end < p.actions.size() && home_of(p.actions[x.end]) == home; ++x.end)
            x.alone = x.alone || action_if<remove_mailbox>(p.actions[x.end]) ||
                      action_if<move_message>(p.actions[x.end]);
        x.alone = x.alone || !x.w;
        parts.push_back(x);
        i = x.end;
    }
    // The stretches of parts between two that run alone: [first, last), then *last alone.
    std::vector<std::pair<std::vector<part>::iterator, std::vector<part>::iterator>> stretches;
    for (auto first = parts.begin();;) {
        auto last = std::find_if(first, parts.end(), [](const part& x) { return x.alone; });
        stretches.emplace_back(first, last);
        if (last == parts.end()) break;
        first = last + 1;
    }
    std::vector<std::size_t> usable;  // lanes whose logins went through
    for (std::size_t k = 0; k < lanes_.size(); ++k)
        if (lanes_[k].a) usable.push_back(k);
    for (auto [first, last] : stretches) {
        // A mailbox may have several parts (its creation, then its copies after the other
        // mailboxes' creations): one lane for all of them.
        std::map<mailbox_work*, std::size_t> actions;
        for (auto it = first; it != last; ++it) actions[it->w] += it->end - it->begin;
        std::vector<std::pair<std::size_t, mailbox_work*>> order;
        for (const auto& [w, n] : actions) order.emplace_back(n, w);
        std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) {
            return x.first != y.first ? x.first > y.first : x.second->name < y.second->name;
        });
        std::vector<std::size_t> load(usable.size(), 0);
        for (auto& [n, w] : order) {
            const auto k =
                static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
            w->lane = usable[k];
            load[k] += n;
        }
    }
    for (const auto& a : p.actions)
        if (const auto* c = action_if<create_mailbox>(a)) do_create(*c);
    for (auto [first, last] : stretches) {
        in_lanes([&](std::size_t lane) {
            for (auto it = first; it != last; ++it)
                if (it->w->lane == lane) execute_range(p, it->begin, it->end, true);
        });
        if (last != parts.end()) execute_range(p, last->begin, last->end, true);
    }
}

// `created`: the plan's mailboxes were made already (execute, with lanes).
void run::execute_range(const plan& p, std::size_t begin, std::size_t end, bool created) {
    std::size_t i = begin;
    while (i < end) {
        visit_action(
            [&](const auto& first) {
                using T = std::decay_t<decltype(first)>;
                if constexpr (std::is_same_v<T, create_mailbox>) {
                    if (!created) do_create(first);
                    ++i;
                } else if constexpr (std::is_same_v<T, remove_mailbox>) {
                    do_remove(first);
                    ++i;
                } else {
                    std::vector<const T*> batch{&first};
                    ++i;
                    while (i < end) {
                        const T* next = action_if<T>(p.actions[i]);
                        if (!next || !same_batch(first, *next)) break;
                        batch.push_back(next);
                        ++i;
                    }
                    if constexpr (std::is_same_v<T, update_record>)
                        do_update_records(batch);
                    else if constexpr (std::is_same_v<T, set_flags>)
                        do_set_flags(batch);
                    else if constexpr (std::is_same_v<T, expunge_message>)
                        do_expunge(batch);
                    else if constexpr (std::is_same_v<T, copy_message>)
                        do_copy(batch);
                    else if constexpr (std::is_same_v<T, move_message>)
                        do_move(batch);
                }
            },
            p.actions[i]);
    }
}

// Remembers, for each mailbox pair that synced without failure, both sides' state as
// found before this run changed them: the next run sees this run's own changes as
// changes once (cheap: they match the records) and never misses another client's.
void run::commit_states() {
    if (job_.dry_run) return;
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    for (auto& [name, w] : work_) {
        if (!w.report->collected && !w.failed) continue;
        if (!w.state && !w.entry.a && !w.entry.b) continue;  // removed in this run
        if (w.guarded || w.kept_untouched) continue;
        // A mailbox on one side only that this run did not create on the other (the rules
        // forbid it) stays unknown: recorded, it would look removed on the other side.
        if (!w.state && !(w.entry.a && w.entry.b)) continue;
        // A side whose store vouches that it alone changed the mailbox since the status
        // found before: that side's state after this run, so that the next run does not
        // look again at what this one did (a first sync's 200,000 new files).
        if (!w.failed && !w.refused) {
            for (side s : both_sides) {
                auto after = st(w, s).status_after_own_changes(name);
                if (after && *after) w.status[s] = std::move(**after);
            }
        }
        defer(w, [this, &name, &w, now](journal::lmdb::write_txn& t) -> result<void> {
            auto state = journal_.open_pair(t, job_.name, name);
            if (!state) return state.error();
            journal::pair_state next = *state;
            if (w.failed || w.refused) {
                next.status = journal::pair_status::error;
                next.error = w.report->error;
            } else {
                if (!w.entry.a && !w.entry.b) {
                    auto erased = journal_.erase_pair(t, job_.name, name);
                    if (!erased) return erased.error();
                    return {};
                }
                for (side s : both_sides) {
                    if (w.status[s])
                        next.sides[s] = to_side_state(name, *w.status[s]);
                    else
                        next.sides[s] = {};
                }
                next.status = journal::pair_status::ok;
                next.error.clear();
                next.last_sync = now;
                for (auto seq : w.leftover_intents)
                    if (auto e = journal_.erase_intent(t, seq); !e) return e.error();
            }
            return journal_.put_pair(t, job_.name, name, next);
        });
    }
}

channel_report run::go() {
    const auto start = std::chrono::steady_clock::now();
    report_.channel = job_.name;
    if (!list_mailboxes()) return report_;
    report_.mailboxes.reserve(work_.size());
    for (auto& [name, w] : work_) {
        report_.mailboxes.push_back({});
        report_.mailboxes.back().mailbox = name;
    }
    std::size_t k = 0;
    for (auto& [name, w] : work_) w.report = &report_.mailboxes[k++];

    collect_all();
    std::vector<const mailbox_input*> inputs;
    for (auto& [name, w] : work_) {
        if (w.failed && unlisted_.empty()) unlisted_ = name;
        if (w.failed || !w.report->collected) continue;
        inputs.push_back(&w.input);
    }
    plan p = make_plan(inputs, job_.rules);
    execute(p);
    commit_states();
    commit_pending();
    for (const auto& m : report_.mailboxes) report_.total.add(m.done);
    report_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report_;
}

std::string flags_text(const mail::flag_set& f) {
    return "(" + f.to_imap() + ")";
}

}  // namespace

void counts::add(const counts& o) {
    for (side s : both_sides) {
        copied[s] += o.copied[s];
        bytes[s] += o.bytes[s];
        flagged[s] += o.flagged[s];
        moved[s] += o.moved[s];
        expunged[s] += o.expunged[s];
        created[s] += o.created[s];
        removed[s] += o.removed[s];
    }
}

bool counts::any() const {
    for (side s : both_sides)
        if (copied[s] || flagged[s] || moved[s] || expunged[s] || created[s] || removed[s])
            return true;
    return false;
}

bool channel_report::any_failed() const {
    return failed ||
           std::any_of(mailboxes.begin(), mailboxes.end(), [](const auto& m) { return m.failed; });
}

bool channel_report::any_guarded() const {
    return std::any_of(mailboxes.begin(), mailboxes.end(), [](const auto& m) { return m.guarded; });
}

std::string describe(const action& a) {
    return visit_action(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            std::ostringstream o;
            if constexpr (std::is_same_v<T, create_mailbox>)
                o << "create mailbox " << x.mailbox << " on " << side_label(x.on);
            else if constexpr (std::is_same_v<T, remove_mailbox>)
                o << "remove mailbox " << x.mailbox << " on " << side_label(x.on);
            else if constexpr (std::is_same_v<T, copy_message>)
                o << "copy " << x.mailbox << " uid " << x.uid << " " << side_label(x.from) << " -> "
                  << side_label(opposite(x.from)) << " " << flags_text(x.flags());
            else if constexpr (std::is_same_v<T, set_flags>)
                o << "flags " << x.mailbox << " uid " << x.uid << " on " << side_label(x.on) << " +"
                  << flags_text(x.add) << " -" << flags_text(x.remove);
            else if constexpr (std::is_same_v<T, expunge_message>)
                o << "expunge " << x.mailbox << " uid " << x.uid << " on " << side_label(x.on);
            else if constexpr (std::is_same_v<T, move_message>)
                o << "move uid " << x.uid << " on " << side_label(x.on) << " " << x.from_mailbox
                  << " -> " << x.to_mailbox;
            else if constexpr (std::is_same_v<T, update_record>)
                o << "journal " << x.mailbox;
            return o.str();
        },
        a);
}

channel_report run_channel(journal::journal& journal, const channel_job& job, store::store& a,
                           store::store& b, const log::logger& log,
                           const progress_fn& on_progress) {
    return run(journal, job, a, b, log, on_progress).go();
}

}  // namespace tandem::sync
