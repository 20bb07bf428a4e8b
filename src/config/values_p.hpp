// SPDX-License-Identifier: MIT
// Helpers shared by the configuration's translation units.
#pragma once

#include "tandem/config/config.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tandem::config::detail {

template <class E>
struct enum_entry {
    std::string_view name;
    E value;
};

inline constexpr std::array<enum_entry<tls_mode>, 3> tls_modes{{
    {"implicit", tls_mode::implicit},
    {"starttls", tls_mode::starttls},
    {"none", tls_mode::none},
}};
inline constexpr std::array<enum_entry<auth_method>, 4> auth_methods{{
    {"login", auth_method::login},
    {"plain", auth_method::plain},
    {"xoauth2", auth_method::xoauth2},
    {"oauthbearer", auth_method::oauthbearer},
}};
inline constexpr std::array<enum_entry<compress_mode>, 3> compress_modes{{
    {"auto", compress_mode::automatic},
    {"yes", compress_mode::yes},
    {"no", compress_mode::no},
}};
inline constexpr std::array<enum_entry<maildir_layout>, 2> maildir_layouts{{
    {"verbatim", maildir_layout::verbatim},
    {"maildir++", maildir_layout::maildirpp},
}};
inline constexpr std::array<enum_entry<direction>, 3> directions{{
    {"both", direction::both},
    {"a-to-b", direction::a_to_b},
    {"b-to-a", direction::b_to_a},
}};
inline constexpr std::array<enum_entry<sides>, 4> sides_values{{
    {"both", sides::both},
    {"a", sides::a},
    {"b", sides::b},
    {"none", sides::none},
}};
inline constexpr std::array<enum_entry<log_level>, 5> log_levels{{
    {"error", log_level::error},
    {"warning", log_level::warning},
    {"info", log_level::info},
    {"debug", log_level::debug},
    {"trace", log_level::trace},
}};

bool iequals(std::string_view a, std::string_view b);
std::string to_lower(std::string_view s);
std::string_view trim(std::string_view s);
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` when it is close enough to be a likely typo.
template <class Range>
std::optional<std::string> closest(std::string_view word, const Range& candidates) {
    std::optional<std::string> best;
    std::size_t best_distance = 0;
    const std::size_t limit = word.size() <= 4 ? 1 : 2;
    for (const auto& c : candidates) {
        std::string_view cand(c);
        const std::size_t gap =
            word.size() > cand.size() ? word.size() - cand.size() : cand.size() - word.size();
        if (gap > limit) continue;  // cannot be close; spares the table for long junk
        const std::size_t d = edit_distance(to_lower(word), to_lower(cand));
        if (d <= limit && (!best || d < best_distance)) {
            best = std::string(cand);
            best_distance = d;
        }
    }
    return best;
}

template <class E, std::size_t N>
std::optional<E> lookup(const std::array<enum_entry<E>, N>& table, std::string_view text) {
    for (const auto& e : table)
        if (iequals(e.name, text)) return e.value;
    return std::nullopt;
}

template <class E, std::size_t N>
std::string_view name_of(const std::array<enum_entry<E>, N>& table, E value) {
    for (const auto& e : table)
        if (e.value == value) return e.name;
    return "?";
}

// "a, b or c"
template <class E, std::size_t N>
std::string alternatives(const std::array<enum_entry<E>, N>& table) {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) {
        if (i > 0) out += i + 1 == N ? " or " : ", ";
        out += table[i].name;
    }
    return out;
}

error make_error(std::string text);
std::optional<std::string> home_directory(const environment& env);

}  // namespace tandem::config::detail
