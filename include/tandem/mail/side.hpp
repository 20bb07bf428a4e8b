// SPDX-License-Identifier: MIT
// The two sides of a channel, and a pair of values indexed by side (isync's uid[2] / t^1).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace tandem::mail {

enum class side : std::uint8_t { a = 0, b = 1 };

constexpr side opposite(side s) { return s == side::a ? side::b : side::a; }
constexpr std::string_view name(side s) { return s == side::a ? "a" : "b"; }
constexpr std::array<side, 2> both_sides{side::a, side::b};

template <class T>
struct per_side {
    T a{};
    T b{};
    T& operator[](side s) { return s == side::a ? a : b; }
    const T& operator[](side s) const { return s == side::a ? a : b; }
    friend bool operator==(const per_side&, const per_side&) = default;
};

}  // namespace tandem::mail
