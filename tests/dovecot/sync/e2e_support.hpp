// SPDX-License-Identifier: MIT
// End-to-end helpers: run the built `tandem` binary with a configuration of its own, and
// look at both sides of a channel from outside, through imap_script and the file system,
// never through tandem's code or its report.
//
//     e2e::world w;                                  // temp dir: config, state, Maildir
//     w.write_config(w.general() + w.imap_store("server", srv, "alice") +
//                    w.maildir_store("local") + w.channel("c", "server", "local"));
//     auto r = w.run({"sync"});                      // tandem sync --config <file>
//     EXPECT_EQ(e2e::snapshot_imap(srv, "alice"), e2e::snapshot_maildir(w.maildir()));
//
// A snapshot maps each mailbox (canonical: UTF-8, '/' between levels) to the sorted list of
// its messages, each one string "subject|size:hash|flags" (flags in IMAP spelling, sorted),
// so "both sides hold the same messages with the same flags" is one comparison, and a
// difference prints readably.
#pragma once

#include "support/dovecot.hpp"
#include "support/imap_script.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef TANDEM_BIN
// Only while the tandem target does not exist yet (tests/CMakeLists.txt defines it then).
#define TANDEM_BIN TANDEM_BINARY_DIR "/src/tandem"
#endif

namespace tandem::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------
// Small utilities

inline std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("e2e: cannot read " + p.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void write_file(const fs::path& p, std::string_view text, fs::perms mode = fs::perms(0644)) {
    fs::create_directories(p.parent_path());
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("e2e: cannot write " + p.string());
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
    fs::permissions(p, mode);
}

// FNV-1a, 64 bits: enough to tell the messages of a test apart; the size goes with it.
inline std::string digest(std::string_view bytes) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%zu:%016llx", bytes.size(), static_cast<unsigned long long>(h));
    return buf;
}

inline bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

inline std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

inline std::string base64(std::string_view in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                     (static_cast<unsigned char>(in[i + 1]) << 8) |
                     static_cast<unsigned char>(in[i + 2]);
        out += t[(v >> 18) & 63];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += t[v & 63];
    }
    if (i + 1 == in.size()) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        out += t[(v >> 18) & 63];
        out += t[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                     (static_cast<unsigned char>(in[i + 1]) << 8);
        out += t[(v >> 18) & 63];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

// The Subject of a message (first line only), for readable snapshots and look-ups.
inline std::string subject_of(std::string_view message) {
    std::size_t pos = 0;
    while (pos < message.size()) {
        auto eol = message.find('\n', pos);
        if (eol == std::string_view::npos) eol = message.size();
        std::string_view line = message.substr(pos, eol - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;  // end of the header
        if (line.size() > 8 && lower(std::string(line.substr(0, 8))) == "subject:") {
            auto v = line.substr(8);
            while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
            return std::string(v);
        }
        pos = eol + 1;
    }
    return "";
}

// "05-Mar-2024 10:20:30 +0100" (RFC 9051 date-time) -> seconds since the epoch.
inline std::int64_t parse_internaldate(std::string_view text) {
    static const char* months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};
    std::string s(text);
    while (!s.empty() && s.front() == ' ') s.erase(0, 1);
    int day = 0, year = 0, hh = 0, mm = 0, ss = 0, zone = 0;
    char mon[4] = {};
    char sign = '+';
    if (std::sscanf(s.c_str(), "%d-%3c-%d %d:%d:%d %c%d", &day, mon, &year, &hh, &mm, &ss, &sign,
                    &zone) != 8)
        throw std::runtime_error("e2e: bad INTERNALDATE " + s);
    std::tm tm{};
    tm.tm_mday = day;
    tm.tm_year = year - 1900;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    std::string m = lower(std::string(mon, 3));
    for (int i = 0; i < 12; ++i)
        if (m == months[i]) tm.tm_mon = i;
    std::int64_t t = timegm(&tm);
    std::int64_t offset = (zone / 100) * 3600 + (zone % 100) * 60;
    return sign == '-' ? t + offset : t - offset;
}

// RFC 3501 section 5.1.3 modified UTF-7, written here again so that the tests do not trust
// tandem's own codec.
inline std::string utf7_decode(std::string_view in) {
    static const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    std::string out;
    auto put = [&](std::uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    };
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '&') {
            out += in[i];
            continue;
        }
        auto end = in.find('-', i);
        if (end == std::string_view::npos) throw std::runtime_error("e2e: bad mUTF-7");
        if (end == i + 1) {
            out += '&';
            i = end;
            continue;
        }
        std::uint32_t bits = 0;
        int nbits = 0;
        std::vector<std::uint16_t> units;
        for (std::size_t k = i + 1; k < end; ++k) {
            auto v = alphabet.find(in[k]);
            if (v == std::string::npos) throw std::runtime_error("e2e: bad mUTF-7");
            bits = (bits << 6) | static_cast<std::uint32_t>(v);
            nbits += 6;
            if (nbits >= 16) {
                nbits -= 16;
                units.push_back(static_cast<std::uint16_t>((bits >> nbits) & 0xFFFF));
            }
        }
        for (std::size_t k = 0; k < units.size(); ++k) {
            std::uint32_t u = units[k];
            if (u >= 0xD800 && u < 0xDC00 && k + 1 < units.size()) {
                u = 0x10000 + ((u - 0xD800) << 10) + (units[k + 1] - 0xDC00);
                ++k;
            }
            put(u);
        }
        i = end;
    }
    return out;
}

