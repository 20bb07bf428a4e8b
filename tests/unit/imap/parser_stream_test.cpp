// SPDX-License-Identifier: MIT
// FETCH bodies through a sink: what the provider is told, that bytes arrive in order and
// whole, and that a 50 MB literal never sits in the parser's memory.
#include "tandem/imap/parser.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace tandem::imap {
namespace {

using namespace std::string_view_literals;

struct sink_log {
    struct body {
        std::uint32_t seq = 0;
        std::optional<mail::uid> uid;
        std::string item, section;
        std::optional<std::uint32_t> origin;
        std::uint64_t announced = 0;
        std::uint64_t received = 0;
        std::uint64_t checksum = 0;  // order-sensitive
        std::string data;            // kept only when small
        std::size_t pieces = 0;
        int finished = 0;
        bool destroyed = false;
    };
    std::vector<body> bodies;
};

class recording_sink final : public body_sink {
  public:
    recording_sink(sink_log& log, std::size_t index) : log_(log), index_(index) {}
    ~recording_sink() override { log_.bodies[index_].destroyed = true; }
    void write(std::span<const char> piece) override {
        auto& b = log_.bodies[index_];
        EXPECT_EQ(b.finished, 0) << "write after finish";
        for (char c : piece) b.checksum = b.checksum * 31 + static_cast<unsigned char>(c);
        b.received += piece.size();
        ++b.pieces;
        if (b.data.size() < 4096)
            b.data.append(piece.data(), std::min<std::size_t>(piece.size(), 4096));
    }
    void finish() override { ++log_.bodies[index_].finished; }

  private:
    sink_log& log_;
    std::size_t index_;
};

sink_provider recorder(sink_log& log, bool accept = true) {
    return [&log, accept](const body_context& ctx) -> std::unique_ptr<body_sink> {
        sink_log::body b;
        b.seq = ctx.seq;
        b.uid = ctx.uid;
        b.item = ctx.item;
        b.section = ctx.section;
        b.origin = ctx.origin;
        b.announced = ctx.size;
        log.bodies.push_back(std::move(b));
        if (!accept) return nullptr;
        return std::make_unique<recording_sink>(log, log.bodies.size() - 1);
    };
}

std::vector<response> drain(parser& p) {
    std::vector<response> out;
    for (;;) {
        auto r = p.next();
        EXPECT_TRUE(r) << p.last_error_detail();
        if (!r || !*r) return out;
        out.push_back(std::move(**r));
    }
}

TEST(parser_stream, bodies_go_to_the_sink_with_their_context) {
    sink_log log;
    parser p;
    p.set_sink_provider(recorder(log));
    p.feed(
        "* 3 FETCH (UID 42 BODY[HEADER.FIELDS (MESSAGE-ID)] {5}\r\nabcde BINARY[1]<10> ~{3}\r\n"
        "\0\1\2 FLAGS (\\Seen) ENVELOPE (NIL {2}\r\nxy) BODY[] \"quoted\")\r\n"
        "* 4 FETCH (BODY[] {4}\r\nbody UID 43)\r\n"
        "* LIST () \"/\" {3}\r\nbox\r\n"sv);
    auto rs = drain(p);
    ASSERT_EQ(rs.size(), 3u);
    ASSERT_EQ(log.bodies.size(), 4u);  // not the ENVELOPE or LIST literals
    const auto& h = log.bodies[0];
    EXPECT_EQ(h.seq, 3u);
    EXPECT_EQ(h.uid, 42u);
    EXPECT_EQ(h.item, "BODY");
    EXPECT_EQ(h.section, "HEADER.FIELDS (MESSAGE-ID)");
    EXPECT_EQ(h.announced, 5u);
    EXPECT_EQ(h.data, "abcde");
    EXPECT_EQ(h.finished, 1);
    EXPECT_TRUE(h.destroyed);
    EXPECT_EQ(log.bodies[1].item, "BINARY");
    EXPECT_EQ(log.bodies[1].origin, 10u);
    EXPECT_EQ(log.bodies[1].data, std::string("\0\1\2", 3));
    EXPECT_EQ(log.bodies[2].data, "quoted");  // a quoted body reaches the sink too
    EXPECT_EQ(log.bodies[2].finished, 1);
    EXPECT_EQ(log.bodies[3].seq, 4u);
    EXPECT_FALSE(log.bodies[3].uid);  // UID came after the body
    EXPECT_EQ(log.bodies[3].data, "body");

    const auto& f = std::get<fetch_data>(rs[0]);
    ASSERT_EQ(f.bodies.size(), 3u);
    for (const auto& b : f.bodies) {
        EXPECT_TRUE(b.streamed);
        EXPECT_TRUE(b.data.empty());
    }
    EXPECT_EQ(f.bodies[0].size, 5u);
    EXPECT_TRUE(f.flags);
    ASSERT_EQ(f.other.size(), 1u);
    EXPECT_EQ(f.other[0].val.items[1].text, "xy");
    EXPECT_EQ(std::get<fetch_data>(rs[1]).uid, 43u);
    EXPECT_EQ(std::get<list_data>(rs[2]).mailbox, "box");
}

TEST(parser_stream, no_sink_means_memory) {
    sink_log log;
    parser p;
    p.set_sink_provider(recorder(log, false));
    p.feed("* 1 FETCH (BODY[] {4}\r\nbody)\r\n"sv);
    auto rs = drain(p);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(log.bodies.size(), 1u);  // asked
    const auto& b = std::get<fetch_data>(rs[0]).bodies.at(0);
    EXPECT_FALSE(b.streamed);
    EXPECT_EQ(b.data, "body");

    // ... and then the in-memory limit applies.
    parser_limits limits;
    limits.max_literal = 100;
    parser q(limits);
    q.set_sink_provider(recorder(log, false));
    q.feed("* 1 FETCH (BODY[] {101}\r\n"sv);
    auto r = q.next();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(errc::literal_too_large));
}

