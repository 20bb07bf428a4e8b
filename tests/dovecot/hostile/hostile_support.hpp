// SPDX-License-Identifier: MIT
// Helpers of the hostile-input tests: every message of a mailbox as a sorted list of
// "digest|flags|@date" strings, read from outside (imap_script, the file system), so that
// "both sides hold these bytes with these flags and dates, as many times as given" is one
// comparison; and the state that a sync which changes nothing must leave alone.
#pragma once

#include "../sync/e2e_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tandem::e2e::hostile {

// One message as the tests compare it: its bytes (a digest), flags and date.
inline std::string key(std::string_view bytes, const std::vector<std::string>& flags,
                       std::int64_t date) {
    return digest(bytes) + "|" + flags_text(flags) + "|@" + std::to_string(date);
}

// Dovecot keeps messages with LF line ends and serves every bare LF as CRLF (BODY[] and
// BINARY[] alike): what an IMAP client reads of bytes that were stored.
inline std::string crlf(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() + bytes.size() / 32);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) out += '\r';
        out += bytes[i];
    }
    return out;
}

// BODY[] of Dovecot 2.3 also turns each NUL into 0x80 (only BINARY[] gives the NUL back).
inline std::string as_body_section(std::string_view bytes) {
    auto out = crlf(bytes);
    for (char& c : out)
        if (c == '\0') c = static_cast<char>(0x80);
    return out;
}

inline std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

// Every message of a server mailbox (wire name): BODY.PEEK[], or BINARY.PEEK[] when `binary`.
inline std::vector<std::string> imap_keys(const test::dovecot& server, const std::string& user,
                                          const std::string& mailbox, bool binary = false) {
    auto t = test::imap_script(server, user,
                               {"EXAMINE " + test::imap_quote(mailbox),
                                binary ? "UID FETCH 1:* (UID FLAGS INTERNALDATE BINARY.PEEK[])"
                                       : "UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])"});
    if (!t.ok()) throw std::runtime_error("hostile: cannot read " + mailbox + " of " + user);
    std::vector<std::string> untagged = t.replies[1].untagged;
    if (binary) {
        // parse_fetches() knows "BODY[] {n}": a literal8 "BINARY[] ~{n}" reads the same.
        static const std::regex bin(R"(BINARY\[\] ~?\{)", std::regex::icase);
        for (auto& u : untagged) {
            std::smatch m;
            if (std::regex_search(u, m, bin))
                u = u.substr(0, static_cast<std::size_t>(m.position(0))) + "BODY[] {" +
                    u.substr(static_cast<std::size_t>(m.position(0) + m.length(0)));
        }
    }
    std::vector<std::string> out;
    for (const auto& f : parse_fetches(untagged))
        out.push_back(key(f.body, f.flags, parse_internaldate(f.internaldate)));
    return sorted(out);
}

// Every message file of a Maildir folder: content, flags of its name, mtime.
inline std::vector<std::string> maildir_keys(const fs::path& folder) {
    std::vector<std::string> out;
    auto keywords = read_keywords(folder);
    for (const char* sub : {"new", "cur"}) {
        std::error_code ec;
        for (const auto& f : fs::directory_iterator(folder / sub, ec)) {
            struct stat st {};
            ::stat(f.path().c_str(), &st);
            auto flags = std::string(sub) == "cur"
                             ? maildir_flags(f.path().filename().string(), keywords)
                             : std::vector<std::string>{};
            out.push_back(key(read_file(f.path()), flags, st.st_mtim.tv_sec));
        }
    }
    return sorted(out);
}

// Two sorted lists, as a readable difference when they differ.
inline ::testing::AssertionResult same_messages(const std::vector<std::string>& got,
                                                const std::vector<std::string>& want) {
    if (got == want) return ::testing::AssertionSuccess();
    std::vector<std::string> missing, extra;
    std::set_difference(want.begin(), want.end(), got.begin(), got.end(),
                        std::back_inserter(missing));
    std::set_difference(got.begin(), got.end(), want.begin(), want.end(),
                        std::back_inserter(extra));
    auto r = ::testing::AssertionFailure();
    r << got.size() << " messages, " << want.size() << " expected";
    for (const auto& m : missing) r << "\n  missing " << m;
    for (const auto& m : extra) r << "\n  extra   " << m;
    return r;
}

// What a second sync must leave as it was: the server's marks of both accounts, the Maildir's
// files (names carry the flags), the saves Dovecot logged.
struct quiet_state {
    std::map<std::string, std::string> marks_a, marks_b;
    std::vector<std::string> files;
    std::size_t saves_a = 0, saves_b = 0;
    bool operator==(const quiet_state&) const = default;
};

inline quiet_state quiet(const channel_under_test& c) {
    quiet_state q;
    q.marks_a = server_marks(c.server(), c.user_a());
    if (!c.user_b().empty())
        q.marks_b = server_marks(c.server(), c.user_b());
    else
        q.files = maildir_files(c.w.maildir());
    q.saves_a = c.saves(true);
    q.saves_b = c.saves(false);
    return q;
}

inline std::ostream& operator<<(std::ostream& os, const quiet_state& q) {
    os << "saves a=" << q.saves_a << " b=" << q.saves_b << "\n";
    for (const auto& [k, v] : q.marks_a) os << "a " << k << " " << v << "\n";
    for (const auto& [k, v] : q.marks_b) os << "b " << k << " " << v << "\n";
    for (const auto& f : q.files) os << "file " << f << "\n";
    return os;
}

}  // namespace tandem::e2e::hostile
