// SPDX-License-Identifier: MIT
#include "tandem/net/deflate.hpp"

#include <gtest/gtest.h>

#include <random>

namespace tandem::net {
namespace {

std::string sample(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s;
    s.reserve(n);
    // Half text (compressible), half noise, so both paths of deflate are taken.
    for (std::size_t i = 0; i < n; ++i)
        s += (i / 4096) % 2 ? static_cast<char>(rng()) : "* 1 FETCH (FLAGS (\\Seen))\r\n"[i % 27];
    return s;
}

TEST(deflate, round_trip_in_batches_each_decodable_on_its_own) {
    deflater d;
    inflater in;
    std::string all;
    std::string got;
    for (unsigned batch = 0; batch < 20; ++batch) {
        std::string plain = sample(1000 + batch * 7919, batch);
        all += plain;
        std::string wire;
        d.compress(plain, wire);
        // Z_SYNC_FLUSH: the receiver decodes the whole batch without waiting for more.
        ASSERT_TRUE(in.decompress(wire, got));
        ASSERT_EQ(got.size(), all.size()) << "batch " << batch;
    }
    EXPECT_EQ(got, all);
}

TEST(deflate, compressible_text_shrinks) {
    deflater d;
    std::string plain;
    for (int i = 0; i < 1000; ++i)
        plain += "* " + std::to_string(i) + " FETCH (FLAGS (\\Seen))\r\n";
    std::string wire;
    d.compress(plain, wire);
    EXPECT_LT(wire.size(), plain.size() / 4);
}

TEST(deflate, decodes_when_fed_byte_by_byte) {
    deflater d;
    std::string plain = sample(50000, 7);
    std::string wire;
    d.compress(plain, wire);
    inflater in;
    std::string got;
    for (char c : wire) ASSERT_TRUE(in.decompress(std::string_view(&c, 1), got));
    EXPECT_EQ(got, plain);
}

TEST(deflate, empty_batch_still_flushes_validly) {
    deflater d;
    inflater in;
    std::string wire, got;
    d.compress("", wire);
    ASSERT_TRUE(in.decompress(wire, got));
    EXPECT_TRUE(got.empty());
    wire.clear();
    d.compress("a1 NOOP\r\n", wire);
    ASSERT_TRUE(in.decompress(wire, got));
    EXPECT_EQ(got, "a1 NOOP\r\n");
}

TEST(deflate, garbage_is_a_protocol_error) {
    inflater in;
    std::string got;
    // 0xff: BTYPE 11 is reserved (RFC 1951 3.2.3).
    std::string junk(64, '\xff');
    auto r = in.decompress(junk, got);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::protocol_error);
}

}  // namespace
}  // namespace tandem::net
