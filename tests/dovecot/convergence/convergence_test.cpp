// SPDX-License-Identifier: MIT
// The randomized convergence test: random changes on both sides of a channel (IMAP through
// imap_script, the Maildir through the file system as a mail client would), then `tandem
// sync`, sometimes killed with SIGKILL at a random instant, sometimes with the network cut
// by the fault proxy at a random byte, and then a clean sync. A model says what both sides
// must hold by the sync rules of DESIGN.md; after every clean sync both sides are read from
// outside and compared with it, and a second sync must change nothing.
//
//     dovecot_convergence [--seed N] [--rounds N] [--mode imap-maildir|imap-imap]
//                         [--no-shrink] [--shrink-seconds N] [--replay FILE] [--verbose]
//
// --replay FILE runs the rounds written in FILE (the format of the report below) instead
// of random ones.
//
// On a failure it prints the seed and the operations so far, then replays subsets of them
// on fresh accounts (delta debugging) and prints the shortest sequence that still fails.
// Every run ends with one line "convergence: mode=... seed=... rounds=... result=..." that
// contrib/soak.sh adds up.
#include "../sync/e2e_support.hpp"
#include "support/fault_proxy.hpp"

#include <gtest/gtest.h>

#include <cinttypes>
#include <fstream>
#include <iostream>
#include <random>

namespace tandem::convergence {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::store_snapshot;
using test::direction;
using test::fault;

// ---------------------------------------------------------------------------------------
// Settings from the command line

enum class mode { imap_maildir, imap_imap };

struct settings {
    std::uint64_t seed = 20241125;
    int rounds = 30;  // about 20 s per mode
    bool shrink = true;
    int shrink_seconds = 900;
    bool verbose = false;
    std::string replay;  // a file of operations to replay instead of random rounds
};

settings& options() {
    static settings s;
    return s;
}

// ---------------------------------------------------------------------------------------
// The model

using flag_set = std::set<std::string>;

// Keywords and system flags that both kinds of store carry ($Forwarded is Maildir's P).
// \Deleted stays out: what a client means by it is left open by the rules.
const std::vector<std::string> flag_pool = {"\\Seen",     "\\Flagged", "\\Answered",
                                            "$Forwarded", "\\Draft",   "$label1"};
// A nested name, a non-ASCII one (modified UTF-7 on the wire) and plain ones.
const std::vector<std::string> folder_pool = {"Archive", "Work", "Lists/dev", "Re\xc3\xa7us",
                                              "Travel"};

struct message_state {
    std::string folder;
    flag_set flags;
    bool operator==(const message_state&) const = default;
};

struct view {
    std::set<std::string> folders{"INBOX"};
    std::map<std::string, message_state> messages;  // test id -> where and how
    std::size_t count_in(const std::string& folder) const {
        std::size_t n = 0;
        for (const auto& [_, m] : messages) n += m.folder == folder;
        return n;
    }
};

enum class op_kind { add, flags, move, expunge, create, remove_folder, to_cur };

struct op {
    op_kind kind = op_kind::add;
    bool on_a = true;
    std::string id;        // the message (add: the new one)
    std::string folder;    // add: where; move: to; create, remove_folder: which
    flag_set add, remove;  // add: the flags it arrives with; flags: the change
    bool in_new = false;   // add on a Maildir: delivered into new/
};

const char* kind_name(op_kind k) {
    switch (k) {
        case op_kind::add:
            return "add";
        case op_kind::flags:
            return "flags";
        case op_kind::move:
            return "move";
        case op_kind::expunge:
            return "expunge";
        case op_kind::create:
            return "create";
        case op_kind::remove_folder:
            return "delete-folder";
        case op_kind::to_cur:
            return "new-to-cur";
    }
    return "?";
}

std::string flags_text(const flag_set& f) {
    std::string s;
    for (const auto& x : f) s += (s.empty() ? "" : " ") + x;
    return "(" + s + ")";
}

std::string describe(const op& o) {
    std::string side = o.on_a ? "a" : "b";
    switch (o.kind) {
        case op_kind::add:
            return side + " add " + o.id + " to " + o.folder + " " + flags_text(o.add) +
                   (o.in_new ? " in new/" : "");
        case op_kind::flags:
            return side + " flags " + o.id + " +" + flags_text(o.add) + " -" + flags_text(o.remove);
        case op_kind::move:
            return side + " move " + o.id + " to " + o.folder;
        case op_kind::expunge:
            return side + " expunge " + o.id;
        case op_kind::create:
            return side + " create " + o.folder;
        case op_kind::remove_folder:
            return side + " delete folder " + o.folder;
        case op_kind::to_cur:
            return side + " new/->cur/ " + o.id;
    }
    return "?";
}

// How a round's changes reach the other side.
struct sync_plan {
    enum class kind { plain, kill, cut } what = kind::plain;
    std::vector<int> kill_ms;  // kill: one killed run per entry, SIGKILL after that long
    direction dir = direction::server_to_client;  // cut
    std::uint64_t cut_bytes = 0;
};

std::string describe(const sync_plan& p) {
    switch (p.what) {
        case sync_plan::kind::plain:
            return "sync";
        case sync_plan::kind::kill: {
            std::string s = "sync killed after";
            for (auto ms : p.kill_ms) s += " " + std::to_string(ms) + "ms";
            return s + ", then sync";
        }
        case sync_plan::kind::cut:
            return std::string("sync cut after ") + std::to_string(p.cut_bytes) + " bytes " +
                   (p.dir == direction::client_to_server ? "client->server" : "server->client") +
                   ", then sync";
    }
    return "?";
}

struct round_log {
    std::vector<op> ops;
    sync_plan sync;
};

std::string describe(const std::vector<round_log>& rounds) {
    std::ostringstream s;
    for (std::size_t r = 0; r < rounds.size(); ++r) {
        s << "  round " << r + 1 << ":\n";
        for (const auto& o : rounds[r].ops) s << "    " << describe(o) << "\n";
        s << "    " << describe(rounds[r].sync) << "\n";
    }
    return s.str();
}

// Reads back what describe(rounds) printed (the shrunk sequence of a report, edited by
// hand or not), for --replay.
std::vector<round_log> parse_log(std::istream& in) {
    std::vector<round_log> rounds;
    static const std::regex round_re(R"(\s*round \d+:\s*)");
    static const std::regex add_re(R"(\s*([ab]) add (\S+) to (.+) \(([^)]*)\)( in new/)?\s*)");
    static const std::regex flags_re(R"(\s*([ab]) flags (\S+) \+\(([^)]*)\) -\(([^)]*)\)\s*)");
    static const std::regex move_re(R"(\s*([ab]) move (\S+) to (.+?)\s*)");
    static const std::regex expunge_re(R"(\s*([ab]) expunge (\S+)\s*)");
    static const std::regex create_re(R"(\s*([ab]) create (.+?)\s*)");
    static const std::regex remove_re(R"(\s*([ab]) delete folder (.+?)\s*)");
    static const std::regex cur_re(R"(\s*([ab]) new/->cur/ (\S+)\s*)");
    static const std::regex sync_re(R"(\s*sync\s*)");
    static const std::regex kill_re(R"(\s*sync killed after ([0-9ms ]+), then sync\s*)");
    static const std::regex cut_re(
        R"(\s*sync cut after (\d+) bytes (client->server|server->client), then sync\s*)");
    auto flags = [](const std::string& text) {
        flag_set f;
        std::istringstream w(text);
        for (std::string x; w >> x;) f.insert(x);
        return f;
    };
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, round_re)) {
            rounds.emplace_back();
            continue;
        }
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (rounds.empty()) throw std::runtime_error("replay: an operation before \"round 1:\"");
        auto& r = rounds.back();
        op o;
        if (std::regex_match(line, m, add_re)) {
            o.kind = op_kind::add;
            o.id = m[2];
            o.folder = m[3];
            o.add = flags(m[4]);
            o.in_new = m[5].matched;
        } else if (std::regex_match(line, m, flags_re)) {
            o.kind = op_kind::flags;
            o.id = m[2];
            o.add = flags(m[3]);
            o.remove = flags(m[4]);
        } else if (std::regex_match(line, m, move_re)) {
            o.kind = op_kind::move;
            o.id = m[2];
            o.folder = m[3];
        } else if (std::regex_match(line, m, expunge_re)) {
            o.kind = op_kind::expunge;
            o.id = m[2];
        } else if (std::regex_match(line, m, remove_re)) {
            o.kind = op_kind::remove_folder;
            o.folder = m[2];
        } else if (std::regex_match(line, m, create_re)) {
            o.kind = op_kind::create;
            o.folder = m[2];
        } else if (std::regex_match(line, m, cur_re)) {
            o.kind = op_kind::to_cur;
            o.id = m[2];
        } else if (std::regex_match(line, sync_re)) {
            r.sync = {};
            continue;
        } else if (std::regex_match(line, m, kill_re)) {
            r.sync.what = sync_plan::kind::kill;
            std::istringstream w(m[1].str());
            for (std::string x; w >> x;) r.sync.kill_ms.push_back(std::stoi(x));
            continue;
        } else if (std::regex_match(line, m, cut_re)) {
            r.sync.what = sync_plan::kind::cut;
            r.sync.cut_bytes = std::stoull(m[1]);
            r.sync.dir = m[2] == "client->server" ? direction::client_to_server
                                                  : direction::server_to_client;
            continue;
        } else {
            throw std::runtime_error("replay: cannot read \"" + line + "\"");
        }
        o.on_a = m[1] == "a";
        r.ops.push_back(o);
    }
    return rounds;
}

