// SPDX-License-Identifier: MIT
// The store interface over a client::session. Each call selects its mailbox as needed and
// sends the commands that do not depend on one another in one flight (send all, then wait
// all). Untagged data that arrives while changes() runs goes through one collector in the
// order the server sent it, so that an EXPUNGE's sequence number is read against the right
// table and no update is lost.
#include "tandem/store/imap_store.hpp"

#include "imap_store_p.hpp"
#include "tandem/imap/datetime.hpp"
#include "tandem/mail/content_key.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include <fcntl.h>
#include <unistd.h>

namespace tandem::store {

namespace detail {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::toupper(static_cast<unsigned char>(x)) ==
                      std::toupper(static_cast<unsigned char>(y));
           });
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        auto p = s.find(sep);
        out.push_back(s.substr(0, p));
        if (p == std::string_view::npos) break;
        s.remove_prefix(p + 1);
    }
    return out;
}

}  // namespace

std::optional<std::string> canonical_name(std::string_view server, std::optional<char> delimiter) {
    std::vector<std::string_view> levels;
    if (delimiter)
        levels = split(server, *delimiter);
    else
        levels.push_back(server);
    std::string out;
    for (std::size_t i = 0; i < levels.size(); ++i) {
        auto level = levels[i];
        if (level.find('/') != std::string_view::npos && delimiter != '/') return std::nullopt;
        if (i > 0) out += '/';
        // RFC 3501 5.1: INBOX is case-insensitive; its children keep its spelling.
        if (i == 0 && iequals(level, "INBOX"))
            out += "INBOX";
        else
            out += level;
    }
    return out;
}

std::optional<std::string> server_name(std::string_view canonical, std::optional<char> delimiter) {
    if (!delimiter) {
        if (canonical.find('/') != std::string_view::npos) return std::nullopt;
        return std::string(canonical);
    }
    if (*delimiter == '/') return std::string(canonical);
    std::string out;
    auto levels = split(canonical, '/');
    for (std::size_t i = 0; i < levels.size(); ++i) {
        if (levels[i].find(*delimiter) != std::string_view::npos) return std::nullopt;
        if (i > 0) out += *delimiter;
        out += levels[i];
    }
    return out;
}

std::string special_use(const std::vector<std::string>& attributes) {
    static constexpr std::string_view uses[] = {"\\All",  "\\Archive", "\\Drafts", "\\Flagged",
                                                "\\Junk", "\\Sent",    "\\Trash"};
    for (auto& a : attributes)
        for (auto u : uses)
            if (iequals(a, u)) return std::string(u);
    return {};
}

flag_groups group_flag_changes(std::span<const flag_change> changes) {
    flag_groups g;
    auto put = [](std::vector<flag_group>& groups, const mail::flag_set& f, mail::uid u) {
        if (f.empty() || u == 0) return;
        for (auto& x : groups) {
            if (x.flags == f) {
                x.uids.insert(u);
                return;
            }
        }
        groups.push_back({f, {}});
        groups.back().uids.insert(u);
    };
    for (auto& c : changes) {
        put(g.add, c.add, c.uid);
        put(g.remove, c.remove, c.uid);
    }
    return g;
}

std::optional<std::vector<std::string>> flag_mismatch_criteria(
    const std::vector<std::string>& universe, const mail::flag_set& flags) {
    struct system {
        std::string_view name;
        mail::system_flag flag;
        std::string_view set, unset;  // the SEARCH keys (RFC 9051 6.4.4)
    };
    static constexpr system systems[] = {
        {"\\Seen", mail::system_flag::seen, "SEEN", "UNSEEN"},
        {"\\Answered", mail::system_flag::answered, "ANSWERED", "UNANSWERED"},
        {"\\Flagged", mail::system_flag::flagged, "FLAGGED", "UNFLAGGED"},
        {"\\Deleted", mail::system_flag::deleted, "DELETED", "UNDELETED"},
        {"\\Draft", mail::system_flag::draft, "DRAFT", "UNDRAFT"},
    };
    std::vector<std::vector<std::string>> terms;
    // Every system flag, listed in FLAGS or not: a message can carry it all the same.
    for (const auto& x : systems)
        terms.push_back({std::string(flags.has(x.flag) ? x.unset : x.set)});
    std::vector<std::string_view> keywords;
    auto seen = [&keywords](std::string_view k) {
        return std::any_of(keywords.begin(), keywords.end(),
                           [k](std::string_view x) { return iequals(x, k); });
    };
    auto has = [&flags](std::string_view k) {
        return std::any_of(flags.keywords().begin(), flags.keywords().end(),
                           [k](std::string_view x) { return iequals(x, k); });
    };
    for (const auto& atom : universe) {
        if (atom.empty()) continue;
        if (atom[0] == '\\') {
            if (iequals(atom, "\\Recent")) continue;
            bool known = std::any_of(std::begin(systems), std::end(systems),
                                     [&atom](const system& x) { return iequals(atom, x.name); });
            if (!known) return std::nullopt;
            continue;
        }
        if (seen(atom)) continue;
        keywords.push_back(atom);
        terms.push_back({has(atom) ? "UNKEYWORD" : "KEYWORD", atom});
    }
    for (const auto& k : flags.keywords()) {
        if (seen(k)) continue;
        keywords.push_back(k);
        terms.push_back({"UNKEYWORD", k});
    }
    // Prefix ORs: `OR a OR b c`.
    std::vector<std::string> out;
    for (std::size_t i = 0; i < terms.size(); ++i) {
        if (i + 1 < terms.size()) out.push_back("OR");
        for (auto& t : terms[i]) out.push_back(std::move(t));
    }
    return out;
}

bool keeps_flags(const std::vector<std::string>& permanent, const mail::flag_set& added) {
    auto listed = [&permanent](std::string_view atom) {
        return std::any_of(permanent.begin(), permanent.end(),
                           [atom](const std::string& p) { return iequals(p, atom); });
    };
    for (const auto& atom : added.imap_atoms()) {
        if (listed(atom)) continue;
        if (!atom.starts_with('\\') && listed("\\*")) continue;
        return false;
    }
    return true;
}

std::vector<mail::uid> assign_found_uids(const std::vector<std::optional<std::string>>& ids,
                                         const std::vector<std::string>& distinct,
                                         const std::vector<std::vector<mail::uid>>& found) {
    std::vector<mail::uid> out(ids.size(), 0);
    std::vector<std::size_t> next(distinct.size(), 0);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (!ids[i]) continue;
        auto it = std::find(distinct.begin(), distinct.end(), *ids[i]);
        if (it == distinct.end()) continue;
        auto j = static_cast<std::size_t>(it - distinct.begin());
        if (j < found.size() && next[j] < found[j].size()) out[i] = found[j][next[j]++];
    }
    return out;
}

}  // namespace detail

namespace {

using client::completion;

constexpr std::size_t max_set_bytes = 8000;     // RFC 7162 4: keep command lines short
constexpr std::size_t known_uids_limit = 4000;  // a longer QRESYNC known-uids set is left out
// Appends with more distinct sets of flags than this into one mailbox are not vouched for
// (status_after_own_changes asks one SEARCH per set).
constexpr std::size_t max_flag_groups = 32;
// ...nor appends of fewer messages than 1/vouch_ratio of those the mailbox held before.
constexpr std::uint64_t vouch_ratio = 8;

// What was done in a mailbox found recreated during the run (impl::refuse_recreated).
constexpr std::string_view nothing_changed = "nothing was changed there";
constexpr std::string_view appended_unrecorded =
    "the messages were appended there, their UIDs not recorded";

// The index of `f` among the distinct flag sets appended so far, added when new; nullopt
// when it is new and there are max_flag_groups already.
std::optional<std::size_t> flag_group(std::vector<mail::flag_set>& groups,
                                      const mail::flag_set& f) {
    auto it = std::find(groups.begin(), groups.end(), f);
    if (it != groups.end()) return static_cast<std::size_t>(it - groups.begin());
    if (groups.size() >= max_flag_groups) return std::nullopt;
    groups.push_back(f);
    return groups.size() - 1;
}
// The fields of mail::identify_header: Message-ID and those of header_digest.
const std::string message_id_item = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO CC SUBJECT)]";

std::string in_quotes(std::string_view name) {
    return "\"" + std::string(name) + "\"";
}

std::vector<imap::uid_set> chunks(const imap::uid_set& set) {
    std::vector<imap::uid_set> out;
    for (auto& piece : set.split(max_set_bytes))
        if (auto p = imap::uid_set::parse(piece)) out.push_back(std::move(*p));
    return out;
}

imap::uid_set from_uid(mail::uid first) {
    return imap::uid_set{{std::max<mail::uid>(first, 1), imap::uid_set::star}};
}

// The Message-ID of a body, from its header within the first 64 KB (a spool file that
// cannot be read has none).
std::optional<std::string> message_id_of(const message_body& b) {
    if (b.file.empty())
        return mail::find_message_id(std::string_view(b.data).substr(0, mail::message_id_window));
    auto head = mail::read_header(b.file, mail::message_id_window);
    if (!head) return std::nullopt;
    return mail::find_message_id(*head);
}

// A body that a sink of the parser took as its bytes arrived: in a spool file (`path`) or
// in memory (`data`, no path).
struct streamed_body {
    std::filesystem::path path;
    std::string data;
    std::uint64_t size = 0;
    int error = 0;  // errno of a failed create or write of the spool file
};
// Finished bodies by sequence number, until their FETCH response ends. Shared with the
// sinks: a sink may outlive the call that made it (a connection lost in a literal).
using streamed_bodies = std::shared_ptr<std::map<std::uint32_t, streamed_body>>;

// A body written to a spool file as its bytes arrive. Destroyed without finish(): the
// parser gave up on it, and so does the file.

class spool_sink final : public imap::body_sink {
  public:
    spool_sink(const std::filesystem::path& dir, streamed_bodies done, std::uint32_t seq)
        : done_(std::move(done)), seq_(seq) {
        std::string tmpl = (dir / "tandem-spool-XXXXXX").string();
        fd_ = ::mkstemp(tmpl.data());  // 0600: a body is private
        if (fd_ < 0)
            out_.error = errno;
        else
            out_.path = tmpl;
    }
    ~spool_sink() override {
        if (fd_ >= 0) ::close(fd_);
        if (!finished_ && !out_.path.empty()) {
            std::error_code ec;
            std::filesystem::remove(out_.path, ec);
        }
    }
    void write(std::span<const char> piece) override {
        if (fd_ < 0 || out_.error) return;
        const char* p = piece.data();
        std::size_t left = piece.size();
        while (left > 0) {
            auto n = ::write(fd_, p, left);
            if (n < 0) {
                if (errno == EINTR) continue;
                out_.error = errno;
                return;
            }
            p += n;
            left -= static_cast<std::size_t>(n);
            out_.size += static_cast<std::uint64_t>(n);
        }
    }
    void finish() override {
        if (fd_ >= 0 && ::close(fd_) != 0 && !out_.error) out_.error = errno;
        fd_ = -1;
        finished_ = true;
        (*done_)[seq_] = out_;
    }

  private:
    streamed_bodies done_;
    std::uint32_t seq_;
    int fd_ = -1;
    bool finished_ = false;
    streamed_body out_;
};

