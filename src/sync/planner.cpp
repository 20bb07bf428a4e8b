// SPDX-License-Identifier: MIT
// make_plan: the sync rules of DESIGN.md as one pure pass over every mailbox pair of a
// channel. Scenario ids (Sxx) refer to shared/research/scenarios.md.
//
// Choices made here where DESIGN.md and the scenarios leave room:
// - Same mail on both sides, neither in the journal (S05, S06, S33): paired by content key,
//   never copied; flags become the union (the merge base is the intersection). Duplicates of
//   one key pair in uid order; the surplus is new.
// - A message gone on one side and new again in the same mailbox of that side with the same
//   identity (a Maildir file that lost its UID) is re-paired, not copied and expunged.
// - A move is only seen when the side that moved propagates, the source mailbox exists on
//   both sides and the other side still holds its copy; else the gone message and the new
//   one are handled on their own (S26 fallback: expunge or \Deleted there, copy here).
// - One-sided records (too large, kept with \Deleted, not copied by direction) are never
//   copied later, and their flags are not tracked: nothing follows from them.
// - A mailbox that exists on one side only and was never synced is created on the other
//   side where the rules allow (S32); where may_create forbids it, nothing is written (no
//   records, so that allowing it later copies everything) and a notice says so.
// - A mailbox removal (S34, S35) leaves the records to the executor: removing the mailbox
//   drops the pair's whole state. A message is "unsynced" on the remaining side when it has
//   no record or only a one-sided record (too large, kept \Deleted): both keep the mailbox.
// - The mass-removal guard (a share, or max_delete_count when set) counts expunges and the
//   \Deleted marks that stand for them; not \Deleted set by the user on the other side (that
//   is a flag, S13), and not moves. A move touching a guarded mailbox is dropped with it.
// - UIDVALIDITY changed with records lacking both a content key and that side's identity
//   (S45): they match nothing, stay one-sided, and the message is copied again (a duplicate,
//   never a deletion).
// - Journal consequences: a record's store actions run in plan order and only the last one
//   carries the record's new state; the earlier ones carry none. The executor stops a
//   mailbox at its first failure, so the journal never claims a flag that was not stored.
//   After a UIDVALIDITY change the old records are all erased before the new ones are put,
//   since a new uid may equal another record's void one (the journal keys records by uid).
#include "tandem/sync/planner.hpp"

#include <algorithm>
#include <cstddef>
#include <deque>
#include <map>
#include <numeric>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace tandem::sync {
namespace {

using mail::both_sides;
using mail::flag_set;
using mail::message_info;
using mail::opposite;
using mail::system_flag;

// Where one record's message stands on one side.
enum class where : std::uint8_t {
    absent,     // no uid on this side: one-sided on the other (or voided by UIDVALIDITY)
    unchanged,  // not listed and not vanished: its flags are the record's
    present,    // listed, with its current flags
    gone,       // vanished, or not listed in a complete listing
};

bool alive(where w) {
    return w == where::unchanged || w == where::present;
}

// Per flag: the value of `x` where x changed it since `base`, else the value of `y`. Both
// sides can only change a binary flag the same way, so the order of x and y does not matter.
flag_set three_way(const flag_set& base, const flag_set& x, const flag_set& y) {
    if (x == base) return y;
    if (y == base) return x;
    flag_set out;
    const auto changed = static_cast<std::uint8_t>(x.system_bits() ^ base.system_bits());
    out.set_system_bits(
        static_cast<std::uint8_t>((x.system_bits() & changed) | (y.system_bits() & ~changed)));
    std::vector<std::string> names;
    std::set_union(base.keywords().begin(), base.keywords().end(), x.keywords().begin(),
                   x.keywords().end(), std::back_inserter(names));
    std::vector<std::string> all;
    std::set_union(names.begin(), names.end(), y.keywords().begin(), y.keywords().end(),
                   std::back_inserter(all));
    for (const auto& k : all) {
        const bool in_x = x.has_keyword(k);
        if (in_x != base.has_keyword(k) ? in_x : y.has_keyword(k)) out.add_keyword(k);
    }
    return out;
}

struct merged_flags {
    per_side<flag_set> target;  // what each side should hold
    flag_set record;            // what the journal keeps as the next base
};

// With one direction only, the receiving side takes the sender's changes and keeps its own;
// the record takes the sender's flags, so the receiver's own changes stay changes (and stay
// on the receiver) at the next sync as well.
merged_flags merge_flags(const flag_set& base, const flag_set& fa, const flag_set& fb,
                         direction dir) {
    merged_flags m;
    switch (dir) {
        case direction::both:
            m.record = three_way(base, fa, fb);
            m.target.a = m.record;
            m.target.b = m.record;
            break;
        case direction::a_to_b:
            m.target.a = fa;
            m.target.b = three_way(base, fa, fb);
            m.record = fa;
            break;
        case direction::b_to_a:
            m.target.a = three_way(base, fb, fa);
            m.target.b = fb;
            m.record = fb;
            break;
    }
    return m;
}

flag_set intersection(const flag_set& x, const flag_set& y) {
    return x.minus(x.minus(y));
}

pair_record one_sided(const pair_record& r, side keep, const flag_set& flags) {
    pair_record out = r;
    const side drop = opposite(keep);
    out.uid[drop] = 0;
    out.identity[drop].clear();
    out.flags = flags;
    return out;
}

enum class group : std::uint8_t { create, update, flags, expunge, copy, move, remove };

// Where an action goes in the plan (planner::assemble). Mailbox indices fit 32 bits: a
// first sync keeps one of these per message.
constexpr std::uint32_t no_box = static_cast<std::uint32_t>(-1);
struct order_keys {
    std::uint32_t box = no_box;   // the mailbox whose part of the plan holds it
    std::uint32_t box2 = no_box;  // another mailbox it belongs to (a move's destination)
    mail::uid u = 0;
    mail::uid u2 = 0;
    group g = group::update;
    side sd = side::a;
    bool erase_only = false;  // update_record that only erases: sorts first
    bool removal = false;     // counts against the mass-removal guard on side `sd`
};

// An action as the planner builds it.
struct item : order_keys {
    action act;
    std::string change;  // set_flags: the change, so that equal changes batch together
};

// An item once emitted: its action in planner::acts_, its change in planner::changes_.
struct slot : order_keys {
    std::uint32_t act = 0;
    std::uint32_t change = 0;
};

enum class mode : std::uint8_t {
    active,    // exists on both sides
    creating,  // exists on `only`, new: created on the other side
    skipped,   // exists on `only`, new, not to be created
    orphan,    // exists on `only`, known: the other side removed it
    vanished,  // exists on neither side
};

struct side_view {
    std::vector<where> at;             // per record
    std::vector<std::uint32_t> msg;    // per record: its message, when present
    std::vector<std::uint32_t> fresh;  // messages no record knows, in uid order
    std::vector<char> taken;           // per message: re-paired, moved or paired already
};

struct move_dest {
    side s;           // the side that moved it
    std::size_t box;  // destination mailbox
    std::uint32_t msg;
};

struct box {
    const mailbox_input* in = nullptr;
    std::size_t rank = 0;  // position in name order
    mode m = mode::active;
    side only = side::a;
    bool revalidated = false;  // UIDVALIDITY changed on a side: records are re-keyed
    per_side<side_view> v;
    std::unordered_map<std::uint32_t, pair_record> rebased;  // record -> re-paired record
    std::unordered_map<std::uint32_t, move_dest> moved;      // record -> where it went

