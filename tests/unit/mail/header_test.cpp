// SPDX-License-Identifier: MIT
// header_of and read_header: where a message's header ends, in memory and in a file (the
// sync engine keys a spooled body by it; the IMAP store finds an appended message's
// Message-ID by it).
#include "tandem/mail/content_key.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

namespace tandem::mail {
namespace {

void write(const std::filesystem::path& p, std::string_view content) {
    std::ofstream out(p, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    ASSERT_TRUE(out.good());
}

// The header read from a file holding `content`, with the default limit unless told.
std::string header_in_file(std::string_view content, std::size_t limit = header_read_limit) {
    test::temp_dir d;
    write(d / "m", content);
    auto h = read_header(d / "m", limit);
    EXPECT_TRUE(h) << h.error().message();
    return h ? *h : std::string("(error)");
}

TEST(header_of, ends_before_the_empty_line_with_lf_or_crlf) {
    EXPECT_EQ(header_of("A: 1\r\nB: 2\r\n\r\nbody\r\n"), "A: 1\r\nB: 2\r\n");
    EXPECT_EQ(header_of("A: 1\nB: 2\n\nbody\n"), "A: 1\nB: 2\n");
    // The first empty line, whichever line end it has (CRLF header, LF-only body).
    EXPECT_EQ(header_of("A: 1\r\n\r\nbody\n\nmore\n"), "A: 1\r\n");
    EXPECT_EQ(header_of("A: 1\n\r\nbody\r\n"), "A: 1\n");
    // A folded line is not an empty one.
    EXPECT_EQ(header_of("A: 1\r\n \r\nB: 2\r\n\r\nb"), "A: 1\r\n \r\nB: 2\r\n");
}

TEST(header_of, no_empty_line_is_all_header_and_a_leading_one_is_none) {
    EXPECT_EQ(header_of("A: 1\r\nB: 2\r\n"), "A: 1\r\nB: 2\r\n");
    EXPECT_EQ(header_of("A: 1"), "A: 1");
    EXPECT_EQ(header_of(""), "");
    EXPECT_EQ(header_of("\r\nbody\r\n\r\n"), "");
    EXPECT_EQ(header_of("\nbody\n\n"), "");
}

TEST(header_of, the_cut_does_not_change_what_the_header_says) {
    for (std::string_view m : {
             std::string_view("Message-ID: <a@x>\r\nSubject: s\r\n\r\nMessage-ID: <b@x>\r\n"),
             std::string_view("Subject: s\r\n\r\nbody\n\nFrom: f\n"),
             std::string_view("Subject: s\nMessage-ID:\n <folded@x>\n"),
             std::string_view("\r\nMessage-ID: <body@x>\r\n"),
         }) {
        auto whole = identify_header(m);
        auto cut = identify_header(header_of(m));
        EXPECT_EQ(cut.message_id, whole.message_id) << m;
        EXPECT_EQ(cut.digest, whole.digest) << m;
        EXPECT_EQ(content_key(cut, 10, 1), content_key(whole, 10, 1)) << m;
    }
}

TEST(read_header, reads_a_file_up_to_the_empty_line) {
    EXPECT_EQ(header_in_file("A: 1\r\nB: 2\r\n\r\nbody\r\n"), "A: 1\r\nB: 2\r\n");
    EXPECT_EQ(header_in_file("A: 1\nB: 2\n\nbody\n"), "A: 1\nB: 2\n");
    EXPECT_EQ(header_in_file("A: 1\r\n\r\nbody\n\nmore\n"), "A: 1\r\n");
    EXPECT_EQ(header_in_file("\r\nbody\r\n"), "");
    EXPECT_EQ(header_in_file(""), "");
}

TEST(read_header, a_file_without_an_empty_line_is_read_whole) {
    EXPECT_EQ(header_in_file("A: 1\r\nB: 2\r\n"), "A: 1\r\nB: 2\r\n");
    EXPECT_EQ(header_in_file("A: 1"), "A: 1");
}

TEST(read_header, finds_an_empty_line_across_the_reads) {
    // The file is read 16 KiB at a time: an empty line whose bytes straddle a read.
    for (std::size_t at : {16381u, 16382u, 16383u, 16384u, 16385u}) {
        for (std::string_view end : {"\n\n", "\n\r\n"}) {
            std::string header = "X: " + std::string(at - 4, 'x') + "\n";  // at bytes long
            ASSERT_EQ(header.size(), at);
            std::string m = header + std::string(end.substr(1)) + "body\n";
            auto h = header_in_file(m);
            EXPECT_EQ(h.size(), at) << at << " " << end.size();
            EXPECT_EQ(h, header_of(m));
        }
    }
}

TEST(read_header, reads_at_most_one_mib_or_the_limit_given) {
    // A header with no end in its first MiB: that MiB, nothing after it.
    std::string line = "X-Filler: " + std::string(100, 'f') + "\r\n";
    std::string big;
    while (big.size() < (3u << 20) / 2) big += line;
    const std::string m = big + "Message-ID: <late@x>\r\n\r\nbody\r\n";
    auto h = header_in_file(m);
    ASSERT_EQ(h.size(), std::size_t(1) << 20);
    EXPECT_EQ(h, m.substr(0, std::size_t(1) << 20));
    EXPECT_EQ(find_message_id(h), std::nullopt);
    // The whole header once the limit allows it.
    EXPECT_EQ(header_in_file(m, 2u << 20), header_of(m));
    EXPECT_EQ(find_message_id(header_in_file(m, 2u << 20)), "<late@x>");
    // A smaller limit (the IMAP store's 64 KB window).
    EXPECT_EQ(header_in_file(m, 64 * 1024), m.substr(0, 64 * 1024));
    // An empty line that the limit cuts is not seen; one within it is.
    const std::string at_limit = std::string(99, 'h') + "\n\r\nbody";
    EXPECT_EQ(header_in_file(at_limit, 100), at_limit.substr(0, 100));
    EXPECT_EQ(header_in_file(at_limit, 101), at_limit.substr(0, 101));
    EXPECT_EQ(header_in_file(at_limit, 102), at_limit.substr(0, 100));
}

TEST(read_header, a_missing_file_is_an_error) {
    test::temp_dir d;
    auto h = read_header(d / "none");
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error(), std::errc::no_such_file_or_directory);
}

TEST(read_header, from_a_source_in_small_pieces_and_with_its_error) {
    const std::string m = "From: a\r\nSubject: s\r\n\r\nbody\r\n\r\nmore";
    std::size_t at = 0;
    auto h = read_header(
        [&](std::span<char> buffer) -> result<std::size_t> {
            if (at == m.size() || buffer.empty()) return std::size_t(0);
            buffer[0] = m[at++];  // one byte at a time: the empty line spans reads
            return std::size_t(1);
        },
        1000);
    ASSERT_TRUE(h);
    EXPECT_EQ(*h, header_of(m));
    EXPECT_LT(at, m.size());  // stopped at the empty line
    auto failed = read_header([](std::span<char>) -> result<std::size_t> {
        return make_error_code(std::errc::io_error);
    });
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error(), std::errc::io_error);
}

}  // namespace
}  // namespace tandem::mail
