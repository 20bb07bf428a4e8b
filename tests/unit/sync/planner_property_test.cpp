// SPDX-License-Identifier: MIT
// Properties of the planner over random histories (after Dovecot's tree-sync test and the
// global invariants of scenarios.md section 1): a tiny in-memory model of two stores and the
// journal applies each plan the way the executor does; then
// - idempotence: planning again right after gives no action;
// - convergence: both sides hold the same messages (by content key) with the same flags;
// - the journal knows exactly the messages each side holds;
// - symmetry: swapping a and b gives the mirrored plan.
#include "planner_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace tandem::sync::test {
namespace {

using mail::opposite;

// ---- the model

struct m_msg {
    flag_set flags;
    std::string key;
    std::string id;
};

struct m_box {
    std::map<mail::uid, m_msg> msgs;
    mail::uid next_uid = 1;
    bool revalidated = false;  // UIDVALIDITY changed since the last sync
};

struct m_side {
    std::map<std::string, m_box> boxes;
    int next_id = 0;
    std::string tag;
    std::string new_id() { return tag + std::to_string(++next_id); }
};

struct world {
    per_side<m_side> sides;
    std::map<std::string, std::vector<pair_record>> journal;  // mailbox pairs with state

    world() {
        sides.a.tag = "A";
        sides.b.tag = "B";
    }
};

std::string where_text(const std::string& mailbox, side s, mail::uid u) {
    return mailbox + " " + side_name(s) + ":" + std::to_string(u);
}

// Builds the planner's input as the engine would: a full listing where a side's UIDs are
// void, the pair is new or a side is missing; else (when `incremental`) only what changed.
std::vector<mailbox_input> inputs(const world& w, bool incremental) {
    std::set<std::string> names;
    for (side s : mail::both_sides)
        for (const auto& [n, b] : w.sides[s].boxes) names.insert(n);
    for (const auto& [n, r] : w.journal) names.insert(n);
    std::vector<mailbox_input> out;
    for (const auto& name : names) {
        mailbox_input in;
        in.name = name;
        auto j = w.journal.find(name);
        in.known = j != w.journal.end();
        if (in.known) in.records = j->second;
        const bool both = w.sides.a.boxes.count(name) && w.sides.b.boxes.count(name);
        for (side s : mail::both_sides) {
            side_report& rep = in.sides[s];
            auto it = w.sides[s].boxes.find(name);
            rep.exists = it != w.sides[s].boxes.end();
            if (!rep.exists) continue;
            const m_box& box = it->second;
            rep.uidvalidity_changed = in.known && box.revalidated;
            rep.complete = !incremental || !in.known || !both || rep.uidvalidity_changed;
            std::map<mail::uid, const pair_record*> known;
            for (const auto& r : in.records)
                if (r.uid[s] != 0) known[r.uid[s]] = &r;
            for (const auto& [u, m] : box.msgs) {
                auto k = known.find(u);
                if (!rep.complete && k != known.end() && k->second->flags == m.flags) continue;
                message_info mi;
                mi.uid = u;
                mi.flags = m.flags;
                mi.content_key = m.key;
                mi.identity = m.id;
                mi.size = 10;
                rep.messages.push_back(std::move(mi));
            }
            if (!rep.complete)
                for (const auto& [u, r] : known)
                    if (!box.msgs.count(u)) rep.vanished.push_back(u);
        }
        out.push_back(std::move(in));
    }
    return out;
}

// Applies a plan like the executor: stores first, then the journal consequence. Every
// action must find what it acts on; the journal must never be asked to erase a record it
// does not hold, nor to put one over another.
class applier {
  public:
    explicit applier(world& w) : w_(w) {}

