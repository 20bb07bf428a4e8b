// SPDX-License-Identifier: MIT
#include "support/imap_script.hpp"

#include <algorithm>
#include <chrono>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "support/process.hpp"

namespace tandem::test {

namespace {

using namespace std::chrono_literals;
constexpr auto reply_timeout = 20s;

// Reads whole responses from the tunnel: a line, and where it ends in a literal
// ("{n}\r\n", RFC 9051 section 4.3), the n bytes and the rest of the response after them.
class response_reader {
  public:
    explicit response_reader(child_process& child) : child_(child) {}

    std::string next() {
        std::string response;
        for (;;) {
            std::size_t eol;
            while ((eol = buffer_.find("\r\n")) == std::string::npos) fill();
            std::string line = buffer_.substr(0, eol + 2);
            buffer_.erase(0, eol + 2);
            response += line;
            std::size_t literal = literal_size(line);
            if (literal == npos) return response;
            while (buffer_.size() < literal) fill();
            response += buffer_.substr(0, literal);
            buffer_.erase(0, literal);
        }
    }
    const std::string& all() const { return all_; }
    // What came in after the last whole response.
    const std::string& rest() const { return buffer_; }

  private:
    static constexpr std::size_t npos = std::string::npos;

    static std::size_t literal_size(const std::string& line) {
        // "... {123}\r\n" (a server never sends the LITERAL+ form)
        if (line.size() < 5 || line[line.size() - 3] != '}') return npos;
        auto open = line.rfind('{', line.size() - 3);
        if (open == npos || open + 1 == line.size() - 3) return npos;
        std::size_t n = 0;
        for (auto i = open + 1; i < line.size() - 3; ++i) {
            if (line[i] < '0' || line[i] > '9') return npos;
            n = n * 10 + static_cast<std::size_t>(line[i] - '0');
        }
        return n;
    }

    void fill() {
        auto chunk =
            child_.read_some(std::chrono::duration_cast<std::chrono::milliseconds>(reply_timeout));
        if (!chunk) throw std::runtime_error("imap_script: the tunnel closed; so far:\n" + all_);
        if (chunk->empty())
            throw std::runtime_error("imap_script: no answer in time; so far:\n" + all_);
        buffer_ += *chunk;
        all_ += *chunk;
    }

    child_process& child_;
    std::string buffer_;
    std::string all_;
};

std::string transcript_text(const imap_transcript& t) {
    std::string s;
    for (std::size_t i = 0; i < t.replies.size(); ++i) {
        s += "C: t" + std::to_string(i + 1) + " " + t.replies[i].command + "\n";
        for (const auto& u : t.replies[i].untagged) s += "S: " + u;
        s += "S: t" + std::to_string(i + 1) + " " + t.replies[i].status + "\n";
    }
    return s;
}

imap_transcript checked(const dovecot& server, std::string_view user,
                        const std::vector<std::string>& commands) {
    auto t = imap_script(server, user, commands);
    if (!t.ok()) throw std::runtime_error("imap_script: a command failed:\n" + transcript_text(t));
    return t;
}

std::string flag_list(const std::vector<std::string>& flags) {
    std::string s = "(";
    for (const auto& f : flags) s += (s.size() > 1 ? " " : "") + f;
    return s + ")";
}

// The text of a reply's untagged responses and its status, where response codes appear.
std::string reply_text(const imap_reply& r) {
    std::string s;
    for (const auto& u : r.untagged) s += u;
    return s + r.status;
}

std::uint32_t copyuid_target(const imap_reply& r, std::uint32_t uid) {
    // [COPYUID uidvalidity source-set dest-set] (RFC 4315 section 3): one UID each here.
    static const std::regex copyuid(R"(\[COPYUID \d+ (\d+) (\d+)\])", std::regex::icase);
    std::smatch m;
    std::string text = reply_text(r);
    if (!std::regex_search(text, m, copyuid) || std::stoul(m[1]) != uid)
        throw std::runtime_error("imap_script: no COPYUID for " + std::to_string(uid) +
                                 " in: " + text);
    return static_cast<std::uint32_t>(std::stoul(m[2]));
}

}  // namespace

bool imap_transcript::ok() const {
    return std::all_of(replies.begin(), replies.end(), [](const imap_reply& r) { return r.ok(); });
}

imap_transcript imap_script(const dovecot& server, std::string_view user,
                            const std::vector<std::string>& commands) {
    child_options options;
    options.in = child_stream::pipe;
    options.err = child_stream::inherit;  // the tunnel command sends its stderr to the tunnel log
    child_process child(server.tunnel_argv(user), options);
    response_reader reader(child);
    imap_transcript t;
    t.greeting = reader.next();
    if (t.greeting.rfind("* PREAUTH", 0) != 0)
        throw std::runtime_error("imap_script: no PREAUTH greeting: " + t.greeting);
    for (std::size_t i = 0; i < commands.size(); ++i) {
        const std::string tag = "t" + std::to_string(i + 1);
        if (!child.write(tag + " " + commands[i] + "\r\n"))
            throw std::runtime_error("imap_script: the tunnel closed before: " + commands[i]);
        imap_reply reply;
        reply.command = commands[i];
        for (;;) {
            std::string r = reader.next();
            if (r.rfind(tag + " ", 0) == 0) {
                reply.status = r.substr(tag.size() + 1, r.size() - tag.size() - 3);
                break;
            }
            reply.untagged.push_back(std::move(r));
        }
        t.replies.push_back(std::move(reply));
    }
    child.write("z LOGOUT\r\n");
    child.close_stdin();
    t.text = reader.all() + reader.rest() + child.read_all(5s);
    child.wait(5s);
    return t;
}

std::string imap_quote(std::string_view name) {
    std::string q = "\"";
    for (char c : name) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
    }
    return q + "\"";
}