// A body kept in memory, written as its bytes arrive.
class memory_sink final : public imap::body_sink {
  public:
    memory_sink(streamed_bodies done, std::uint32_t seq, std::uint64_t size)
        : done_(std::move(done)), seq_(seq) {
        out_.data.reserve(static_cast<std::size_t>(size));
    }
    void write(std::span<const char> piece) override {
        out_.data.append(piece.data(), piece.size());
    }
    void finish() override {
        out_.size = out_.data.size();
        (*done_)[seq_] = std::move(out_);
    }

  private:
    streamed_bodies done_;
    std::uint32_t seq_;
    streamed_body out_;
};

void remove_file(const std::filesystem::path& p) {
    std::error_code ec;
    if (!p.empty()) std::filesystem::remove(p, ec);
}

// Routes the untagged data of changes() in the order it came: FETCH by UID into `messages`,
// EXPUNGE through the sequence number table, VANISHED, EXISTS and the UID SEARCH answer.
struct collector {
    // What changes() learns of each message, merged from every FETCH that names it, in UID
    // order (the order of the answers, mostly): one flat array that becomes the result, not
    // a tree of nodes beside it (a first listing of 200k messages).
    std::vector<mail::message_info> infos;
    std::vector<std::uint8_t> marks;  // has_flags | full, per infos[i]
    static constexpr std::uint8_t has_flags = 1;
    static constexpr std::uint8_t full = 2;  // size, date, Message-ID and identity came
    std::vector<mail::uid> msn;              // sequence number - 1 -> UID; 0 where unknown
    imap::uid_set expunged;
    std::optional<imap::uid_set> all_uids;  // the UID SEARCH ALL answer
    std::shared_ptr<std::string> search_tag = std::make_shared<std::string>();
    // Full items are kept only for these UIDs when full_filter is set: RFC 3501 6.4.8's
    // `N:*` returns the last message even below N, and a message the journal knows needs
    // only its flags.
    bool full_filter = false;
    imap::uid_set full_wanted;
    bool vanished_earlier = false;  // a UID FETCH asked for VANISHED (EARLIER)
    bool keys = true;   // the header fields were asked for: make content keys
    bool sizes = true;  // RFC822.SIZE was asked for (else a size is 0: unknown)

    bool on_response(imap::response& r) {
        if (auto* f = std::get_if<imap::fetch_data>(&r)) {
            on_fetch(*f);
            return true;
        }
        if (auto* e = std::get_if<imap::expunge_data>(&r)) {
            if (e->seq >= 1 && e->seq <= msn.size()) {
                if (auto u = msn[e->seq - 1]) expunged.insert(u);
                msn.erase(msn.begin() + (e->seq - 1));
            }
            return true;
        }
        if (auto* v = std::get_if<imap::vanished_data>(&r)) {
            if (v->earlier) {
                // The answer to a UID FETCH (CHANGEDSINCE n VANISHED), which moves no sequence
                // number (RFC 7162 3.2.6); else only the QRESYNC SELECT asks for those.
                if (!vanished_earlier) return false;
                expunged |= v->uids;
                return true;
            }
            expunged |= v->uids;
            auto before = msn.size();
            std::erase_if(msn, [&](mail::uid u) { return u != 0 && v->uids.contains(u); });
            // A vanished UID whose slot was unknown leaves the table one too long: blank it,
            // so that no later EXPUNGE is read against a wrong position.
            if (before - msn.size() != v->uids.size()) std::fill(msn.begin(), msn.end(), 0);
            return true;
        }
        if (auto* x = std::get_if<imap::exists_data>(&r)) {
            if (x->count > msn.size()) msn.resize(x->count, 0);
            return true;
        }
        if (auto* s = std::get_if<imap::search_data>(&r)) {
            set_all(s->numbers);
            return true;
        }
        if (auto* e = std::get_if<imap::esearch_data>(&r)) {
            // The tag of a SEARCH sent behind a SELECT is not known yet when its answer comes;
            // the flight has only the one SEARCH.
            if (e->tag && !search_tag->empty() && *e->tag != *search_tag) return false;
            imap::uid_set all = e->all ? *e->all : imap::uid_set{};
            all_uids = all;
            msn.assign(all.begin(), all.end());
            return true;
        }
        return false;
    }

    void set_all(const std::vector<std::uint32_t>& numbers) {
        imap::uid_set all;
        for (auto n : numbers) all.insert(n);
        all_uids = all;
        msn.assign(all.begin(), all.end());  // in UID order, which is sequence order
    }

    void on_fetch(imap::fetch_data& f) {
        std::optional<mail::uid> uid = f.uid;
        if (f.seq >= 1) {
            if (f.seq > msn.size()) msn.resize(f.seq, 0);
            if (uid)
                msn[f.seq - 1] = *uid;
            else if (msn[f.seq - 1] != 0)
                uid = msn[f.seq - 1];
        }
        if (!uid) return;  // a flag update of a message not yet named: the next run sees it
        // INTERNALDATE marks the answer to a full listing (RFC822.SIZE may be left out): an
        // unsolicited FETCH carries FLAGS and MODSEQ only.
        if (f.internaldate && full_filter && !full_wanted.contains(*uid)) return;
        const std::size_t i = slot(*uid);
        auto& m = infos[i];
        if (f.flags) {
            m.flags = f.flag_set();
            marks[i] |= has_flags;
        }
        if (f.modseq) m.modseq = *f.modseq;
        if (f.internaldate) {
            m.size = f.rfc822_size.value_or(0);
            m.internal_date = *f.internaldate;
            if (f.emailid)
                m.identity = std::move(*f.emailid);
            else if (f.x_gm_msgid)
                m.identity = std::to_string(*f.x_gm_msgid);
            else if (f.x_guid)
                m.identity = std::move(*f.x_guid);
            if (keys) {
                mail::header_identity id = mail::identify_header({});
                for (auto& b : f.bodies)
                    if (b.section.find("HEADER.FIELDS") != std::string::npos && !b.nil)
                        id = mail::identify_header(b.data);
                m.content_key = mail::content_key(id, m.size, m.internal_date);
            }
            marks[i] |= full;
        }
    }

    // The entry of `u`, made where missing; appending is the common case.
    std::size_t slot(mail::uid u) {
        if (infos.empty() || infos.back().uid < u) {
            infos.emplace_back().uid = u;
            marks.push_back(0);
            return infos.size() - 1;
        }
        auto it =
            std::lower_bound(infos.begin(), infos.end(), u,
                             [](const mail::message_info& m, mail::uid v) { return m.uid < v; });
        const auto i = static_cast<std::size_t>(it - infos.begin());
        if (it != infos.end() && it->uid == u) return i;
        infos.insert(it, mail::message_info{})->uid = u;
        marks.insert(marks.begin() + static_cast<std::ptrdiff_t>(i), 0);
        return i;
    }
};

}  // namespace

// fetch_measure over the connections of one account, from their threads.
class fetch_meter {
  public:
    void begin() {
        std::lock_guard lock(mutex_);
        if (active_++ == 0) since_ = std::chrono::steady_clock::now();
    }
    void end(std::uint64_t bytes, bool compressed) {
        std::lock_guard lock(mutex_);
        if (--active_ == 0) m_.time += std::chrono::steady_clock::now() - since_;
        if (m_.bytes == 0 && !m_.mixed)
            m_.compressed = compressed;
        else if (m_.compressed != compressed)
            m_.mixed = true;
        m_.bytes += bytes;
    }
    fetch_measure get() const {
        std::lock_guard lock(mutex_);
        return m_;
    }

  private:
    mutable std::mutex mutex_;
    unsigned active_ = 0;
    std::chrono::steady_clock::time_point since_;
    fetch_measure m_;
};

namespace {

using deliver_function = std::function<result<void>(mail::uid, message_body&&)>;

// One UID FETCH of bodies: fetch()'s own, or fetch_ahead()'s until fetch() takes it over.
// Bodies that come before fetch() is there to deliver them (another command's wait read
// them) are held, up to hold_limit bytes in memory; those past it are dropped and asked
// for again.
struct body_fetch {
    static constexpr std::uint64_t hold_limit = 8u << 20;

    std::string mailbox;          // canonical
    std::uint64_t selection = 0;  // impl::selections when it was sent
    imap::uid_set uids;
    client::fetch_flight flight;
    streamed_bodies streamed = std::make_shared<std::map<std::uint32_t, streamed_body>>();
    std::set<mail::uid> seen;  // a second answer for a uid is not a body to deliver again
    std::deque<std::pair<mail::uid, message_body>> held;
    std::uint64_t held_bytes = 0;
    imap::uid_set dropped;
    const deliver_function* deliver = nullptr;  // while fetch() waits for the rest
    std::optional<error_code> deliver_error;
    int spool_error = 0;
    bool abandoned = false;  // nobody will take its bodies: they go as they come
    // The link's rate is measured from the first body on (from the sending of a fetch
    // ahead, whose bodies come while nothing reads them): the round trip before it, and the
    // server's start, are not the link's.
    client::session* session = nullptr;
    std::shared_ptr<fetch_meter> meter;
    std::optional<std::uint64_t> flowing;  // bytes received when the bodies began

    ~body_fetch() {
        drop_held();
        for (auto& [seq, sb] : *streamed) remove_file(sb.path);
    }

    void drop_held() {
        for (auto& [uid, body] : held) discard_spool(body);
        held.clear();
        held_bytes = 0;
    }

    void start_flow() {
        if (flowing) return;
        flowing = session->traffic().plain_in;
        meter->begin();
    }
    void end_flow() {
        if (!flowing) return;
        meter->end(session->traffic().plain_in - *flowing, session->compressed());
        flowing.reset();
    }

    void on_message(imap::fetch_data&& f) {
        start_flow();
        if (!f.uid || seen.count(*f.uid)) return;
        auto b = std::find_if(f.bodies.begin(), f.bodies.end(), [](const imap::body_section& s) {
            return s.item == "BODY" && s.section.empty() && !s.origin;
        });
        if (b == f.bodies.end() || b->nil) return;  // a flag update, not our answer
        message_body body;
        if (b->streamed) {
            auto it = streamed->find(f.seq);
            if (it == streamed->end()) return;
            streamed_body sb = std::move(it->second);
            streamed->erase(it);
            if (sb.error) {
                remove_file(sb.path);
                if (!spool_error) spool_error = sb.error;
                return;
            }
            body.size = sb.size;
            if (sb.path.empty()) {
                body.data = std::move(sb.data);
            } else {
                body.file = sb.path;
                body.temporary = true;
            }
        } else {
            body.size = b->data.size();
            body.data = std::move(b->data);
        }
        body.server_size = f.rfc822_size.value_or(0);
        seen.insert(*f.uid);
        if (abandoned || deliver_error || spool_error) {
            discard_spool(body);
            return;
        }
        if (deliver) {
            if (auto r = (*deliver)(*f.uid, std::move(body)); !r) deliver_error = r.error();
            return;
        }
        const std::uint64_t in_memory = body.file.empty() ? body.size : 0;
        if (held_bytes + in_memory > hold_limit) {
            discard_spool(body);
            dropped.insert(*f.uid);
            return;
        }
        held_bytes += in_memory;
        held.emplace_back(*f.uid, std::move(body));
    }

    // Hands on what was held; what comes from now on goes to `d` at once.
    void deliver_to(const deliver_function& d) {
        deliver = &d;
        while (!held.empty() && !deliver_error) {
            auto [uid, body] = std::move(held.front());
            held.pop_front();
            if (auto r = d(uid, std::move(body)); !r) deliver_error = r.error();
        }
        drop_held();
    }