    void apply(const plan& p) {
        for (const auto& a : p.actions) visit_action([&](const auto& x) { on(x); }, a);
        for (auto& [name, box] : w_.sides.a.boxes) box.revalidated = false;
        for (auto& [name, box] : w_.sides.b.boxes) box.revalidated = false;
        // The engine keeps state for pairs that exist on both sides, or known before.
        std::set<std::string> names;
        for (side s : mail::both_sides)
            for (const auto& [n, b] : w_.sides[s].boxes) names.insert(n);
        for (const auto& n : names)
            if (w_.sides.a.boxes.count(n) && w_.sides.b.boxes.count(n)) w_.journal[n];
        for (auto it = w_.journal.begin(); it != w_.journal.end();) {
            if (!names.count(it->first))
                it = w_.journal.erase(it);
            else
                ++it;
        }
    }

  private:
    m_box* box(side s, const std::string& name) {
        auto it = w_.sides[s].boxes.find(name);
        if (it == w_.sides[s].boxes.end()) {
            ADD_FAILURE() << "no mailbox " << name << " on " << side_name(s);
            return nullptr;
        }
        return &it->second;
    }
    m_msg* message(side s, const std::string& name, mail::uid u) {
        m_box* b = box(s, name);
        if (!b) return nullptr;
        auto it = b->msgs.find(u);
        if (it == b->msgs.end()) {
            ADD_FAILURE() << "no message " << where_text(name, s, u);
            return nullptr;
        }
        return &it->second;
    }
    void erase(const std::string& mailbox, const pair_record& r) {
        auto& v = w_.journal[mailbox];
        auto it = std::find(v.begin(), v.end(), r);
        if (it == v.end()) {
            ADD_FAILURE() << "journal of " << mailbox << " has no " << show(r);
            return;
        }
        v.erase(it);
    }
    void put(const std::string& mailbox, const pair_record& r) {
        auto& v = w_.journal[mailbox];
        EXPECT_TRUE(r.uid.a != 0 || r.uid.b != 0) << show(r);
        for (const auto& o : v)
            if ((r.uid.a != 0 && o.uid.a == r.uid.a) || (r.uid.b != 0 && o.uid.b == r.uid.b))
                ADD_FAILURE() << "journal of " << mailbox << ": " << show(r) << " would replace "
                              << show(o);
        v.push_back(r);
    }
    void journal(const std::string& mailbox, const std::optional<pair_record>& old_record,
                 const std::optional<pair_record>& new_record) {
        if (old_record) erase(mailbox, *old_record);
        if (new_record) put(mailbox, *new_record);
    }

    void on(const create_mailbox& a) {
        EXPECT_FALSE(w_.sides[a.on].boxes.count(a.mailbox)) << a.mailbox;
        w_.sides[a.on].boxes[a.mailbox];
    }
    void on(const remove_mailbox& a) {
        EXPECT_TRUE(w_.sides[a.on].boxes.erase(a.mailbox)) << a.mailbox;
        w_.journal.erase(a.mailbox);
    }
    void on(const copy_message& a) {
        const side to = opposite(a.from);
        const m_msg* src = message(a.from, a.mailbox, a.uid);
        m_box* dst = box(to, a.mailbox);
        if (!src || !dst) return;
        EXPECT_EQ(a.flags(), src->flags) << "copy of " << where_text(a.mailbox, a.from, a.uid);
        const mail::uid u = dst->next_uid++;
        dst->msgs[u] = m_msg{a.flags(), src->key, w_.sides[to].new_id()};
        pair_record r = a.new_record();
        EXPECT_EQ(r.uid[to], 0u);
        r.uid[to] = u;  // as the executor: the new uid, no identity
        put(a.mailbox, r);
    }
    void on(const set_flags& a) {
        m_msg* m = message(a.on, a.mailbox, a.uid);
        if (!m) return;
        // S11: nothing redundant is stored.
        EXPECT_FALSE(a.add.empty() && a.remove.empty()) << where_text(a.mailbox, a.on, a.uid);
        EXPECT_TRUE(a.add.minus(m->flags) == a.add)
            << "adds what is there: " << where_text(a.mailbox, a.on, a.uid);
        EXPECT_TRUE(a.remove.minus(m->flags).empty()) << "removes what is not there";
        m->flags = m->flags.minus(a.remove).united(a.add);
        journal(a.mailbox, a.old_record, a.new_record);
    }
    void on(const expunge_message& a) {
        m_box* b = box(a.on, a.mailbox);
        if (!b) return;
        EXPECT_TRUE(b->msgs.erase(a.uid)) << where_text(a.mailbox, a.on, a.uid);
        journal(a.mailbox, a.old_record, a.new_record);
    }
    void on(const move_message& a) {
        m_box* from = box(a.on, a.from_mailbox);
        m_box* to = box(a.on, a.to_mailbox);
        if (!from || !to) return;
        auto it = from->msgs.find(a.uid);
        if (it == from->msgs.end()) {
            ADD_FAILURE() << "no message to move " << where_text(a.from_mailbox, a.on, a.uid);
            return;
        }
        m_msg m = std::move(it->second);
        from->msgs.erase(it);
        m.flags = m.flags.minus(a.remove).united(a.add);
        const mail::uid u = to->next_uid++;
        to->msgs[u] = std::move(m);
        erase(a.from_mailbox, a.old_record);
        pair_record r = a.new_record;
        EXPECT_EQ(r.uid[a.on], 0u);
        r.uid[a.on] = u;
        put(a.to_mailbox, r);
    }
    void on(const update_record& a) { journal(a.mailbox, a.old_record, a.new_record); }

