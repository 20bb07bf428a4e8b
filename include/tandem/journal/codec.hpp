// SPDX-License-Identifier: MIT
// The journal's byte layouts: pure functions, no LMDB.
//
// Integers are big-endian everywhere. In keys that is what makes LMDB's default memcmp
// order equal numeric order, so "every UID >= n" is a cursor walk from n. Strings in
// keys end with a NUL byte (mailbox, channel and file names never hold one), which
// keeps keys prefix-free and ordered by the string's bytes. Strings in values carry a
// 32-bit length. Every value starts with a format byte, so that a layout can change
// without a schema version bump for the whole journal.
#pragma once

#include "tandem/mail/types.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::journal::codec {

// Builds a key or a value. For a value, the first byte written is its format byte.
class writer {
  public:
    writer() = default;
    // A value: starts with `format`.
    static writer value(std::uint8_t format) {
        writer w;
        w.u8(format);
        return w;
    }

    writer& u8(std::uint8_t v);
    writer& u16(std::uint16_t v);
    writer& u32(std::uint32_t v);
    writer& u64(std::uint64_t v);
    writer& i64(std::int64_t v);
    // Length-prefixed bytes (u32 length), for values.
    writer& str(std::string_view s);
    // Bytes and a NUL terminator, for keys. The caller checks has_nul() first.
    writer& cstr(std::string_view s);
    // Bytes as they are (the last field of a key).
    writer& raw(std::string_view s);
    // System bits (u8), keyword count (u16), keywords (str each).
    writer& flags(const mail::flag_set& f);

    const std::string& bytes() const { return out_; }
    std::string take() { return std::move(out_); }
    operator std::string_view() const { return out_; }

  private:
    std::string out_;
};

// Reads what a writer wrote. A read past the end or a malformed field makes the reader
// fail for good: every later read returns zero or empty, and ok() is false. Check
// done() (or ok()) once at the end instead of after every field.
class reader {
  public:
    explicit reader(std::string_view in) : in_(in) {}

    std::uint8_t u8();
    std::uint16_t u16();
    std::uint32_t u32();
    std::uint64_t u64();
    std::int64_t i64();
    std::string_view str();
    std::string_view cstr();
    std::string_view raw(std::size_t n);
    std::string_view rest();
    mail::flag_set flags();

    bool ok() const { return ok_; }
    // ok() and nothing left over.
    bool done() const { return ok_ && in_.empty(); }
    std::size_t remaining() const { return in_.size(); }

  private:
    bool need(std::size_t n);
    std::string_view in_;
    bool ok_ = true;
};

inline bool has_nul(std::string_view s) {
    return s.find('\0') != std::string_view::npos;
}

// Fixed-width big-endian encodings, for keys built by hand.
std::string be32(std::uint32_t v);
std::string be64(std::uint64_t v);
std::uint32_t load_be32(std::string_view s);  // s.size() >= 4
std::uint64_t load_be64(std::string_view s);  // s.size() >= 8

// The smallest key greater than every key that starts with `prefix` ("" if none: the
// prefix is all 0xff bytes), the exclusive end of a prefix scan.
std::string prefix_end(std::string_view prefix);

}  // namespace tandem::journal::codec