    void abandon() {
        abandoned = true;
        deliver = nullptr;
        drop_held();
        end_flow();
    }
};

}  // namespace

struct imap_store::impl {
    std::unique_ptr<client::session> s;
    std::shared_ptr<fetch_meter> meter = std::make_shared<fetch_meter>();
    log::logger log;
    imap_store_options options;
    std::string description;
    std::string last_error;
    bool delimiter_known = false;
    std::optional<char> delimiter;
    std::map<std::string, std::string> names;  // canonical -> server (UTF-8) name
    client::endpoint endpoint;                 // for another(): as connect() was given it
    unsigned connections = 1;                  // this one and those another() opened
    bool no_xguid = false;                     // the server refused FETCH X-GUID
    bool no_guess = false;
    // The mailbox selected: its PERMANENTFLAGS and HIGHESTMODSEQ as the SELECT gave them,
    // and how many SELECTs this session sent (to tell one from the next).
    std::vector<std::string> selected_permanent_flags;
    mail::modseq selected_modseq = 0;
    std::uint64_t selections = 0;
    // list_ahead() selected INBOX before its LIST (select_inbox_first()): for list(), and
    // for the changes() that may follow in that selection (the SELECT's answer and which
    // one it was of impl::selections).
    std::optional<client::select_flight> selecting_before_list;
    std::optional<client::select_result> inbox_selection;
    std::uint64_t inbox_selection_at = 0;
    // fetch_ahead()'s UID FETCH, until the fetch() it was sent for takes it.
    std::shared_ptr<body_fetch> ahead_fetch;

    // ---- this run's own changes (status_after_own_changes)

    // What this run did to a mailbox since the status it last reported for it. Appends
    // alone can be vouched for: their uids and flags are known, so the server can be asked
    // whether the mailbox holds exactly them besides what it held then. Flag stores alone
    // too, from what the server said while it did them (flags_stored).
    struct own_writes {
        std::optional<mailbox_status> before;  // none: this run created the mailbox
        bool unvouched = false;
        std::vector<mail::flag_set> flags;  // each distinct set of flags appended...
        std::vector<imap::uid_set> uids;    // ...and the uids that got it
        bool flags_stored = false;
        mail::modseq top = 0;         // the highest mod-sequence the stores were answered with
        std::uint64_t selection = 0;  // the SELECT they ran under (impl::selections)
    };
    // What the server said during one set_flags() call's UID STOREs.
    struct store_answers {
        mail::modseq top = 0;
        // A FETCH with FLAGS (a .SILENT store is answered with MODSEQ alone unless another
        // client changed the message too: Dovecot sends its flags then), or any other update
        // of the mailbox: another client's change.
        bool foreign = false;
    };
    // The status this store last reported for each mailbox, by canonical name. `guess`:
    // it came from the last listing and changes() has not used it yet to send its commands
    // with the SELECT.
    struct reported_status {
        mailbox_status status;
        bool guess = false;
    };
    std::map<std::string, reported_status> reported;
    std::map<std::string, own_writes> own;  // by canonical name
    // Mailboxes where the server gave another UIDVALIDITY than the status reported (at a
    // SELECT or in APPENDUID): the one it gave. See ensure_selected().
    std::map<std::string, mail::uidvalidity> recreated;

    void report(const std::string& canonical, const mailbox_status& st, bool listed = false) {
        recreated.erase(canonical);
        auto& r = reported[canonical];
        r.status = st;
        r.guess = r.guess || listed;
        own.erase(canonical);
    }

    own_writes& writes(const std::string& canonical) {
        auto [it, fresh] = own.try_emplace(canonical);
        if (fresh) {
            if (auto r = reported.find(canonical); r != reported.end())
                it->second.before = r->second.status;
            else
                it->second.unvouched = true;
        }
        return it->second;
    }

    void unvouch(const std::string& canonical) { writes(canonical).unvouched = true; }

    void created(const std::string& canonical) {
        reported.erase(canonical);
        own[canonical] = own_writes{};
    }

    // A message this run appended; uid 0 (unknown) leaves the mailbox unvouched.
    void appended(const std::string& canonical, const mail::flag_set& f, mail::uid u) {
        auto& w = writes(canonical);
        if (w.unvouched) return;
        auto g = u != 0 ? flag_group(w.flags, f) : std::nullopt;
        if (!g) {
            w.unvouched = true;
            return;
        }
        if (*g == w.uids.size()) w.uids.emplace_back();
        w.uids[*g].insert(u);
    }

    // Flag changes this run stored in a mailbox; `a` null: some of them may have failed.
    // The mailbox is vouched for when nothing but these stores changed it since the status
    // reported: the SELECT they ran under found it as reported (or as the stores before left
    // it), and no other client's change was told of since (RFC 9051 5.2 and 7.4: a server
    // tells a client of other clients' changes with its answers to later commands; Dovecot
    // does with each STORE's). The mod-sequences that the stores took are then the last
    // changes: the highest one they were answered with (RFC 7162 3.1.3) is the status's.
    void flags_stored(const std::string& canonical, const detail::flag_groups& g,
                      const store_answers* a) {
        auto& w = writes(canonical);
        if (w.unvouched) return;
        if (!w.flags_stored && w.before) w.top = w.before->highestmodseq;
        const bool same_select = w.flags_stored && w.selection == selections;
        // A flag the mailbox does not keep leaves it unlike the journal's record: the next
        // run must read it back. Without QRESYNC an expunge may take no mod-sequence.
        const bool kept = std::all_of(g.add.begin(), g.add.end(), [this](const auto& x) {
            return detail::keeps_flags(selected_permanent_flags, x.flags);
        });
        const char* why = !a                      ? "a store failed"
                          : a->foreign            ? "another client's change was told of"
                          : !kept                 ? "a flag is not among PERMANENTFLAGS"
                          : !w.before             ? "no status was reported"
                          : !s->qresync_enabled() ? "no QRESYNC"
                          : !same_select && selected_modseq != w.top
                              ? "the SELECT found another HIGHESTMODSEQ than reported"
                              : nullptr;
        if (why) {
            log.debug(description + ": " + canonical + ": flag stores not vouched for: " + why);
            w.unvouched = true;
            return;
        }
        w.flags_stored = true;
        w.selection = selections;
        w.top = std::max(w.top, a->top);
    }

    bool condstore() const { return s->qresync_enabled() || s->has("CONDSTORE"); }

    // ---- errors

    // "NO [TRYCREATE] Mailbox doesn't exist: Sent" for a server's answer, else what failed.
    std::string words(error_code ec) const {
        if (ec == errc::command_failed || ec == errc::command_rejected || ec == errc::server_bye) {
            const auto& c = s->last_error();
            const char* cond = c.status == imap::condition::no    ? "NO"
                               : c.status == imap::condition::bad ? "BAD"
                               : c.status == imap::condition::bye ? "BYE"
                                                                  : "OK";
            return std::string(cond) + " " + c.describe();
        }
        return ec.message();
    }

    error_code fail(error_code ec, const std::string& what) {
        last_error = what + " failed: " + words(ec);
        log.debug(description + ": " + last_error);
        return ec;
    }

    error_code fail_text(error_code ec, std::string text) {
        last_error = std::move(text);
        log.debug(description + ": " + last_error);
        return ec;
    }

    // ---- names

    result<void> learn_delimiter() {
        if (delimiter_known) return {};
        // RFC 3501 6.3.8: LIST "" "" answers with the hierarchy delimiter.
        std::optional<char> found;
        bool got = false;
        auto tag = s->send(imap::cmd::list("", ""), [&](imap::response& r) {
            auto* l = std::get_if<imap::list_data>(&r);
            if (!l || l->lsub || got) return false;
            found = l->delimiter;
            got = true;
            return true;
        });
        if (!tag) return fail(tag.error(), "LIST");
        if (auto c = s->wait(*tag); !c) return fail(c.error(), "LIST");
        delimiter = found;
        delimiter_known = true;
        return {};
    }

    result<std::string> server_name(const std::string& canonical) {
        if (auto it = names.find(canonical); it != names.end()) return it->second;
        if (auto r = learn_delimiter(); !r) return r.error();
        auto n = detail::server_name(canonical, delimiter);
        if (!n)
            return fail_text(errc::invalid_mailbox_name,
                             "mailbox " + in_quotes(canonical) +
                                 " cannot be named on this server (hierarchy delimiter " +
                                 (delimiter ? std::string(1, *delimiter) : std::string("NIL")) +
                                 ")");
        return *n;
    }

    // ---- selection

    // Data of a mailbox that was selected before: what it says is covered by the listing of
    // the next SELECT, which is older than any status this store returns.
    void discard_unsolicited() {
        auto q = s->take_unsolicited();
        if (!q.empty())
            log.trace(description + ": " + std::to_string(q.size()) +
                      " earlier mailbox update(s) left to the next listing");
    }

    // A fetch ahead that nobody will take: its bodies go as they come.
    void drop_fetch_ahead() {
        if (auto f = std::exchange(ahead_fetch, nullptr)) f->abandon();
    }

    // Sends a UID FETCH of the bodies of `uids` in the mailbox selected, and flushes it.
    result<std::shared_ptr<body_fetch>> send_body_fetch(const std::string& canonical,
                                                        const imap::uid_set& uids) {
        auto f = std::make_shared<body_fetch>();
        f->mailbox = canonical;
        f->selection = selections;
        f->uids = uids;
        f->session = s.get();
        f->meter = meter;
        const auto& o = options;
        auto bodies =
            [f, direct = o.direct_threshold, spool = o.spool_threshold,
             dir = o.spool_dir](const imap::body_context& ctx) -> std::unique_ptr<imap::body_sink> {
            f->start_flow();
            if (ctx.size < direct || !ctx.section.empty() || ctx.origin) return nullptr;
            if (ctx.size < spool)
                return std::make_unique<memory_sink>(f->streamed, ctx.seq, ctx.size);
            return std::make_unique<spool_sink>(dir, f->streamed, ctx.seq);
        };
        // RFC822.SIZE for a listing that left it out (want_sizes): the server works it out
        // for the body anyway, from the file it is reading now.
        auto flight = s->uid_fetch_send(
            uids, {"UID", "RFC822.SIZE", "BODY.PEEK[]"},
            [f](imap::fetch_data&& m) { f->on_message(std::move(m)); }, {}, bodies);
        if (!flight) return flight.error();
        f->flight = std::move(*flight);
        if (auto r = s->flush(); !r) return r.error();
        return f;
    }

    result<client::select_result> select(const std::string& canonical, const std::string& server,
                                         const client::select_options& so = {}) {
        auto flight = select_send(canonical, server, so);
        if (!flight) return flight.error();
        return select_wait(canonical, *flight);
    }

    // select() in two halves, as client::session::select_send() and select_wait().
    result<client::select_flight> select_send(const std::string& canonical,
                                              const std::string& server,
                                              const client::select_options& so = {}) {
        discard_unsolicited();
        drop_fetch_ahead();
        ++selections;
        selected_permanent_flags.clear();
        selected_modseq = 0;
        auto flight = s->select_send(server, so);
        if (!flight) return fail(flight.error(), "SELECT " + in_quotes(canonical));
        return flight;
    }
    result<client::select_result> select_wait(const std::string& canonical,
                                              client::select_flight& flight) {
        auto sel = s->select_wait(flight);
        if (!sel) return fail(sel.error(), "SELECT " + in_quotes(canonical));
        selected_permanent_flags = sel->permanent_flags;
        selected_modseq = sel->nomodseq ? 0 : sel->highestmodseq;
        return sel;
    }