    world& w_;
};

// ---- mirrors

pair_record mirror(pair_record r) {
    std::swap(r.uid.a, r.uid.b);
    std::swap(r.identity.a, r.identity.b);
    return r;
}
std::optional<pair_record> mirror(const std::optional<pair_record>& r) {
    if (!r) return r;
    return mirror(*r);
}
template <class T>
per_side<T> swapped(const per_side<T>& p) {
    return {p.b, p.a};
}
std::vector<mailbox_input> mirror(std::vector<mailbox_input> in) {
    for (auto& m : in) {
        for (auto& r : m.records) r = mirror(r);
        m.sides = swapped(m.sides);
    }
    return in;
}
channel_rules mirror(channel_rules r) {
    if (r.dir == direction::a_to_b)
        r.dir = direction::b_to_a;
    else if (r.dir == direction::b_to_a)
        r.dir = direction::a_to_b;
    r.may_create = swapped(r.may_create);
    r.may_remove = swapped(r.may_remove);
    r.may_expunge = swapped(r.may_expunge);
    return r;
}
action mirror(const action& a) {
    return visit_action(
        [](auto x) -> action {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, create_mailbox> || std::is_same_v<T, remove_mailbox>) {
                x.on = opposite(x.on);
            } else if constexpr (std::is_same_v<T, copy_message>) {
                x.from = opposite(x.from);  // new_record() follows: its uid moves to `from`
            } else if constexpr (std::is_same_v<T, move_message>) {
                x.on = opposite(x.on);
                x.old_record = mirror(x.old_record);
                x.new_record = mirror(x.new_record);
            } else if constexpr (std::is_same_v<T, update_record>) {
                x.old_record = mirror(x.old_record);
                x.new_record = mirror(x.new_record);
            } else {
                x.on = opposite(x.on);
                x.old_record = mirror(x.old_record);
                x.new_record = mirror(x.new_record);
            }
            return x;
        },
        a);
}

// Sorted, with the journal consequence of a STORE apart from it: when a record needs a STORE
// on both sides, the later one in plan order carries it, and that is b's in either
// orientation (plan order is a's STOREs, then b's).
std::vector<std::string> normalized(std::vector<std::string> v) {
    std::vector<std::string> out;
    for (auto& line : v) {
        const auto bar = line.find(" | ");
        if (line.rfind("flags ", 0) == 0 && bar != std::string::npos) {
            out.push_back("journal of a store" + line.substr(bar));
            line.resize(bar);
        }
        out.push_back(std::move(line));
    }
    std::sort(out.begin(), out.end());
    return out;
}
std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