TEST(parser_stream, bodies_under_the_minimum_size_stay_in_memory_unasked) {
    sink_log log;
    parser p;
    p.set_sink_provider(recorder(log), 5);
    p.feed("* 1 FETCH (UID 7 BODY[] {4}\r\nbody)\r\n* 2 FETCH (UID 8 BODY[] {5}\r\nbody2)\r\n"sv);
    auto rs = drain(p);
    ASSERT_EQ(rs.size(), 2u);
    ASSERT_EQ(log.bodies.size(), 1u);  // the 4-byte body was not offered
    EXPECT_EQ(log.bodies[0].uid, 8u);
    EXPECT_EQ(log.bodies[0].data, "body2");
    const auto& small = std::get<fetch_data>(rs[0]).bodies.at(0);
    EXPECT_FALSE(small.streamed);
    EXPECT_EQ(small.data, "body");
    EXPECT_TRUE(std::get<fetch_data>(rs[1]).bodies.at(0).streamed);
}

TEST(parser_stream, sink_bypasses_the_literal_limit) {
    parser_limits limits;
    limits.max_literal = 100;
    sink_log log;
    parser p(limits);
    p.set_sink_provider(recorder(log));
    std::string body(1000, 'x');
    p.feed("* 1 FETCH (UID 9 BODY[] {1000}\r\n" + body + ")\r\n");
    auto rs = drain(p);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(log.bodies.at(0).received, 1000u);
}

TEST(parser_stream, fifty_megabytes_in_small_chunks_stay_bounded) {
    constexpr std::uint64_t size = 50ull * 1024 * 1024;
    constexpr std::size_t chunk = 4096;
    sink_log log;
    parser p;
    p.set_sink_provider(recorder(log));
    p.feed("* 7 FETCH (UID 1234 RFC822.SIZE 52428800 BODY[] {52428800}\r\n"sv);
    EXPECT_TRUE(drain(p).empty());

    std::string piece(chunk, '\0');
    std::uint64_t expected_checksum = 0;
    std::uint64_t sent = 0;
    std::uint32_t state = 1;
    while (sent < size) {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - sent));
        for (std::size_t i = 0; i < n; ++i) {
            state = state * 1103515245u + 12345u;  // deterministic bytes, CRLFs included
            piece[i] = static_cast<char>(state >> 24);
            expected_checksum = expected_checksum * 31 + static_cast<unsigned char>(piece[i]);
        }
        p.feed(std::string_view(piece.data(), n));
        sent += n;
        ASSERT_TRUE(drain(p).empty());
        ASSERT_LE(p.buffered_bytes(), chunk);
    }
    p.feed(" FLAGS (\\Seen))\r\n"sv);
    auto rs = drain(p);
    ASSERT_EQ(rs.size(), 1u);
    // The whole body passed through, in order, and never more than ~one chunk was held.
    ASSERT_EQ(log.bodies.size(), 1u);
    EXPECT_EQ(log.bodies[0].announced, size);
    EXPECT_EQ(log.bodies[0].received, size);
    EXPECT_EQ(log.bodies[0].checksum, expected_checksum);
    EXPECT_EQ(log.bodies[0].finished, 1);
    EXPECT_EQ(log.bodies[0].uid, 1234u);
    EXPECT_LT(p.peak_buffered_bytes(), 2 * chunk);
    const auto& f = std::get<fetch_data>(rs[0]);
    EXPECT_EQ(f.bodies.at(0).size, size);
    EXPECT_TRUE(f.bodies.at(0).streamed);
    EXPECT_EQ(f.rfc822_size, size);
    EXPECT_TRUE(f.flags);
}