    const pair_record& record(std::uint32_t i) const {
        auto it = rebased.find(i);
        return it == rebased.end() ? in->records[i] : it->second;
    }
    const message_info& message(side s, std::uint32_t j) const { return in->sides[s].messages[j]; }
};

class planner {
  public:
    planner(const std::vector<const mailbox_input*>& in, const channel_rules& rules)
        : rules_(rules) {
        boxes_.resize(in.size());
        std::vector<std::size_t> order(in.size());
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::sort(order.begin(), order.end(),
                  [&](std::size_t x, std::size_t y) { return in[x]->name < in[y]->name; });
        for (std::size_t r = 0; r < order.size(); ++r) boxes_[order[r]].rank = r;
        for (std::size_t b = 0; b < in.size(); ++b) boxes_[b].in = in[b];
    }

    plan run();

  private:
    void setup(std::size_t b);
    void classify(box& bx, side s);
    void rematch(box& bx, side s, const std::vector<std::uint32_t>& order);
    void detect_moves(side s);
    void decide_record(std::size_t b, std::uint32_t i);
    void pair_new(std::size_t b);
    void new_message(std::size_t b, side s, std::uint32_t j);
    void decide_orphan(std::size_t b);
    void finish(std::size_t b, const pair_record* orig, const pair_record& base, bool rebased,
                std::vector<item> acts, std::optional<pair_record> final_record);
    void put_update(std::size_t b, std::optional<pair_record> old_record,
                    std::optional<pair_record> new_record);
    item flags_item(std::size_t b, side on, mail::uid uid, const flag_set& now,
                    const flag_set& target);
    void add_notice(std::size_t b, notice::kind what, side on, mail::uid uid, std::string text);
    void push(item&& it);
    void guard();
    plan assemble();

    const channel_rules& rules_;
    std::vector<box> boxes_;
    std::vector<action> acts_;  // in the order emitted; assemble() puts them in plan order
    std::deque<slot> slots_;
    std::vector<std::string> changes_;  // the distinct flag changes, by first emission
    std::unordered_map<std::string, std::uint32_t> change_ids_;
    std::vector<std::pair<std::size_t, notice>> notices_;
    std::vector<std::size_t> guarded_;
};

std::string side_text(side s) {
    return std::string(mail::name(s));
}

void planner::add_notice(std::size_t b, notice::kind what, side on, mail::uid uid,
                         std::string text) {
    notices_.push_back({b, notice{what, boxes_[b].in->name, on, uid, std::move(text)}});
}

void planner::push(item&& it) {
    slot sl;
    static_cast<order_keys&>(sl) = it;
    sl.act = static_cast<std::uint32_t>(acts_.size());
    if (it.g == group::flags) {
        auto [at, added] =
            change_ids_.try_emplace(it.change, static_cast<std::uint32_t>(changes_.size()));
        if (added) changes_.push_back(std::move(it.change));
        sl.change = at->second;
    }
    acts_.push_back(std::move(it.act));
    slots_.push_back(sl);
}

void planner::put_update(std::size_t b, std::optional<pair_record> old_record,
                         std::optional<pair_record> new_record) {
    item it;
    it.g = group::update;
    it.box = b;
    const pair_record& key = old_record ? *old_record : *new_record;
    it.u = key.uid.a;
    it.u2 = key.uid.b;
    it.erase_only = !new_record.has_value();
    it.act = update_record{boxes_[b].in->name, std::move(old_record), std::move(new_record)};
    push(std::move(it));
}

item planner::flags_item(std::size_t b, side on, mail::uid uid, const flag_set& now,
                         const flag_set& target) {
    item it;
    it.g = group::flags;
    it.box = b;
    it.sd = on;
    it.u = uid;
    set_flags sf;
    sf.mailbox = boxes_[b].in->name;
    sf.on = on;
    sf.uid = uid;
    sf.add = target.minus(now);
    sf.remove = now.minus(target);
    it.change = sf.add.to_imap() + '\n' + sf.remove.to_imap();
    it.act = std::move(sf);
    return it;
}

// Emits one record's actions with its journal consequence: journal-only when nothing
// changes on a store, else on the last store action (see the top of this file).
void planner::finish(std::size_t b, const pair_record* orig, const pair_record& base, bool rebased,
                     std::vector<item> acts, std::optional<pair_record> final_record) {
    const bool split = boxes_[b].revalidated && rebased;
    auto opt = [](const pair_record* r) {
        return r ? std::optional<pair_record>(*r) : std::optional<pair_record>();
    };
    auto journal_only = [&](const pair_record* from, std::optional<pair_record> to) {
        if (!from && !to) return;
        if (from && to && *from == *to) return;
        if (split && from && to) {
            put_update(b, *from, std::nullopt);
            put_update(b, std::nullopt, std::move(to));
        } else {
            put_update(b, opt(from), std::move(to));
        }
    };
    if (acts.empty()) {
        journal_only(orig, std::move(final_record));
        return;
    }
    const pair_record* from = orig;
    if (rebased) {
        journal_only(orig, base);
        from = &base;
    }
    visit_action(
        [&](auto& a) {
            using T = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<T, set_flags> || std::is_same_v<T, expunge_message>) {
                a.old_record = opt(from);
                a.new_record = std::move(final_record);
            } else if constexpr (std::is_same_v<T, move_message>) {
                a.old_record = *from;
                a.new_record = std::move(*final_record);
            }
        },
        acts.back().act);
    for (auto& a : acts) push(std::move(a));
}