void expect_symmetric(const std::vector<mailbox_input>& in, const channel_rules& rules,
                      const plan& p) {
    const auto mirrored = mirror(in);
    plan q = make_plan(mirrored, mirror(rules));
    std::vector<std::string> back;
    for (const auto& a : q.actions) back.push_back(show(mirror(a)));
    std::vector<std::string> notices;
    for (auto n : q.notices) {
        n.on = opposite(n.on);
        notices.push_back(show(n));
    }
    EXPECT_EQ(normalized(back), normalized(show_actions(p)));
    EXPECT_EQ(sorted(notices), sorted(show_notices(p)));
    EXPECT_EQ(q.guarded_mailboxes, p.guarded_mailboxes);
}

// ---- random histories

class history {
  public:
    history(std::uint32_t seed, bool converging) : rng_(seed), converging_(converging) {
        if (converging_) {
            rules_.force = true;
        } else {
            const int d = pick(3);
            rules_.dir = d == 0 ? direction::both : d == 1 ? direction::a_to_b : direction::b_to_a;
            for (side s : mail::both_sides) {
                rules_.may_create[s] = pick(4) != 0;
                rules_.may_remove[s] = pick(2) != 0;
                rules_.may_expunge[s] = pick(2) != 0;
            }
            rules_.force = pick(2) != 0;
            if (pick(3) == 0)
                rules_.max_size = 10 + static_cast<std::uint64_t>(pick(2));  // size is 10
            if (pick(4) == 0) rules_.max_size = 9;
        }
        // Start: a has mail in a few mailboxes, b a little, nothing synced.
        for (const char* name : {"INBOX", "Archive", "Work"}) {
            w_.sides.a.boxes[name];
            for (int n = pick(5); n > 0; --n) deliver(side::a, name);
        }
        w_.sides.b.boxes["INBOX"];
        for (int n = pick(3); n > 0; --n) deliver(side::b, "INBOX");
        if (pick(2)) share_new("INBOX");
    }

    const channel_rules& rules() const { return rules_; }
    world& state() { return w_; }

    // Random changes on both sides, as users and other clients make them.
    void mutate() {
        for (side s : mail::both_sides) {
            for (int n = pick(6); n > 0; --n) {
                const int what = pick(100);
                if (what < 25)
                    deliver(s, random_box(s));
                else if (what < 30)
                    share_new(random_box(s));
                else if (what < 60)
                    toggle_flag(s);
                else if (what < 75)
                    expunge(s);
                else if (what < 90)
                    move(s);
                else if (what < 93)
                    reappend(s);
                else if (what < 96)
                    renumber(s);
                else if (what < 98)
                    new_mailbox(s);
                else if (!converging_)
                    remove_mailbox(s);
            }
        }
    }