std::uint32_t append_message(const dovecot& server, std::string_view user, std::string_view mailbox,
                             std::string_view message, const std::vector<std::string>& flags,
                             std::string_view internal_date) {
    std::string cmd = "APPEND " + imap_quote(mailbox) + " " + flag_list(flags);
    if (!internal_date.empty()) cmd += " \"" + std::string(internal_date) + "\"";
    cmd += " {" + std::to_string(message.size()) + "}\r\n" + std::string(message);
    auto t = checked(server, user, {cmd});
    // [APPENDUID uidvalidity uid] (RFC 4315 section 3)
    static const std::regex appenduid(R"(\[APPENDUID \d+ (\d+)\])", std::regex::icase);
    std::smatch m;
    if (!std::regex_search(t.replies[0].status, m, appenduid))
        throw std::runtime_error("imap_script: no APPENDUID in: " + t.replies[0].status);
    return static_cast<std::uint32_t>(std::stoul(m[1]));
}

std::vector<message_flags> list_messages(const dovecot& server, std::string_view user,
                                         std::string_view mailbox) {
    auto t = checked(server, user, {"EXAMINE " + imap_quote(mailbox), "UID FETCH 1:* (UID FLAGS)"});
    static const std::regex uid_re(R"(\bUID (\d+))", std::regex::icase);
    static const std::regex flags_re(R"(\bFLAGS \(([^)]*)\))", std::regex::icase);
    std::vector<message_flags> messages;
    for (const auto& u : t.replies[1].untagged) {
        std::smatch m;
        if (u.find(" FETCH ") == std::string::npos || !std::regex_search(u, m, uid_re)) continue;
        message_flags mf;
        mf.uid = static_cast<std::uint32_t>(std::stoul(m[1]));
        if (std::regex_search(u, m, flags_re)) {
            std::istringstream words(m[1].str());
            for (std::string w; words >> w;)
                if (w != "\\Recent") mf.flags.push_back(w);
            std::sort(mf.flags.begin(), mf.flags.end());
        }
        messages.push_back(std::move(mf));
    }
    std::sort(messages.begin(), messages.end(), [](auto& a, auto& b) { return a.uid < b.uid; });
    return messages;
}

std::optional<std::string> fetch_message(const dovecot& server, std::string_view user,
                                         std::string_view mailbox, std::uint32_t uid) {
    auto t = checked(server, user,
                     {"EXAMINE " + imap_quote(mailbox),
                      "UID FETCH " + std::to_string(uid) + " (UID BODY.PEEK[])"});
    static const std::regex body_re(R"(BODY\[\] \{(\d+)\}\r\n)", std::regex::icase);
    for (const auto& u : t.replies[1].untagged) {
        std::smatch m;
        if (u.find(" FETCH ") == std::string::npos || !std::regex_search(u, m, body_re)) continue;
        auto start = static_cast<std::size_t>(m.position(0) + m.length(0));
        return u.substr(start, std::stoul(m[1]));
    }
    return std::nullopt;
}

