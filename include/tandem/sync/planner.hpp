// SPDX-License-Identifier: MIT
// The planner: a pure function from (journal state, what each side reported, channel
// rules) to the actions that bring both sides in step. No I/O, no clock, no randomness:
// every sync rule of DESIGN.md is a table-driven unit test of this function.
#pragma once

#include "tandem/mail/side.hpp"
#include "tandem/mail/types.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace tandem::sync {

using mail::per_side;
using mail::side;

enum class direction : std::uint8_t { both, a_to_b, b_to_a };

struct channel_rules {
    direction dir = direction::both;
    per_side<bool> may_create{true, true};  // create missing mailboxes on that side
    per_side<bool> may_remove{
        false, false};  // remove mailboxes on that side (when the other side removed its copy)
    per_side<bool> may_expunge{
        true, true};  // expunge on that side what the other side expunged; else mark \Deleted
    // Mass-removal guard: removals on one side of a mailbox pair (expunges + \Deleted marks
    // caused by the other side) above this share of that side's known messages stop that
    // mailbox pair, unless `force`. Mailboxes with fewer than `guard_min_removals` removals
    // never trip it.
    double max_delete_share = 0.5;
    std::uint32_t guard_min_removals = 3;
    // An absolute limit instead (`max-delete = 100`): more removals than this trip the guard.
    std::optional<std::uint64_t> max_delete_count;
    bool force = false;
    std::uint64_t max_size = 0;  // 0: no limit; larger messages are not copied (reported)

    bool propagates_from(side s) const {
        return dir == direction::both ||
               (s == side::a ? dir == direction::a_to_b : dir == direction::b_to_a);
    }
};

// One message the journal knows. Both uids set: the message is on both sides, paired. One
// uid 0: a one-sided record, the message is known on that one side only and deliberately not
// copied (skipped as too large, or kept with \Deleted after the other side expunged it, or a
// copy direction that does not apply); it is forgotten when that message goes too.
struct pair_record {
    per_side<mail::uid> uid;
    mail::flag_set flags;            // as last synced (both sides had these)
    per_side<std::string> identity;  // message_info::identity on each side
    std::string content_key;         // message_info::content_key
    std::uint64_t size = 0;
    friend bool operator==(const pair_record&, const pair_record&) = default;
};

// What one side's store reported for one mailbox since the journal's state.
struct side_report {
    bool exists = true;                // the mailbox exists on this side
    bool uidvalidity_changed = false;  // every uid of this side in the records is void
    // `messages` lists every message of the mailbox: a known uid that is not listed is gone.
    // Always true when uidvalidity_changed, and on the first sync of the mailbox.
    bool complete = false;
    // New messages and messages whose flags may have changed (all of them when complete).
    std::vector<mail::message_info> messages;
    std::vector<mail::uid> vanished;  // known uids that are gone (when not complete)
};

struct mailbox_input {
    std::string name;    // canonical: UTF-8, '/' separates levels, INBOX is "INBOX"
    bool known = false;  // the journal has state for this mailbox pair
    std::vector<pair_record> records;
    per_side<side_report> sides;
    // Set when `records` holds only the records that matter to this run: the engine leaves
    // out the records that neither side reports changed or gone, and the listing entries
    // that match such a record exactly (they would plan nothing). Per side, how many
    // records of the journal have a uid there: the mass-removal guard measures against
    // these, not against the records handed over. Exact for a side that removals can
    // touch (the other side reports messages gone); elsewhere an estimate (the side's
    // message count at the last sync), which the guard never reads.
    std::optional<per_side<std::size_t>> record_counts;
};

// ---- actions. Each carries its journal consequence: on success the executor erases
// `old_record` (when set) and puts `new_record` (when set, with the uid the store returned
// filled in where the action says so).

