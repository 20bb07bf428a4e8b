// SPDX-License-Identifier: MIT
#include "tandem/journal/codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

using namespace tandem::journal::codec;
using tandem::mail::flag_set;
using tandem::mail::system_flag;

TEST(codec, integers_are_big_endian) {
    EXPECT_EQ(writer().u32(0x01020304).bytes(), std::string("\x01\x02\x03\x04", 4));
    EXPECT_EQ(writer().u16(0xa0b).bytes(), std::string("\x0a\x0b", 2));
    EXPECT_EQ(be64(0x0102030405060708ull), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
    EXPECT_EQ(load_be32(be32(0xdeadbeef)), 0xdeadbeefu);
    EXPECT_EQ(load_be64(be64(0xfedcba9876543210ull)), 0xfedcba9876543210ull);
}

TEST(codec, key_byte_order_equals_numeric_order) {
    std::mt19937_64 rng(42);
    std::vector<std::uint64_t> nums;
    for (int i = 0; i < 500; ++i) nums.push_back(rng() >> (rng() % 64));
    nums.push_back(0);
    nums.push_back(255);
    nums.push_back(256);
    std::vector<std::string> keys;
    for (auto n : nums) keys.push_back(writer().u64(7).u32(static_cast<std::uint32_t>(n)).take());
    std::sort(nums.begin(), nums.end(),
              [](auto x, auto y) { return std::uint32_t(x) < std::uint32_t(y); });
    std::sort(keys.begin(), keys.end());  // std::string compares bytes as unsigned char
    for (std::size_t i = 0; i < nums.size(); ++i)
        EXPECT_EQ(load_be32(std::string_view(keys[i]).substr(8)), std::uint32_t(nums[i]));
}

TEST(codec, value_round_trip_with_format_byte) {
    flag_set f;
    f.set(system_flag::seen);
    f.set(system_flag::draft);
    f.add_keyword("$Forwarded");
    f.add_keyword("NotJunk");
    auto v =
        writer::value(1).u8(9).u32(123456).u64(~0ull).i64(-5).str("héllo").str("").flags(f).take();
    EXPECT_EQ(static_cast<unsigned char>(v[0]), 1u);
    reader r(v);
    EXPECT_EQ(r.u8(), 1);
    EXPECT_EQ(r.u8(), 9);
    EXPECT_EQ(r.u32(), 123456u);
    EXPECT_EQ(r.u64(), ~0ull);
    EXPECT_EQ(r.i64(), -5);
    EXPECT_EQ(r.str(), "héllo");
    EXPECT_EQ(r.str(), "");
    EXPECT_EQ(r.flags(), f);
    EXPECT_TRUE(r.done());
}

TEST(codec, truncated_input_fails_for_good) {
    auto v = writer::value(1).str("abcdef").u32(5).take();
    for (std::size_t cut = 0; cut < v.size(); ++cut) {
        reader r(std::string_view(v).substr(0, cut));
        r.u8();
        r.str();
        r.u32();
        EXPECT_FALSE(r.ok()) << "cut at " << cut;
        EXPECT_EQ(r.u32(), 0u);  // sticky
    }
    reader whole(v);
    whole.u8();
    EXPECT_EQ(whole.str(), "abcdef");
    EXPECT_EQ(whole.u32(), 5u);
    EXPECT_TRUE(whole.done());
}

TEST(codec, leftover_bytes_are_not_done) {
    auto v = writer().u32(1).u8(2).take();
    reader r(v);
    r.u32();
    EXPECT_TRUE(r.ok());
    EXPECT_FALSE(r.done());
    EXPECT_EQ(r.remaining(), 1u);
}

TEST(codec, length_prefix_larger_than_input_fails) {
    auto v = writer().u32(1000).raw("abc").take();
    reader r(v);
    EXPECT_EQ(r.str(), "");
    EXPECT_FALSE(r.ok());
}

TEST(codec, cstr_keys_are_prefix_free_and_ordered) {
    auto k1 = writer().cstr("inbox").raw("a").take();
    auto k2 = writer().cstr("inbox2").raw("").take();
    // "inbox\0..." < "inbox2\0": a name sorts before every longer name it starts.
    EXPECT_LT(k1, k2);
    EXPECT_NE(k2.substr(0, 6), writer().cstr("inbox").bytes());
    reader r(k1);
    EXPECT_EQ(r.cstr(), "inbox");
    EXPECT_EQ(r.rest(), "a");
    reader bad(std::string_view("no-terminator"));
    bad.cstr();
    EXPECT_FALSE(bad.ok());
    EXPECT_TRUE(has_nul(std::string_view("a\0b", 3)));
    EXPECT_FALSE(has_nul("ab"));
}

TEST(codec, flags_with_unknown_bits_are_rejected) {
    auto v = writer().u8(0x80).u16(0).take();
    reader r(v);
    r.flags();
    EXPECT_FALSE(r.ok());
}

TEST(codec, prefix_end_is_the_first_key_past_the_prefix) {
    EXPECT_EQ(prefix_end("ab"), "ac");
    EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
    EXPECT_EQ(prefix_end(std::string("\xff\xff", 2)), "");
    EXPECT_LT(std::string("ab\xff\xff\xff"), prefix_end("ab"));
}