inline std::string utf7_encode(std::string_view in) {
    static const char* alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    std::string out;
    std::vector<std::uint16_t> pending;
    auto flush = [&] {
        if (pending.empty()) return;
        out += '&';
        std::uint32_t bits = 0;
        int nbits = 0;
        for (auto u : pending) {
            bits = (bits << 16) | u;
            nbits += 16;
            while (nbits >= 6) {
                nbits -= 6;
                out += alphabet[(bits >> nbits) & 63];
            }
        }
        if (nbits > 0) out += alphabet[(bits << (6 - nbits)) & 63];
        out += '-';
        pending.clear();
    };
    for (std::size_t i = 0; i < in.size();) {
        auto c = static_cast<unsigned char>(in[i]);
        if (c >= 0x20 && c < 0x7F) {
            flush();
            out += c == '&' ? std::string("&-") : std::string(1, static_cast<char>(c));
            ++i;
            continue;
        }
        std::uint32_t cp = 0;
        int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        cp = len == 1 ? c : c & (0x7F >> len);
        for (int k = 1; k < len; ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(in[i + k]) & 0x3F);
        i += static_cast<std::size_t>(len);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            pending.push_back(static_cast<std::uint16_t>(0xD800 + (cp >> 10)));
            pending.push_back(static_cast<std::uint16_t>(0xDC00 + (cp & 0x3FF)));
        } else {
            pending.push_back(static_cast<std::uint16_t>(cp));
        }
    }
    flush();
    return out;
}

// Waits until `done` holds, checking every 100 ms, up to `timeout`.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= end) return false;
        std::this_thread::sleep_for(100ms);
    }
}

// ---------------------------------------------------------------------------------------
// Running the binary

inline std::string tandem_bin() {
    return TANDEM_BIN;
}

struct run_options {
    std::chrono::milliseconds timeout = 90s;  // SIGKILL then, and the result says timed_out
    // SIGKILL (the process group, so a tunnel goes too) after this long.
    std::optional<std::chrono::milliseconds> kill_after;
    // SIGKILL as soon as stdout or stderr shows this text.
    std::string kill_when;
    // SIGKILL as soon as this holds (checked every 10 ms), e.g. "the 20th message arrived".
    std::function<bool()> kill_if;
};

struct run_result {
    int exit_code = -1;  // -1: ended by a signal
    int signal = 0;
    bool killed = false;  // by kill_after or kill_when
    bool timed_out = false;
    std::string out, err;
    std::string all() const { return out + err; }
    std::string describe() const {
        std::ostringstream s;
        s << "exit " << exit_code << (signal ? " signal " + std::to_string(signal) : "")
          << (timed_out ? " (timed out)" : "") << "\n--- stdout:\n"
          << out << "\n--- stderr:\n"
          << err;
        return s.str();
    }
};

// fork/exec `tandem args...`; stdin /dev/null, stdout and stderr captured apart.
inline run_result run_tandem(const std::vector<std::string>& args,
                             const run_options& options = {}) {
    std::vector<std::string> argv{tandem_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);

    int outp[2], errp[2];
    if (::pipe2(outp, O_CLOEXEC) != 0 || ::pipe2(errp, O_CLOEXEC) != 0)
        throw std::runtime_error("e2e: pipe failed");
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("e2e: fork failed");
    if (pid == 0) {
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, 0);
        ::dup2(outp[1], 1);
        ::dup2(errp[1], 2);
        ::execv(cargv[0], cargv.data());
        ::_exit(127);
    }
    ::setpgid(pid, pid);
    ::close(outp[1]);
    ::close(errp[1]);
    ::fcntl(outp[0], F_SETFL, O_NONBLOCK);
    ::fcntl(errp[0], F_SETFL, O_NONBLOCK);

    run_result r;
    auto start = std::chrono::steady_clock::now();
    bool out_open = true, err_open = true;
    int status = 0;
    bool reaped = false;
    auto drain = [&](int fd, std::string& into, bool& open) {
        char buf[65536];
        for (;;) {
            auto n = ::read(fd, buf, sizeof buf);
            if (n > 0) {
                into.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) open = false;
            return;
        }
    };
    auto kill_group = [&] {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
    };
    for (;;) {
        pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
        ::poll(fds, 2, 10);
        if (out_open) drain(outp[0], r.out, out_open);
        if (err_open) drain(errp[0], r.err, err_open);
        if (!reaped && ::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
        // A child of tandem (a tunnel) may hold the pipes open after tandem ended.
        if (reaped || (!out_open && !err_open)) {
            if (!reaped) {
                ::waitpid(pid, &status, 0);
                reaped = true;
            }
            drain(outp[0], r.out, out_open);
            drain(errp[0], r.err, err_open);
            break;
        }
        auto elapsed = std::chrono::steady_clock::now() - start;
        bool kill_now = (options.kill_after && elapsed >= *options.kill_after) ||
                        (!options.kill_when.empty() && (contains(r.out, options.kill_when) ||
                                                        contains(r.err, options.kill_when))) ||
                        (options.kill_if && options.kill_if());
        if (kill_now) {
            kill_group();
            r.killed = true;
            ::waitpid(pid, &status, 0);
            reaped = true;
            drain(outp[0], r.out, out_open);
            drain(errp[0], r.err, err_open);
            break;
        }
        if (elapsed >= options.timeout) {
            kill_group();
            r.timed_out = true;
            ::waitpid(pid, &status, 0);
            reaped = true;
            break;
        }
    }
    // A tunnel left behind by a killed tandem ends when its stdin closes; take no part in it.
    ::close(outp[0]);
    ::close(errp[0]);
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    return r;
}