    // What select() would return, for the mailbox selected already as `sel` says: the
    // commands of `so.pipelined` are sent now, and `so.on_selected` is told.
    result<client::select_result> continue_selection(client::select_result sel,
                                                     client::select_options& so) {
        sel.pipelined.clear();
        for (auto& [cmd, handler] : so.pipelined) {
            auto tag = s->send(cmd, std::move(handler));
            if (!tag) return fail(tag.error(), "UID FETCH in " + in_quotes(s->selected()));
            sel.pipelined.push_back(*tag);
        }
        if (so.on_selected) so.on_selected(sel);
        return sel;
    }

    // Selects the mailbox for an operation by UID. Its UIDs are those of the status this
    // store last reported, which the engine planned with: a SELECT that finds another
    // UIDVALIDITY (another client deleted and recreated the mailbox meanwhile) means they
    // name other messages now (RFC 9051 2.3.1.1), and nothing is done there.
    // Every later operation there fails too (it stays selected), until a new status of it
    // is reported.
    result<void> ensure_selected(const std::string& canonical, const std::string& server) {
        if (recreated.contains(canonical)) return refuse_recreated(canonical, nothing_changed);
        if (s->selected() == server) return {};
        auto sel = select(canonical, server);
        if (!sel) return sel.error();
        if (!is_recreated(canonical, sel->uidvalidity)) return {};
        return refuse_recreated(canonical, nothing_changed);
    }

    // Whether `found`, a UIDVALIDITY that the server gave for the mailbox, differs from the
    // status reported; remembered if so.
    bool is_recreated(const std::string& canonical, mail::uidvalidity found) {
        auto r = reported.find(canonical);
        if (r == reported.end() || r->second.status.uidvalidity == 0 || found == 0 ||
            found == r->second.status.uidvalidity)
            return false;
        recreated[canonical] = found;
        return true;
    }

    // `done` says what was done there nevertheless.
    error_code refuse_recreated(const std::string& canonical, std::string_view done) {
        return fail_text(errc::uidvalidity_changed,
                         "mailbox " + in_quotes(canonical) +
                             " was recreated during this run (UIDVALIDITY " +
                             std::to_string(reported.at(canonical).status.uidvalidity) + ", now " +
                             std::to_string(recreated.at(canonical)) + "): " + std::string(done) +
                             "; the next run syncs it again");
    }

    mailbox_status status_of(mail::uidvalidity uv, mail::uid next, mail::modseq hms,
                             std::uint32_t messages) const {
        mailbox_status st;
        st.uidvalidity = uv;
        st.uidnext = next;
        st.messages = messages;
        st.highestmodseq = condstore() ? hms : 0;
        // 0 is a mailbox without persistent mod-sequences (RFC 7162 3.1.2.2).
        st.tracks_flag_changes = condstore() && st.highestmodseq != 0;
        return st;
    }

    mailbox_status status_of(const imap::status_data& d) const {
        return status_of(d.uidvalidity.value_or(0), d.uidnext.value_or(0),
                         d.highestmodseq.value_or(0), d.messages.value_or(0));
    }

    mailbox_status status_of(const client::select_result& r) const {
        return status_of(r.uidvalidity, r.uidnext, r.nomodseq ? 0 : r.highestmodseq, r.exists);
    }

    // The FETCH items for a message seen for the first time.
    std::vector<std::string> full_items(bool modseq, bool keys, bool sizes) const {
        std::vector<std::string> items{"UID", "FLAGS"};
        if (sizes || keys) items.push_back("RFC822.SIZE");
        items.push_back("INTERNALDATE");
        if (modseq) items.push_back("MODSEQ");
        if (auto id = id_item(); !id.empty()) items.push_back(id);
        if (keys) items.push_back(message_id_item);
        return items;
    }

    std::string id_item() const {
        if (s->has("OBJECTID")) return "EMAILID";  // RFC 8474
        if (s->has("X-GM-EXT-1")) return "X-GM-MSGID";
        // Dovecot answers X-GUID without announcing it; a server that does not know it says
        // BAD once and is not asked again.
        if (!no_xguid) return "X-GUID";
        return {};
    }

    // ---- operations

    result<std::vector<mailbox_entry>> list();
    void select_inbox_first(std::span<const known_mailbox> known);
    result<mailbox_changes> changes(const std::string& mailbox, const known_state& known,
                                    bool* retry);
    // status_after_own_changes of a mailbox where this run stored flags.
    std::optional<mailbox_status> status_after_own_flags(const std::string& canonical,
                                                         const own_writes& w) const {
        // Appends beside them are not vouched for: the counts of their check would have to
        // leave out the messages whose flags changed.
        if (w.unvouched || !w.uids.empty() || !w.before || !w.before->tracks_flag_changes ||
            w.top <= w.before->highestmodseq)
            return std::nullopt;
        log.debug(description + ": " + canonical + ": only this run's flag stores changed it (" +
                  "HIGHESTMODSEQ " + std::to_string(w.before->highestmodseq) + " to " +
                  std::to_string(w.top) + ")");
        mailbox_status st = *w.before;
        st.highestmodseq = w.top;
        return st;
    }
    result<void> store_flags(const std::string& mailbox, const detail::flag_groups& groups,
                             const std::shared_ptr<store_answers>& answers);
};

imap_store::imap_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
imap_store::~imap_store() {
    if (impl_) impl_->drop_fetch_ahead();  // its time ends for the account's rate now
    // A LOGOUT, so that the server ends the session as it should ("Logged out", not
    // "Connection closed"); its answer is not waited for: everything before it was, and a
    // far server's round trip would be one more of a few in a run that changed nothing.
    if (impl_ && impl_->s && impl_->s->usable()) {
        if (auto r = impl_->s->logout(std::chrono::milliseconds(0)); !r)
            impl_->log.debug(impl_->description + ": LOGOUT: " + r.error().message());
    }
}

result<std::unique_ptr<imap_store>> imap_store::connect(const client::endpoint& ep,
                                                        const log::logger& logger,
                                                        std::string* error_text,
                                                        imap_store_options options) {
    auto p = std::make_unique<impl>();
    p->log = logger;
    p->description = ep.tunnel.empty()
                         ? "imap " + ep.user + "@" + ep.host + ":" + std::to_string(ep.port)
                         : "imap tunnel";
    if (options.spool_dir.empty()) {
        const char* t = std::getenv("TMPDIR");
        options.spool_dir = t && *t ? t : "/tmp";
    }
    p->options = std::move(options);
    p->endpoint = ep;
    client::endpoint e = ep;
    // The only bodies that fetch() takes from the parser as they come.
    auto& o = p->options;
    o.direct_threshold = std::min(o.direct_threshold, o.spool_threshold);
    e.body_sink_min_size = o.direct_threshold;
    if (!e.trace && logger.enabled(log::level::trace)) {
        // Client lines come redacted from the command builder: no secret reaches the log.
        e.trace = [logger, d = p->description](client::trace_direction dir, std::string_view line) {
            const char* arrow = dir == client::trace_direction::client   ? " C: "
                                : dir == client::trace_direction::server ? " S: "
                                                                         : " * ";
            logger.trace(d + arrow + std::string(line));
        };
    }
    client::connect_failure why;
    auto s = client::session::connect(e, &why);
    if (!s) {
        std::string where =
            ep.tunnel.empty() ? p->description : p->description + " (" + ep.tunnel.front() + ")";
        std::string text = where + ": " + (why.message.empty() ? s.error().message() : why.message);
        logger.debug(text);
        if (error_text) *error_text = std::move(text);
        return s.error();
    }
    p->s = std::move(*s);
    return std::unique_ptr<imap_store>(new imap_store(std::move(p)));
}

store::opener imap_store::another() {
    auto& d = *impl_;
    const unsigned number = ++d.connections;
    client::endpoint ep = d.endpoint;
    if (ep.trace) {
        ep.trace = [mark = "#" + std::to_string(number) + " ", inner = d.endpoint.trace](
                       client::trace_direction dir, std::string_view line) {
            inner(dir, mark + std::string(line));
        };
    }
    // What the new store takes over, as of now: this one goes on working meanwhile. The
    // listed statuses serve the SELECT that changes() sends with its FETCH.
    return [ep = std::move(ep), log = d.log, options = d.options, endpoint = d.endpoint,
            delimiter_known = d.delimiter_known, delimiter = d.delimiter, names = d.names,
            no_xguid = d.no_xguid, no_guess = d.no_guess, reported = d.reported,
            meter = d.meter]() -> result<std::unique_ptr<store>> {
        auto next = connect(ep, log, nullptr, options);
        if (!next) return next.error();
        auto& n = *(*next)->impl_;
        n.endpoint = endpoint;
        n.delimiter_known = delimiter_known;
        n.delimiter = delimiter;
        n.names = names;
        n.no_xguid = no_xguid;
        n.no_guess = no_guess;
        n.reported = reported;
        n.meter = meter;
        return std::unique_ptr<store>(std::move(*next));
    };
}

bool imap_store::is_open(const std::string& mailbox) {
    auto srv = impl_->server_name(mailbox);
    return srv && impl_->s->selected() == *srv;
}

void imap_store::select_ahead(const std::string& mailbox) {
    auto& d = *impl_;
    auto srv = d.server_name(mailbox);
    if (!srv) return;
    if (auto r = d.ensure_selected(mailbox, *srv); !r)
        d.log.debug(d.description + ": SELECT ahead of " + mailbox + ": " + r.error().message());
}

void imap_store::close_ahead() {
    if (impl_->s && impl_->s->usable())
        if (auto r = impl_->s->logout_ahead(); !r)
            impl_->log.debug(impl_->description + ": LOGOUT: " + r.error().message());
}

fetch_measure imap_store::measured_fetches() const {
    return impl_->meter->get();
}

std::optional<std::chrono::microseconds> imap_store::round_trip() const {
    return impl_->s->round_trip();
}

std::string imap_store::describe() const {
    return impl_->description;
}

const std::string& imap_store::last_error() const {
    return impl_->last_error;
}

client::session& imap_store::session() {
    return *impl_->s;
}

// ---- list, status

