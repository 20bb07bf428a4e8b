// SPDX-License-Identifier: MIT
#include "tandem/imap/utf7.hpp"

#include <array>
#include <cstdint>
#include <string>

namespace tandem::imap {
namespace {

// RFC 3501 5.1.3: RFC 2045 base64 with `,` in place of `/`.
constexpr std::string_view b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
constexpr std::uint8_t no_digit = 0xff;

constexpr std::array<std::uint8_t, 256> make_b64_table() {
    std::array<std::uint8_t, 256> t{};
    for (auto& v : t) v = no_digit;
    for (std::size_t i = 0; i < b64.size(); ++i)
        t[static_cast<unsigned char>(b64[i])] = static_cast<std::uint8_t>(i);
    return t;
}
constexpr auto b64_table = make_b64_table();

bool printable(char32_t c) {
    return c >= 0x20 && c <= 0x7e;
}

error_code fail(std::string* detail, std::string what, std::size_t offset) {
    if (detail) *detail = std::move(what) + " at byte " + std::to_string(offset);
    return errc::invalid_mailbox_name;
}

void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xc0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xe0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (c & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (c & 0x3f));
    }
}

// Collects UTF-16 units and writes them as one base64 run.
class shift_writer {
  public:
    explicit shift_writer(std::string& out) : out_(out) {}
    void unit(std::uint16_t u) {
        bits_ = bits_ << 16 | u;
        nbits_ += 16;
        while (nbits_ >= 6) {
            nbits_ -= 6;
            out_ += b64[(bits_ >> nbits_) & 0x3f];
        }
        bits_ &= (1u << nbits_) - 1;
    }
    void code_point(char32_t c) {
        if (c >= 0x10000) {
            c -= 0x10000;
            unit(static_cast<std::uint16_t>(0xd800 | (c >> 10)));
            unit(static_cast<std::uint16_t>(0xdc00 | (c & 0x3ff)));
        } else {
            unit(static_cast<std::uint16_t>(c));
        }
    }
    void finish() {
        if (nbits_ > 0) out_ += b64[(bits_ << (6 - nbits_)) & 0x3f];
        bits_ = 0;
        nbits_ = 0;
    }

  private:
    std::string& out_;
    std::uint32_t bits_ = 0;
    int nbits_ = 0;
};

}  // namespace

result<std::string> utf7_encode(std::string_view in, std::string* detail) {
    std::string out;
    out.reserve(in.size());
    shift_writer writer(out);
    bool shifted = false;
    std::size_t i = 0;
    while (i < in.size()) {
        const std::size_t start = i;
        const auto lead = static_cast<unsigned char>(in[i]);
        char32_t c = 0;
        std::size_t len = 0;
        char32_t min = 0;
        if (lead < 0x80) {
            c = lead;
            len = 1;
        } else if ((lead & 0xe0) == 0xc0) {
            c = lead & 0x1f;
            len = 2;
            min = 0x80;
        } else if ((lead & 0xf0) == 0xe0) {
            c = lead & 0x0f;
            len = 3;
            min = 0x800;
        } else if ((lead & 0xf8) == 0xf0) {
            c = lead & 0x07;
            len = 4;
            min = 0x10000;
        } else {
            return fail(detail, "invalid UTF-8 lead byte", start);
        }
        if (in.size() - i < len) return fail(detail, "truncated UTF-8 sequence", start);
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(in[i + k]);
            if ((b & 0xc0) != 0x80) return fail(detail, "invalid UTF-8 continuation byte", i + k);
            c = c << 6 | (b & 0x3f);
        }
        if (c < min) return fail(detail, "overlong UTF-8 sequence", start);
        if (c >= 0xd800 && c <= 0xdfff) return fail(detail, "UTF-8 encoded surrogate", start);
        if (c > 0x10ffff) return fail(detail, "code point above U+10FFFF", start);
        i += len;

        if (printable(c)) {
            if (shifted) {
                writer.finish();
                out += '-';
                shifted = false;
            }
            if (c == '&')
                out += "&-";
            else
                out += static_cast<char>(c);
        } else {
            if (!shifted) {
                out += '&';
                shifted = true;
            }
            writer.code_point(c);
        }
    }
    if (shifted) {
        writer.finish();
        out += '-';
    }
    return out;
}

result<std::string> utf7_decode(std::string_view in, std::string* detail) {
    std::string out;
    out.reserve(in.size());
    std::size_t i = 0;
    bool after_shift = false;  // the previous character closed a base64 run
    while (i < in.size()) {
        const auto ch = static_cast<unsigned char>(in[i]);
        if (!printable(ch)) return fail(detail, "byte outside printable ASCII", i);
        if (ch != '&') {
            out += static_cast<char>(ch);
            ++i;
            after_shift = false;
            continue;
        }
        const std::size_t amp = i;
        ++i;
        if (i < in.size() && in[i] == '-') {
            out += '&';
            ++i;
            after_shift = false;
            continue;
        }
        if (after_shift) return fail(detail, "base64 run directly after another", amp);

        std::uint32_t bits = 0;
        int nbits = 0;
        std::uint16_t high = 0;  // a pending high surrogate
        bool any = false;
        for (;;) {
            if (i >= in.size()) return fail(detail, "unterminated `&` shift", amp);
            const auto d = static_cast<unsigned char>(in[i]);
            if (d == '-') break;
            const std::uint8_t v = b64_table[d];
            if (v == no_digit) return fail(detail, "character outside modified base64", i);
            bits = bits << 6 | v;
            nbits += 6;
            ++i;
            if (nbits < 16) continue;
            nbits -= 16;
            const auto u = static_cast<std::uint16_t>(bits >> nbits);
            bits &= (1u << nbits) - 1;
            any = true;
            if (high != 0) {
                if (u < 0xdc00 || u > 0xdfff)
                    return fail(detail, "high surrogate without low surrogate", i - 1);
                append_utf8(out, 0x10000 + ((char32_t(high) - 0xd800) << 10) + (u - 0xdc00));
                high = 0;
            } else if (u >= 0xd800 && u <= 0xdbff) {
                high = u;
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                return fail(detail, "low surrogate without high surrogate", i - 1);
            } else if (printable(u)) {
                return fail(detail, "printable ASCII encoded in base64", i - 1);
            } else {
                append_utf8(out, u);
            }
        }
        // i is at the closing `-`.
        // An empty run cannot reach here: "&-" is the ampersand.
        if (!any) return fail(detail, "base64 run shorter than one UTF-16 unit", amp);
        if (high != 0) return fail(detail, "high surrogate at end of base64 run", i);
        // The encoder pads the last unit to a whole base64 digit: at most 4 bits, all zero.
        if (nbits >= 6) return fail(detail, "superfluous base64 digit", i - 1);
        if (bits != 0) return fail(detail, "non-zero trailing bits in base64 run", i - 1);
        ++i;
        after_shift = true;
    }
    return out;
}

}  // namespace tandem::imap