// ---------------------------------------------------------------------------------------
// Snapshots

using mailbox_snapshot = std::vector<std::string>;  // sorted "subject|size:hash|flags"
using store_snapshot = std::map<std::string, mailbox_snapshot>;

struct snapshot_options {
    bool dates = false;  // append "|@<seconds>" (INTERNALDATE, Maildir mtime) to each message
};

inline std::string flags_text(std::vector<std::string> flags) {
    std::sort(flags.begin(), flags.end());
    flags.erase(std::unique(flags.begin(), flags.end()), flags.end());
    std::string s;
    for (const auto& f : flags) s += (s.empty() ? "" : " ") + f;
    return s;
}

inline std::string entry(std::string_view message, const std::vector<std::string>& flags,
                         std::optional<std::int64_t> date) {
    std::string e = subject_of(message) + "|" + digest(message) + "|" + flags_text(flags);
    if (date) e += "|@" + std::to_string(*date);
    return e;
}

inline std::string entry_subject(const std::string& e) {
    return e.substr(0, e.find('|'));
}
inline std::string entry_flags(const std::string& e) {
    auto a = e.find('|');
    auto b = e.find('|', a + 1);
    auto c = e.find('|', b + 1);
    return e.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1);
}

// The entries of the messages with this subject in a mailbox (several: duplicates).
inline std::vector<std::string> find(const store_snapshot& s, const std::string& mailbox,
                                     const std::string& subject) {
    std::vector<std::string> out;
    auto it = s.find(mailbox);
    if (it == s.end()) return out;
    for (const auto& e : it->second)
        if (entry_subject(e) == subject) out.push_back(e);
    return out;
}
// The flags of the one message with this subject, or "<missing>" / "<N copies>".
inline std::string flags_of(const store_snapshot& s, const std::string& mailbox,
                            const std::string& subject) {
    auto f = find(s, mailbox, subject);
    if (f.empty()) return "<missing>";
    if (f.size() > 1) return "<" + std::to_string(f.size()) + " copies>";
    return entry_flags(f[0]);
}
inline std::size_t message_count(const store_snapshot& s) {
    std::size_t n = 0;
    for (const auto& [_, m] : s) n += m.size();
    return n;
}
// Two snapshots merged: every message of both, per mailbox.
inline store_snapshot merged(const store_snapshot& a, const store_snapshot& b) {
    store_snapshot out = a;
    for (const auto& [box, msgs] : b) {
        auto& into = out[box];
        into.insert(into.end(), msgs.begin(), msgs.end());
        std::sort(into.begin(), into.end());
    }
    return out;
}

struct fetched_message {
    std::uint32_t uid = 0;
    std::vector<std::string> flags;  // without \Recent
    std::string internaldate;        // as the server wrote it
    std::string body;
};