void planner::setup(std::size_t b) {
    box& bx = boxes_[b];
    const mailbox_input& in = *bx.in;
    const bool ea = in.sides.a.exists, eb = in.sides.b.exists;
    if (ea && eb) {
        bx.m = mode::active;
        bx.revalidated = in.sides.a.uidvalidity_changed || in.sides.b.uidvalidity_changed;
        classify(bx, side::a);
        classify(bx, side::b);
        return;
    }
    if (!ea && !eb) {  // S36: removed on both sides
        bx.m = mode::vanished;
        for (const auto& r : in.records) put_update(b, r, std::nullopt);
        return;
    }
    const side s = ea ? side::a : side::b;
    const side o = opposite(s);
    bx.only = s;
    if (in.known) {  // S34, S35: the other side removed it
        bx.m = mode::orphan;
        classify(bx, s);
        return;
    }
    if (!rules_.propagates_from(s) || !rules_.may_create[o]) {  // S32 "Create None"
        bx.m = mode::skipped;
        if (rules_.propagates_from(s))
            add_notice(b, notice::kind::mailbox_not_created, o, 0,
                       "mailbox exists on side " + side_text(s) + " only; not created on side " +
                           side_text(o) + " (creating mailboxes there is not allowed)");
        return;
    }
    // S32: a new mailbox. Records of a mailbox the journal has no state for are stale.
    bx.m = mode::creating;
    for (const auto& r : in.records) put_update(b, r, std::nullopt);
    item it;
    it.g = group::create;
    it.box = b;
    it.sd = o;
    it.act = create_mailbox{in.name, o};
    push(std::move(it));
    side_view& v = bx.v[s];
    const auto& msgs = in.sides[s].messages;
    v.taken.assign(msgs.size(), 0);
    v.fresh.resize(msgs.size());
    std::iota(v.fresh.begin(), v.fresh.end(), std::uint32_t{0});
    std::stable_sort(v.fresh.begin(), v.fresh.end(),
                     [&](std::uint32_t x, std::uint32_t y) { return msgs[x].uid < msgs[y].uid; });
    v.fresh.erase(
        std::unique(v.fresh.begin(), v.fresh.end(),
                    [&](std::uint32_t x, std::uint32_t y) { return msgs[x].uid == msgs[y].uid; }),
        v.fresh.end());
}

void planner::classify(box& bx, side s) {
    const mailbox_input& in = *bx.in;
    const side_report& rep = in.sides[s];
    const auto& recs = in.records;
    const auto& msgs = rep.messages;
    side_view& v = bx.v[s];
    const auto n = static_cast<std::uint32_t>(recs.size());
    v.at.assign(n, where::absent);
    v.msg.assign(n, 0);
    v.taken.assign(msgs.size(), 0);

    // The listed messages in uid order, each uid once.
    std::vector<std::uint32_t> order(msgs.size());
    std::iota(order.begin(), order.end(), std::uint32_t{0});
    auto by_uid = [&](std::uint32_t x, std::uint32_t y) { return msgs[x].uid < msgs[y].uid; };
    if (!std::is_sorted(order.begin(), order.end(), by_uid))
        std::stable_sort(order.begin(), order.end(), by_uid);
    order.erase(
        std::unique(order.begin(), order.end(),
                    [&](std::uint32_t x, std::uint32_t y) { return msgs[x].uid == msgs[y].uid; }),
        order.end());

    if (rep.uidvalidity_changed) {
        rematch(bx, s, order);
        return;
    }

    // Records by their uid on this side: a sorted vector (journals hand them over sorted
    // by uid a, so side a usually needs no sort at all).
    std::vector<std::pair<mail::uid, std::uint32_t>> index;
    index.reserve(recs.size());
    const where unlisted = rep.complete ? where::gone : where::unchanged;
    for (std::uint32_t i = 0; i < n; ++i) {
        if (recs[i].uid[s] == 0) continue;
        index.emplace_back(recs[i].uid[s], i);
        v.at[i] = unlisted;
    }
    if (!std::is_sorted(index.begin(), index.end())) std::sort(index.begin(), index.end());
    auto find = [&](mail::uid u) -> std::uint32_t {
        auto it =
            std::lower_bound(index.begin(), index.end(), std::pair<mail::uid, std::uint32_t>{u, 0});
        return it != index.end() && it->first == u ? it->second : n;
    };
    for (std::uint32_t j : order) {
        const std::uint32_t i = find(msgs[j].uid);
        if (i == n) {
            v.fresh.push_back(j);
        } else {
            v.at[i] = where::present;
            v.msg[i] = j;
        }
    }
    if (!rep.complete) {
        for (mail::uid u : rep.vanished) {
            const std::uint32_t i = find(u);
            if (i != n && v.at[i] != where::present) v.at[i] = where::gone;
        }
    }
}

