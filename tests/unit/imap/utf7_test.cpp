// SPDX-License-Identifier: MIT
#include "tandem/imap/utf7.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using tandem::errc;
using tandem::imap::utf7_decode;
using tandem::imap::utf7_encode;

std::string decode(std::string_view s) {
    auto r = utf7_decode(s);
    EXPECT_TRUE(r) << s;
    return r ? *r : std::string("<error>");
}

std::string encode(std::string_view s) {
    auto r = utf7_encode(s);
    EXPECT_TRUE(r) << s;
    return r ? *r : std::string("<error>");
}

// The example of RFC 3501 section 5.1.3.
TEST(utf7, rfc3501_example) {
    const std::string utf8 =
        "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";
    EXPECT_EQ(encode(utf8), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
    EXPECT_EQ(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-"), utf8);
}

TEST(utf7, ampersand) {
    EXPECT_EQ(encode("&"), "&-");
    EXPECT_EQ(encode("Tom & Jerry"), "Tom &- Jerry");
    EXPECT_EQ(decode("&-"), "&");
    EXPECT_EQ(decode("&-&-"), "&&");
    EXPECT_EQ(decode("Tom &- Jerry"), "Tom & Jerry");
}

TEST(utf7, plain_ascii_is_unchanged) {
    const std::string all = " !\"#$%'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~";
    EXPECT_EQ(encode(all), all);
    EXPECT_EQ(decode(all), all);
    EXPECT_EQ(encode(""), "");
    EXPECT_EQ(decode(""), "");
}

TEST(utf7, latin1_and_mixed) {
    // U+00E9 é -> UTF-16 00E9 -> 'AOk'
    EXPECT_EQ(encode("caf\xc3\xa9"), "caf&AOk-");
    EXPECT_EQ(decode("caf&AOk-"), "caf\xc3\xa9");
    // A shift that ends before `&`: the ampersand is written `&-` after the closing `-`.
    EXPECT_EQ(encode("\xc3\xa9&"), "&AOk-&-");
    EXPECT_EQ(decode("&AOk-&-"), "\xc3\xa9&");
    // Three units in one run: 48 bits, exactly 8 digits.
    EXPECT_EQ(encode("\xc3\xa9\xc3\xa9\xc3\xa9"), "&AOkA6QDp-");
    EXPECT_EQ(decode("&AOkA6QDp-"), "\xc3\xa9\xc3\xa9\xc3\xa9");
}

TEST(utf7, emoji_uses_a_surrogate_pair) {
    // U+1F600: D83D DE00.
    const std::string grin = "\xf0\x9f\x98\x80";
    EXPECT_EQ(encode(grin), "&2D3eAA-");
    EXPECT_EQ(decode("&2D3eAA-"), grin);
    EXPECT_EQ(encode("Fun " + grin + "!"), "Fun &2D3eAA-!");
    EXPECT_EQ(decode(encode(grin + grin)), grin + grin);
}

TEST(utf7, controls_are_encoded) {
    EXPECT_EQ(encode(std::string("a\tb")), "a&AAk-b");
    EXPECT_EQ(decode("a&AAk-b"), "a\tb");
    EXPECT_EQ(encode("\x7f"), "&AH8-");
    EXPECT_EQ(decode("&AH8-"), "\x7f");
}

TEST(utf7, round_trips_every_bmp_block_sample) {
    for (char32_t c :
         {0x80u, 0x7ffu, 0x800u, 0xd7ffu, 0xe000u, 0xfffdu, 0xffffu, 0x10000u, 0x10ffffu}) {
        std::string u8;
        if (c < 0x800) {
            u8 += static_cast<char>(0xc0 | (c >> 6));
            u8 += static_cast<char>(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            u8 += static_cast<char>(0xe0 | (c >> 12));
            u8 += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
            u8 += static_cast<char>(0x80 | (c & 0x3f));
        } else {
            u8 += static_cast<char>(0xf0 | (c >> 18));
            u8 += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
            u8 += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
            u8 += static_cast<char>(0x80 | (c & 0x3f));
        }
        for (const std::string& s : {u8, "x" + u8 + "y", u8 + u8 + u8}) {
            const std::string wire = encode(s);
            EXPECT_EQ(decode(wire), s) << std::hex << static_cast<unsigned>(c);
        }
    }
}

void expect_invalid(std::string_view wire, std::string_view why) {
    std::string detail;
    auto r = utf7_decode(wire, &detail);
    ASSERT_FALSE(r) << wire << " decoded to " << *r;
    EXPECT_EQ(r.error(), errc::invalid_mailbox_name) << wire;
    EXPECT_NE(detail.find(why), std::string::npos) << wire << ": " << detail;
}

TEST(utf7, rejects_unterminated_shift) {
    expect_invalid("&", "unterminated");
    expect_invalid("abc&AOk", "unterminated");
}

TEST(utf7, rejects_bad_base64) {
    expect_invalid("&AO/-", "outside modified base64");  // `/` is standard, not modified
    expect_invalid("&AO=-", "outside modified base64");
    expect_invalid("&A k-", "outside modified base64");
}

TEST(utf7, rejects_encoded_printable_ascii) {
    expect_invalid("&AGE-", "printable ASCII");  // 'a'
    expect_invalid("&ACY-", "printable ASCII");  // '&' must be "&-"
    expect_invalid("&ACA-", "printable ASCII");  // ' '
}

TEST(utf7, rejects_leftover_bits) {
    expect_invalid("&AOl-", "non-zero trailing bits");  // 00E9 + 01 in the pad
    expect_invalid("&AOkA-", "superfluous");            // one digit too many
    expect_invalid("&AA-", "shorter than one");         // 12 bits, no unit
}

TEST(utf7, rejects_empty_shift) {
    expect_invalid("&&-", "outside modified base64");
    // "&-" right after a run is the ampersand, not a second run.
    EXPECT_EQ(decode("&AOk-&-&AOk-"), "\xc3\xa9&\xc3\xa9");
}

TEST(utf7, rejects_superfluous_shifts) {
    // RFC 3501 5.1.3: "&U,BTFw-&ZeVnLIqe-" is not permitted (one run is required).
    expect_invalid("&U,BTFw-&ZeVnLIqe-", "directly after another");
}

TEST(utf7, rejects_bad_surrogates) {
    expect_invalid("&2D0-", "high surrogate at end");          // D83D alone
    expect_invalid("&3gA-", "low surrogate without high");     // DE00 alone
    expect_invalid("&2D0A6Q-", "high surrogate without low");  // D83D 00E9
}

TEST(utf7, rejects_raw_non_ascii) {
    expect_invalid("caf\xc3\xa9", "outside printable ASCII");
    expect_invalid("a\tb", "outside printable ASCII");
    expect_invalid(std::string_view("a\0b", 3), "outside printable ASCII");
}

TEST(utf7, detail_names_the_offset) {
    std::string detail;
    ASSERT_FALSE(utf7_decode("abc&AGE-", &detail));
    EXPECT_NE(detail.find("at byte 6"), std::string::npos) << detail;
}

void expect_bad_utf8(std::string_view utf8, std::string_view why) {
    std::string detail;
    auto r = utf7_encode(utf8, &detail);
    ASSERT_FALSE(r) << *r;
    EXPECT_EQ(r.error(), errc::invalid_mailbox_name);
    EXPECT_NE(detail.find(why), std::string::npos) << detail;
}

TEST(utf7, encode_rejects_invalid_utf8) {
    expect_bad_utf8("\xc3", "truncated");
    expect_bad_utf8("\xc3(", "continuation");
    expect_bad_utf8("\x80", "lead byte");
    expect_bad_utf8("\xff", "lead byte");
    expect_bad_utf8("\xc0\xaf", "overlong");
    expect_bad_utf8("\xe0\x80\xaf", "overlong");
    expect_bad_utf8("\xed\xa0\x80", "surrogate");
    expect_bad_utf8("\xf4\x90\x80\x80", "above U+10FFFF");
}

}  // namespace
