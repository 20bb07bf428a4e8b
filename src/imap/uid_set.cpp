// SPDX-License-Identifier: MIT
#include "tandem/imap/uid_set.hpp"

#include <algorithm>
#include <charconv>

namespace tandem::imap {
namespace {

// nz-number = digit-nz *DIGIT, at most 2^32-1 (RFC 3501 9: "number ... 32-bit").
std::optional<mail::uid> parse_nz(std::string_view s) {
    if (s.empty() || s.size() > 10 || s[0] < '1' || s[0] > '9') return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > std::numeric_limits<mail::uid>::max()) return std::nullopt;
    return static_cast<mail::uid>(v);
}

void append_uid(std::string& out, mail::uid u) {
    if (u == uid_set::star) {
        out += '*';
        return;
    }
    char buf[16];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, u);
    (void)ec;
    out.append(buf, end);
}

void append_range(std::string& out, const uid_set::range& r) {
    append_uid(out, r.first);
    if (r.last != r.first) {
        out += ':';
        append_uid(out, r.last);
    }
}

}  // namespace

uid_set::uid_set(std::initializer_list<range> ranges) {
    for (const auto& r : ranges) insert(r.first, r.last);
}

result<uid_set> uid_set::parse(std::string_view text, std::optional<mail::uid> largest) {
    uid_set set;
    if (text.empty()) return errc::protocol_error;
    auto element = [&](std::string_view s) -> std::optional<mail::uid> {
        if (s == "*") return largest ? *largest : star;
        return parse_nz(s);
    };
    while (!text.empty()) {
        auto comma = text.find(',');
        auto part = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        if (comma != std::string_view::npos && text.empty()) return errc::protocol_error;
        auto colon = part.find(':');
        auto a = element(part.substr(0, colon));
        auto b = colon == std::string_view::npos ? a : element(part.substr(colon + 1));
        if (!a || !b) return errc::protocol_error;
        set.insert(*a, *b);
    }
    return set;
}

void uid_set::insert(mail::uid first, mail::uid last) {
    if (first > last) std::swap(first, last);
    // First range that ends at or after first-1 (adjacent ranges merge).
    auto it =
        std::lower_bound(ranges_.begin(), ranges_.end(), first,
                         [](const range& r, mail::uid v) { return std::uint64_t{r.last} + 1 < v; });
    if (it == ranges_.end() || static_cast<std::uint64_t>(it->first) > std::uint64_t{last} + 1) {
        ranges_.insert(it, range{first, last});
        return;
    }
    it->first = std::min(it->first, first);
    it->last = std::max(it->last, last);
    auto next = it + 1;
    while (next != ranges_.end() && std::uint64_t{next->first} <= std::uint64_t{it->last} + 1) {
        it->last = std::max(it->last, next->last);
        ++next;
    }
    ranges_.erase(it + 1, next);
}

void uid_set::erase(mail::uid first, mail::uid last) {
    if (first > last) std::swap(first, last);
    std::vector<range> out;
    out.reserve(ranges_.size() + 1);
    for (const auto& r : ranges_) {
        if (r.last < first || r.first > last) {
            out.push_back(r);
            continue;
        }
        if (r.first < first) out.push_back({r.first, first - 1});
        if (r.last > last) out.push_back({last + 1, r.last});
    }
    ranges_ = std::move(out);
}

bool uid_set::contains(mail::uid u) const {
    auto it = std::lower_bound(ranges_.begin(), ranges_.end(), u,
                               [](const range& r, mail::uid v) { return r.last < v; });
    return it != ranges_.end() && it->first <= u;
}

std::uint64_t uid_set::size() const {
    std::uint64_t n = 0;
    for (const auto& r : ranges_) n += std::uint64_t{r.last} - r.first + 1;
    return n;
}

uid_set& uid_set::operator|=(const uid_set& other) {
    for (const auto& r : other.ranges_) insert(r.first, r.last);
    return *this;
}

uid_set& uid_set::operator-=(const uid_set& other) {
    for (const auto& r : other.ranges_) erase(r.first, r.last);
    return *this;
}

uid_set& uid_set::operator&=(const uid_set& other) {
    std::vector<range> out;
    auto a = ranges_.begin();
    auto b = other.ranges_.begin();
    while (a != ranges_.end() && b != other.ranges_.end()) {
        auto lo = std::max(a->first, b->first);
        auto hi = std::min(a->last, b->last);
        if (lo <= hi) out.push_back({lo, hi});
        if (a->last < b->last)
            ++a;
        else
            ++b;
    }
    ranges_ = std::move(out);
    return *this;
}

std::string uid_set::to_string() const {
    std::string out;
    for (const auto& r : ranges_) {
        if (!out.empty()) out += ',';
        append_range(out, r);
    }
    return out;
}

void uid_set::for_each_piece(
    std::size_t max_bytes, const std::function<void(std::string_view, std::uint64_t)>& each) const {
    max_bytes = std::max<std::size_t>(max_bytes, 21);
    std::string current;
    std::uint64_t count = 0;
    std::string piece;
    for (const auto& r : ranges_) {
        piece.clear();
        append_range(piece, r);
        if (!current.empty() && current.size() + 1 + piece.size() > max_bytes) {
            each(current, count);
            current.clear();
            count = 0;
        }
        if (!current.empty()) current += ',';
        current += piece;
        count += std::uint64_t{r.last} - r.first + 1;  // as size() counts
    }
    if (!current.empty()) each(current, count);
}

std::vector<std::string> uid_set::split(std::size_t max_bytes) const {
    std::vector<std::string> out;
    for_each_piece(max_bytes,
                   [&](std::string_view piece, std::uint64_t) { out.emplace_back(piece); });
    return out;
}

uid_set::const_iterator& uid_set::const_iterator::operator++() {
    if (current_ < range_->last) {
        ++current_;
        return *this;
    }
    ++range_;
    current_ = range_ != end_ ? range_->first : 0;
    return *this;
}

}  // namespace tandem::imap