// S43, S44, S46: the records' uids on side s are void. Messages are found again by content
// key, then by the side's identity; duplicates match in uid order. A record left unmatched
// keeps only its other side (nothing is deleted for this reason alone).
void planner::rematch(box& bx, side s, const std::vector<std::uint32_t>& order) {
    const auto& recs = bx.in->records;
    const auto& msgs = bx.in->sides[s].messages;
    side_view& v = bx.v[s];
    std::vector<std::uint32_t> candidates;
    for (std::uint32_t i = 0; i < recs.size(); ++i)
        if (recs[i].uid[s] != 0) candidates.push_back(i);
    bx.rebased.reserve(candidates.size());
    std::stable_sort(candidates.begin(), candidates.end(), [&](std::uint32_t x, std::uint32_t y) {
        return recs[x].uid[s] < recs[y].uid[s];
    });

    auto link = [&](std::uint32_t i, std::uint32_t j) {
        pair_record r = bx.record(i);
        r.uid[s] = msgs[j].uid;
        if (!msgs[j].identity.empty()) r.identity[s] = msgs[j].identity;
        bx.rebased[i] = std::move(r);
        v.at[i] = where::present;
        v.msg[i] = j;
    };
    // One pass: records by `key_of` (a chain per key, in old uid order), then each message
    // (uid order) takes the next record of its key.
    auto pass = [&](auto key_of_record, auto key_of_message, const std::vector<std::uint32_t>& in,
                    std::vector<std::uint32_t>& rest) {
        constexpr std::uint32_t end = 0xffffffff;
        std::unordered_map<std::string_view, std::uint32_t> head;
        std::vector<std::uint32_t> next(recs.size(), end);
        head.reserve(candidates.size());
        for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
            if (v.at[*it] == where::present) continue;
            const std::string& k = key_of_record(recs[*it]);
            if (k.empty()) continue;
            auto [h, fresh] = head.try_emplace(k, *it);
            if (!fresh) {
                next[*it] = h->second;
                h->second = *it;
            }
        }
        for (std::uint32_t j : in) {
            const std::string& k = key_of_message(msgs[j]);
            auto h = k.empty() ? head.end() : head.find(k);
            if (h == head.end() || h->second == end) {
                rest.push_back(j);
                continue;
            }
            const std::uint32_t i = h->second;
            h->second = next[i];
            link(i, j);
        }
    };
    std::vector<std::uint32_t> rest;
    pass([](const pair_record& r) -> const std::string& { return r.content_key; },
         [](const message_info& m) -> const std::string& { return m.content_key; }, order, rest);
    pass([s](const pair_record& r) -> const std::string& { return r.identity[s]; },
         [](const message_info& m) -> const std::string& { return m.identity; }, rest, v.fresh);
    for (std::uint32_t i : candidates) {
        if (v.at[i] == where::present) continue;
        pair_record r = bx.record(i);
        r.uid[s] = 0;
        r.identity[s].clear();
        bx.rebased[i] = std::move(r);
        v.at[i] = where::absent;
    }
}