struct stats {
    std::size_t rounds = 0, ops = 0, syncs = 0, kills = 0, cuts = 0, cuts_mid_session = 0,
                checks = 0;
    std::map<std::string, std::size_t> by_kind;  // applied operations per kind
};

// The state of one round: the base (both sides after the last sync) and each side as the
// round's operations left it, with what the rules need to keep the outcome determined.
struct round_state {
    view base;
    view side[2];                           // 0: a, 1: b
    std::map<std::string, int> structural;  // id -> the side that moved or expunged it
    std::set<std::string> touched[2];       // folders that a side's operations used
    std::set<std::string> removed;          // folders deleted in this round
    std::set<std::string> created;          // folders created in this round
};

// The expected outcome of a round (DESIGN.md, sync rules): an expunge on either side wins;
// a move on one side moves; flags merge per flag against the base; new messages and folders
// appear on both sides; a folder deleted on one side (empty, untouched by the other) goes.
view merge(const round_state& st) {
    view out;
    for (const auto& v : {st.base, st.side[0], st.side[1]})
        for (const auto& f : v.folders)
            if (!st.removed.count(f)) out.folders.insert(f);
    std::set<std::string> ids;
    for (const auto& v : {st.base, st.side[0], st.side[1]})
        for (const auto& [id, _] : v.messages) ids.insert(id);
    for (const auto& id : ids) {
        auto b0 = st.base.messages.find(id);
        auto ma = st.side[0].messages.find(id);
        auto mb = st.side[1].messages.find(id);
        bool in_a = ma != st.side[0].messages.end(), in_b = mb != st.side[1].messages.end();
        if (b0 == st.base.messages.end()) {
            // New in this round, on one side only.
            if (in_a) out.messages[id] = ma->second;
            if (in_b) out.messages[id] = mb->second;
            continue;
        }
        if (!in_a || !in_b) continue;  // expunged
        message_state m;
        m.folder = ma->second.folder != b0->second.folder ? ma->second.folder : mb->second.folder;
        for (const auto& f : flag_pool) {
            bool base = b0->second.flags.count(f), a = ma->second.flags.count(f),
                 b = mb->second.flags.count(f);
            bool v = a != base ? a : b != base ? b : base;
            if (v) m.flags.insert(f);
        }
        out.messages[id] = m;
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Messages

std::string message_for(const std::string& id, std::size_t body_size, bool with_message_id) {
    std::string m = "From: Chaos <chaos@tandem.test>\r\nTo: Model <model@tandem.test>\r\n";
    m += "Subject: " + id + "\r\nDate: Tue, 05 Mar 2024 10:20:30 +0100\r\n";
    if (with_message_id) m += "Message-ID: <" + id + "@chaos.tandem.test>\r\n";
    m += "X-Tandem-Test-Id: " + id + "\r\n\r\n";
    std::string body;
    for (int line = 0; body.size() < body_size; ++line)
        body += id + " line " + std::to_string(line) + " " +
                std::string(static_cast<std::size_t>(line % 60), 'x') + "\r\n";
    return m + body;
}

std::string test_id_of(std::string_view text) {
    static const std::regex re(R"(X-Tandem-Test-Id: (\S+))", std::regex::icase);
    std::match_results<std::string_view::const_iterator> m;
    if (std::regex_search(text.begin(), text.end(), m, re)) return m[1];
    return {};
}

// ---------------------------------------------------------------------------------------
// The sides, driven from outside

class driver {
  public:
    virtual ~driver() = default;
    // Learns where each message is (UIDs, file names), after a sync moved things.
    virtual void refresh() = 0;
    // Applies one operation that the model accepted; `before` is the side's view before
    // it, `content` the bytes of a new message. False when the store cannot (it is left
    // unchanged then).
    virtual bool apply(const op& o, const view& before, const std::string& content) = 0;
    virtual store_snapshot snapshot() const = 0;
};

class imap_driver final : public driver {
  public:
    imap_driver(const test::dovecot& server, std::string user)
        : server_(server), user_(std::move(user)) {}

    void refresh() override {
        uids_.clear();
        auto names = test::list_mailboxes(server_, user_);
        std::vector<std::string> commands;
        for (const auto& n : names) {
            commands.push_back("EXAMINE " + test::imap_quote(n));
            commands.push_back("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-Tandem-Test-Id)])");
        }
        if (commands.empty()) return;
        auto t = test::imap_script(server_, user_, commands);
        static const std::regex uid_re(R"(\bUID (\d+))");
        for (std::size_t i = 0; i < names.size(); ++i) {
            if (!t.replies.at(2 * i).ok()) continue;
            for (const auto& u : t.replies.at(2 * i + 1).untagged) {
                std::smatch m;
                auto id = test_id_of(u);
                if (id.empty() || !std::regex_search(u, m, uid_re)) continue;
                uids_[id] = static_cast<std::uint32_t>(std::stoul(m[1]));
            }
        }
    }

    bool apply(const op& o, const view& before, const std::string& content) override {
        auto wire = [](const std::string& name) { return e2e::utf7_encode(name); };
        switch (o.kind) {
            case op_kind::add:
                uids_[o.id] = test::append_message(server_, user_, wire(o.folder), content,
                                                   {o.add.begin(), o.add.end()});
                return true;
            case op_kind::flags: {
                const auto& folder = before.messages.at(o.id).folder;
                std::vector<std::string> cmds{"SELECT " + test::imap_quote(wire(folder))};
                auto list = [](const flag_set& f) {
                    std::string s;
                    for (const auto& x : f) s += (s.empty() ? "" : " ") + x;
                    return s;
                };
                auto uid = std::to_string(uids_.at(o.id));
                if (!o.add.empty())
                    cmds.push_back("UID STORE " + uid + " +FLAGS.SILENT (" + list(o.add) + ")");
                if (!o.remove.empty())
                    cmds.push_back("UID STORE " + uid + " -FLAGS.SILENT (" + list(o.remove) + ")");
                auto t = test::imap_script(server_, user_, cmds);
                if (!t.ok()) throw std::runtime_error("convergence: STORE failed:\n" + t.text);
                return true;
            }
            case op_kind::move:
                uids_[o.id] =
                    test::move_message(server_, user_, wire(before.messages.at(o.id).folder),
                                       uids_.at(o.id), wire(o.folder));
                return true;
            case op_kind::expunge:
                test::expunge_message(server_, user_, wire(before.messages.at(o.id).folder),
                                      uids_.at(o.id));
                uids_.erase(o.id);
                return true;
            case op_kind::create:
                test::create_mailbox(server_, user_, wire(o.folder));
                return true;
            case op_kind::remove_folder:
                test::delete_mailbox(server_, user_, wire(o.folder));
                return true;
            case op_kind::to_cur:
                return false;
        }
        return false;
    }

    store_snapshot snapshot() const override { return e2e::snapshot_imap(server_, user_); }

  private:
    const test::dovecot& server_;
    std::string user_;
    std::map<std::string, std::uint32_t> uids_;
};

// A mail client on a Maildir (verbatim layout): delivery through tmp/, flags in the ":2,"
// suffix, keywords as letters of the folder's dovecot-keywords, a move is a rename into
// the other folder's cur/.
class maildir_driver final : public driver {
  public:
    explicit maildir_driver(fs::path root) : root_(std::move(root)) {}

    fs::path folder_dir(const std::string& folder) const { return root_ / folder; }

    void refresh() override {
        files_.clear();
        for (const auto& [name, dir] : e2e::maildir_folders(root_, e2e::layout::verbatim)) {
            for (const char* sub : {"new", "cur"}) {
                std::error_code ec;
                for (const auto& f : fs::directory_iterator(dir / sub, ec)) {
                    std::ifstream in(f.path(), std::ios::binary);
                    std::string head(4096, '\0');
                    in.read(head.data(), static_cast<std::streamsize>(head.size()));
                    head.resize(static_cast<std::size_t>(in.gcount()));
                    auto id = test_id_of(head);
                    if (!id.empty()) files_[id] = f.path();
                }
            }
        }
    }

    bool apply(const op& o, const view& before, const std::string& content) override {
        switch (o.kind) {
            case op_kind::add: {
                auto dir = folder_dir(o.folder);
                auto base = unique_name();
                e2e::write_file(dir / "tmp" / base, content);
                fs::path to = o.in_new ? dir / "new" / base
                                       : dir / "cur" / (base + ":2," + letters(o.folder, o.add));
                fs::rename(dir / "tmp" / base, to);
                files_[o.id] = to;
                return true;
            }
            case op_kind::flags: {
                const auto& m = before.messages.at(o.id);
                flag_set next = m.flags;
                for (const auto& f : o.remove) next.erase(f);
                for (const auto& f : o.add) next.insert(f);
                return rename_to(o.id, m.folder, next);
            }
            case op_kind::to_cur: {
                auto& path = files_.at(o.id);
                if (path.parent_path().filename() != "new") return false;
                return rename_to(o.id, before.messages.at(o.id).folder, {});
            }
            case op_kind::move: {
                const auto& m = before.messages.at(o.id);
                return rename_to(o.id, o.folder, m.flags);
            }
            case op_kind::expunge:
                fs::remove(files_.at(o.id));
                files_.erase(o.id);
                return true;
            case op_kind::create:
                for (const char* sub : {"cur", "new", "tmp"})
                    fs::create_directories(folder_dir(o.folder) / sub);
                return true;
            case op_kind::remove_folder:
                fs::remove_all(folder_dir(o.folder));
                return true;
        }
        return false;
    }

    store_snapshot snapshot() const override {
        return e2e::snapshot_maildir(root_, e2e::layout::verbatim);
    }

  private:
    bool rename_to(const std::string& id, const std::string& folder, const flag_set& flags) {
        auto& path = files_.at(id);
        auto name = path.filename().string();
        auto base = name.substr(0, name.find(':'));
        auto to = folder_dir(folder) / "cur" / (base + ":2," + letters(folder, flags));
        fs::rename(path, to);
        path = to;
        return true;
    }

    static std::string unique_name() {
        static std::atomic<unsigned> counter{0};
        return std::to_string(std::time(nullptr)) + ".M" + std::to_string(++counter) + "P" +
               std::to_string(::getpid()) + ".chaos";
    }

    // The info letters of `flags` in `folder`, adding keywords to its dovecot-keywords.
    std::string letters(const std::string& folder, const flag_set& flags) const {
        std::string system, kw;
        for (const auto& f : flags) {
            if (f == "\\Draft")
                system += 'D';
            else if (f == "\\Flagged")
                system += 'F';
            else if (f == "$Forwarded")
                system += 'P';
            else if (f == "\\Answered")
                system += 'R';
            else if (f == "\\Seen")
                system += 'S';
            else
                kw += keyword_letter(folder_dir(folder), f);
        }
        std::sort(system.begin(), system.end());
        std::sort(kw.begin(), kw.end());
        return system + kw;
    }

    static char keyword_letter(const fs::path& dir, const std::string& keyword) {
        auto map = e2e::read_keywords(dir);
        for (const auto& [i, k] : map)
            if (k == keyword) return static_cast<char>('a' + i);
        int free = 0;
        while (map.count(free)) ++free;
        std::ofstream out(dir / "dovecot-keywords", std::ios::app);
        out << free << ' ' << keyword << '\n';
        return static_cast<char>('a' + free);
    }

    fs::path root_;
    std::map<std::string, fs::path> files_;
};

// ---------------------------------------------------------------------------------------
// The server, with users enough for the shrinking replays; one proxy in front of it.

constexpr std::size_t user_count = 400;

struct shared {
    std::unique_ptr<test::dovecot> server;
    std::unique_ptr<test::fault_proxy> proxy;
    std::size_t next_user = 0;
};

shared& global() {
    static shared s;
    return s;
}

test::dovecot& server() {
    auto& g = global();
    if (!g.server) {
        test::dovecot_options o;
        o.users.clear();
        for (std::size_t i = 1; i <= user_count; ++i)
            o.users.push_back({"chaos" + std::to_string(i), "chaos-pw-" + std::to_string(i)});
        g.server = std::make_unique<test::dovecot>(o);
        g.proxy = std::make_unique<test::fault_proxy>(g.server->imap_port());
    }
    return *g.server;
}

test::fault_proxy& proxy() {
    server();
    return *global().proxy;
}

std::string fresh_user() {
    auto n = ++global().next_user;
    if (n > user_count) throw std::runtime_error("convergence: out of test users");
    return "chaos" + std::to_string(n);
}

class environment : public ::testing::Environment {
  public:
    void TearDown() override {
        global().proxy.reset();
        global().server.reset();
    }
};

// ---------------------------------------------------------------------------------------
// One channel under test, fresh accounts and state

class scenario {
  public:
    // `inbox_first`: INBOX is selected before each listing, as a large one is on Dovecot
    // (imap_store_options::select_inbox_first); by default with every even seed.
    scenario(mode m, std::uint64_t seed, std::optional<bool> inbox_first = std::nullopt)
        : mode_(m), rng_(seed), dir_("tandem-chaos") {
        if (std::getenv("TANDEM_KEEP_TEMP")) dir_.keep();
        if (inbox_first.value_or(seed % 2 == 0))
            setenv("TANDEM_SELECT_INBOX_FIRST", "1", 1);
        else
            unsetenv("TANDEM_SELECT_INBOX_FIRST");
        // Changed mailboxes on two connections to each account (imap_store below), not only
        // in syncs of hundreds of messages: the kills and cuts then hit two at once. Two,
        // not the default 4: each login is a Dovecot process, and the sanitizer build runs
        // this test too.
        setenv("TANDEM_LANE_WORK", "1", 1);
        user_a_ = fresh_user();
        a_ = std::make_unique<imap_driver>(server(), user_a_);
        std::string cfg = "[general]\nstate-dir = " + (dir_.path() / "state").string() + "\n\n";
        cfg += imap_store("server-a", user_a_);
        if (m == mode::imap_imap) {
            user_b_ = fresh_user();
            b_ = std::make_unique<imap_driver>(server(), user_b_);
            cfg += imap_store("server-b", user_b_);
        } else {
            auto root = dir_.path() / "Mail";
            for (const char* sub : {"cur", "new", "tmp"})
                fs::create_directories(root / "INBOX" / sub);
            b_ = std::make_unique<maildir_driver>(root);
            cfg += "[store.local-b]\ntype = maildir\npath = " + root.string() + "\n\n";
        }
        cfg += std::string("[channel.chaos]\na = server-a\nb = ") +
               (m == mode::imap_imap ? "server-b" : "local-b") +
               "\nmailboxes = *\ncreate = both\nremove = both\nexpunge = both\n"
               "max-delete = 100%\n";
        e2e::write_file(config_path(), cfg);
    }

    fs::path config_path() const { return dir_.path() / "tandem.conf"; }
    const stats& counts() const { return stats_; }
    std::mt19937_64& rng() { return rng_; }
    const view& model() const { return model_; }
    std::uint64_t typical_bytes(direction d) const { return typical_bytes_[static_cast<int>(d)]; }
    std::chrono::milliseconds typical_duration() const { return typical_duration_; }

    // Starts a round on the model of the last sync.
    round_state begin_round() {
        round_state st;
        st.base = model_;
        st.side[0] = st.side[1] = model_;
        a_->refresh();
        b_->refresh();
        return st;
    }

    // Applies `o` if the model allows it in this round (the rules must determine the
    // outcome, and the thing it names must exist); false when skipped.
    bool try_apply(round_state& st, const op& o) {
        int s = o.on_a ? 0 : 1;
        view& v = st.side[s];
        auto other_structural = [&](const std::string& id) {
            auto it = st.structural.find(id);
            return it != st.structural.end() && it->second != s;
        };
        auto usable = [&](const std::string& folder) {
            return v.folders.count(folder) && !st.removed.count(folder);
        };
        auto msg = v.messages.find(o.id);
        bool has = msg != v.messages.end();
        bool maildir = !o.on_a && mode_ == mode::imap_maildir;
        switch (o.kind) {
            case op_kind::add:
                if (!usable(o.folder) || st.side[0].messages.count(o.id) ||
                    st.side[1].messages.count(o.id) || st.base.messages.count(o.id))
                    return false;
                if (o.in_new && (!maildir || !o.add.empty())) return false;
                break;
            case op_kind::flags:
                if (!has || !usable(msg->second.folder)) return false;
                break;
            case op_kind::to_cur:
                if (!has || !maildir) return false;
                break;
            case op_kind::move:
                if (!has || other_structural(o.id) || !usable(o.folder) ||
                    !usable(msg->second.folder) || o.folder == msg->second.folder)
                    return false;
                break;
            case op_kind::expunge:
                if (!has || other_structural(o.id) || !usable(msg->second.folder)) return false;
                break;
            case op_kind::create:
                if (v.folders.count(o.folder) || st.removed.count(o.folder)) return false;
                break;
            case op_kind::remove_folder:
                if (o.folder == "INBOX" || !usable(o.folder) || !st.base.folders.count(o.folder) ||
                    st.base.count_in(o.folder) || v.count_in(o.folder) ||
                    st.touched[1 - s].count(o.folder) || st.created.count(o.folder))
                    return false;
                break;
        }
        auto& d = o.on_a ? *a_ : *b_;
        std::string content;
        if (o.kind == op_kind::add) {
            content = contents_.count(o.id) ? contents_[o.id] : make_content(o.id);
            contents_[o.id] = content;
        }
        if (!d.apply(o, v, content)) return false;
        switch (o.kind) {
            case op_kind::add:
                v.messages[o.id] = {o.folder, o.add};
                st.touched[s].insert(o.folder);
                break;
            case op_kind::flags:
                for (const auto& f : o.remove) msg->second.flags.erase(f);
                for (const auto& f : o.add) msg->second.flags.insert(f);
                st.touched[s].insert(msg->second.folder);
                break;
            case op_kind::to_cur:
                st.touched[s].insert(msg->second.folder);
                break;
            case op_kind::move:
                st.structural[o.id] = s;
                st.touched[s].insert(msg->second.folder);
                st.touched[s].insert(o.folder);
                msg->second.folder = o.folder;
                break;
            case op_kind::expunge:
                st.structural[o.id] = s;
                st.touched[s].insert(msg->second.folder);
                v.messages.erase(msg);
                break;
            case op_kind::create:
                v.folders.insert(o.folder);
                st.touched[s].insert(o.folder);
                st.created.insert(o.folder);
                break;
            case op_kind::remove_folder:
                v.folders.erase(o.folder);
                st.touched[s].insert(o.folder);
                st.removed.insert(o.folder);
                break;
        }
        ++stats_.ops;
        ++stats_.by_kind[kind_name(o.kind)];
        return true;
    }

    // A random operation (not yet checked against the model).
    op random_op(const round_state& st) {
        op o;
        o.on_a = coin(0.5);
        bool maildir = !o.on_a && mode_ == mode::imap_maildir;
        const view& v = st.side[o.on_a ? 0 : 1];
        std::vector<std::string> ids;
        for (const auto& [id, _] : v.messages) ids.push_back(id);
        std::vector<std::string> folders(v.folders.begin(), v.folders.end());
        // Keep the mailboxes around 40 messages: adds dominate below, removals above.
        double fill = static_cast<double>(v.messages.size()) / 40.0;
        std::vector<std::pair<op_kind, double>> weights = {
            {op_kind::add, ids.empty() ? 1.0 : 3.0 / (0.5 + fill)},
            {op_kind::flags, ids.empty() ? 0.0 : 3.0},
            {op_kind::move, ids.empty() ? 0.0 : 1.5},
            {op_kind::expunge, ids.empty() ? 0.0 : 1.0 * fill},
            {op_kind::create, 0.3},
            {op_kind::remove_folder, 0.3},
            {op_kind::to_cur, maildir && !ids.empty() ? 0.7 : 0.0},
        };
        double total = 0;
        for (auto& w : weights) total += w.second;
        double x = std::uniform_real_distribution<double>(0, total)(rng_);
        for (auto& w : weights) {
            if (x < w.second) {
                o.kind = w.first;
                break;
            }
            x -= w.second;
        }
        auto pick = [&](const std::vector<std::string>& from) {
            return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng_)];
        };
        switch (o.kind) {
            case op_kind::add:
                o.id = "m" + std::to_string(++next_id_);
                o.folder = coin(0.5) ? "INBOX" : pick(folders);
                if (maildir && coin(0.3)) {
                    o.in_new = true;
                } else {
                    for (const auto& f : flag_pool)
                        if (coin(0.25)) o.add.insert(f);
                }
                break;
            case op_kind::flags: {
                o.id = pick(ids);
                const auto& have = v.messages.at(o.id).flags;
                int changes = coin(0.7) ? 1 : 2;
                for (int i = 0; i < changes; ++i) {
                    auto f = pick(flag_pool);
                    (have.count(f) ? o.remove : o.add).insert(f);
                }
                break;
            }
            case op_kind::to_cur:
            case op_kind::expunge:
                o.id = pick(ids);
                break;
            case op_kind::move:
                o.id = pick(ids);
                o.folder = coin(0.3) ? "INBOX" : pick(folders);
                break;
            case op_kind::create:
                o.folder = pick(folder_pool);
                break;
            case op_kind::remove_folder:
                o.folder = pick(folders);
                break;
        }
        return o;
    }

    sync_plan random_sync() {
        sync_plan p;
        double x = std::uniform_real_distribution<double>(0, 1)(rng_);
        if (x < 0.25) {
            p.what = sync_plan::kind::kill;
            int n = coin(0.7) ? 1 : 2;
            auto limit = std::max<long>(20, static_cast<long>(typical_duration_.count() * 12 / 10));
            for (int i = 0; i < n; ++i)
                p.kill_ms.push_back(
                    static_cast<int>(std::uniform_int_distribution<long>(0, limit)(rng_)));
        } else if (x < 0.5) {
            p.what = sync_plan::kind::cut;
            p.dir = coin(0.5) ? direction::client_to_server : direction::server_to_client;
            auto limit = std::max<std::uint64_t>(100, typical_bytes(p.dir) * 11 / 10);
            p.cut_bytes = std::uniform_int_distribution<std::uint64_t>(1, limit)(rng_);
        }
        return p;
    }

    // Runs the round's syncs and checks the outcome; the failure, if any, in words.
    std::optional<std::string> sync_and_check(round_state& st, const sync_plan& plan) {
        auto& p = proxy();
        if (plan.what == sync_plan::kind::kill) {
            for (auto ms : plan.kill_ms) {
                e2e::run_options o;
                o.kill_after = std::chrono::milliseconds(ms);
                auto r = run(o);
                if (r.killed) ++stats_.kills;
                if (r.timed_out) return "a sync hung:\n" + r.describe();
                if (!r.killed && r.exit_code != 0)
                    return "a sync (which the kill came too late for) failed:\n" + r.describe();
            }
        } else if (plan.what == sync_plan::kind::cut) {
            p.set(test::fault_plan::cut_after(plan.dir, plan.cut_bytes));
            auto r = run({});
            bool fired = p.fired(), mid = p.fired_mid_session();
            p.set({});
            if (r.timed_out) return "a sync with a cut connection hung:\n" + r.describe();
            if (fired) ++stats_.cuts;
            if (mid) {
                ++stats_.cuts_mid_session;
                if (r.exit_code != 1 && r.exit_code != 3)
                    return "a sync whose connection was cut in the middle did not fail with 1 "
                           "or 3:\n" +
                           r.describe();
                // The store by its section name or by its account (user@host).
                auto all = r.all();
                bool named = false;
                for (const auto& who :
                     {std::string("server-a"), std::string("server-b"), user_a_ + "@",
                      user_b_.empty() ? "server-a" : user_b_ + "@"})
                    named = named || e2e::contains(all, who);
                if (!named)
                    return "the error of a cut connection does not name the store:\n" +
                           r.describe();
            } else if (!fired && r.exit_code != 0) {
                return "a sync that the cut never reached failed:\n" + r.describe();
            }
        }

        p.set({});  // counts the clean run's bytes alone
        auto start = std::chrono::steady_clock::now();
        auto r = run({});
        auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
        if (r.exit_code != 0) return "the clean sync failed:\n" + r.describe();
        typical_duration_ = took;
        for (auto d : {direction::client_to_server, direction::server_to_client})
            typical_bytes_[static_cast<int>(d)] = p.bytes(d);

        view expected = merge(st);
        auto want = snapshot_of(expected);
        auto got_a = a_->snapshot();
        auto got_b = b_->snapshot();
        ++stats_.checks;
        std::string diff = difference("side a", want, got_a) + difference("side b", want, got_b);
        if (!diff.empty()) return "after the clean sync the sides differ from the model:\n" + diff;

        // A second sync right after changes nothing on either side.
        auto marks_a = e2e::server_marks(server(), user_a_);
        auto marks_b = user_b_.empty() ? decltype(marks_a){} : e2e::server_marks(server(), user_b_);
        auto files =
            maildir_root() ? e2e::maildir_files(*maildir_root()) : std::vector<std::string>{};
        auto events = settled_events();
        auto r2 = run({});
        if (r2.exit_code != 0) return "the second sync failed:\n" + r2.describe();
        std::string noop;
        if (e2e::server_marks(server(), user_a_) != marks_a)
            noop += "side a's UIDNEXT/HIGHESTMODSEQ changed\n";
        if (!user_b_.empty() && e2e::server_marks(server(), user_b_) != marks_b)
            noop += "side b's UIDNEXT/HIGHESTMODSEQ changed\n";
        if (maildir_root() && e2e::maildir_files(*maildir_root()) != files)
            noop += "the Maildir's file names changed\n";
        auto events2 = settled_events();
        if (events2 != events)
            noop += "Dovecot logged saves, copies, expunges or flag changes: " + events + " -> " +
                    events2 + "\n";
        if (!noop.empty()) return "the second sync was not a no-op:\n" + noop + r2.describe();
        model_ = expected;
        return std::nullopt;
    }

    // One whole round: random operations, then the syncs.
    std::optional<std::string> random_round(round_log& log) {
        auto st = begin_round();
        log.sync = random_sync();
        int n = std::uniform_int_distribution<int>(0, 8)(rng_);
        for (int i = 0; i < n; ++i) {
            for (int attempt = 0; attempt < 8; ++attempt) {
                auto o = random_op(st);
                if (try_apply(st, o)) {
                    log.ops.push_back(o);
                    break;
                }
            }
        }
        ++stats_.rounds;
        return sync_and_check(st, log.sync);
    }

    // The same operations again (those that no longer apply are skipped).
    std::optional<std::string> replay_round(const round_log& log) {
        auto st = begin_round();
        for (const auto& o : log.ops) try_apply(st, o);
        ++stats_.rounds;
        return sync_and_check(st, log.sync);
    }

  private:
    bool coin(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

    std::string make_content(const std::string& id) {
        double x = std::uniform_real_distribution<double>(0, 1)(rng_);
        std::size_t size = x < 0.6 ? std::uniform_int_distribution<std::size_t>(10, 600)(rng_)
                           : x < 0.95
                               ? std::uniform_int_distribution<std::size_t>(1000, 20000)(rng_)
                               : std::uniform_int_distribution<std::size_t>(100000, 400000)(rng_);
        return message_for(id, size, !coin(0.2));
    }

    std::string imap_store(const std::string& name, const std::string& user) {
        auto pw = dir_.path() / ("password-" + user);
        e2e::write_file(pw, server().password(user) + "\n", fs::perms(0600));
        // No COMPRESS: the proxy reads the protocol to tell a cut mid-session from one
        // during LOGOUT.
        return "[store." + name +
               "]\ntype = imap\nhost = 127.0.0.1\nport = " + std::to_string(proxy().port()) +
               "\ntls = none\nallow-plaintext = yes\ncompress = no\ntimeout = 5s\nconnections = 2"
               "\nuser = " +
               user + "\npassword-file = " + pw.string() + "\n\n";
    }

    std::optional<fs::path> maildir_root() const {
        if (mode_ == mode::imap_imap) return std::nullopt;
        return dir_.path() / "Mail";
    }

    e2e::run_result run(e2e::run_options o) {
        if (o.timeout == 90s) o.timeout = 60s;
        ++stats_.syncs;
        std::vector<std::string> args{"sync", "--config", config_path().string()};
        if (options().verbose) args.push_back("-vv");
        auto r = e2e::run_tandem(args, o);
        if (r.err.find("is in use by") != std::string::npos) r.err += lock_holders();
        if (options().verbose)
            std::cerr << "  [sync] exit " << r.exit_code << (r.killed ? " (killed)" : "") << "\n"
                      << r.err;
        return r;
    }

    // Which processes hold the journal's lock file open now, with their state: for a sync
    // that found the journal in use after the one before it was killed.
    std::string lock_holders() const {
        std::string out = "  [journal.lock held by:";
        const auto lock = fs::weakly_canonical(dir_.path() / "state" / "journal.lock");
        std::error_code ec;
        for (const auto& proc : fs::directory_iterator("/proc", ec)) {
            const auto pid = proc.path().filename().string();
            if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
            std::error_code fec;
            for (const auto& fd : fs::directory_iterator(proc.path() / "fd", fec)) {
                std::error_code lec;
                if (fs::read_symlink(fd.path(), lec) != lock) continue;
                std::ifstream stat(proc.path() / "stat");
                std::string line;
                std::getline(stat, line);
                out += " {" + line.substr(0, 120) + "}";
            }
        }
        return out + "]\n";
    }

    store_snapshot snapshot_of(const view& v) const {
        store_snapshot s;
        for (const auto& f : v.folders) s[f];
        for (const auto& [id, m] : v.messages)
            s[m.folder].push_back(
                e2e::entry(contents_.at(id), {m.flags.begin(), m.flags.end()}, std::nullopt));
        for (auto& [_, box] : s) std::sort(box.begin(), box.end());
        return s;
    }

    static std::string difference(const std::string& who, const store_snapshot& want,
                                  const store_snapshot& got) {
        std::ostringstream s;
        std::set<std::string> boxes;
        for (const auto& [b, _] : want) boxes.insert(b);
        for (const auto& [b, _] : got) boxes.insert(b);
        for (const auto& b : boxes) {
            auto w = want.find(b);
            auto g = got.find(b);
            if (w == want.end()) {
                s << "  " << who << ": unexpected folder " << b << "\n";
                continue;
            }
            if (g == got.end()) {
                s << "  " << who << ": missing folder " << b << "\n";
                continue;
            }
            std::vector<std::string> missing, extra;
            std::set_difference(w->second.begin(), w->second.end(), g->second.begin(),
                                g->second.end(), std::back_inserter(missing));
            std::set_difference(g->second.begin(), g->second.end(), w->second.begin(),
                                w->second.end(), std::back_inserter(extra));
            for (const auto& e : missing) s << "  " << who << " " << b << ": missing " << e << "\n";
            for (const auto& e : extra)
                s << "  " << who << " " << b << ": unexpected " << e << "\n";
        }
        return s.str();
    }

    // Dovecot's mail_log counts for our users, once the log has caught up.
    std::string settled_events() const {
        auto read = [&] {
            std::string s;
            for (const auto& user : {user_a_, user_b_}) {
                if (user.empty()) continue;
                for (const char* e : {"save", "copy", "expunge", "flag_change"})
                    s += std::string(e) + "=" + std::to_string(server().count_log_events(e, user)) +
                         " ";
            }
            return s;
        };
        auto s = read();
        for (int i = 0; i < 5; ++i) {
            std::this_thread::sleep_for(30ms);
            auto again = read();
            if (again == s) break;
            s = again;
        }
        return s;
    }

    mode mode_;
    std::mt19937_64 rng_;
    test::temp_dir dir_;
    std::string user_a_, user_b_;
    std::unique_ptr<driver> a_, b_;
    view model_;
    std::map<std::string, std::string> contents_;
    std::size_t next_id_ = 0;
    stats stats_;
    std::chrono::milliseconds typical_duration_{300};
    std::uint64_t typical_bytes_[2] = {3000, 20000};
};

// ---------------------------------------------------------------------------------------
// Replays and delta debugging

// Replays `rounds` on fresh accounts; the failure, if any. The same seed gives the same
// message sizes, so that a replay of a subset differs from the original only by what it
// leaves out (and by when the kills land).
std::optional<std::string> replay(mode m, std::uint64_t seed,
                                  const std::vector<round_log>& rounds) {
    scenario s(m, seed);
    for (const auto& r : rounds)
        if (auto f = s.replay_round(r)) return f;
    return std::nullopt;
}

struct shrink_result {
    std::vector<round_log> rounds;
    std::string failure;
    int replays = 0;
    bool reproduced = false;
};

shrink_result shrink(mode m, std::uint64_t seed, std::vector<round_log> rounds) {
    shrink_result out;
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(options().shrink_seconds);
    auto fails = [&](const std::vector<round_log>& candidate) -> bool {
        if (std::chrono::steady_clock::now() > deadline) return false;
        if (global().next_user + 2 > user_count) return false;
        ++out.replays;
        auto f = replay(m, seed, candidate);
        if (f) out.failure = *f;
        return f.has_value();
    };
    if (!fails(rounds)) return out;
    out.reproduced = true;
    // Fewer rounds: the earliest prefix that fails.
    for (std::size_t n = 1; n < rounds.size(); ++n) {
        std::vector<round_log> prefix(rounds.begin(), rounds.begin() + static_cast<long>(n));
        if (fails(prefix)) {
            rounds = prefix;
            break;
        }
    }
    // ddmin over the operations, the rounds' shape kept.
    struct ref {
        std::size_t round, index;
    };
    auto flatten = [](const std::vector<round_log>& rs) {
        std::vector<ref> refs;
        for (std::size_t r = 0; r < rs.size(); ++r)
            for (std::size_t i = 0; i < rs[r].ops.size(); ++i) refs.push_back({r, i});
        return refs;
    };
    auto keep_only = [](const std::vector<round_log>& rs, const std::vector<ref>& keep) {
        std::vector<round_log> out = rs;
        for (auto& r : out) r.ops.clear();
        for (const auto& k : keep) out[k.round].ops.push_back(rs[k.round].ops[k.index]);
        return out;
    };
    auto items = flatten(rounds);
    std::size_t parts = 2;
    while (items.size() >= 1 && parts <= items.size() * 2) {
        std::size_t chunk = (items.size() + parts - 1) / parts;
        bool reduced = false;
        for (std::size_t start = 0; start < items.size(); start += chunk) {
            std::vector<ref> complement;
            for (std::size_t i = 0; i < items.size(); ++i)
                if (i < start || i >= start + chunk) complement.push_back(items[i]);
            auto candidate = keep_only(rounds, complement);
            if (fails(candidate)) {
                rounds = candidate;
                items = flatten(rounds);
                parts = std::max<std::size_t>(parts - 1, 2);
                reduced = true;
                break;
            }
        }
        if (!reduced) {
            if (chunk <= 1) break;
            parts *= 2;
        }
    }
    // Plain syncs where a kill or a cut is not needed; empty rounds at the start dropped.
    for (auto& r : rounds) {
        if (r.sync.what == sync_plan::kind::plain) continue;
        auto saved = r.sync;
        r.sync = {};
        if (!fails(rounds)) r.sync = saved;
    }
    for (std::size_t i = 0; i < rounds.size() && rounds.size() > 1;) {
        if (!rounds[i].ops.empty() || rounds[i].sync.what != sync_plan::kind::plain) {
            ++i;
            continue;
        }
        auto fewer = rounds;
        fewer.erase(fewer.begin() + static_cast<long>(i));
        if (fails(fewer))
            rounds = fewer;
        else
            ++i;
    }
    out.rounds = rounds;
    return out;
}

// ---------------------------------------------------------------------------------------

const char* mode_name(mode m) {
    return m == mode::imap_maildir ? "imap-maildir" : "imap-imap";
}

void run_convergence(mode m) {
    const auto seed = options().seed;
    const auto rounds = options().rounds;
    std::vector<round_log> log;
    std::optional<std::string> failure;
    stats counts;
    auto started = std::chrono::steady_clock::now();
    if (!options().replay.empty()) {
        std::ifstream in(options().replay);
        ASSERT_TRUE(in) << "cannot read " << options().replay;
        log = parse_log(in);
        scenario s(m, seed);
        for (std::size_t r = 0; r < log.size() && !failure; ++r) failure = s.replay_round(log[r]);
        counts = s.counts();
        if (failure) log.resize(counts.rounds);
    } else {
        scenario s(m, seed);
        for (int r = 0; r < rounds && !failure; ++r) {
            log.emplace_back();
            failure = s.random_round(log.back());
            if (options().verbose)
                std::cerr << "round " << r + 1 << ": " << log.back().ops.size() << " ops, "
                          << describe(log.back().sync) << ", model " << s.model().messages.size()
                          << " messages in " << s.model().folders.size() << " folders\n";
        }
        counts = s.counts();
    }
    auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
            .count();
    std::cout << "convergence: mode=" << mode_name(m) << " seed=" << seed
              << " rounds=" << counts.rounds << " ops=" << counts.ops << " syncs=" << counts.syncs
              << " kills=" << counts.kills << " cuts=" << counts.cuts
              << " cuts_mid_session=" << counts.cuts_mid_session << " checks=" << counts.checks
              << " seconds=" << seconds << " result=" << (failure ? "FAIL" : "ok") << " kinds=";
    for (const auto& [k, n] : counts.by_kind) std::cout << k << ":" << n << ",";
    std::cout << std::endl;
    if (!failure) return;

    std::ostringstream report;
    report << "convergence failed: mode " << mode_name(m) << ", seed " << seed << ", round "
           << log.size() << "\n"
           << *failure << "\noperations so far (rerun: --mode " << mode_name(m) << " --seed "
           << seed << " --rounds " << log.size() << "):\n"
           << describe(log);
    if (options().shrink) {
        auto small = shrink(m, seed, log);
        if (!small.reproduced)
            report << "\nshrinking: the failure did not come back in a replay (timing?)\n";
        else
            report << "\nshortest sequence that still fails (" << small.replays << " replays):\n"
                   << describe(small.rounds) << "its failure:\n"
                   << small.failure;
    }
    ADD_FAILURE() << report.str();
}

TEST(convergence, imap_maildir) {
    run_convergence(mode::imap_maildir);
}

TEST(convergence, imap_imap) {
    run_convergence(mode::imap_imap);
}

// Seeds that failed once, replayed in every run (their kills and cuts land as they did then:
// seed 16's always, seed 2's about one run in two).
// - imap-maildir seed 16, round 4: a cut in the listing of the mailbox a message had moved
//   into on a, while b changed its flags in the mailbox it left. The run could not see the
//   move and expunged b's copy: b's flags were lost. Expunges now wait for a run that
//   lists every mailbox (run::do_expunge).
// - imap-maildir seed 2, round 14: a move on the Maildir and $Forwarded set on the server,
//   two killed runs. The killed scan gave the moved file its UID, so the next one did not
//   read its key, saw no move, and expunged the server's flagged copy (maildir_store
//   changes(): a key for every file the records do not know).
TEST(convergence, seeds_that_failed_once) {
    struct seeded {
        mode m;
        std::uint64_t seed;
        int rounds;
    };
    for (const auto& c : {seeded{mode::imap_maildir, 16, 4}, seeded{mode::imap_maildir, 2, 14}}) {
        scenario s(c.m, c.seed, false);
        std::optional<std::string> failure;
        for (int r = 0; r < c.rounds && !failure; ++r) {
            round_log log;
            failure = s.random_round(log);
        }
        EXPECT_FALSE(failure) << "seed " << c.seed << ": " << *failure;
    }
}

}  // namespace
}  // namespace tandem::convergence