  private:
    int pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint32_t>(n)); }

    std::string random_box(side s) {
        auto& boxes = w_.sides[s].boxes;
        if (boxes.empty()) return "INBOX";
        auto it = boxes.begin();
        std::advance(it, pick(static_cast<int>(boxes.size())));
        return it->first;
    }
    m_msg random_message(side s) {
        m_msg m;
        static const char* atoms[] = {"\\Seen",    "\\Flagged", "\\Answered",
                                      "\\Deleted", "$Kw1",      "NotJunk"};
        for (const char* a : atoms)
            if (pick(3) == 0) m.flags.add_imap(a);
        m.key = pick(12) == 0 ? std::string() : "<m" + std::to_string(++keys_) + ">";
        if (pick(10) == 0 && keys_ > 2) m.key = "<m" + std::to_string(1 + pick(keys_ - 1)) + ">";
        m.id = w_.sides[s].new_id();
        return m;
    }
    void deliver(side s, const std::string& name) {
        auto& box = w_.sides[s].boxes[name];
        box.msgs[box.next_uid++] = random_message(s);
    }
    // S05: the same mail delivered to both sides.
    void share_new(const std::string& name) {
        if (!w_.sides.a.boxes.count(name) || !w_.sides.b.boxes.count(name)) return;
        m_msg m = random_message(side::a);
        if (m.key.empty()) m.key = "<m" + std::to_string(++keys_) + ">";
        for (side s : mail::both_sides) {
            auto& box = w_.sides[s].boxes[name];
            m_msg copy = m;
            copy.id = w_.sides[s].new_id();
            if (pick(2)) copy.flags.add_imap("\\Seen");
            box.msgs[box.next_uid++] = std::move(copy);
        }
    }
    std::pair<m_box*, mail::uid> random_message_at(side s) {
        auto name = random_box(s);
        auto it = w_.sides[s].boxes.find(name);
        if (it == w_.sides[s].boxes.end() || it->second.msgs.empty()) return {nullptr, 0};
        auto m = it->second.msgs.begin();
        std::advance(m, pick(static_cast<int>(it->second.msgs.size())));
        return {&it->second, m->first};
    }
    void toggle_flag(side s) {
        auto [box, u] = random_message_at(s);
        if (!box) return;
        static const char* atoms[] = {"\\Seen", "\\Flagged", "\\Deleted",
                                      "$Kw1",   "NotJunk",   "$Kw2"};
        flag_set one;
        one.add_imap(atoms[pick(6)]);
        flag_set& f = box->msgs[u].flags;
        f = one.minus(f).empty() ? f.minus(one) : f.united(one);
    }
    void expunge(side s) {
        auto [box, u] = random_message_at(s);
        if (box) box->msgs.erase(u);
    }
    void move(side s) {
        auto [box, u] = random_message_at(s);
        if (!box) return;
        auto to = random_box(s);
        m_box& dst = w_.sides[s].boxes[to];
        if (&dst == box) return;
        dst.msgs[dst.next_uid++] = box->msgs[u];
        box->msgs.erase(u);
    }
    // S28: the same file back under a new uid.
    void reappend(side s) {
        auto [box, u] = random_message_at(s);
        if (!box) return;
        m_msg m = box->msgs[u];
        box->msgs.erase(u);
        box->msgs[box->next_uid++] = std::move(m);
    }
    // S43: the mailbox renumbered from 1 in another order; old uids get reused.
    void renumber(side s) {
        auto name = random_box(s);
        auto it = w_.sides[s].boxes.find(name);
        if (it == w_.sides[s].boxes.end()) return;
        std::vector<m_msg> all;
        for (auto& [u, m] : it->second.msgs) all.push_back(std::move(m));
        std::shuffle(all.begin(), all.end(), rng_);
        m_box fresh;
        fresh.revalidated = true;
        for (auto& m : all) fresh.msgs[fresh.next_uid++] = std::move(m);
        it->second = std::move(fresh);
    }
    void new_mailbox(side s) {
        std::string name = "New" + std::to_string(pick(3));
        if (w_.sides[s].boxes.count(name)) return;
        w_.sides[s].boxes[name];
        for (int n = pick(3); n > 0; --n) deliver(s, name);
    }
    void remove_mailbox(side s) {
        auto name = random_box(s);
        if (name != "INBOX") w_.sides[s].boxes.erase(name);
    }

    std::mt19937 rng_;
    bool converging_;
    channel_rules rules_;
    world w_;
    int keys_ = 0;
};

std::string dump(const world& w) {
    std::string out;
    for (side s : mail::both_sides)
        for (const auto& [name, box] : w.sides[s].boxes)
            for (const auto& [u, m] : box.msgs)
                out +=
                    where_text(name, s, u) + " " + show(m.flags) + " " + m.key + " " + m.id + "\n";
    for (const auto& [name, recs] : w.journal)
        for (const auto& r : recs) out += "journal " + name + " " + show(r) + "\n";
    return out;
}