// Create `mailbox` on side `on` (before anything else of that mailbox).
struct create_mailbox {
    std::string mailbox;
    side on;
};
// Remove `mailbox` on side `on` (the other side removed it; `on` holds nothing unsynced).
struct remove_mailbox {
    std::string mailbox;
    side on;
};
// Copy message `uid` of side `from` to the other side with its listed flags. The copy refers
// to its listing entry instead of holding a copy of it: a first sync plans one copy per
// message (200,000 of them), and the planner's input outlives the plan (make_plan).
struct copy_message {
    std::string mailbox;
    side from;
    mail::uid uid = 0;
    const mail::message_info* source = nullptr;  // the listing entry of `uid` on side `from`

    const mail::flag_set& flags() const { return source->flags; }
    std::uint64_t size() const { return source->size; }
    // The record the copy makes: uid[opposite(from)] is 0 here, for the executor to fill
    // in with the uid of the new copy.
    pair_record new_record() const;
};
// Add and remove flags of message `uid` on side `on`.
struct set_flags {
    std::string mailbox;
    side on;
    mail::uid uid = 0;
    mail::flag_set add;
    mail::flag_set remove;
    std::optional<pair_record> old_record;
    std::optional<pair_record> new_record;
};
// Expunge message `uid` on side `on` (the other side expunged its copy).
struct expunge_message {
    std::string mailbox;
    side on;
    mail::uid uid = 0;
    std::optional<pair_record> old_record;
    std::optional<pair_record> new_record;  // set when the record stays one-sided
};
// Move message `uid` on side `on` from `from_mailbox` to `to_mailbox`, because the other side
// moved its copy. new_record.uid[on] is 0 here: the executor fills in the moved message's new uid.
struct move_message {
    side on;
    std::string from_mailbox;
    std::string to_mailbox;
    mail::uid uid = 0;
    mail::flag_set add;  // flag changes to apply to the moved copy afterwards
    mail::flag_set remove;
    pair_record old_record;  // in from_mailbox
    pair_record new_record;  // in to_mailbox
};
// Journal only: pair messages found on both sides by content key, re-pair after a
// UIDVALIDITY change, forget a record whose messages are gone on both sides, record a
// one-sided message. Nothing changes on a store.
struct update_record {
    std::string mailbox;
    std::optional<pair_record> old_record;
    std::optional<pair_record> new_record;
};

// A heap-held alternative of `action`: a plan holds one action per message to copy, so
// the variant keeps the size of its small alternatives (a copy: 48 bytes) and the rarer
// large ones (two records each) live behind a pointer. A value: copyable, never empty.
template <class T>
class boxed {
  public:
    boxed(T value) : p_(std::make_unique<T>(std::move(value))) {}  // NOLINT: implicit on purpose
    boxed(const boxed& o) : p_(std::make_unique<T>(*o.p_)) {}
    boxed(boxed&&) noexcept = default;
    boxed& operator=(const boxed& o) {
        if (this != &o) p_ = std::make_unique<T>(*o.p_);
        return *this;
    }
    boxed& operator=(boxed&&) noexcept = default;
    T& operator*() { return *p_; }
    const T& operator*() const { return *p_; }
    T* operator->() { return p_.get(); }
    const T* operator->() const { return p_.get(); }

  private:
    std::unique_ptr<T> p_;
};

using action = std::variant<create_mailbox, remove_mailbox, copy_message, boxed<set_flags>,
                            boxed<expunge_message>, boxed<move_message>, boxed<update_record>>;

namespace detail {
template <class T>
const T& unboxed(const T& x) {
    return x;
}
template <class T>
T& unboxed(T& x) {
    return x;
}
template <class T>
const T& unboxed(const boxed<T>& x) {
    return *x;
}
template <class T>
T& unboxed(boxed<T>& x) {
    return *x;
}
}  // namespace detail

// std::visit over an action that hands `f` the alternative itself (a set_flags, not its box).
template <class F>
decltype(auto) visit_action(F&& f, const action& a) {
    return std::visit([&](const auto& x) -> decltype(auto) { return f(detail::unboxed(x)); }, a);
}
template <class F>
decltype(auto) visit_action(F&& f, action& a) {
    return std::visit([&](auto& x) -> decltype(auto) { return f(detail::unboxed(x)); }, a);
}
// The action as a T (create_mailbox ... update_record), or nullptr.
template <class T>
const T* action_if(const action& a) {
    if constexpr (std::is_same_v<T, create_mailbox> || std::is_same_v<T, remove_mailbox> ||
                  std::is_same_v<T, copy_message>) {
        return std::get_if<T>(&a);
    } else {
        const auto* x = std::get_if<boxed<T>>(&a);
        return x ? &**x : nullptr;
    }
}