mailbox_status status(const dovecot& server, std::string_view user, std::string_view mailbox) {
    auto t = checked(
        server, user,
        {"STATUS " + imap_quote(mailbox) + " (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ UNSEEN)"});
    mailbox_status s;
    auto number = [&](const std::string& text, const char* item) -> std::uint64_t {
        std::smatch m;
        if (!std::regex_search(
                text, m,
                std::regex(std::string(R"([( ])") + item + R"( (\d+))", std::regex::icase)))
            throw std::runtime_error(std::string("imap_script: no ") + item + " in: " + text);
        return std::stoull(m[1]);
    };
    for (const auto& u : t.replies[0].untagged) {
        if (u.rfind("* STATUS ", 0) != 0) continue;
        s.messages = static_cast<std::uint32_t>(number(u, "MESSAGES"));
        s.uidnext = static_cast<std::uint32_t>(number(u, "UIDNEXT"));
        s.uidvalidity = static_cast<std::uint32_t>(number(u, "UIDVALIDITY"));
        s.highestmodseq = number(u, "HIGHESTMODSEQ");
        s.unseen = static_cast<std::uint32_t>(number(u, "UNSEEN"));
        return s;
    }
    throw std::runtime_error("imap_script: no STATUS response for " + std::string(mailbox));
}

void create_mailbox(const dovecot& server, std::string_view user, std::string_view mailbox) {
    checked(server, user, {"CREATE " + imap_quote(mailbox)});
}

void delete_mailbox(const dovecot& server, std::string_view user, std::string_view mailbox) {
    checked(server, user, {"DELETE " + imap_quote(mailbox)});
}

void rename_mailbox(const dovecot& server, std::string_view user, std::string_view from,
                    std::string_view to) {
    checked(server, user, {"RENAME " + imap_quote(from) + " " + imap_quote(to)});
}

std::vector<std::string> list_mailboxes(const dovecot& server, std::string_view user) {
    auto t = checked(server, user, {"LIST \"\" \"*\""});
    // * LIST (\HasNoChildren) "/" "Name"   or   ... "/" Name   or   ... "/" {n}\r\nName
    static const std::regex list_re(R"(^\* LIST \([^)]*\) (?:NIL|"(?:[^"\\]|\\.)*") (.*)\r\n$)",
                                    std::regex::icase);
    std::vector<std::string> names;
    for (const auto& u : t.replies[0].untagged) {
        std::smatch m;
        if (!std::regex_match(u, m, list_re)) continue;
        std::string name = m[1];
        if (name.size() >= 2 && name.front() == '"') {
            std::string unquoted;
            for (std::size_t i = 1; i + 1 < name.size(); ++i) {
                if (name[i] == '\\') ++i;
                unquoted += name[i];
            }
            name = unquoted;
        } else if (!name.empty() && name.front() == '{') {
            name = name.substr(name.find("}\r\n") + 3);
        }
        names.push_back(name);
    }
    return names;
}

void store_flags(const dovecot& server, std::string_view user, std::string_view mailbox,
                 std::uint32_t uid, std::string_view op, const std::vector<std::string>& flags) {
    checked(server, user,
            {"SELECT " + imap_quote(mailbox),
             "UID STORE " + std::to_string(uid) + " " + std::string(op) + " " + flag_list(flags)});
}

void expunge_message(const dovecot& server, std::string_view user, std::string_view mailbox,
                     std::uint32_t uid) {
    const std::string u = std::to_string(uid);
    checked(server, user,
            {"SELECT " + imap_quote(mailbox), "UID STORE " + u + " +FLAGS.SILENT (\\Deleted)",
             "UID EXPUNGE " + u});
}

std::uint32_t move_message(const dovecot& server, std::string_view user, std::string_view from,
                           std::uint32_t uid, std::string_view to) {
    auto t = checked(
        server, user,
        {"SELECT " + imap_quote(from), "UID MOVE " + std::to_string(uid) + " " + imap_quote(to)});
    return copyuid_target(t.replies[1], uid);
}

std::uint32_t copy_message(const dovecot& server, std::string_view user, std::string_view from,
                           std::uint32_t uid, std::string_view to) {
    auto t = checked(
        server, user,
        {"SELECT " + imap_quote(from), "UID COPY " + std::to_string(uid) + " " + imap_quote(to)});
    return copyuid_target(t.replies[1], uid);
}

std::string make_message(std::string_view subject, std::string_view body,
                         std::string_view message_id) {
    std::string id =
        message_id.empty() ? "<" + std::string(subject) + "@tandem.test>" : std::string(message_id);
    for (char& c : id)
        if (c == ' ') c = '.';
    return "From: Tandem Test <test@tandem.test>\r\n"
           "To: Someone <someone@tandem.test>\r\n"
           "Subject: " +
           std::string(subject) +
           "\r\n"
           "Date: Tue, 05 Mar 2024 10:20:30 +0100\r\n"
           "Message-ID: " +
           id + "\r\n\r\n" + std::string(body);
}

}  // namespace tandem::test