// The journal knows each message of a mailbox pair exactly once.
void expect_journal_matches(const world& w, const std::vector<std::string>& guarded) {
    for (const auto& [name, recs] : w.journal) {
        if (std::count(guarded.begin(), guarded.end(), name)) continue;
        if (!w.sides.a.boxes.count(name) || !w.sides.b.boxes.count(name)) continue;
        for (side s : mail::both_sides) {
            std::multiset<mail::uid> in_journal, in_store;
            for (const auto& r : recs)
                if (r.uid[s] != 0) in_journal.insert(r.uid[s]);
            for (const auto& [u, m] : w.sides[s].boxes.at(name).msgs) in_store.insert(u);
            EXPECT_EQ(in_journal, in_store) << name << " on " << side_name(s);
        }
    }
}

// Same mailboxes, and in each the same messages by content key with the same flags (a
// message known by a one-sided record is a documented exception: kept after a UIDVALIDITY
// change that found no match).
void expect_converged(const world& w) {
    std::set<std::string> na, nb;
    for (const auto& [n, b] : w.sides.a.boxes) na.insert(n);
    for (const auto& [n, b] : w.sides.b.boxes) nb.insert(n);
    EXPECT_EQ(na, nb);
    for (const auto& name : na) {
        if (!nb.count(name)) continue;
        per_side<std::multiset<std::string>> content;
        const auto& recs = w.journal.at(name);
        for (side s : mail::both_sides) {
            std::set<mail::uid> one_sided;
            for (const auto& r : recs)
                if (r.uid[s] != 0 && r.uid[opposite(s)] == 0) one_sided.insert(r.uid[s]);
            for (const auto& [u, m] : w.sides[s].boxes.at(name).msgs)
                if (!one_sided.count(u)) content[s].insert(m.key + " " + show(m.flags));
        }
        EXPECT_EQ(content.a, content.b) << name;
    }
}

// The engine's narrowing (input_filter) where the engine narrows: a known pair on both
// sides, UIDVALIDITY unchanged. The plan must not change by a single action or notice.
void expect_filter_keeps_the_plan(std::vector<mailbox_input> in, const channel_rules& rules,
                                  const plan& p) {
    for (auto& m : in) {
        const bool everything = !m.known || !m.sides.a.exists || !m.sides.b.exists ||
                                m.sides.a.uidvalidity_changed || m.sides.b.uidvalidity_changed;
        std::vector<pair_record> all = std::move(m.records);
        m.records.clear();
        per_side<std::size_t> counts{0, 0};
        for (const auto& r : all)
            for (side s : mail::both_sides) counts[s] += r.uid[s] != 0 ? 1 : 0;
        input_filter f(m, everything);
        // In the journal's order (uid a), not the input's.
        std::stable_sort(all.begin(), all.end(),
                         [](const auto& x, const auto& y) { return x.uid.a < y.uid.a; });
        for (auto& r : all) f.offer(r);
        f.finish(counts);
    }
    const plan q = make_plan(in, rules);
    EXPECT_EQ(show_actions(q), show_actions(p)) << "the filtered input plans otherwise";
    EXPECT_EQ(show_notices(q), show_notices(p));
    EXPECT_EQ(q.guarded_mailboxes, p.guarded_mailboxes);
}