result<std::vector<mailbox_entry>> imap_store::impl::list() {
    auto listed = s->list("*");
    // INBOX, selected for this LIST: what the LIST says of it is what the SELECT found.
    bool selected_is_current = false;
    if (auto flight = std::exchange(selecting_before_list, std::nullopt)) {
        if (auto sel = select_wait("INBOX", *flight)) {  // a failure is only logged
            inbox_selection = std::move(*sel);
            inbox_selection_at = selections;
            selected_is_current = true;
        }
    }
    if (!listed) return fail(listed.error(), "LIST");
    if (!listed->empty()) {
        auto with = std::find_if(listed->begin(), listed->end(),
                                 [](const client::list_entry& e) { return e.delimiter; });
        delimiter = with != listed->end() ? with->delimiter : std::nullopt;
        delimiter_known = true;
    }
    names.clear();
    for (auto& [name, r] : reported) r.guess = false;
    std::vector<mailbox_entry> out;
    std::vector<std::string> raw;  // the wire name of out[i]
    const std::string& selected = s->selected();
    for (auto& e : *listed) {
        std::optional<std::string> canonical;
        if (e.name_decoded) canonical = detail::canonical_name(e.name, e.delimiter);
        if (!canonical) {
            log.warning(description + ": mailbox " + in_quotes(e.name) +
                        " skipped: its name cannot be written with '/' between levels" +
                        (e.name_decoded ? "" : " (not valid modified UTF-7)"));
            continue;
        }
        if (names.count(*canonical)) {
            log.warning(description + ": mailbox " + in_quotes(e.name) +
                        " skipped: it is listed as " + in_quotes(*canonical) + " already");
            continue;
        }
        names[*canonical] = e.name;
        mailbox_entry m;
        m.name = *canonical;
        m.special_use = detail::special_use(e.attributes);
        m.selectable = !e.has_attribute("\\Noselect") && !e.has_attribute("\\NonExistent");
        // RFC 9051 6.3.11: the status of the selected mailbox may be stale; left out.
        if (m.selectable && e.status && (e.name != selected || selected_is_current)) {
            m.status = status_of(*e.status);
            report(*canonical, *m.status, true);
        }
        out.push_back(std::move(m));
        raw.push_back(e.raw_name);
    }
    if (s->has("LIST-STATUS")) return out;

    // Without LIST-STATUS: every STATUS in one flight.
    std::vector<std::string> items{"MESSAGES", "UIDNEXT", "UIDVALIDITY"};
    if (condstore()) items.push_back("HIGHESTMODSEQ");
    std::vector<std::pair<std::size_t, std::string>> tags;
    std::map<std::size_t, imap::status_data> got;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (!out[i].selectable || names[out[i].name] == selected) continue;
        auto wire = raw[i];
        auto tag = s->send(imap::cmd::status(wire, items), [&got, i, wire](imap::response& r) {
            auto* st = std::get_if<imap::status_data>(&r);
            if (!st || got.count(i)) return false;
            // RFC 3501 5.1: the server may spell INBOX otherwise in its answer.
            bool same = st->mailbox == wire ||
                        (detail::iequals(st->mailbox, "INBOX") && detail::iequals(wire, "INBOX"));
            if (!same) return false;
            got[i] = *st;
            return true;
        });
        if (!tag) return fail(tag.error(), "STATUS " + in_quotes(out[i].name));
        tags.emplace_back(i, *tag);
    }
    for (auto& [i, tag] : tags) {
        auto c = s->wait(tag);
        if (!c) {
            if (c.error() != errc::command_failed && c.error() != errc::command_rejected)
                return fail(c.error(), "STATUS " + in_quotes(out[i].name));
            // Removed since the LIST, or not ours to see: no status, the caller asks again.
            log.debug(description + ": STATUS " + in_quotes(out[i].name) +
                      " failed: " + words(c.error()));
            continue;
        }
        if (auto it = got.find(i); it != got.end()) {
            out[i].status = status_of(it->second);
            report(out[i].name, *out[i].status, true);
        }
    }
    return out;
}

result<std::vector<mailbox_entry>> imap_store::list() {
    return impl_->list();
}

bool imap_store::list_ahead(std::span<const known_mailbox> known) {
    impl_->select_inbox_first(known);
    (void)impl_->s->list_ahead("*");  // a failure shows again in list()
    return true;
}

// Measured on Dovecot 2.3.19 with a 200,000-message Maildir INBOX: a LIST-STATUS takes
// 0.13-0.19 s, all of it for INBOX, which Dovecot keeps out of its mailbox list index
// (mailbox_list_index_include_inbox = no) and opens, and which after any LIST in the session
// it opens by reading dovecot-uidlist in full (a SELECT then costs as much). Selected
// first, INBOX opens from its index in 1-6 ms, and the LIST-STATUS answers in under 1 ms
// from the open mailbox, as the SELECT found it just before (both go out in one flight; the
// LIST runs once the SELECT is done). A SELECT, not an EXAMINE: a run that writes there needs
// no other (\Recent goes as with any SELECT of it). No NOOP: Dovecot runs a NOOP's sync after
// the commands that follow it, and behind the LIST that sync is the slow one.
void imap_store::impl::select_inbox_first(std::span<const known_mailbox> known) {
    if (options.select_inbox_first == 0 || s->server_software() != "Dovecot" ||
        !s->selected().empty())
        return;
    auto inbox = std::find_if(known.begin(), known.end(),
                              [](const known_mailbox& k) { return k.name == "INBOX"; });
    if (inbox == known.end() || inbox->messages < options.select_inbox_first) return;
    client::select_options so;
    so.condstore = true;
    // Its answer is read in list(), after the LIST's: both go out now. A failure is only
    // logged (the LIST then goes first, as without this).
    if (auto flight = select_send("INBOX", "INBOX", so)) selecting_before_list = std::move(*flight);
}