// S26-S29: a message gone on side s and new on side s with the same identity moved there.
// First by the store's own id; then by content key, since a copy the executor appended has
// no recorded id on the receiving side.
void planner::detect_moves(side s) {
    const side o = opposite(s);
    // Without propagation from s, only a re-appearance in the same mailbox is recognised.
    const bool cross = rules_.propagates_from(s);
    struct cand {
        std::size_t box;
        std::uint32_t idx;
    };
    std::vector<cand> sources, dests;
    for (std::size_t b = 0; b < boxes_.size(); ++b) {
        const box& bx = boxes_[b];
        if (bx.m != mode::active) continue;
        const auto& at = bx.v[s].at;
        for (std::uint32_t i = 0; i < at.size(); ++i)
            if (at[i] == where::gone && alive(bx.v[o].at[i])) sources.push_back({b, i});
    }
    if (sources.empty()) return;
    for (std::size_t b = 0; b < boxes_.size(); ++b) {
        const box& bx = boxes_[b];
        if (!(bx.m == mode::active || (bx.m == mode::creating && bx.only == s))) continue;
        for (std::uint32_t j : bx.v[s].fresh) dests.push_back({b, j});
    }
    if (dests.empty()) return;
    std::vector<char> used(sources.size(), 0);

    auto link = [&](const cand& src, const cand& dst) {
        box& from = boxes_[src.box];
        box& to = boxes_[dst.box];
        const std::uint32_t i = src.idx, j = dst.idx;
        to.v[s].taken[j] = 1;
        if (&from == &to) {  // back in the same mailbox under a new uid: re-pair
            const message_info& m = to.message(s, j);
            pair_record r = from.record(i);
            r.uid[s] = m.uid;
            if (!m.identity.empty()) r.identity[s] = m.identity;
            if (r.content_key.empty()) r.content_key = m.content_key;
            from.rebased[i] = std::move(r);
            from.v[s].at[i] = where::present;
            from.v[s].msg[i] = j;
        } else {
            from.moved[i] = move_dest{s, dst.box, j};
        }
    };
    // One pass: group the unused sources by key, then each key's destinations take its
    // sources in (mailbox name, uid) order.
    auto pass = [&](auto source_key, auto dest_key) {
        std::unordered_map<std::string,
                           std::pair<std::vector<std::size_t>, std::vector<std::size_t>>>
            by_key;
        auto scoped = [&](std::size_t b, const std::string& k) {
            return cross ? k : std::to_string(b) + '\n' + k;
        };
        for (std::size_t n = 0; n < sources.size(); ++n) {
            if (used[n]) continue;
            const std::string& k = source_key(boxes_[sources[n].box].record(sources[n].idx));
            if (!k.empty()) by_key[scoped(sources[n].box, k)].first.push_back(n);
        }
        if (by_key.empty()) return;
        for (std::size_t n = 0; n < dests.size(); ++n) {
            const box& bx = boxes_[dests[n].box];
            if (bx.v[s].taken[dests[n].idx]) continue;
            const std::string& k = dest_key(bx.message(s, dests[n].idx));
            if (k.empty()) continue;
            auto it = by_key.find(scoped(dests[n].box, k));
            if (it != by_key.end()) it->second.second.push_back(n);
        }
        for (auto& [key, lists] : by_key) {
            auto& [src, dst] = lists;
            if (dst.empty()) continue;
            std::sort(src.begin(), src.end(), [&](std::size_t x, std::size_t y) {
                const cand &cx = sources[x], &cy = sources[y];
                return std::pair(boxes_[cx.box].rank, boxes_[cx.box].record(cx.idx).uid[s]) <
                       std::pair(boxes_[cy.box].rank, boxes_[cy.box].record(cy.idx).uid[s]);
            });
            std::sort(dst.begin(), dst.end(), [&](std::size_t x, std::size_t y) {
                const cand &cx = dests[x], &cy = dests[y];
                return std::pair(boxes_[cx.box].rank, boxes_[cx.box].message(s, cx.idx).uid) <
                       std::pair(boxes_[cy.box].rank, boxes_[cy.box].message(s, cy.idx).uid);
            });
            for (std::size_t n = 0; n < std::min(src.size(), dst.size()); ++n) {
                used[src[n]] = 1;
                link(sources[src[n]], dests[dst[n]]);
            }
        }
    };
    pass([s](const pair_record& r) -> const std::string& { return r.identity[s]; },
         [](const message_info& m) -> const std::string& { return m.identity; });
    pass([](const pair_record& r) -> const std::string& { return r.content_key; },
         [](const message_info& m) -> const std::string& { return m.content_key; });
}

void planner::decide_record(std::size_t b, std::uint32_t i) {
    box& bx = boxes_[b];
    const pair_record& orig = bx.in->records[i];
    const bool rebased = bx.rebased.count(i) != 0;
    per_side<where> at{bx.v.a.at[i], bx.v.b.at[i]};
    if (!rebased && at.a == where::unchanged && at.b == where::unchanged) return;
    const pair_record& r = bx.record(i);
    auto now = [&](side s) -> const flag_set& {
        return at[s] == where::present ? bx.message(s, bx.v[s].msg[i]).flags : r.flags;
    };

    std::vector<item> acts;
    std::optional<pair_record> final_record;
    if (r.uid.a == 0 && r.uid.b == 0) {
        // nothing left on either side: forget it
    } else if (r.uid.a == 0 || r.uid.b == 0) {
        // One-sided: kept while its message lives (S19 "sync 2: no-op", S56).
        const side s = r.uid.a != 0 ? side::a : side::b;
        if (alive(at[s])) final_record = r;
    } else if (alive(at.a) && alive(at.b)) {
        // S09-S15: three-way merge per flag; STORE only what differs (S11).
        const flag_set& fa = now(side::a);
        const flag_set& fb = now(side::b);
        final_record = r;
        if (fa != r.flags || fb != r.flags) {
            merged_flags m = merge_flags(r.flags, fa, fb, rules_.dir);
            for (side s : both_sides)
                if (m.target[s] != now(s))
                    acts.push_back(flags_item(b, s, r.uid[s], now(s), m.target[s]));
            final_record->flags = std::move(m.record);
        }
    } else if (!alive(at.a) && !alive(at.b)) {
        // S20: expunged on both sides.
    } else {
        const side s = alive(at.a) ? side::b : side::a;  // where it is gone
        const side o = opposite(s);
        const flag_set& fo = now(o);
        if (auto mv = bx.moved.find(i); mv != bx.moved.end()) {
            // S26, S29: moved on s; move the other copy along, with the flag changes of both.
            const move_dest& d = mv->second;
            const box& to = boxes_[d.box];
            const message_info& m = to.message(s, d.msg);
            per_side<flag_set> cur;
            cur[s] = m.flags;
            cur[o] = fo;
            merged_flags mf = merge_flags(r.flags, cur.a, cur.b, rules_.dir);
            if (mf.target[s] != cur[s]) {
                item f = flags_item(d.box, s, m.uid, cur[s], mf.target[s]);
                f.box2 = b;
                acts.push_back(std::move(f));
            }
            pair_record next = r;
            next.uid[s] = m.uid;
            next.uid[o] = 0;  // the executor fills in the moved copy's uid
            if (!m.identity.empty()) next.identity[s] = m.identity;
            if (next.content_key.empty()) next.content_key = m.content_key;
            next.flags = mf.record;
            item it;
            it.g = group::move;
            it.box = b;
            it.box2 = d.box;
            it.sd = o;
            it.u = r.uid[o];
            move_message mm;
            mm.on = o;
            mm.from_mailbox = bx.in->name;
            mm.to_mailbox = to.in->name;
            mm.uid = r.uid[o];
            mm.add = mf.target[o].minus(fo);
            mm.remove = fo.minus(mf.target[o]);
            it.act = std::move(mm);
            acts.push_back(std::move(it));
            final_record = std::move(next);
        } else if (!rules_.propagates_from(s)) {
            // s's own change stays on s; the other copy stays, known on its side only.
            final_record = one_sided(r, o, fo);
        } else {
            // S19, S22: the expunge wins over a flag change on the other side.
            if (fo != r.flags)
                add_notice(b, notice::kind::conflict, o, r.uid[o],
                           "uid " + std::to_string(r.uid[o]) + " on side " + side_text(o) +
                               " changed flags (" + fo.to_imap() + ") but side " + side_text(s) +
                               " expunged it; the expunge wins");
            if (rules_.may_expunge[o]) {
                item it;
                it.g = group::expunge;
                it.box = b;
                it.sd = o;
                it.u = r.uid[o];
                it.removal = true;
                it.act = expunge_message{bx.in->name, o, r.uid[o], std::nullopt, std::nullopt};
                acts.push_back(std::move(it));
            } else {
                flag_set marked = fo;
                marked.set(system_flag::deleted);
                if (marked != fo) {
                    item f = flags_item(b, o, r.uid[o], fo, marked);
                    f.removal = true;
                    acts.push_back(std::move(f));
                }
                final_record = one_sided(r, o, marked);
            }
        }
    }
    finish(b, &orig, r, rebased, std::move(acts), std::move(final_record));
}