// Something the user should hear about; no action follows from it.
struct notice {
    enum class kind : std::uint8_t {
        skipped_too_large,    // a message over max_size was not copied
        conflict,             // expunged on one side, changed on the other: the expunge won
        mailbox_gone,         // a mailbox vanished on one side and is not removed on the other
        guard_tripped,        // the mass-removal guard stopped this mailbox pair
        mailbox_not_created,  // a new mailbox exists on one side only and may not be created
    };
    kind what;
    std::string mailbox;
    side on = side::a;  // the side the notice is about: where the flags were lost, the
                        // message was skipped, the mailbox vanished or is missing, the
                        // removals would happen
    mail::uid uid = 0;
    std::string text;
};

struct plan {
    std::vector<action> actions;
    std::vector<notice> notices;
    std::vector<std::string> guarded_mailboxes;  // mailbox pairs left untouched by the guard
};

// Narrows one mailbox's input to what its plan depends on, as the records stream in from
// the journal (so that a mailbox of 200,000 messages with 50 changes costs 50 records, not
// 200,000). A record matters when a side names it: lists it with other flags than the
// record's, lists it as vanished, or leaves it out of a complete listing. A record that no
// side names is unchanged on both sides and would plan nothing; a listing entry that
// matches such a record exactly would plan nothing either; both stay out, and
// record_counts keeps the journal's true size for the guard. The plan is the same as with
// every record (the planner's property tests compare the two).
//
// Also, for every record: a keyword that the record has and the listed message lacks, where
// that side cannot carry the keyword at all (`keeps` says false: a Maildir folder with 26
// keywords already), was never removed there; it is put back into the listing, so that the
// merge does not remove it on the other side.
class input_filter {
  public:
    using keeps_fn = std::function<bool(side, std::string_view keyword)>;
    // Sorts each listing of `in` by uid, each uid once (the first). With `everything`
    // (first sync, UIDVALIDITY change, recovery: the cases that need every record) every
    // offered record is kept.
    input_filter(mailbox_input& in, bool everything, keeps_fn keeps = {});
    // One record of the journal; each at most once.
    void offer(pair_record r);
    // The same in two steps, so that a record the plan does not need is never decoded in
    // full: whether the record with these uids and flags is kept (the listings are
    // settled against it either way), then, if so, the record itself.
    bool keeps(const per_side<mail::uid>& uid, const mail::flag_set& flags);
    void take(pair_record r) { in_.records.push_back(std::move(r)); }
    // Drops the listing entries that matched records left out, and sets record_counts.
    void finish(const per_side<std::size_t>& counts);

  private:
    mail::message_info* find(side s, mail::uid uid);
    mailbox_input& in_;
    bool everything_;
    keeps_fn keeps_;
    per_side<std::vector<std::pair<std::string, bool>>> kept_;  // keyword -> side carries it
    per_side<std::vector<char>> drop_;
};

// Plans one channel: every mailbox pair at once, so that a message that left one mailbox
// and arrived in another on the same side is seen as a move. Actions come in an order the
// executor can apply: mailbox creations first, then per mailbox; removals of mailboxes last.
// The plan refers to the inputs' listings (copy_message::source): keep them unchanged
// while the plan is used.
plan make_plan(const std::vector<mailbox_input>& mailboxes, const channel_rules& rules);
plan make_plan(std::vector<mailbox_input>&& mailboxes, const channel_rules& rules) = delete;
// The same over inputs that live elsewhere (the engine's, which outlive the plan).
plan make_plan(const std::vector<const mailbox_input*>& mailboxes, const channel_rules& rules);

}  // namespace tandem::sync