TEST(parser_stream, without_a_sink_the_same_body_is_held_whole) {
    // The counterpart of the bounded test: the buffer measure does see a whole literal.
    parser p;
    p.feed("* 7 FETCH (BODY[] {100000}\r\n"sv);
    std::string piece(1000, 'y');
    for (int i = 0; i < 100; ++i) {
        p.feed(piece);
        ASSERT_TRUE(drain(p).empty());
    }
    EXPECT_GE(p.peak_buffered_bytes(), 100000u);
    p.feed(")\r\n"sv);
    auto rs = drain(p);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(std::get<fetch_data>(rs[0]).bodies.at(0).data, std::string(100000, 'y'));
}

TEST(parser_stream, error_after_a_body_abandons_nothing_half_done) {
    sink_log log;
    parser p;
    p.set_sink_provider(recorder(log));
    // A body cut off by garbage: the sink is finished (all octets came) but the response
    // then fails; and one in the middle of its octets is destroyed without finish().
    p.feed("* 1 FETCH (BODY[] {3}\r\nabc BOGUS\r\n"sv);
    auto r = p.next();
    ASSERT_FALSE(r);
    ASSERT_EQ(log.bodies.size(), 1u);
    EXPECT_EQ(log.bodies[0].finished, 1);

    sink_log log2;
    parser_limits limits;
    limits.max_line = 50;
    std::optional<parser> q(std::in_place, limits);
    q->set_sink_provider(recorder(log2));
    q->feed("* 1 FETCH (BODY[] {10}\r\nabc"sv);
    EXPECT_TRUE(drain(*q).empty());
    ASSERT_EQ(log2.bodies.size(), 1u);
    EXPECT_FALSE(log2.bodies[0].destroyed);
    q.reset();  // destroyed mid-body
    EXPECT_TRUE(log2.bodies[0].destroyed);
    EXPECT_EQ(log2.bodies[0].finished, 0);
}

TEST(parser_stream, every_split_streams_the_same_bytes) {
    const std::string input =
        "* 1 FETCH (UID 5 BODY[] {12}\r\nhello\r\nworld BODY[TEXT] {0}\r\n)\r\n"
        "* 2 FETCH (BINARY[1] ~{4}\r\n\r\n\r\n UID 6)\r\n"
        "a OK done\r\n";
    for (std::size_t cut = 0; cut <= input.size(); ++cut) {
        sink_log log;
        parser p;
        p.set_sink_provider(recorder(log));
        p.feed(std::string_view(input).substr(0, cut));
        auto rs = drain(p);
        p.feed(std::string_view(input).substr(cut));
        auto more = drain(p);
        rs.insert(rs.end(), more.begin(), more.end());
        ASSERT_EQ(rs.size(), 3u) << cut;
        ASSERT_EQ(log.bodies.size(), 3u) << cut;
        EXPECT_EQ(log.bodies[0].data, "hello\r\nworld");
        EXPECT_EQ(log.bodies[0].uid, 5u);
        EXPECT_EQ(log.bodies[1].data, "");
        EXPECT_EQ(log.bodies[1].finished, 1);
        EXPECT_EQ(log.bodies[2].data, "\r\n\r\n");
        EXPECT_EQ(log.bodies[2].item, "BINARY");
    }
}

}  // namespace
}  // namespace tandem::imap