// S05, S06, S33: the same mail new on both sides pairs by content key, in uid order.
void planner::pair_new(std::size_t b) {
    box& bx = boxes_[b];
    std::unordered_map<std::string_view, std::pair<std::vector<std::uint32_t>, std::size_t>> on_a;
    for (std::uint32_t j : bx.v.a.fresh) {
        const message_info& m = bx.message(side::a, j);
        if (!bx.v.a.taken[j] && !m.content_key.empty()) on_a[m.content_key].first.push_back(j);
    }
    if (on_a.empty()) return;
    for (std::uint32_t jb : bx.v.b.fresh) {
        const message_info& mb = bx.message(side::b, jb);
        if (bx.v.b.taken[jb] || mb.content_key.empty()) continue;
        auto it = on_a.find(mb.content_key);
        if (it == on_a.end() || it->second.second == it->second.first.size()) continue;
        const std::uint32_t ja = it->second.first[it->second.second++];
        const message_info& ma = bx.message(side::a, ja);
        bx.v.a.taken[ja] = 1;
        bx.v.b.taken[jb] = 1;
        // With the intersection as base, each side's extra flags count as its own additions.
        merged_flags mf =
            merge_flags(intersection(ma.flags, mb.flags), ma.flags, mb.flags, rules_.dir);
        pair_record r;
        r.uid = {ma.uid, mb.uid};
        r.flags = mf.record;
        r.identity = {ma.identity, mb.identity};
        r.content_key = ma.content_key;
        r.size = ma.size;
        std::vector<item> acts;
        if (mf.target.a != ma.flags)
            acts.push_back(flags_item(b, side::a, ma.uid, ma.flags, mf.target.a));
        if (mf.target.b != mb.flags)
            acts.push_back(flags_item(b, side::b, mb.uid, mb.flags, mf.target.b));
        finish(b, nullptr, r, false, std::move(acts), std::move(r));
    }
}

// S01, S03: copied with its flags; S56: too large; one-way channels record it one-sided so
// that it is not new again next time.
void planner::new_message(std::size_t b, side s, std::uint32_t j) {
    const box& bx = boxes_[b];
    const message_info& m = bx.message(s, j);
    copy_message copy{bx.in->name, s, m.uid, &m};
    if (!rules_.propagates_from(s)) {
        put_update(b, std::nullopt, copy.new_record());
        return;
    }
    if (rules_.max_size != 0 && m.size > rules_.max_size) {
        add_notice(b, notice::kind::skipped_too_large, s, m.uid,
                   "uid " + std::to_string(m.uid) + " on side " + side_text(s) + " has " +
                       std::to_string(m.size) + " bytes, over the limit of " +
                       std::to_string(rules_.max_size) + "; not copied");
        put_update(b, std::nullopt, copy.new_record());
        return;
    }
    item it;
    it.g = group::copy;
    it.box = b;
    it.sd = s;
    it.u = m.uid;
    it.act = std::move(copy);
    push(std::move(it));
}

// S34, S35: removed on one side. The other copy goes only when allowed and when it holds
// nothing that was not synced; never are its messages expunged because a folder vanished.
void planner::decide_orphan(std::size_t b) {
    const box& bx = boxes_[b];
    const side s = bx.only, o = opposite(s);
    const auto& recs = bx.in->records;
    std::size_t unsynced = 0;
    for (std::uint32_t j : bx.v[s].fresh) unsynced += bx.v[s].taken[j] ? 0 : 1;
    for (std::uint32_t i = 0; i < recs.size(); ++i)
        if (recs[i].uid[s] != 0 && recs[i].uid[o] == 0 && alive(bx.v[s].at[i])) ++unsynced;
    const bool revalidated = bx.in->sides[s].uidvalidity_changed;
    if (rules_.propagates_from(o) && rules_.may_remove[s] && unsynced == 0 && !revalidated) {
        item it;
        it.g = group::remove;
        it.box = b;
        it.sd = s;
        it.act = remove_mailbox{bx.in->name, s};
        push(std::move(it));
        return;
    }
    std::string why = revalidated ? "its UIDVALIDITY changed"
                      : unsynced  ? std::to_string(unsynced) + " message(s) there are not synced"
                      : !rules_.propagates_from(o)
                          ? "the channel does not copy from side " + side_text(o)
                          : "removing mailboxes there is not allowed";
    add_notice(b, notice::kind::mailbox_gone, o, 0,
               "mailbox was removed on side " + side_text(o) + "; kept on side " + side_text(s) +
                   " untouched (" + why + ")");
}