// Parses the untagged FETCH responses of `UID FETCH ... (UID FLAGS INTERNALDATE BODY.PEEK[])`.
inline std::vector<fetched_message> parse_fetches(const std::vector<std::string>& untagged) {
    static const std::regex body_re(R"(BODY\[\] \{(\d+)\}\r\n)", std::regex::icase);
    static const std::regex uid_re(R"(\bUID (\d+))", std::regex::icase);
    static const std::regex flags_re(R"(\bFLAGS \(([^)]*)\))", std::regex::icase);
    static const std::regex date_re(R"re(\bINTERNALDATE "([^"]*)")re", std::regex::icase);
    std::vector<fetched_message> out;
    for (const auto& u : untagged) {
        if (u.find(" FETCH ") == std::string::npos) continue;
        std::smatch m;
        if (!std::regex_search(u, m, body_re)) continue;
        auto start = static_cast<std::size_t>(m.position(0) + m.length(0));
        auto size = std::stoul(m[1]);
        fetched_message f;
        f.body = u.substr(start, size);
        // The other items, before or after the literal.
        std::string rest = u.substr(0, static_cast<std::size_t>(m.position(0))) + " " +
                           u.substr(std::min(u.size(), start + size));
        if (std::regex_search(rest, m, uid_re))
            f.uid = static_cast<std::uint32_t>(std::stoul(m[1]));
        if (std::regex_search(rest, m, flags_re)) {
            std::istringstream words(m[1].str());
            for (std::string w; words >> w;)
                if (w != "\\Recent") f.flags.push_back(w);
        }
        if (std::regex_search(rest, m, date_re)) f.internaldate = m[1];
        out.push_back(std::move(f));
    }
    return out;
}

// Every message of a mailbox (name on the wire), with flags, INTERNALDATE and bytes.
// nullopt when the mailbox cannot be examined (\Noselect, missing).
inline std::optional<std::vector<fetched_message>> fetch_all(const test::dovecot& server,
                                                             std::string_view user,
                                                             std::string_view wire_mailbox) {
    auto t = test::imap_script(server, user,
                               {"EXAMINE " + test::imap_quote(wire_mailbox),
                                "UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])"});
    if (t.replies.size() < 2 || !t.replies[0].ok()) return std::nullopt;
    if (!t.replies[1].ok())
        throw std::runtime_error("e2e: UID FETCH failed: " + t.replies[1].status);
    return parse_fetches(t.replies[1].untagged);
}

// Every selectable mailbox of the account, canonical (UTF-8) name -> messages.
inline store_snapshot snapshot_imap(const test::dovecot& server, std::string_view user,
                                    snapshot_options options = {}) {
    auto names = test::list_mailboxes(server, user);
    std::vector<std::string> commands;
    for (const auto& n : names) {
        commands.push_back("EXAMINE " + test::imap_quote(n));
        commands.push_back("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])");
    }
    store_snapshot s;
    if (commands.empty()) return s;
    auto t = test::imap_script(server, user, commands);
    for (std::size_t i = 0; i < names.size(); ++i) {
        const auto& examine = t.replies.at(2 * i);
        const auto& fetch = t.replies.at(2 * i + 1);
        if (!examine.ok()) continue;  // \Noselect parent
        if (!fetch.ok()) throw std::runtime_error("e2e: UID FETCH failed in " + names[i]);
        auto& box = s[utf7_decode(names[i])];
        for (const auto& f : parse_fetches(fetch.untagged)) {
            std::optional<std::int64_t> date;
            if (options.dates) date = parse_internaldate(f.internaldate);
            box.push_back(entry(f.body, f.flags, date));
        }
        std::sort(box.begin(), box.end());
    }
    return s;
}

// UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and MESSAGES of every mailbox, as one string each:
// a sync that changed nothing on the server leaves them all as they were.
inline std::map<std::string, std::string> server_marks(const test::dovecot& server,
                                                       std::string_view user) {
    auto names = test::list_mailboxes(server, user);
    std::vector<std::string> commands;
    for (const auto& n : names)
        commands.push_back("STATUS " + test::imap_quote(n) +
                           " (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)");
    std::map<std::string, std::string> out;
    if (commands.empty()) return out;
    auto t = test::imap_script(server, user, commands);
    for (std::size_t i = 0; i < names.size(); ++i) {
        const auto& r = t.replies.at(i);
        if (!r.ok()) continue;
        for (const auto& u : r.untagged) {
            if (u.rfind("* STATUS", 0) != 0) continue;
            auto open = u.rfind('(');
            out[utf7_decode(names[i])] = u.substr(open, u.find(')', open) - open + 1);
        }
    }
    return out;
}

// Maildir: one folder's directory -> its dovecot-keywords map (letter index -> keyword).
inline std::map<int, std::string> read_keywords(const fs::path& folder) {
    std::map<int, std::string> out;
    std::ifstream in(folder / "dovecot-keywords");
    for (std::string line; std::getline(in, line);) {
        std::istringstream w(line);
        int index = -1;
        std::string name;
        if (w >> index >> name && index >= 0 && index < 26 && !out.count(index)) out[index] = name;
    }
    return out;
}

// The IMAP flags of a Maildir file name ("base:2,FSa"), with keywords from dovecot-keywords.
inline std::vector<std::string> maildir_flags(const std::string& file_name,
                                              const std::map<int, std::string>& keywords) {
    std::vector<std::string> flags;
    auto colon = file_name.find(":2,");
    if (colon == std::string::npos) return flags;
    auto info = file_name.substr(colon + 3);
    info = info.substr(0, info.find(','));
    for (char c : info) {
        switch (c) {
            case 'D':
                flags.push_back("\\Draft");
                break;
            case 'F':
                flags.push_back("\\Flagged");
                break;
            case 'P':
                flags.push_back("$Forwarded");
                break;
            case 'R':
                flags.push_back("\\Answered");
                break;
            case 'S':
                flags.push_back("\\Seen");
                break;
            case 'T':
                flags.push_back("\\Deleted");
                break;
            default:
                if (c >= 'a' && c <= 'z') {
                    auto k = keywords.find(c - 'a');
                    flags.push_back(k == keywords.end() ? std::string("?unmapped-") + c
                                                        : k->second);
                } else {
                    flags.push_back(std::string("?letter-") + c);
                }
        }
    }
    return flags;
}

enum class layout { verbatim, maildirpp };

// The folders of a Maildir tree: canonical name -> directory.
inline std::map<std::string, fs::path> maildir_folders(const fs::path& root, layout l) {
    std::map<std::string, fs::path> out;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) return out;
    auto is_folder = [](const fs::path& d) {
        std::error_code e;
        return fs::is_directory(d / "cur", e) && fs::is_directory(d / "new", e);
    };
    if (l == layout::maildirpp) {
        if (is_folder(root)) out["INBOX"] = root;
        for (const auto& d : fs::directory_iterator(root)) {
            auto n = d.path().filename().string();
            if (n.size() < 2 || n[0] != '.' || !is_folder(d.path())) continue;
            std::string name;
            for (std::size_t i = 1; i < n.size(); ++i) {
                if (n[i] == '.')
                    name += '/';
                else if (n.compare(i, 3, "\\2e") == 0 || n.compare(i, 3, "\\2E") == 0)
                    name += '.', i += 2;
                else if (n.compare(i, 3, "\\5c") == 0 || n.compare(i, 3, "\\5C") == 0)
                    name += '\\', i += 2;
                else
                    name += n[i];
            }
            out[name] = d.path();
        }
        return out;
    }
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
         ++it) {
        if (!it->is_directory()) continue;
        auto n = it->path().filename().string();
        if (n == "cur" || n == "new" || n == "tmp" || n.starts_with(".")) {
            it.disable_recursion_pending();
            continue;
        }
        if (is_folder(it->path()))
            out[fs::relative(it->path(), root).generic_string()] = it->path();
    }
    return out;
}

