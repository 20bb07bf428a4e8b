// SPDX-License-Identifier: MIT
// Character classes of the IMAP grammar (RFC 9051 9, RFC 3501 9), with the ABNF beside each.
// The parser is more lenient than the ABNF where real servers deviate: see is_atom_char.
#pragma once

#include <string>
#include <string_view>

namespace tandem::imap::detail {

// CTL = %x00-1F / %x7F (RFC 5234 B.1)
constexpr bool is_ctl(char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

// DIGIT = %x30-39
constexpr bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// atom-specials   = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
//                   resp-specials
// list-wildcards  = "%" / "*"
// quoted-specials = DQUOTE / "\"
// resp-specials   = "]"
// ATOM-CHAR       = <any CHAR except atom-specials>
// ASTRING-CHAR    = ATOM-CHAR / resp-specials
//
// Tokens are read leniently: flags contain "\" and "\*", LIST names contain "%" and "*",
// ASTRING-CHAR admits "]", Exchange sends unquoted names with odd bytes (MailKit#945) and
// UTF8=ACCEPT servers send 8-bit bytes. So a token ends only at what cannot belong to
// it: SP, the list delimiters, a quote, a literal's "{", CR and LF. NUL is refused.
constexpr bool is_atom_char(char c) {
    switch (c) {
        case ' ':
        case '(':
        case ')':
        case '{':
        case '"':
        case '\r':
        case '\n':
        case '\0':
            return false;
        default:
            return true;
    }
}

// quoted = DQUOTE *QUOTED-CHAR DQUOTE
// QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
// TEXT-CHAR = <any CHAR except CR and LF>
constexpr bool is_quoted_char(char c) {
    return c != '\r' && c != '\n' && c != '\0';
}

constexpr char ascii_upper(char c) {
    return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
}

inline std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = ascii_upper(c);
    return out;
}

// Keywords of the grammar are case-insensitive (RFC 9051 9: "case-insensitive").
inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
    return true;
}

inline bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace tandem::imap::detail