// S25: an unmounted Maildir or a wiped account must never empty the other side.
void planner::guard() {
    std::vector<per_side<std::size_t>> removals(boxes_.size());
    for (const auto& it : slots_)
        if (it.removal) ++removals[it.box][it.sd];
    std::vector<char> tripped(boxes_.size(), 0);
    for (std::size_t b = 0; b < boxes_.size(); ++b) {
        for (side s : both_sides) {
            const std::size_t count = removals[b][s];
            if (count == 0 || rules_.force) continue;
            std::size_t known = 0;
            if (const auto& counts = boxes_[b].in->record_counts)
                known = (*counts)[s];
            else
                for (const auto& r : boxes_[b].in->records) known += r.uid[s] != 0 ? 1 : 0;
            std::string limit;
            if (rules_.max_delete_count) {
                // An absolute limit is the user's own number: no minimum applies.
                if (count <= *rules_.max_delete_count) continue;
                limit = std::to_string(*rules_.max_delete_count) + " messages";
            } else {
                if (count < rules_.guard_min_removals ||
                    static_cast<double>(count) <=
                        rules_.max_delete_share * static_cast<double>(known))
                    continue;
                limit = std::to_string(static_cast<int>(rules_.max_delete_share * 100 + 0.5)) + "%";
            }
            tripped[b] = 1;
            add_notice(b, notice::kind::guard_tripped, s, 0,
                       "would remove " + std::to_string(count) + " of " + std::to_string(known) +
                           " messages on side " + side_text(s) + " (limit " + limit +
                           "); mailbox left untouched, run with --force to apply");
        }
    }
    auto hit = [&](std::uint32_t b) { return b != no_box && tripped[b]; };
    std::erase_if(slots_, [&](const slot& it) { return hit(it.box) || hit(it.box2); });
    std::erase_if(notices_, [&](const auto& n) {
        return tripped[n.first] && n.second.what != notice::kind::guard_tripped;
    });
    for (std::size_t b = 0; b < boxes_.size(); ++b)
        if (tripped[b]) guarded_.push_back(b);
}

plan planner::assemble() {
    plan out;
    auto rank = [&](std::uint32_t b) { return boxes_[b].rank; };
    std::vector<slot*> creates, moves, removes;
    std::vector<std::vector<slot*>> per_box(boxes_.size());
    for (auto& it : slots_) {
        switch (it.g) {
            case group::create:
                creates.push_back(&it);
                break;
            case group::move:
                moves.push_back(&it);
                break;
            case group::remove:
                removes.push_back(&it);
                break;
            default:
                per_box[it.box].push_back(&it);
                break;
        }
    }
    auto by_box_side = [&](const slot* x, const slot* y) {
        return std::pair(rank(x->box), x->sd) < std::pair(rank(y->box), y->sd);
    };
    std::sort(creates.begin(), creates.end(), by_box_side);
    std::sort(removes.begin(), removes.end(), by_box_side);
    std::sort(moves.begin(), moves.end(), [&](const slot* x, const slot* y) {
        return std::tuple(x->sd, rank(x->box), rank(x->box2), x->u) <
               std::tuple(y->sd, rank(y->box), rank(y->box2), y->u);
    });
    std::vector<std::uint32_t> box_order(boxes_.size());
    std::iota(box_order.begin(), box_order.end(), std::uint32_t{0});
    std::sort(box_order.begin(), box_order.end(),
              [&](std::uint32_t x, std::uint32_t y) { return rank(x) < rank(y); });

    // Within a mailbox: by group, erasures first, side, flag change (in text order), uid.
    std::vector<std::uint32_t> by_text(changes_.size());
    std::iota(by_text.begin(), by_text.end(), std::uint32_t{0});
    std::sort(by_text.begin(), by_text.end(),
              [&](std::uint32_t x, std::uint32_t y) { return changes_[x] < changes_[y]; });
    std::vector<std::uint32_t> change_rank(changes_.size());
    for (std::uint32_t r = 0; r < by_text.size(); ++r) change_rank[by_text[r]] = r;
    auto key = [&](const slot* it) {
        return std::tuple(static_cast<std::uint8_t>(it->g), !it->erase_only, it->sd,
                          it->g == group::flags ? change_rank[it->change] : 0u, it->u, it->u2);
    };
    auto before = [&](const slot* x, const slot* y) { return key(x) < key(y); };
    for (auto& v : per_box)
        if (!std::is_sorted(v.begin(), v.end(), before))
            std::stable_sort(v.begin(), v.end(), before);

    // The plan's order as positions into acts_, then acts_ permuted into it in place: a
    // second vector of every action would double the peak of a first sync.
    std::vector<std::uint32_t> dest(acts_.size(), no_box);
    std::uint32_t next = 0;
    auto place = [&](const std::vector<slot*>& v) {
        for (const slot* it : v) dest[it->act] = next++;
    };
    place(creates);
    for (std::uint32_t b : box_order) place(per_box[b]);
    place(moves);
    place(removes);
    const std::uint32_t kept = next;
    for (auto& d : dest)
        if (d == no_box) d = next++;  // left out by the guard: moved past the end, dropped
    for (std::uint32_t i = 0; i < dest.size(); ++i)
        while (dest[i] != i) {
            const std::uint32_t j = dest[i];
            std::swap(acts_[i], acts_[j]);
            std::swap(dest[i], dest[j]);
        }
    acts_.resize(kept);
    out.actions = std::move(acts_);
    slots_.clear();

    std::stable_sort(notices_.begin(), notices_.end(), [&](const auto& x, const auto& y) {
        return std::tuple(rank(x.first), x.second.what, x.second.on, x.second.uid) <
               std::tuple(rank(y.first), y.second.what, y.second.on, y.second.uid);
    });
    for (auto& n : notices_) out.notices.push_back(std::move(n.second));
    std::sort(guarded_.begin(), guarded_.end(),
              [&](std::size_t x, std::size_t y) { return rank(x) < rank(y); });
    for (std::size_t b : guarded_) out.guarded_mailboxes.push_back(boxes_[b].in->name);
    return out;
}