void run_history(std::uint32_t seed, bool converging, bool incremental) {
    history h(seed, converging);
    for (int round = 0; round < 4; ++round) {
        SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
        if (round > 0) h.mutate();
        const std::string before = dump(h.state());
        const auto in = inputs(h.state(), incremental);
        const plan p = make_plan(in, h.rules());
        expect_symmetric(in, h.rules(), p);
        expect_filter_keeps_the_plan(in, h.rules(), p);
        applier(h.state()).apply(p);
        expect_journal_matches(h.state(), p.guarded_mailboxes);

        for (bool again_incremental : {false, true}) {
            const auto again_in = inputs(h.state(), again_incremental);
            const plan again = make_plan(again_in, h.rules());
            EXPECT_EQ(show_actions(again), std::vector<std::string>{})
                << "not idempotent; before:\n"
                << before << "after:\n"
                << dump(h.state());
            for (const auto& n : again.notices)
                EXPECT_TRUE(n.what == notice::kind::mailbox_gone ||
                            n.what == notice::kind::mailbox_not_created ||
                            n.what == notice::kind::guard_tripped)
                    << show(n);
        }
        if (converging) expect_converged(h.state());
        if (::testing::Test::HasFailure()) return;
    }
}

TEST(planner_property, converges_and_is_idempotent_and_symmetric) {
    for (std::uint32_t seed = 1; seed <= 150; ++seed) {
        run_history(seed, true, seed % 2 == 0);
        if (HasFailure()) return;
    }
}

TEST(planner_property, idempotent_and_symmetric_under_any_rules) {
    for (std::uint32_t seed = 1001; seed <= 1200; ++seed) {
        run_history(seed, false, seed % 2 == 0);
        if (HasFailure()) return;
    }
}

// The model itself: one hand-made history, so that the properties above cannot pass
// against a model that does nothing.
TEST(planner_property, model_applies_a_plan) {
    world w;
    w.sides.a.boxes["INBOX"].msgs[1] = m_msg{fl("\\Seen"), "<k1>", "A1"};
    w.sides.a.boxes["INBOX"].next_uid = 2;
    w.sides.b.boxes["INBOX"];
    channel_rules rules;
    const auto in = inputs(w, false);
    const plan p = make_plan(in, rules);
    ASSERT_EQ(p.actions.size(), 1u);
    applier(w).apply(p);
    ASSERT_EQ(w.sides.b.boxes["INBOX"].msgs.size(), 1u);
    EXPECT_EQ(w.sides.b.boxes["INBOX"].msgs.begin()->second.flags, fl("\\Seen"));
    ASSERT_EQ(w.journal["INBOX"].size(), 1u);
    EXPECT_EQ(show(w.journal["INBOX"][0]), "1/1 [\\Seen] <k1> ia=A1 s=10");

    // a moves it, b flags it: one move on b carrying the flag, one STORE on a.
    auto& a_inbox = w.sides.a.boxes["INBOX"];
    w.sides.a.boxes["Archive"].msgs[1] = a_inbox.msgs[1];
    w.sides.a.boxes["Archive"].next_uid = 2;
    a_inbox.msgs.clear();
    w.sides.b.boxes["Archive"];
    w.journal["Archive"];
    w.sides.b.boxes["INBOX"].msgs.begin()->second.flags.add_imap("\\Flagged");
    const auto in_after = inputs(w, true);
    const plan q = make_plan(in_after, rules);
    EXPECT_EQ(show_actions(q),
              (std::vector<std::string>{
                  "flags Archive a:1 +[\\Flagged] -[]",
                  "move b:1 INBOX -> Archive +[] -[] | 1/1 [\\Seen] <k1> ia=A1 s=10 => 1/0 "
                  "[\\Seen \\Flagged] <k1> ia=A1 s=10",
              }));
    applier(w).apply(q);
    EXPECT_TRUE(w.sides.b.boxes["INBOX"].msgs.empty());
    ASSERT_EQ(w.sides.b.boxes["Archive"].msgs.size(), 1u);
    EXPECT_EQ(w.sides.b.boxes["Archive"].msgs.begin()->second.flags, fl("\\Seen \\Flagged"));
    expect_converged(w);
    const auto in_converged = inputs(w, false);
    EXPECT_TRUE(make_plan(in_converged, rules).actions.empty());
}

}  // namespace
}  // namespace tandem::sync::test
