// SPDX-License-Identifier: MIT
#include "tandem/journal/codec.hpp"

#include <limits>

namespace tandem::journal::codec {

namespace {

template <class T>
void put_be(std::string& out, T v) {
    for (int shift = (sizeof(T) - 1) * 8; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>(static_cast<std::uint8_t>(v >> shift)));
}

template <class T>
T get_be(std::string_view s) {
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
        v = static_cast<T>((v << 8) | static_cast<std::uint8_t>(s[i]));
    return v;
}

}  // namespace

writer& writer::u8(std::uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
}
writer& writer::u16(std::uint16_t v) {
    put_be(out_, v);
    return *this;
}
writer& writer::u32(std::uint32_t v) {
    put_be(out_, v);
    return *this;
}
writer& writer::u64(std::uint64_t v) {
    put_be(out_, v);
    return *this;
}
writer& writer::i64(std::int64_t v) {
    put_be(out_, static_cast<std::uint64_t>(v));
    return *this;
}
writer& writer::str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
    return *this;
}
writer& writer::cstr(std::string_view s) {
    out_.append(s);
    out_.push_back('\0');
    return *this;
}
writer& writer::raw(std::string_view s) {
    out_.append(s);
    return *this;
}
writer& writer::flags(const mail::flag_set& f) {
    u8(f.system_bits());
    const auto& kw = f.keywords();
    u16(static_cast<std::uint16_t>(kw.size()));
    for (const auto& k : kw) str(k);
    return *this;
}

bool reader::need(std::size_t n) {
    if (!ok_ || in_.size() < n) {
        ok_ = false;
        return false;
    }
    return true;
}

std::uint8_t reader::u8() {
    if (!need(1)) return 0;
    auto v = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return v;
}
std::uint16_t reader::u16() {
    if (!need(2)) return 0;
    auto v = get_be<std::uint16_t>(in_);
    in_.remove_prefix(2);
    return v;
}
std::uint32_t reader::u32() {
    if (!need(4)) return 0;
    auto v = get_be<std::uint32_t>(in_);
    in_.remove_prefix(4);
    return v;
}
std::uint64_t reader::u64() {
    if (!need(8)) return 0;
    auto v = get_be<std::uint64_t>(in_);
    in_.remove_prefix(8);
    return v;
}
std::int64_t reader::i64() {
    return static_cast<std::int64_t>(u64());
}

std::string_view reader::str() {
    auto n = u32();
    return raw(n);
}

std::string_view reader::cstr() {
    if (!ok_) return {};
    auto end = in_.find('\0');
    if (end == std::string_view::npos) {
        ok_ = false;
        return {};
    }
    auto v = in_.substr(0, end);
    in_.remove_prefix(end + 1);
    return v;
}

std::string_view reader::raw(std::size_t n) {
    if (!need(n)) return {};
    auto v = in_.substr(0, n);
    in_.remove_prefix(n);
    return v;
}

std::string_view reader::rest() {
    if (!ok_) return {};
    auto v = in_;
    in_ = {};
    return v;
}

mail::flag_set reader::flags() {
    mail::flag_set f;
    auto bits = u8();
    if (bits & ~0x1f) ok_ = false;  // a bit no system_flag has: not our encoding
    f.set_system_bits(bits);
    auto n = u16();
    for (std::uint16_t i = 0; i < n && ok_; ++i) {
        auto k = str();
        if (ok_) f.add_keyword(k);
    }
    return ok_ ? f : mail::flag_set();
}

std::string be32(std::uint32_t v) {
    std::string s;
    put_be(s, v);
    return s;
}
std::string be64(std::uint64_t v) {
    std::string s;
    put_be(s, v);
    return s;
}
std::uint32_t load_be32(std::string_view s) {
    return get_be<std::uint32_t>(s);
}
std::uint64_t load_be64(std::string_view s) {
    return get_be<std::uint64_t>(s);
}

std::string prefix_end(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty()) {
        auto& last = reinterpret_cast<unsigned char&>(end.back());
        if (last != std::numeric_limits<unsigned char>::max()) {
            ++last;
            return end;
        }
        end.pop_back();
    }
    return end;
}

}  // namespace tandem::journal::codec