int main(int argc, char** argv) {
    using namespace tandem::convergence;
    ::testing::InitGoogleTest(&argc, argv);
    auto& o = options();
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--seed") {
            o.seed = std::stoull(value());
        } else if (a == "--rounds") {
            o.rounds = std::stoi(value());
        } else if (a == "--mode") {
            auto m = value();
            if (m == "imap-maildir")
                ::testing::GTEST_FLAG(filter) = "convergence.imap_maildir";
            else if (m == "imap-imap")
                ::testing::GTEST_FLAG(filter) = "convergence.imap_imap";
            else if (m != "both") {
                std::cerr << "--mode: imap-maildir, imap-imap or both\n";
                return 2;
            }
        } else if (a == "--no-shrink") {
            o.shrink = false;
        } else if (a == "--shrink-seconds") {
            o.shrink_seconds = std::stoi(value());
        } else if (a == "--replay") {
            o.replay = value();
        } else if (a == "--verbose") {
            o.verbose = true;
        } else {
            std::cerr << "unknown option " << a
                      << "\nusage: dovecot_convergence [--seed N] [--rounds N] [--mode "
                         "imap-maildir|imap-imap|both] [--no-shrink] [--shrink-seconds N] "
                         "[--replay FILE] [--verbose]\n";
            return 2;
        }
    }
    ::testing::AddGlobalTestEnvironment(new environment);
    return RUN_ALL_TESTS();
}
