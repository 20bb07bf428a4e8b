// SPDX-License-Identifier: MIT
#include "tandem/util/base64.hpp"

#include <array>
#include <cstdint>

namespace tandem::util {
namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint8_t invalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
    std::array<std::uint8_t, 256> table{};
    for (auto& v : table) v = invalid;
    for (std::size_t i = 0; i < alphabet.size(); ++i)
        table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
    return table;
}

constexpr auto decode_table = make_decode_table();

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t v =
            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
            static_cast<unsigned char>(bytes[i + 2]);
        out += alphabet[(v >> 18) & 0x3f];
        out += alphabet[(v >> 12) & 0x3f];
        out += alphabet[(v >> 6) & 0x3f];
        out += alphabet[v & 0x3f];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        const std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]))
                                << 16;
        out += alphabet[(v >> 18) & 0x3f];
        out += alphabet[(v >> 12) & 0x3f];
        out += "==";
    } else if (rest == 2) {
        const std::uint32_t v =
            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
        out += alphabet[(v >> 18) & 0x3f];
        out += alphabet[(v >> 12) & 0x3f];
        out += alphabet[(v >> 6) & 0x3f];
        out += '=';
    }
    return out;
}

result<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return errc::invalid_argument;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        std::size_t pad = 0;
        if (last) {
            if (text[i + 3] == '=') ++pad;
            if (pad == 1 && text[i + 2] == '=') ++pad;
        }
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            std::uint8_t d = 0;
            if (k < 4 - pad) {
                d = decode_table[static_cast<unsigned char>(text[i + k])];
                if (d == invalid) return errc::invalid_argument;  // also `=` in the middle
            }
            v = v << 6 | d;
        }
        out += static_cast<char>((v >> 16) & 0xff);
        if (pad == 2) {
            if ((v & 0xffff) != 0) return errc::invalid_argument;
            break;
        }
        out += static_cast<char>((v >> 8) & 0xff);
        if (pad == 1) {
            if ((v & 0xff) != 0) return errc::invalid_argument;
            break;
        }
        out += static_cast<char>(v & 0xff);
    }
    return out;
}

}  // namespace tandem::util