inline store_snapshot snapshot_maildir(const fs::path& root, layout l = layout::verbatim,
                                       snapshot_options options = {}) {
    store_snapshot s;
    for (const auto& [name, dir] : maildir_folders(root, l)) {
        auto keywords = read_keywords(dir);
        auto& box = s[name];
        for (const char* sub : {"new", "cur"}) {
            std::error_code ec;
            for (const auto& f : fs::directory_iterator(dir / sub, ec)) {
                if (!f.is_regular_file()) continue;
                // A file renamed away while we look (tandem at work under `watch`) is skipped.
                std::ifstream in(f.path(), std::ios::binary);
                if (!in) continue;
                std::string bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
                std::optional<std::int64_t> date;
                if (options.dates) {
                    struct stat st {};
                    ::stat(f.path().c_str(), &st);
                    date = st.st_mtim.tv_sec;
                }
                auto flags = std::string(sub) == "cur"
                                 ? maildir_flags(f.path().filename().string(), keywords)
                                 : std::vector<std::string>{};
                box.push_back(entry(bytes, flags, date));
            }
        }
        std::sort(box.begin(), box.end());
    }
    return s;
}

// Every message file of a tree (relative paths, sorted): a sync that changed nothing on the
// Maildir leaves them as they were. With `with_tmp`, the files of tmp/ too (deliveries under way).
inline std::vector<std::string> maildir_files(const fs::path& root, bool with_tmp = false) {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) return out;
    // Without exceptions: tandem may be renaming files while this walks (a kill test).
    for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        auto parent = it->path().parent_path().filename().string();
        if (parent == "cur" || parent == "new" || (with_tmp && parent == "tmp"))
            out.push_back(fs::relative(it->path(), root).string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// ---------------------------------------------------------------------------------------
// One side of a channel, changed from outside. Messages are found by Subject; mailboxes
// are canonical names (UTF-8, '/').

class side {
  public:
    virtual ~side() = default;
    virtual std::string describe() const = 0;
    // Adds a message (test::make_message(subject)); flags in IMAP spelling; date in seconds.
    virtual void add(const std::string& mailbox, const std::string& message,
                     const std::vector<std::string>& flags = {},
                     std::optional<std::int64_t> date = {}) = 0;
    void add_new(const std::string& mailbox, const std::string& subject,
                 const std::vector<std::string>& flags = {}) {
        add(mailbox, test::make_message(subject, "Body of " + subject + ".\r\n"), flags);
    }
    virtual void set_flags(const std::string& mailbox, const std::string& subject,
                           const std::vector<std::string>& add,
                           const std::vector<std::string>& remove) = 0;
    virtual void expunge(const std::string& mailbox, const std::string& subject) = 0;
    virtual void move(const std::string& from, const std::string& subject,
                      const std::string& to) = 0;
    virtual void create(const std::string& mailbox) = 0;
    // Removes every message of the mailbox (as a wiped account or an unmounted disk).
    virtual void empty(const std::string& mailbox) = 0;
    virtual store_snapshot snapshot(snapshot_options options = {}) const = 0;
};

inline std::string imap_date(std::int64_t t) {
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
                  months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

class imap_side final : public side {
  public:
    imap_side(const test::dovecot& server, std::string user)
        : server_(server), user_(std::move(user)) {}
    const std::string& user() const { return user_; }
    std::string describe() const override { return "imap:" + user_; }

    void add(const std::string& mailbox, const std::string& message,
             const std::vector<std::string>& flags, std::optional<std::int64_t> date) override {
        test::append_message(server_, user_, utf7_encode(mailbox), message, flags,
                             date ? imap_date(*date) : std::string());
    }
    std::uint32_t uid_of(const std::string& mailbox, const std::string& subject) const {
        auto t = test::imap_script(server_, user_,
                                   {"EXAMINE " + test::imap_quote(utf7_encode(mailbox)),
                                    "UID SEARCH HEADER Subject " + test::imap_quote(subject)});
        if (!t.ok()) throw std::runtime_error("e2e: search failed in " + mailbox);
        std::vector<std::uint32_t> uids;
        for (const auto& u : t.replies[1].untagged) {
            if (u.rfind("* SEARCH", 0) != 0) continue;
            std::istringstream w(u.substr(8));
            for (std::uint32_t x; w >> x;) uids.push_back(x);
        }
        // SEARCH matches substrings: keep the exact subject.
        for (auto uid : uids) {
            auto body = test::fetch_message(server_, user_, utf7_encode(mailbox), uid);
            if (body && subject_of(*body) == subject) return uid;
        }
        throw std::runtime_error("e2e: no message \"" + subject + "\" in " + mailbox + " of " +
                                 user_);
    }
    void set_flags(const std::string& mailbox, const std::string& subject,
                   const std::vector<std::string>& add,
                   const std::vector<std::string>& remove) override {
        auto uid = uid_of(mailbox, subject);
        if (!add.empty())
            test::store_flags(server_, user_, utf7_encode(mailbox), uid, "+FLAGS", add);
        if (!remove.empty())
            test::store_flags(server_, user_, utf7_encode(mailbox), uid, "-FLAGS", remove);
    }
    void expunge(const std::string& mailbox, const std::string& subject) override {
        test::expunge_message(server_, user_, utf7_encode(mailbox), uid_of(mailbox, subject));
    }
    void move(const std::string& from, const std::string& subject, const std::string& to) override {
        test::move_message(server_, user_, utf7_encode(from), uid_of(from, subject),
                           utf7_encode(to));
    }
    void create(const std::string& mailbox) override {
        test::create_mailbox(server_, user_, utf7_encode(mailbox));
    }
    void empty(const std::string& mailbox) override {
        auto t = test::imap_script(server_, user_,
                                   {"SELECT " + test::imap_quote(utf7_encode(mailbox)),
                                    "STORE 1:* +FLAGS.SILENT (\\Deleted)", "EXPUNGE"});
        if (!t.replies.at(0).ok()) throw std::runtime_error("e2e: cannot select " + mailbox);
    }
    store_snapshot snapshot(snapshot_options options = {}) const override {
        return snapshot_imap(server_, user_, options);
    }

  private:
    const test::dovecot& server_;
    std::string user_;
};

// Messages are written as a mail client would: into cur/ with a unique name, the flags in the
// ":2," suffix, keywords as letters of dovecot-keywords.
class maildir_side final : public side {
  public:
    maildir_side(fs::path root, layout l) : root_(std::move(root)), layout_(l) {}
    const fs::path& root() const { return root_; }
    std::string describe() const override { return "maildir:" + root_.string(); }

    fs::path folder_dir(const std::string& mailbox) const {
        if (layout_ == layout::verbatim) return root_ / mailbox;
        if (mailbox == "INBOX") return root_;
        std::string n = ".";
        for (char c : mailbox) {
            if (c == '/')
                n += '.';
            else if (c == '.')
                n += "\\2e";
            else
                n += c;
        }
        return root_ / n;
    }

    // The letters of IMAP flags in this folder, extending its dovecot-keywords as needed.
    std::string letters(const std::string& mailbox, const std::vector<std::string>& flags) const {
        auto dir = folder_dir(mailbox);
        std::string system, kw;
        for (const auto& f : flags) {
            auto l = lower(f);
            if (l == "\\draft")
                system += 'D';
            else if (l == "\\flagged")
                system += 'F';
            else if (l == "$forwarded")
                system += 'P';
            else if (l == "\\answered")
                system += 'R';
            else if (l == "\\seen")
                system += 'S';
            else if (l == "\\deleted")
                system += 'T';
            else
                kw += keyword_letter(dir, f);
        }
        std::sort(system.begin(), system.end());
        std::sort(kw.begin(), kw.end());
        return system + kw;
    }

    static char keyword_letter(const fs::path& dir, const std::string& keyword) {
        auto map = read_keywords(dir);
        for (const auto& [i, k] : map)
            if (k == keyword) return static_cast<char>('a' + i);
        int free = 0;
        while (map.count(free)) ++free;
        if (free >= 26) throw std::runtime_error("e2e: no free keyword letter");
        std::ofstream out(dir / "dovecot-keywords", std::ios::app);
        out << free << ' ' << keyword << '\n';
        return static_cast<char>('a' + free);
    }

    void add(const std::string& mailbox, const std::string& message,
             const std::vector<std::string>& flags, std::optional<std::int64_t> date) override {
        auto dir = folder_dir(mailbox);
        if (!fs::is_directory(dir / "cur")) create(mailbox);
        static std::atomic<unsigned> counter{0};
        std::string base = std::to_string(std::time(nullptr)) + ".e2e" +
                           std::to_string(::getpid()) + "_" + std::to_string(++counter) +
                           ".testhost";
        auto tmp = dir / "tmp" / base;
        write_file(tmp, message);
        if (date) {
            timespec times[2] = {{*date, 0}, {*date, 0}};
            ::utimensat(AT_FDCWD, tmp.c_str(), times, 0);
        }
        fs::rename(tmp, dir / "cur" / (base + ":2," + letters(mailbox, flags)));
    }

    fs::path find_file(const std::string& mailbox, const std::string& subject) const {
        auto dir = folder_dir(mailbox);
        for (const char* sub : {"cur", "new"}) {
            std::error_code ec;
            for (const auto& f : fs::directory_iterator(dir / sub, ec)) {
                if (f.is_regular_file() && subject_of(read_file(f.path())) == subject)
                    return f.path();
            }
        }
        throw std::runtime_error("e2e: no message \"" + subject + "\" in Maildir folder " +
                                 dir.string());
    }

    void set_flags(const std::string& mailbox, const std::string& subject,
                   const std::vector<std::string>& add,
                   const std::vector<std::string>& remove) override {
        auto file = find_file(mailbox, subject);
        auto name = file.filename().string();
        auto current = maildir_flags(name, read_keywords(folder_dir(mailbox)));
        std::vector<std::string> next;
        for (const auto& f : current)
            if (std::find(remove.begin(), remove.end(), f) == remove.end()) next.push_back(f);
        for (const auto& f : add)
            if (std::find(next.begin(), next.end(), f) == next.end()) next.push_back(f);
        auto base = name.substr(0, name.find(':'));
        fs::rename(file, folder_dir(mailbox) / "cur" / (base + ":2," + letters(mailbox, next)));
    }
    void expunge(const std::string& mailbox, const std::string& subject) override {
        fs::remove(find_file(mailbox, subject));
    }
    void move(const std::string& from, const std::string& subject, const std::string& to) override {
        auto file = find_file(from, subject);
        auto flags = maildir_flags(file.filename().string(), read_keywords(folder_dir(from)));
        auto name = file.filename().string();
        auto base = name.substr(0, name.find(':'));
        if (!fs::is_directory(folder_dir(to) / "cur")) create(to);
        fs::rename(file, folder_dir(to) / "cur" / (base + ":2," + letters(to, flags)));
    }
    void create(const std::string& mailbox) override {
        auto dir = folder_dir(mailbox);
        for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(dir / sub);
        if (layout_ == layout::maildirpp && mailbox != "INBOX")
            write_file(dir / "maildirfolder", "");
    }
    void empty(const std::string& mailbox) override {
        auto dir = folder_dir(mailbox);
        for (const char* sub : {"cur", "new"})
            for (const auto& f : fs::directory_iterator(dir / sub)) fs::remove(f.path());
    }
    store_snapshot snapshot(snapshot_options options = {}) const override {
        return snapshot_maildir(root_, layout_, options);
    }
    // The inode of a message's file (a rename keeps it; a new delivery does not).
    ino_t inode(const std::string& mailbox, const std::string& subject) const {
        struct stat st {};
        ::stat(find_file(mailbox, subject).c_str(), &st);
        return st.st_ino;
    }

  private:
    fs::path root_;
    layout layout_;
};

// ---------------------------------------------------------------------------------------
// A test's world: a temporary directory with the configuration, the journal and a Maildir.

enum class transport { plain, tunnel, tls, password_command };

class world {
  public:
    world() : dir_("tandem-e2e") {
        if (std::getenv("TANDEM_KEEP_TEMP")) dir_.keep();
    }
    const fs::path& root() const { return dir_.path(); }
    fs::path state_dir() const { return root() / "state"; }
    fs::path maildir() const { return root() / "Mail"; }
    fs::path config_path() const { return root() / "tandem.conf"; }
    void keep() { dir_.keep(); }

    std::string general() const {
        return "[general]\nstate-dir = " + state_dir().string() + "\n\n";
    }
    // An IMAP store section for `user` of `server`.
    std::string imap_store(const std::string& name, const test::dovecot& server,
                           const std::string& user, transport how = transport::plain) const {
        std::ostringstream s;
        s << "[store." << name << "]\ntype = imap\n";
        switch (how) {
            case transport::tunnel:
                s << "tunnel = " << server.tunnel_command(user) << "\n";
                break;
            case transport::tls:
                s << "host = 127.0.0.1\nport = " << server.imaps_port()
                  << "\ntls = implicit\nca-file = " << server.ca_file().string()
                  << "\nuser = " << user
                  << "\npassword-file = " << password_file(server, user).string() << "\n";
                break;
            case transport::plain:
                s << "host = 127.0.0.1\nport = " << server.imap_port()
                  << "\ntls = none\nallow-plaintext = yes\nuser = " << user
                  << "\npassword-file = " << password_file(server, user).string() << "\n";
                break;
            case transport::password_command:
                s << "host = 127.0.0.1\nport = " << server.imap_port()
                  << "\ntls = none\nallow-plaintext = yes\nuser = " << user
                  << "\npassword-command = cat " << password_file(server, user).string() << "\n";
                break;
        }
        return s.str() + "\n";
    }
    std::string maildir_store(const std::string& name, layout l = layout::verbatim) const {
        return maildir_store_at(name, maildir(), l);
    }
    std::string maildir_store_at(const std::string& name, const fs::path& path,
                                 layout l = layout::verbatim) const {
        return "[store." + name + "]\ntype = maildir\npath = " + path.string() +
               "\nlayout = " + (l == layout::verbatim ? "verbatim" : "maildir++") + "\n\n";
    }
    std::string channel(const std::string& name, const std::string& a, const std::string& b,
                        const std::string& extra = {}) const {
        return "[channel." + name + "]\na = " + a + "\nb = " + b + "\nmailboxes = *\n" + extra +
               "\n";
    }
    // A 0600 file holding the password of `user`.
    fs::path password_file(const test::dovecot& server, const std::string& user) const {
        auto p = root() / ("password-" + user);
        if (!fs::exists(p)) write_file(p, server.password(user) + "\n", fs::perms(0600));
        return p;
    }
    void write_config(const std::string& text) const { write_file(config_path(), text); }

    // tandem <command> --config <file> <args...>
    run_result run(std::vector<std::string> args, const run_options& options = {}) const {
        args.insert(args.begin() + (args.empty() ? 0 : 1), {"--config", config_path().string()});
        return run_tandem(args, options);
    }

  private:
    test::temp_dir dir_;
};

// ---------------------------------------------------------------------------------------
// Dovecot with many users: each test takes fresh ones, so one server serves a whole program.

inline test::dovecot_options many_users(std::size_t n = 80) {
    test::dovecot_options o;
    for (std::size_t i = 1; i <= n; ++i)
        o.users.push_back({"user" + std::to_string(i), "pw-" + std::to_string(i) + "-s3cr3t"});
    return o;
}

inline std::unique_ptr<test::dovecot>& shared_server_holder() {
    static std::unique_ptr<test::dovecot> server;
    return server;
}
inline std::size_t& shared_user_counter() {
    static std::size_t n = 0;
    return n;
}
// Started on first use, in the test's thread; stopped by the environment below.
inline test::dovecot& shared_server() {
    auto& s = shared_server_holder();
    if (!s) s = std::make_unique<test::dovecot>(many_users());
    return *s;
}
inline std::string fresh_user() {
    auto n = ++shared_user_counter();
    if (n > 80) throw std::runtime_error("e2e: out of test users");
    return "user" + std::to_string(n);
}

class shared_server_environment : public ::testing::Environment {
  public:
    void TearDown() override { shared_server_holder().reset(); }
};
inline ::testing::Environment* const shared_server_registered =
    ::testing::AddGlobalTestEnvironment(new shared_server_environment);

// ---------------------------------------------------------------------------------------
// A channel between a server account (side a) and either a Maildir or a second account of
// the same server (side b), with its configuration written.

struct channel_kind {
    const char* name;
    bool imap_b = false;  // b: a second account, else a Maildir
    layout maildir_layout = layout::verbatim;
    transport a_how = transport::plain;
};

inline void PrintTo(const channel_kind& k, std::ostream* os) {
    *os << k.name;
}

inline std::string kind_name(const ::testing::TestParamInfo<channel_kind>& info) {
    return info.param.name;
}

class channel_under_test {
  public:
    channel_under_test(const test::dovecot& server, channel_kind kind,
                       const std::string& channel_extra = {})
        : server_(server), kind_(kind), user_a_(fresh_user()) {
        a_ = std::make_unique<imap_side>(server, user_a_);
        std::string cfg = w.general() + w.imap_store("server", server, user_a_, kind.a_how);
        if (kind.imap_b) {
            user_b_ = fresh_user();
            b_ = std::make_unique<imap_side>(server, user_b_);
            cfg += w.imap_store("local", server, user_b_, transport::password_command);
        } else {
            b_ = std::make_unique<maildir_side>(w.maildir(), kind.maildir_layout);
            cfg += w.maildir_store("local", kind.maildir_layout);
        }
        cfg += w.channel("c", "server", "local", channel_extra);
        w.write_config(cfg);
    }

    world w;
    const test::dovecot& server() const { return server_; }
    const channel_kind& kind() const { return kind_; }
    imap_side& a() { return *a_; }
    side& b() { return *b_; }
    side& get(bool side_a) { return side_a ? static_cast<side&>(*a_) : *b_; }
    const std::string& user_a() const { return user_a_; }
    const std::string& user_b() const { return user_b_; }  // empty with a Maildir
    maildir_side* b_maildir() { return dynamic_cast<maildir_side*>(b_.get()); }
    imap_side* b_imap() { return dynamic_cast<imap_side*>(b_.get()); }

    run_result sync(std::vector<std::string> args = {}, const run_options& options = {}) const {
        args.insert(args.begin(), "sync");
        return w.run(args, options);
    }
    // Saves (APPENDs) that Dovecot logged for side a or b (b: 0 with a Maildir).
    std::size_t saves(bool side_a) const {
        if (!side_a && user_b_.empty()) return 0;
        return server_.count_log_events("save", side_a ? user_a_ : user_b_);
    }

  private:
    const test::dovecot& server_;
    channel_kind kind_;
    std::string user_a_, user_b_;
    std::unique_ptr<imap_side> a_;
    std::unique_ptr<side> b_;
};

// ---------------------------------------------------------------------------------------
// A long-running tandem (watch): started in the test's thread, its stdout and stderr read
// by a thread of ours so that it never blocks on a full pipe.

class background_tandem {
  public:
    explicit background_tandem(const std::vector<std::string>& args) {
        std::vector<std::string> argv{tandem_bin()};
        argv.insert(argv.end(), args.begin(), args.end());
        test::child_options o;
        o.out = test::child_stream::pipe;
        o.err = test::child_stream::stdout_;
        child_ = std::make_unique<test::child_process>(argv, o);
        reader_ = std::thread([this] {
            while (!stop_) {
                auto piece = child_->read_some(200ms);
                if (!piece) break;
                std::lock_guard lock(mutex_);
                output_ += *piece;
            }
        });
    }
    ~background_tandem() {
        stop_ = true;
        reader_.join();
        if (child_->running()) child_->stop(3s);
    }
    background_tandem(const background_tandem&) = delete;
    background_tandem& operator=(const background_tandem&) = delete;

    std::string output() const {
        std::lock_guard lock(mutex_);
        return output_;
    }
    bool running() { return child_->running(); }
    pid_t pid() const { return child_->pid(); }

  private:
    std::unique_ptr<test::child_process> child_;
    std::thread reader_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::string output_;
};

}  // namespace tandem::e2e