plan planner::run() {
    for (std::size_t b = 0; b < boxes_.size(); ++b) setup(b);
    // Most records and new messages make one action: room for them at once, so that the
    // vector of a first sync does not grow by doubling (three times its size at a copy).
    std::size_t expected = acts_.size() + boxes_.size();  // + a mailbox removal each
    for (const auto& bx : boxes_) {
        expected += bx.in->records.size();
        for (side s : both_sides) expected += bx.v[s].fresh.size();
    }
    acts_.reserve(expected);
    for (side s : both_sides) detect_moves(s);
    for (std::size_t b = 0; b < boxes_.size(); ++b) {
        box& bx = boxes_[b];
        switch (bx.m) {
            case mode::active: {
                const auto n = static_cast<std::uint32_t>(bx.in->records.size());
                for (std::uint32_t i = 0; i < n; ++i) decide_record(b, i);
                pair_new(b);
                for (side s : both_sides)
                    for (std::uint32_t j : bx.v[s].fresh)
                        if (!bx.v[s].taken[j]) new_message(b, s, j);
                break;
            }
            case mode::creating:
                for (std::uint32_t j : bx.v[bx.only].fresh)
                    if (!bx.v[bx.only].taken[j]) new_message(b, bx.only, j);
                break;
            case mode::orphan:
                decide_orphan(b);
                break;
            case mode::skipped:
            case mode::vanished:
                break;
        }
    }
    guard();
    return assemble();
}

}  // namespace

pair_record copy_message::new_record() const {
    pair_record r;
    r.uid[from] = uid;
    r.flags = source->flags;
    r.identity[from] = source->identity;
    r.content_key = source->content_key;
    r.size = source->size;
    return r;
}

input_filter::input_filter(mailbox_input& in, bool everything, keeps_fn keeps)
    : in_(in), everything_(everything), keeps_(std::move(keeps)) {
    for (side s : both_sides) {
        auto& msgs = in_.sides[s].messages;
        auto by_uid = [](const message_info& x, const message_info& y) { return x.uid < y.uid; };
        if (!std::is_sorted(msgs.begin(), msgs.end(), by_uid))
            std::stable_sort(msgs.begin(), msgs.end(), by_uid);
        msgs.erase(std::unique(msgs.begin(), msgs.end(),
                               [](const auto& x, const auto& y) { return x.uid == y.uid; }),
                   msgs.end());
        auto& gone = in_.sides[s].vanished;
        if (!std::is_sorted(gone.begin(), gone.end())) std::sort(gone.begin(), gone.end());
        drop_[s].assign(msgs.size(), 0);
    }
}

message_info* input_filter::find(side s, mail::uid uid) {
    auto& msgs = in_.sides[s].messages;
    auto it = std::lower_bound(msgs.begin(), msgs.end(), uid,
                               [](const message_info& m, mail::uid u) { return m.uid < u; });
    return it != msgs.end() && it->uid == uid ? &*it : nullptr;
}

void input_filter::offer(pair_record r) {
    if (keeps(r.uid, r.flags)) take(std::move(r));
}

bool input_filter::keeps(const per_side<mail::uid>& uid, const mail::flag_set& flags) {
    bool named = false;
    per_side<message_info*> at{nullptr, nullptr};
    for (side s : both_sides) {
        if (uid[s] == 0) continue;
        const side_report& rep = in_.sides[s];
        message_info* m = find(s, uid[s]);
        if (!m) {
            named = named || rep.complete ||
                    std::binary_search(rep.vanished.begin(), rep.vanished.end(), uid[s]);
            continue;
        }
        at[s] = m;
        if (keeps_) {
            for (const auto& k : flags.keywords()) {
                if (m->flags.has_keyword(k)) continue;
                auto& cache = kept_[s];
                auto it = std::find_if(cache.begin(), cache.end(),
                                       [&](const auto& e) { return e.first == k; });
                if (it == cache.end()) it = cache.insert(cache.end(), {k, keeps_(s, k)});
                if (!it->second) m->flags.add_keyword(k);
            }
        }
        named = named || m->flags != flags;
    }
    if (named || everything_) return true;
    for (side s : both_sides)
        if (at[s]) drop_[s][static_cast<std::size_t>(at[s] - in_.sides[s].messages.data())] = 1;
    return false;
}

void input_filter::finish(const per_side<std::size_t>& counts) {
    if (everything_) return;
    in_.record_counts = counts;
    for (side s : both_sides) {
        auto& msgs = in_.sides[s].messages;
        std::size_t k = 0;
        for (std::size_t j = 0; j < msgs.size(); ++j) {
            if (drop_[s][j]) continue;
            if (k != j) msgs[k] = std::move(msgs[j]);
            ++k;
        }
        msgs.resize(k);
        msgs.shrink_to_fit();
        drop_[s].clear();
    }
}

plan make_plan(const std::vector<const mailbox_input*>& mailboxes, const channel_rules& rules) {
    return planner(mailboxes, rules).run();
}

plan make_plan(const std::vector<mailbox_input>& mailboxes, const channel_rules& rules) {
    std::vector<const mailbox_input*> in;
    in.reserve(mailboxes.size());
    for (const auto& m : mailboxes) in.push_back(&m);
    return make_plan(in, rules);
}

}  // namespace tandem::sync