result<mailbox_status> imap_store::status(const std::string& mailbox) {
    auto& d = *impl_;
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    if (d.s->selected() == *srv) {
        // STATUS of the selected mailbox may be stale (RFC 9051 6.3.11): select it afresh.
        client::select_options so;
        so.condstore = true;
        auto sel = d.select(mailbox, *srv, so);
        if (!sel) return sel.error();
        d.report(mailbox, d.status_of(*sel));
        return d.status_of(*sel);
    }
    auto st = d.s->status(*srv, {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ"});
    if (!st) return d.fail(st.error(), "STATUS " + in_quotes(mailbox));
    d.report(mailbox, d.status_of(*st));
    return d.status_of(*st);
}

// ---- changes

result<mailbox_changes> imap_store::impl::changes(const std::string& mailbox,
                                                  const known_state& known, bool* retry) {
    auto srv = server_name(mailbox);
    if (!srv) return srv.error();
    std::vector<mail::uid> known_uids = known.uids;
    std::sort(known_uids.begin(), known_uids.end());
    auto is_known = [&](mail::uid u) {
        return std::binary_search(known_uids.begin(), known_uids.end(), u);
    };

    const bool first = known.status.uidvalidity == 0 || known.full;
    client::select_options so;
    so.condstore = true;
    const bool qresync = !first && s->qresync_enabled() && known.status.highestmodseq != 0;
    // INBOX as select_inbox_first() selected it, nothing selected since: its changes come
    // by UID FETCH (CHANGEDSINCE m VANISHED) in that selection (RFC 7162 3.2.6), not by
    // another SELECT, which costs Dovecot a full read of dovecot-uidlist after a LIST (as
    // much as the first: 0.45 s for 200,000 messages after a change there). Once only: its
    // EXISTS is that of the SELECT.
    std::optional<client::select_result> reused;
    if (qresync && inbox_selection && inbox_selection_at == selections && s->selected() == *srv)
        reused = std::move(inbox_selection);
    inbox_selection.reset();
    if (qresync && !reused) {
        client::select_options::qresync_state q;
        q.uidvalidity = known.status.uidvalidity;
        q.modseq = known.status.highestmodseq;
        for (auto u : known_uids) q.known_uids.insert(u);
        // RFC 7162 3.2.5.1: without known-uids the server takes 1:UIDNEXT-1; only VANISHED
        // gets longer, and unknown UIDs in it are ignored below.
        if (q.known_uids.to_string().size() > known_uids_limit) q.known_uids.clear();
        so.qresync = std::move(q);
    }
    // A mailbox this side got in the last run (created there, filled by its copies): no
    // state yet, but the journal knows its uids. Flags for all, everything only for the
    // others, as the plain tier does: not the headers of every message again.
    const bool adopt = known.status.uidvalidity == 0 && !known.full && !known_uids.empty();
    const mail::uid from_new =
        adopt ? known_uids.back() + 1 : std::max<mail::uid>(known.status.uidnext, 1);
    // UIDs from from_new on that the journal knows already: this side's copies of the last
    // run, which came after the state it recorded. Their flags suffice; the headers of
    // every message of a first sync are not read again on the next run.
    imap::uid_set known_new;
    for (auto it = std::lower_bound(known_uids.begin(), known_uids.end(), from_new);
         it != known_uids.end(); ++it)
        known_new.insert(*it);
    const imap::uid_set unknown_new = from_uid(from_new) - known_new;
    // The `X:*` tail: new unless the server's UIDNEXT says there is nothing from X on.
    const mail::uid tail_from = unknown_new.ranges().back().first;
    const bool holes = unknown_new.ranges().size() > 1;

    // What the mailbox looks like (from the SELECT, or predicted from the listing) decides
    // the tier and the commands.
    enum class tier { listing, qresync, condstore, plain };
    struct view {
        mail::uidvalidity uidvalidity = 0;
        mail::uid uidnext = 0;
        mail::modseq highestmodseq = 0;
        std::uint32_t exists = 0;
    };
    struct plan {
        tier t = tier::plain;
        bool modseqs = false;
        bool fetch_all = false;      // UID FETCH 1:* (full)
        bool changed_since = false;  // UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE known)
        bool search_all = false;     // UID SEARCH ALL
        bool flags_all = false;      // UID FETCH 1:* (UID FLAGS)
        bool fetch_new = false;      // UID FETCH <unknown_new> (full)
        bool operator==(const plan&) const = default;
    };
    auto plan_for = [&](const view& v) {
        plan p;
        p.modseqs = condstore() && v.highestmodseq != 0;
        const bool uv_changed =
            known.status.uidvalidity != 0 && v.uidvalidity != known.status.uidvalidity;
        if (adopt)
            p.t = tier::plain;
        else if (first || uv_changed)
            p.t = tier::listing;
        else if (qresync && p.modseqs)
            p.t = tier::qresync;
        else if (p.modseqs && known.status.highestmodseq != 0)
            p.t = tier::condstore;
        if (v.exists == 0) return p;
        if (p.t == tier::listing) {
            p.fetch_all = true;
            return p;
        }
        if (p.t == tier::condstore) {
            p.changed_since = true;
            // RFC 7162 3.2.1: HIGHESTMODSEQ need not move on expunge here, so expunges
            // come from a UID listing; unless nothing was added (same UIDNEXT) and the
            // count is unchanged, which no expunge leaves so.
            bool untouched = known.status.uidnext != 0 && v.uidnext == known.status.uidnext &&
                             v.exists == known.status.messages;
            p.search_all = !untouched;
        } else if (p.t == tier::qresync && reused) {
            // RFC 7162 3.2.10: an expunge moves HIGHESTMODSEQ too, so an unmoved one means
            // no flag changed and nothing went.
            p.changed_since = v.highestmodseq != known.status.highestmodseq;
        } else if (p.t == tier::plain) {
            p.flags_all = true;
        }
        p.fetch_new = v.uidnext == 0 || v.uidnext > tail_from || holes;
        return p;
    };

    collector c;
    c.vanished_earlier = reused.has_value();
    // A first sync into an empty mailbox pairs nothing by content: no headers for the keys,
    // unless the server has no stable identity (EMAILID, X-GUID, X-GM-MSGID) to replace them.
    c.keys = known.want_keys || id_item().empty();
    c.sizes = known.want_sizes;
    c.full_wanted = unknown_new;
    // Data before the SELECT's tagged OK is the SELECT's (or, before [CLOSED], the previous
    // mailbox's), never an answer to the commands behind it.
    bool selected = false;
    auto handler = [&c, &selected](imap::response& r) { return selected && c.on_response(r); };
    const std::string in = " in " + in_quotes(mailbox);
    const bool asks_xguid = id_item() == "X-GUID";
    struct sent {
        std::string tag;
        std::string what;
        bool asks_id = false;
    };
    std::vector<sent> flight;
    // The commands of a plan: each one once, whether it went behind the SELECT or after.
    auto commands = [&](const plan& p, const plan* already) {
        std::vector<std::tuple<imap::command, std::string, bool>> out;  // what, asks_id
        const auto full = full_items(p.modseqs, c.keys, c.sizes);
        if (p.fetch_all && !(already && already->fetch_all))
            out.emplace_back(imap::cmd::uid_fetch(from_uid(1), full), "UID FETCH" + in, true);
        if (p.changed_since && !(already && already->changed_since))
            out.emplace_back(
                imap::cmd::uid_fetch(
                    from_uid(1), {"UID", "FLAGS"},
                    imap::cmd::changed_since{known.status.highestmodseq, p.t == tier::qresync}),
                "UID FETCH CHANGEDSINCE" + in, false);
        if (p.search_all && !(already && already->search_all)) {
            bool esearch = s->has("ESEARCH");
            out.emplace_back(imap::cmd::uid_search({imap::argument::atom("ALL")},
                                                   esearch ? std::vector<std::string>{"ALL"}
                                                           : std::vector<std::string>{}),
                             "UID SEARCH" + in, false);
        }
        if (p.flags_all && !(already && already->flags_all))
            out.emplace_back(imap::cmd::uid_fetch(from_uid(1), {"UID", "FLAGS"}), "UID FETCH" + in,
                             false);
        if (p.fetch_new && !(already && already->fetch_new))
            for (auto& piece : chunks(unknown_new))
                out.emplace_back(imap::cmd::uid_fetch(piece, full), "UID FETCH" + in, true);
        return out;
    };

    // The listing of this run, when there is one, predicts the SELECT's answer: the
    // commands that follow go in the same flight as the SELECT. A wrong guess costs
    // nothing but an answer ignored, unless the tier differs (then all is asked again).
    std::optional<plan> guess;
    if (!no_guess) {
        if (auto it = reported.find(mailbox); it != reported.end() && it->second.guess) {
            const auto& st = it->second.status;
            it->second.guess = false;  // used once: later calls in the run see their own changes
            guess = plan_for(view{st.uidvalidity, st.uidnext, st.highestmodseq, st.messages});
        }
    }
    c.full_filter = guess && guess->t != tier::listing;
    std::vector<std::string> guessed_what;
    std::vector<bool> guessed_asks_id;
    if (guess) {
        for (auto& [cmd, what, asks_id] : commands(*guess, nullptr)) {
            so.pipelined.emplace_back(std::move(cmd), handler);
            guessed_what.push_back(std::move(what));
            guessed_asks_id.push_back(asks_id);
        }
    }
    if (so.qresync) {
        so.on_changed = [&c](imap::fetch_data&& f) {
            imap::response r = std::move(f);
            c.on_response(r);
        };
    }
    // The sequence numbers are known from the SELECT's tagged OK on, before any answer of
    // the commands behind it is read.
    so.on_selected = [&c, &selected, first](const client::select_result& r) {
        c.msn.resize(r.exists, 0);
        // A first listing brings every message, and its answers may follow the SELECT in
        // the same read: room for all of them before the first (else the vector doubles
        // its way up, 1.5 times the listing at its peak).
        if (first) {
            c.infos.reserve(r.exists);
            c.marks.reserve(r.exists);
        }
        selected = true;
    };
    auto sel = reused ? continue_selection(std::move(*reused), so) : select(mailbox, *srv, so);
    if (!sel) return sel.error();
    for (std::size_t i = 0; i < sel->pipelined.size(); ++i)
        flight.push_back({sel->pipelined[i], guessed_what[i], guessed_asks_id[i]});

    mailbox_changes out;
    out.status = status_of(*sel);
    out.uidvalidity_changed =
        known.status.uidvalidity != 0 && sel->uidvalidity != known.status.uidvalidity;
    const plan actual = plan_for(
        {sel->uidvalidity, sel->uidnext, sel->nomodseq ? 0 : sel->highestmodseq, sel->exists});
    const tier t = actual.t;
    out.complete = t == tier::listing || t == tier::plain;
    c.full_filter = t != tier::listing;
    if (out.complete) {
        c.infos.reserve(sel->exists);  // every message comes: one allocation
        c.marks.reserve(sel->exists);
    }

    auto wait_all = [&]() -> result<void> {
        std::optional<error_code> first_error;
        for (auto& f : flight) {
            auto r = s->wait(f.tag);
            if (r) continue;
            if (r.error() == errc::command_rejected && f.asks_id && asks_xguid && !no_xguid) {
                no_xguid = true;
                *retry = true;
            }
            if (!first_error) first_error = fail(r.error(), f.what);
        }
        flight.clear();
        if (first_error) return *first_error;
        return {};
    };
    if (guess && (guess->t != actual.t || guess->modseqs != actual.modseqs)) {
        // Another tier than the listing promised (a new UIDVALIDITY, mod-sequences gone):
        // what came is read and dropped, and the mailbox is listed again without a guess.
        log.debug(description + ": " + mailbox + " differs from its listing; asked again");
        auto r = wait_all();
        if (!r) return r.error();
        no_guess = true;
        auto again = changes(mailbox, known, retry);
        no_guess = false;
        return again;
    }
    // Updates that came during the SELECT and were not claimed by it.
    for (auto& u : s->take_unsolicited())
        if (u.mailbox == *srv) c.on_response(u.data);
    if (!so.on_changed && t == tier::qresync) {
        for (auto& f : sel->changed) {
            imap::response r = std::move(f);
            c.on_response(r);
        }
    }

    auto send = [&](imap::command cmd, std::string what, bool asks_id) -> result<void> {
        auto tag = s->send(cmd, handler);
        if (!tag) return fail(tag.error(), what);
        flight.push_back({*tag, std::move(what), asks_id});
        return {};
    };
    for (auto& [cmd, what, asks_id] : commands(actual, guess ? &*guess : nullptr))
        if (auto r = send(std::move(cmd), std::move(what), asks_id); !r) return r.error();
    // No FETCH to name what went from a mailbox now empty (no QRESYNC SELECT either, in the
    // selection made before the listing).
    const bool listed_by_uids = t == tier::condstore || (t == tier::qresync && reused);
    if (sel->exists == 0 && listed_by_uids && !(guess && guess->search_all))
        c.all_uids = imap::uid_set{};  // empty now: every known message is gone

    if (auto r = wait_all(); !r) return r.error();
    for (auto& u : s->take_unsolicited())
        if (u.mailbox == *srv) c.on_response(u.data);

    // A complete listing without CONDSTORE names messages that the journal does not hold
    // (skipped before, or lost) with flags only: their size and keys come now.
    if (t == tier::plain) {
        imap::uid_set missing;
        for (std::size_t i = 0; i < c.infos.size(); ++i) {
            const auto u = c.infos[i].uid;
            if (!(c.marks[i] & collector::full) && u < from_new && !is_known(u) &&
                !c.expunged.contains(u))
                missing.insert(u);
        }
        if (!missing.empty()) {
            c.full_wanted |= missing;
            const auto full = full_items(actual.modseqs, c.keys, c.sizes);
            for (auto& piece : chunks(missing))
                if (auto r = send(imap::cmd::uid_fetch(piece, full), "UID FETCH" + in, true); !r)
                    return r.error();
            if (auto r = wait_all(); !r) return r.error();
        }
    }

    imap::uid_set gone = c.expunged;
    if (t == tier::qresync) gone |= sel->vanished;
    if (listed_by_uids && c.all_uids)
        for (auto u : known_uids)
            if (!c.all_uids->contains(u)) gone.insert(u);

    // Kept entries move to the front in place; the array itself becomes the answer.
    std::size_t kept = 0;
    for (std::size_t i = 0; i < c.infos.size(); ++i) {
        const auto u = c.infos[i].uid;
        const bool flags = c.marks[i] & collector::has_flags;
        const bool full = c.marks[i] & collector::full;
        if (gone.contains(u)) continue;
        bool keep = false;
        switch (t) {
            case tier::listing:
                keep = full;
                break;
            case tier::plain:
                keep = flags && (full || is_known(u));
                break;
            case tier::qresync:
            case tier::condstore:
                // What the journal holds with its flags; new ones with everything.
                keep = is_known(u) ? flags : (u >= from_new && full);
                break;
        }
        if (!keep) continue;
        if (kept != i) c.infos[kept] = std::move(c.infos[i]);
        ++kept;
    }
    c.infos.resize(kept);
    out.messages = std::move(c.infos);
    if (!out.complete)
        for (auto u : known_uids)
            if (gone.contains(u)) out.vanished.push_back(u);
    report(mailbox, out.status);
    return out;
}

result<mailbox_changes> imap_store::changes(const std::string& mailbox, const known_state& known) {
    bool retry = false;
    auto r = impl_->changes(mailbox, known, &retry);
    if (!r && retry) {
        impl_->log.debug(impl_->description + ": the server does not know X-GUID");
        r = impl_->changes(mailbox, known, &retry);
    }
    return r;
}

// ---- fetch

namespace {

imap::uid_set uid_set_of(std::span<const mail::uid> uids) {
    imap::uid_set set;
    for (auto u : uids)
        if (u != 0) set.insert(u);
    return set;
}

}  // namespace

result<void> imap_store::fetch(const std::string& mailbox, std::span<const mail::uid> uids,
                               const deliver_function& deliver) {
    auto& d = *impl_;
    const auto set = uid_set_of(uids);
    if (set.empty()) return {};
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    if (auto r = d.ensure_selected(mailbox, *srv); !r) return r.error();

    // The fetch ahead is this one if it asked for the same messages under this SELECT.
    std::shared_ptr<body_fetch> f;
    if (d.ahead_fetch && d.ahead_fetch->mailbox == mailbox &&
        d.ahead_fetch->selection == d.selections && d.ahead_fetch->uids == set)
        f = std::exchange(d.ahead_fetch, nullptr);
    d.drop_fetch_ahead();
    if (!f) {
        auto sent = d.send_body_fetch(mailbox, set);
        if (!sent) return d.fail(sent.error(), "UID FETCH from " + in_quotes(mailbox));
        f = std::move(*sent);
    }
    f->deliver_to(deliver);
    auto r = d.s->uid_fetch_wait(f->flight);
    f->end_flow();
    f->deliver = nullptr;
    if (!r) return d.fail(r.error(), "UID FETCH from " + in_quotes(mailbox));
    if (f->spool_error)
        return d.fail_text(errc::storage_full, "UID FETCH from " + in_quotes(mailbox) +
                                                   ": cannot write a spool file in " +
                                                   d.options.spool_dir.string() + ": " +
                                                   std::strerror(f->spool_error));
    if (f->deliver_error) return *f->deliver_error;
    if (f->dropped.empty()) return {};
    // Bodies that came while nothing took them, past what may be held: asked for again.
    std::vector<mail::uid> again(f->dropped.begin(), f->dropped.end());
    return fetch(mailbox, again, deliver);
}

void imap_store::fetch_ahead(const std::string& mailbox, std::span<const mail::uid> uids) {
    auto& d = *impl_;
    d.drop_fetch_ahead();
    const auto set = uid_set_of(uids);
    auto srv = d.server_name(mailbox);
    // Only into the mailbox selected: a SELECT here would be one that fetch() may not need.
    if (set.empty() || !srv || d.s->selected() != *srv || d.recreated.contains(mailbox)) return;
    auto sent = d.send_body_fetch(mailbox, set);
    if (!sent) {
        d.log.debug(d.description + ": UID FETCH ahead in " + mailbox + ": " +
                    sent.error().message());
        return;
    }
    d.ahead_fetch = std::move(*sent);
    // The server sends while the caller does something else: the link's time from now on.
    d.ahead_fetch->start_flow();
}

// ---- append

namespace detail {

result<client::append_item> append_item_of(outgoing_message& m, imap_store::impl& d,
                                           const std::string& mailbox) {
    std::optional<imap::date_time> date;
    if (m.internal_date != 0)
        date = imap::date_time{m.internal_date, imap::local_offset_minutes(m.internal_date)};
    if (m.body.file.empty())
        return client::append_item{m.flags, date,
                                   imap::literal_data::from_memory(std::move(m.body.data))};
    std::uint64_t size = m.body.size;
    if (size == 0) {
        std::error_code ec;
        size = std::filesystem::file_size(m.body.file, ec);
        if (ec)
            return d.fail_text(errc::not_found, "APPEND to " + in_quotes(mailbox) +
                                                    ": cannot read " + m.body.file.string() + ": " +
                                                    ec.message());
    }
    return client::append_item{m.flags, date, imap::literal_data::from_file(m.body.file, size)};
}

}  // namespace detail

// APPEND commands sent as the messages come, answered at finish(). 1 MiB a command: the
// bodies held stay small, and the server stores each command while the next is fetched
// (c5000 IMAP to IMAP: measured in the README).
class imap_store::streaming_append final : public appender {
  public:
    static constexpr std::uint64_t command_bytes = 1u << 20;
    static constexpr std::size_t command_messages = 250;

    streaming_append(impl& d, std::string mailbox, std::string server_name)
        : d_(d), mailbox_(std::move(mailbox)), server_name_(std::move(server_name)) {}
    ~streaming_append() override {
        if (!flight_.tags.empty()) (void)d_.s->append_wait(flight_);  // the session stays in step
        for (const auto& f : spools_) remove_file(f);
        if (!finished_) d_.unvouch(mailbox_);
    }

    result<void> add(outgoing_message&& m) override {
        if (m.body.temporary) spools_.push_back(m.body.file);  // read when the command is sent
        note_flags(m.flags);
        auto item = detail::append_item_of(m, d_, mailbox_);
        if (!item) return item.error();
        bytes_ += item->content.size();
        held_.push_back(std::move(*item));
        if (bytes_ >= command_bytes || held_.size() >= command_messages) return send();
        return {};
    }

    result<std::vector<mail::uid>> finish() override {
        if (auto r = send(); !r) return r.error();
        auto r = d_.s->append_wait(flight_);
        for (const auto& f : std::exchange(spools_, {})) remove_file(f);
        if (!r) return d_.fail(r.error(), "APPEND to " + in_quotes(mailbox_));
        if (d_.is_recreated(mailbox_, r->uidvalidity)) {
            d_.unvouch(mailbox_);
            finished_ = true;
            return d_.refuse_recreated(mailbox_, appended_unrecorded);
        }
        if (r->uids.size() != group_.size() || too_many_groups_) {
            d_.unvouch(mailbox_);
        } else {
            for (std::size_t i = 0; i < group_.size(); ++i)
                d_.appended(mailbox_, groups_[group_[i]], r->uids[i]);
        }
        finished_ = true;
        return std::move(r->uids);
    }

  private:
    // The flags of each message by the index of its distinct set: a first sync of 200,000
    // messages holds one byte per message, not 200,000 flag sets.
    void note_flags(const mail::flag_set& f) {
        auto g = flag_group(groups_, f);
        if (!g) too_many_groups_ = true;
        group_.push_back(static_cast<std::uint8_t>(g.value_or(0)));
    }

    result<void> send() {
        if (held_.empty()) return {};
        auto r = d_.s->append_send(server_name_, held_, flight_);
        held_.clear();
        bytes_ = 0;
        if (!r) return d_.fail(r.error(), "APPEND to " + in_quotes(mailbox_));
        return {};
    }

    impl& d_;
    std::string mailbox_;
    std::string server_name_;
    std::vector<client::append_item> held_;
    std::uint64_t bytes_ = 0;
    client::append_flight flight_;
    std::vector<std::filesystem::path> spools_;
    std::vector<mail::flag_set> groups_;
    std::vector<std::uint8_t> group_;  // per message added, its index in groups_
    bool too_many_groups_ = false;
    bool finished_ = false;
};

result<std::unique_ptr<appender>> imap_store::begin_append(const std::string& mailbox) {
    auto& d = *impl_;
    // Without UIDPLUS the uids are found again by Message-ID, from the UIDNEXT before.
    if (!d.s->has("UIDPLUS")) return store::begin_append(mailbox);
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    if (d.recreated.contains(mailbox)) return d.refuse_recreated(mailbox, nothing_changed);
    return std::unique_ptr<appender>(std::make_unique<streaming_append>(d, mailbox, *srv));
}

result<std::vector<mail::uid>> imap_store::append(const std::string& mailbox,
                                                  std::vector<outgoing_message>&& messages) {
    auto& d = *impl_;
    struct cleanup {
        std::vector<outgoing_message>& m;
        ~cleanup() {
            for (const auto& x : m) discard_spool(x.body);
        }
    } on_exit{messages};
    if (messages.empty()) return std::vector<mail::uid>{};
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    if (d.recreated.contains(mailbox)) return d.refuse_recreated(mailbox, nothing_changed);

    // Without UIDPLUS (or with it hidden on purpose), codes the server sends anyway are not
    // relied on: the UIDs are found again from the UIDNEXT before the APPEND.
    const bool uidplus = d.s->has("UIDPLUS");
    mail::uid uidnext_before = 0;
    std::vector<std::optional<std::string>> ids;
    if (!uidplus) {
        client::select_options so;
        so.condstore = true;
        auto sel = d.select(mailbox, *srv, so);
        if (!sel) return sel.error();
        if (d.is_recreated(mailbox, sel->uidvalidity))
            return d.refuse_recreated(mailbox, nothing_changed);
        uidnext_before = sel->uidnext;
        for (auto& m : messages) ids.push_back(message_id_of(m.body));
    }

    std::vector<client::append_item> items;
    items.reserve(messages.size());
    for (auto& m : messages) {
        auto item = detail::append_item_of(m, d, mailbox);
        if (!item) return item.error();
        items.push_back(std::move(*item));
    }
    auto r = d.s->append(*srv, items);
    if (!r) {
        d.unvouch(mailbox);
        return d.fail(r.error(), "APPEND to " + in_quotes(mailbox));
    }
    if (uidplus && d.is_recreated(mailbox, r->uidvalidity)) {
        d.unvouch(mailbox);
        return d.refuse_recreated(mailbox, appended_unrecorded);
    }
    if (uidplus) {
        auto uids = r->uids;
        uids.resize(messages.size(), 0);
        for (std::size_t i = 0; i < uids.size(); ++i)
            d.appended(mailbox, messages[i].flags, uids[i]);
        return uids;
    }
    d.unvouch(mailbox);  // uids found by Message-ID may be another client's messages

    // One UID SEARCH per distinct Message-ID, in one flight, above the old UIDNEXT.
    std::vector<std::string> distinct;
    for (auto& id : ids)
        if (id && std::find(distinct.begin(), distinct.end(), *id) == distinct.end())
            distinct.push_back(*id);
    std::vector<std::vector<mail::uid>> found(distinct.size());
    std::vector<std::string> tags;
    const bool esearch = d.s->has("ESEARCH");
    const auto range = from_uid(uidnext_before).to_string();
    for (std::size_t j = 0; j < distinct.size(); ++j) {
        auto tag_holder = std::make_shared<std::string>();
        auto cmd = imap::cmd::uid_search(
            {imap::argument::atom("UID"), imap::argument::raw(range),
             imap::argument::atom("HEADER"), imap::argument::astring("Message-ID"),
             imap::argument::string(distinct[j])},
            esearch ? std::vector<std::string>{"ALL"} : std::vector<std::string>{});
        auto& out = found[j];
        auto tag = d.s->send(cmd, [&out, tag_holder, uidnext_before](imap::response& resp) {
            imap::uid_set got;
            if (auto* s = std::get_if<imap::search_data>(&resp)) {
                for (auto n : s->numbers) got.insert(n);
            } else if (auto* e = std::get_if<imap::esearch_data>(&resp)) {
                if (e->tag && *e->tag != *tag_holder) return false;
                if (e->all) got = *e->all;
            } else {
                return false;
            }
            // RFC 3501 6.4.8: `N:*` always holds the last message, even below N.
            for (auto u : got)
                if (u >= uidnext_before) out.push_back(u);
            return true;
        });
        if (!tag) return d.fail(tag.error(), "UID SEARCH in " + in_quotes(mailbox));
        *tag_holder = *tag;
        tags.push_back(*tag);
    }
    for (auto& t : tags)
        if (auto c = d.s->wait(t); !c)
            return d.fail(c.error(), "UID SEARCH in " + in_quotes(mailbox));
    return detail::assign_found_uids(ids, distinct, found);
}

// ---- flags, move, expunge

result<void> imap_store::set_flags(const std::string& mailbox,
                                   std::span<const flag_change> changes) {
    auto& d = *impl_;
    auto groups = detail::group_flag_changes(changes);
    if (groups.add.empty() && groups.remove.empty()) return {};
    auto answers = std::make_shared<impl::store_answers>();
    auto stored = d.store_flags(mailbox, groups, answers);
    d.flags_stored(mailbox, groups, stored ? answers.get() : nullptr);
    return stored;
}

result<void> imap_store::impl::store_flags(const std::string& mailbox,
                                           const detail::flag_groups& groups,
                                           const std::shared_ptr<store_answers>& answers) {
    auto srv = server_name(mailbox);
    if (!srv) return srv.error();
    if (auto r = ensure_selected(mailbox, *srv); !r) return r.error();

    // +FLAGS/-FLAGS, never FLAGS: a flag that another client changes meanwhile survives. So
    // UNCHANGEDSINCE is not needed: a delta cannot overwrite what it does not name.
    std::vector<std::string> tags;
    auto send = [&](const detail::flag_group& g, imap::cmd::store_mode mode) -> result<void> {
        for (auto& piece : chunks(g.uids)) {
            auto uids = piece;
            auto tag = s->send(imap::cmd::uid_store(piece, mode, g.flags, true),
                               [uids, answers](imap::response& r) {
                                   // With CONDSTORE the server answers .SILENT with
                                   // FETCH (MODSEQ) (RFC 7162 3.1.3).
                                   auto* f = std::get_if<imap::fetch_data>(&r);
                                   if (!f || !f->uid || !uids.contains(*f->uid)) return false;
                                   if (f->flags)
                                       answers->foreign = true;
                                   else if (f->modseq)
                                       answers->top = std::max(answers->top, *f->modseq);
                                   return true;
                               });
            if (!tag) return fail(tag.error(), "UID STORE in " + in_quotes(mailbox));
            tags.push_back(*tag);
        }
        return {};
    };
    for (auto& g : groups.add)
        if (auto r = send(g, imap::cmd::store_mode::add); !r) return r.error();
    for (auto& g : groups.remove)
        if (auto r = send(g, imap::cmd::store_mode::remove); !r) return r.error();
    std::optional<error_code> first_error;
    for (auto& t : tags) {
        auto c = s->wait(t);
        if (!c && !first_error) first_error = fail(c.error(), "UID STORE in " + in_quotes(mailbox));
    }
    if (first_error) return *first_error;
    // Updates no command claimed: another client's flag change, expunge or new message.
    for (auto& u : s->take_unsolicited()) {
        if (u.mailbox != *srv) continue;
        answers->foreign = true;
        log.trace(description + ": " + mailbox + ": another client's change during UID STORE");
    }
    return {};
}

result<std::vector<mail::uid>> imap_store::move(const std::string& from,
                                                std::span<const mail::uid> uids,
                                                const std::string& to) {
    auto& d = *impl_;
    std::vector<mail::uid> out(uids.size(), 0);
    imap::uid_set set;
    for (auto u : uids)
        if (u != 0) set.insert(u);
    if (set.empty()) return out;
    d.unvouch(from);
    d.unvouch(to);
    auto src = d.server_name(from);
    if (!src) return src.error();
    auto dst = d.server_name(to);
    if (!dst) return dst.error();
    if (auto r = d.ensure_selected(from, *src); !r) return r.error();
    const std::string what = "MOVE from " + in_quotes(from) + " to " + in_quotes(to);
    if (!d.s->has("MOVE") && !d.s->has("UIDPLUS")) {
        // RFC 6851 section 3.3's fall-back without UID EXPUNGE: COPY, then expunge() marks
        // them \Deleted and runs a plain EXPUNGE only if nothing else in the mailbox is
        // \Deleted. The new uids are unknown (no COPYUID): the engine finds the copies again
        // by content key on the next run.
        for (auto& piece : chunks(set)) {
            auto r = d.s->uid_copy(piece, *dst);
            if (!r) return d.fail(r.error(), what);
        }
        if (auto r = expunge(from, uids); !r) return r.error();
        return out;
    }
    std::map<mail::uid, mail::uid> mapping;
    for (auto& piece : chunks(set)) {
        auto r = d.s->uid_move(piece, *dst);
        if (!r) return d.fail(r.error(), what);
        for (auto& [a, b] : r->mapping) mapping[a] = b;
    }
    for (std::size_t i = 0; i < uids.size(); ++i)
        if (auto it = mapping.find(uids[i]); it != mapping.end()) out[i] = it->second;
    return out;
}

result<void> imap_store::expunge(const std::string& mailbox, std::span<const mail::uid> uids) {
    auto& d = *impl_;
    imap::uid_set set;
    for (auto u : uids)
        if (u != 0) set.insert(u);
    if (set.empty()) return {};
    d.unvouch(mailbox);
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    if (auto r = d.ensure_selected(mailbox, *srv); !r) return r.error();
    const std::string what = "EXPUNGE in " + in_quotes(mailbox);
    mail::flag_set deleted;
    deleted.set(mail::system_flag::deleted);
    std::vector<std::string> tags;
    auto ours = [set](imap::response& r) {
        auto* f = std::get_if<imap::fetch_data>(&r);
        return f && f->uid && set.contains(*f->uid);
    };
    const bool uidplus = d.s->has("UIDPLUS");
    for (auto& piece : chunks(set)) {
        auto t =
            d.s->send(imap::cmd::uid_store(piece, imap::cmd::store_mode::add, deleted, true), ours);
        if (!t) return d.fail(t.error(), what);
        tags.push_back(*t);
        if (uidplus) {
            // RFC 4315 2.1: only these; other clients' \Deleted messages stay.
            auto e = d.s->send(imap::cmd::uid_expunge(piece), nullptr);
            if (!e) return d.fail(e.error(), what);
            tags.push_back(*e);
        }
    }
    // Without UIDPLUS, a plain EXPUNGE removes every \Deleted message: see which there are.
    imap::uid_set flagged;
    if (!uidplus) {
        auto search_tag = std::make_shared<std::string>();
        auto cmd = imap::cmd::uid_search(
            {imap::argument::atom("DELETED")},
            d.s->has("ESEARCH") ? std::vector<std::string>{"ALL"} : std::vector<std::string>{});
        auto t = d.s->send(cmd, [&flagged, search_tag](imap::response& r) {
            if (auto* s = std::get_if<imap::search_data>(&r)) {
                for (auto n : s->numbers) flagged.insert(n);
                return true;
            }
            if (auto* e = std::get_if<imap::esearch_data>(&r)) {
                if (e->tag && *e->tag != *search_tag) return false;
                if (e->all) flagged |= *e->all;
                return true;
            }
            return false;
        });
        if (!t) return d.fail(t.error(), what);
        *search_tag = *t;
        tags.push_back(*t);
    }
    std::optional<error_code> first_error;
    for (auto& t : tags) {
        auto c = d.s->wait(t);
        if (!c && !first_error) first_error = d.fail(c.error(), what);
    }
    if (first_error) return *first_error;
    if (uidplus) return {};

    auto others = flagged - set;
    if (!others.empty())
        return d.fail_text(
            errc::missing_capability,
            what + " refused: the server has no UIDPLUS (UID EXPUNGE), and " +
                std::to_string(others.size()) + " other message(s) (UID " + others.to_string() +
                ") carry \\Deleted, which a plain EXPUNGE would remove too; the messages to "
                "expunge keep \\Deleted");
    // Another client may still set \Deleted between the search and this: the window of one
    // round trip that a server without UIDPLUS leaves.
    auto t = d.s->send(imap::cmd::expunge(), nullptr);
    if (!t) return d.fail(t.error(), what);
    if (auto c = d.s->wait(*t); !c) return d.fail(c.error(), what);
    return {};
}

// ---- this run's own changes

result<std::optional<mailbox_status>> imap_store::status_after_own_changes(
    const std::string& mailbox) {
    auto& d = *impl_;
    const auto none = std::optional<mailbox_status>();
    auto it = d.own.find(mailbox);
    if (it == d.own.end()) return none;
    impl::own_writes w = std::move(it->second);
    d.own.erase(it);
    if (w.flags_stored) return d.status_after_own_flags(mailbox, w);
    if (w.unvouched || w.uids.empty() || !d.condstore() || !d.s->has("ESEARCH")) return none;
    if (w.before && !w.before->tracks_flag_changes) return none;
    // A few messages added to a large mailbox: the counts over its older messages would cost
    // this run more than the next run pays to read those few flags (200,000 held, 100 new:
    // 2.46 s against 1.83 s without the check).
    std::uint64_t appended = 0;
    for (const auto& u : w.uids) appended += u.size();
    if (w.before && appended * vouch_ratio < w.before->messages) return none;
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    client::select_options so;
    so.condstore = true;
    auto sel = d.select(mailbox, *srv, so);
    if (!sel) return sel.error();
    const mailbox_status now = d.status_of(*sel);
    imap::uid_set ours;
    for (const auto& u : w.uids) ours |= u;
    const std::uint64_t held = w.before ? w.before->messages : 0;
    // Nothing but this run's messages came: with the counts below, EXISTS leaves no room.
    if (!now.tracks_flag_changes || now.messages != held + ours.size() ||
        (w.before && now.uidvalidity != w.before->uidvalidity))
        return none;

    // Searches that must each count a given number of messages (ESEARCH: a count comes
    // back, not a list of uids). At most `window` wait for their answers at a time: 200,000
    // messages appended with random flags take a few hundred searches, whose text is not
    // held all at once (about 4 MB).
    struct count_check {
        std::string tag;
        std::uint64_t want = 0;
        std::optional<std::uint32_t> got;
    };
    constexpr std::size_t window = 16;
    std::deque<std::shared_ptr<count_check>> flight;
    std::optional<error_code> first_error;
    bool differs = false;
    const std::string what = "UID SEARCH in " + in_quotes(mailbox);
    auto settle = [&](std::size_t keep) {
        while (flight.size() > keep) {
            auto c = std::move(flight.front());
            flight.pop_front();
            if (auto r = d.s->wait(c->tag); !r) {
                if (!first_error) first_error = d.fail(r.error(), what);
            } else if (!c->got || *c->got != c->want) {
                differs = true;
            }
        }
    };
    auto ask = [&](std::vector<std::string> criteria, std::uint64_t want) {
        if (first_error || differs) return;
        std::vector<imap::argument> args;
        for (auto& c : criteria) args.push_back(imap::argument::raw(std::move(c)));
        auto check = std::make_shared<count_check>();
        check->want = want;
        auto tag = d.s->send(imap::cmd::uid_search(std::move(args), {"COUNT"}),
                             [check](imap::response& r) {
                                 auto* e = std::get_if<imap::esearch_data>(&r);
                                 if (!e || !e->tag || *e->tag != check->tag) return false;
                                 check->got = e->count;
                                 return true;
                             });
        if (!tag) {
            first_error = d.fail(tag.error(), what);
            return;
        }
        check->tag = *tag;
        flight.push_back(std::move(check));
        settle(window);
    };
    // What the mailbox held before: all of it still there, none of it changed since.
    const mail::uid from = w.before ? std::max<mail::uid>(w.before->uidnext, 1) : 1;
    if (from > 1) {
        const std::string older = "1:" + std::to_string(from - 1);
        ask({"UID", older}, held);
        ask({"UID", older, "MODSEQ", std::to_string(w.before->highestmodseq + 1)}, 0);
    } else if (held != 0) {
        return none;
    }
    // Each message appended: there, with exactly the flags it was given (a flag the server
    // would not keep, or another client's change, fails the count).
    for (std::size_t g = 0; g < w.flags.size(); ++g) {
        auto mismatch = detail::flag_mismatch_criteria(sel->flags, w.flags[g]);
        if (!mismatch) {
            differs = true;
            break;
        }
        w.uids[g].for_each_piece(max_set_bytes, [&](std::string_view set, std::uint64_t count) {
            ask({"UID", std::string(set)}, count);
            std::vector<std::string> differ{"UID", std::string(set)};
            differ.insert(differ.end(), mismatch->begin(), mismatch->end());
            ask(std::move(differ), 0);
        });
    }
    settle(0);
    if (first_error) return *first_error;
    if (differs) {
        d.log.debug(d.description + ": " + mailbox +
                    " changed beside this run's appends; its state is not recorded");
        return none;
    }
    return std::optional<mailbox_status>(now);
}

// ---- mailboxes

std::chrono::milliseconds imap_store::late_write_window() const {
    return std::chrono::seconds(2);
}

result<void> imap_store::create(const std::string& mailbox) {
    auto& d = *impl_;
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    if (auto c = d.s->create(*srv); !c) return d.fail(c.error(), "CREATE " + in_quotes(mailbox));
    d.names[mailbox] = *srv;
    d.created(mailbox);
    return {};
}

result<void> imap_store::remove(const std::string& mailbox) {
    auto& d = *impl_;
    auto srv = d.server_name(mailbox);
    if (!srv) return srv.error();
    if (d.s->selected() == *srv) {
        // Dovecot closes a selected mailbox that is deleted, without the [CLOSED] that the
        // session's next QRESYNC SELECT would wait for: leave it first, with UNSELECT (no
        // other mailbox opened) where there is one.
        d.discard_unsolicited();
        if (d.s->has("UNSELECT") || d.s->has("IMAP4REV2")) {
            if (auto u = d.s->unselect(); !u)
                return d.fail(u.error(), "UNSELECT " + in_quotes(mailbox));
        } else {
            auto inbox = d.server_name("INBOX");
            if (!inbox) return inbox.error();
            if (auto sel = d.select("INBOX", *inbox); !sel) return sel.error();
        }
    }
    if (auto c = d.s->delete_mailbox(*srv); !c)
        return d.fail(c.error(), "DELETE " + in_quotes(mailbox));
    d.names.erase(mailbox);
    d.reported.erase(mailbox);
    d.own.erase(mailbox);
    return {};
}

}  // namespace tandem::store
