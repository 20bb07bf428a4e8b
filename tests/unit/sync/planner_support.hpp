// SPDX-License-Identifier: MIT
// Builders and printers shared by the planner tests: inputs in a few words, plans as text
// that a failing test shows line by line.
#pragma once

#include "tandem/sync/planner.hpp"

#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tandem::sync::test {

using mail::flag_set;
using mail::message_info;

inline flag_set fl(std::string_view atoms) {
    flag_set f;
    std::size_t pos = 0;
    while (pos < atoms.size()) {
        auto end = atoms.find(' ', pos);
        if (end == std::string_view::npos) end = atoms.size();
        f.add_imap(atoms.substr(pos, end - pos));
        pos = end + 1;
    }
    return f;
}

inline pair_record rec(mail::uid a, mail::uid b, std::string_view flags = "", std::string key = "",
                       std::string ia = "", std::string ib = "") {
    pair_record r;
    r.uid = {a, b};
    r.flags = fl(flags);
    r.content_key = std::move(key);
    r.identity = {std::move(ia), std::move(ib)};
    return r;
}

inline message_info msg(mail::uid u, std::string_view flags = "", std::string key = "",
                        std::string id = "", std::uint64_t size = 0) {
    message_info m;
    m.uid = u;
    m.flags = fl(flags);
    m.content_key = std::move(key);
    m.identity = std::move(id);
    m.size = size;
    return m;
}

// What changed since the journal (CONDSTORE/QRESYNC style): listed messages, vanished uids.
inline side_report changes(std::vector<message_info> m = {}, std::vector<mail::uid> vanished = {}) {
    side_report r;
    r.messages = std::move(m);
    r.vanished = std::move(vanished);
    return r;
}
// Every message of the mailbox.
inline side_report full(std::vector<message_info> m = {}) {
    side_report r;
    r.complete = true;
    r.messages = std::move(m);
    return r;
}
inline side_report revalidated(std::vector<message_info> m = {}) {
    side_report r = full(std::move(m));
    r.uidvalidity_changed = true;
    return r;
}
inline side_report missing() {
    side_report r;
    r.exists = false;
    r.complete = true;
    return r;
}

inline mailbox_input mbox(std::string name, std::vector<pair_record> records, side_report a,
                          side_report b, bool known = true) {
    mailbox_input in;
    in.name = std::move(name);
    in.known = known;
    in.records = std::move(records);
    in.sides = {std::move(a), std::move(b)};
    return in;
}

inline std::string show(const flag_set& f) {
    return "[" + f.to_imap() + "]";
}

inline std::string show(const pair_record& r) {
    std::string out = std::to_string(r.uid.a) + "/" + std::to_string(r.uid.b) + " " + show(r.flags);
    if (!r.content_key.empty()) out += " " + r.content_key;
    if (!r.identity.a.empty()) out += " ia=" + r.identity.a;
    if (!r.identity.b.empty()) out += " ib=" + r.identity.b;
    if (r.size != 0) out += " s=" + std::to_string(r.size);
    return out;
}

inline std::string show_journal(const std::optional<pair_record>& old_record,
                                const std::optional<pair_record>& new_record) {
    if (!old_record && !new_record) return "";
    return " | " + (old_record ? show(*old_record) : std::string("-")) + " => " +
           (new_record ? show(*new_record) : std::string("-"));
}

inline std::string side_name(side s) {
    return std::string(mail::name(s));
}

inline std::string show(const action& a) {
    return visit_action(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, create_mailbox>) {
                return "create " + x.mailbox + " on " + side_name(x.on);
            } else if constexpr (std::is_same_v<T, remove_mailbox>) {
                return "remove " + x.mailbox + " on " + side_name(x.on);
            } else if constexpr (std::is_same_v<T, copy_message>) {
                std::string s = "copy " + x.mailbox + " " + side_name(x.from) + ":" +
                                std::to_string(x.uid) + " " + show(x.flags());
                if (x.size() != 0) s += " s=" + std::to_string(x.size());
                return s + " | new " + show(x.new_record());
            } else if constexpr (std::is_same_v<T, set_flags>) {
                return "flags " + x.mailbox + " " + side_name(x.on) + ":" + std::to_string(x.uid) +
                       " +" + show(x.add) + " -" + show(x.remove) +
                       show_journal(x.old_record, x.new_record);
            } else if constexpr (std::is_same_v<T, expunge_message>) {
                return "expunge " + x.mailbox + " " + side_name(x.on) + ":" +
                       std::to_string(x.uid) + show_journal(x.old_record, x.new_record);
            } else if constexpr (std::is_same_v<T, move_message>) {
                return "move " + side_name(x.on) + ":" + std::to_string(x.uid) + " " +
                       x.from_mailbox + " -> " + x.to_mailbox + " +" + show(x.add) + " -" +
                       show(x.remove) + show_journal(x.old_record, x.new_record);
            } else {
                static_assert(std::is_same_v<T, update_record>);
                return "journal " + x.mailbox + show_journal(x.old_record, x.new_record);
            }
        },
        a);
}

inline std::string kind_name(notice::kind k) {
    switch (k) {
        case notice::kind::skipped_too_large:
            return "too_large";
        case notice::kind::conflict:
            return "conflict";
        case notice::kind::mailbox_gone:
            return "mailbox_gone";
        case notice::kind::guard_tripped:
            return "guard";
        case notice::kind::mailbox_not_created:
            return "not_created";
    }
    return "?";
}

inline std::string show(const notice& n) {
    return kind_name(n.what) + " " + n.mailbox + " " + side_name(n.on) + ":" +
           std::to_string(n.uid);
}

inline std::vector<std::string> show_actions(const plan& p) {
    std::vector<std::string> out;
    for (const auto& a : p.actions) out.push_back(show(a));
    return out;
}

// The actions planned for `in`, shown (make_plan wants inputs that outlive the plan).
inline std::vector<std::string> actions_of(const std::vector<mailbox_input>& in,
                                           const channel_rules& rules) {
    return show_actions(make_plan(in, rules));
}
inline std::vector<std::string> show_notices(const plan& p) {
    std::vector<std::string> out;
    for (const auto& n : p.notices) out.push_back(show(n));
    return out;
}

}  // namespace tandem::sync::test
