// SPDX-License-Identifier: MIT
#include "tandem/mail/types.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace tandem::mail {
namespace {

constexpr std::array<std::pair<system_flag, std::string_view>, 5> system_names{{
    {system_flag::seen, "\\Seen"},
    {system_flag::answered, "\\Answered"},
    {system_flag::flagged, "\\Flagged"},
    {system_flag::deleted, "\\Deleted"},
    {system_flag::draft, "\\Draft"},
}};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

bool flag_set::has_keyword(std::string_view k) const {
    return std::binary_search(keywords_.begin(), keywords_.end(), k);
}

void flag_set::add_keyword(std::string_view k) {
    auto it = std::lower_bound(keywords_.begin(), keywords_.end(), k);
    if (it == keywords_.end() || *it != k) keywords_.insert(it, std::string(k));
}

void flag_set::remove_keyword(std::string_view k) {
    auto it = std::lower_bound(keywords_.begin(), keywords_.end(), k);
    if (it != keywords_.end() && *it == k) keywords_.erase(it);
}

void flag_set::add_imap(std::string_view atom) {
    if (atom.empty()) return;
    if (atom.front() == '\\') {
        for (const auto& [flag, name] : system_names) {
            if (iequals(atom, name)) {
                set(flag);
                return;
            }
        }
        return;  // \Recent, \*, unknown system flags: not synced
    }
    add_keyword(atom);
}

std::vector<std::string> flag_set::imap_atoms() const {
    std::vector<std::string> out;
    for (const auto& [flag, name] : system_names)
        if (has(flag)) out.emplace_back(name);
    out.insert(out.end(), keywords_.begin(), keywords_.end());
    return out;
}

std::string flag_set::to_imap() const {
    std::string out;
    for (const auto& atom : imap_atoms()) {
        if (!out.empty()) out += ' ';
        out += atom;
    }
    return out;
}

flag_set flag_set::minus(const flag_set& other) const {
    flag_set out;
    out.bits_ = bits_ & static_cast<std::uint8_t>(~other.bits_);
    std::set_difference(keywords_.begin(), keywords_.end(), other.keywords_.begin(),
                        other.keywords_.end(), std::back_inserter(out.keywords_));
    return out;
}

flag_set flag_set::united(const flag_set& other) const {
    flag_set out;
    out.bits_ = bits_ | other.bits_;
    std::set_union(keywords_.begin(), keywords_.end(), other.keywords_.begin(),
                   other.keywords_.end(), std::back_inserter(out.keywords_));
    return out;
}

}  // namespace tandem::mail
