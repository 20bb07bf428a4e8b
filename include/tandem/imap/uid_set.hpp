// SPDX-License-Identifier: MIT
// A compact set of UIDs (or sequence numbers): sorted, disjoint, non-adjacent ranges.
// Parses and prints IMAP sequence-set syntax (RFC 3501 9, RFC 9051 9: `1:5,7,9:*`) and
// splits long sets into pieces that fit a server's line limit (RFC 7162 4).
#pragma once

#include "tandem/mail/types.hpp"
#include "tandem/util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::imap {

class uid_set {
  public:
    // `*` when no largest value was given to parse(): the largest possible UID, so that it
    // sorts last and prints back as `*`.
    static constexpr mail::uid star = std::numeric_limits<mail::uid>::max();

    struct range {
        mail::uid first = 0;  // first <= last
        mail::uid last = 0;
        friend bool operator==(const range&, const range&) = default;
    };

    uid_set() = default;
    // Ranges in any order, overlapping or reversed (`{5, 1}` is 1:5).
    uid_set(std::initializer_list<range> ranges);

    // Parses `1:5,7,9:*`. Reversed ranges are normalised (RFC 3501 9: "5:1" is "1:5").
    // `*` becomes `largest` when given, else the marker uid_set::star. 0 is refused
    // (nz-number), as are empty elements, signs, spaces and numbers over 2^32-1.
    // Returns errc::protocol_error on bad syntax.
    static result<uid_set> parse(std::string_view text,
                                 std::optional<mail::uid> largest = std::nullopt);

    void insert(mail::uid u) { insert(u, u); }
    void insert(mail::uid first, mail::uid last);  // either order
    void erase(mail::uid u) { erase(u, u); }
    void erase(mail::uid first, mail::uid last);
    void clear() { ranges_.clear(); }

    bool contains(mail::uid u) const;
    bool empty() const { return ranges_.empty(); }
    // Number of UIDs (the star marker counts as one).
    std::uint64_t size() const;
    // Smallest and largest member; the set must not be empty.
    mail::uid min() const { return ranges_.front().first; }
    mail::uid max() const { return ranges_.back().last; }
    bool has_star() const { return !ranges_.empty() && ranges_.back().last == star; }

    uid_set& operator|=(const uid_set& other);  // union
    uid_set& operator-=(const uid_set& other);  // difference
    uid_set& operator&=(const uid_set& other);  // intersection
    friend uid_set operator|(uid_set a, const uid_set& b) { return a |= b; }
    friend uid_set operator-(uid_set a, const uid_set& b) { return a -= b; }
    friend uid_set operator&(uid_set a, const uid_set& b) { return a &= b; }
    friend bool operator==(const uid_set&, const uid_set&) = default;

    const std::vector<range>& ranges() const { return ranges_; }

    // Compact form: `1:5,7,9:12`; the star marker prints as `*`. Empty set: "".
    std::string to_string() const;
    // The set as several sequence-set strings, each at most max_bytes long (clamped to at
    // least 21, the longest single range "4294967294:4294967295"), covering the set in
    // ascending order. Empty set: no strings.
    std::vector<std::string> split(std::size_t max_bytes) const;
    // The same pieces, one at a time, each with the number of UIDs it holds: a caller that
    // sends them as it goes holds one piece, not the whole set in text.
    void for_each_piece(std::size_t max_bytes,
                        const std::function<void(std::string_view, std::uint64_t)>& each) const;

    // Iterates over every UID in ascending order.
    class const_iterator {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = mail::uid;
        using difference_type = std::ptrdiff_t;
        using pointer = const mail::uid*;
        using reference = mail::uid;

        const_iterator() = default;
        mail::uid operator*() const { return current_; }
        const_iterator& operator++();
        const_iterator operator++(int) {
            auto copy = *this;
            ++*this;
            return copy;
        }
        friend bool operator==(const const_iterator& a, const const_iterator& b) {
            return a.range_ == b.range_ && (a.range_ == a.end_ || a.current_ == b.current_);
        }

      private:
        friend class uid_set;
        const_iterator(const range* r, const range* end)
            : range_(r), end_(end), current_(r != end ? r->first : 0) {}
        const range* range_ = nullptr;
        const range* end_ = nullptr;
        mail::uid current_ = 0;
    };
    const_iterator begin() const { return {ranges_.data(), ranges_.data() + ranges_.size()}; }
    const_iterator end() const {
        return {ranges_.data() + ranges_.size(), ranges_.data() + ranges_.size()};
    }

  private:
    std::vector<range> ranges_;
};

}  // namespace tandem::imap
