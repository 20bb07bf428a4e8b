// SPDX-License-Identifier: MIT
// The IMAP store against a real Dovecot, checked from outside with imap_script: listing with
// and without LIST-STATUS, the three change tiers (QRESYNC, CONDSTORE only, neither),
// UIDVALIDITY change, append/fetch round trips through spool files, flags that do not clobber
// another client's, move, expunge with and without UIDPLUS, mailboxes, error texts.
#include "tandem/store/imap_store.hpp"

#include "support/dovecot.hpp"
#include "support/fake_imap_server.hpp"
#include "support/imap_script.hpp"
#include "support/temp_dir.hpp"
#include "tandem/mail/content_key.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace tandem::store {
namespace {

using namespace std::chrono_literals;

mail::flag_set flags(std::initializer_list<std::string_view> atoms) {
    mail::flag_set f;
    for (auto a : atoms) f.add_imap(a);
    return f;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A message of about `bytes` bytes with CRLF lines.
std::string big_message(std::string_view subject, std::size_t bytes) {
    std::string m = test::make_message(subject, "");
    std::string line;
    for (int i = 0; i < 76; ++i) line += static_cast<char>('A' + (i * 7) % 26);
    line += "\r\n";
    std::size_t n = 0;
    while (m.size() < bytes) m += std::to_string(n++) + line;
    return m;
}

// A message of exactly `bytes` bytes (at least a header's worth).
std::string message_of_size(std::string_view subject, std::size_t bytes) {
    std::string m = big_message(subject, bytes);
    m.resize(bytes - 2);
    return m + "\r\n";
}

struct captured_log {
    std::mutex m;
    std::vector<std::string> lines;
    log::logger logger(log::level level = log::level::debug) {
        return log::logger(level, [this](log::level l, std::string_view t) {
            std::lock_guard g(m);
            lines.push_back(std::string(log::name(l)) + ": " + std::string(t));
        });
    }
    bool contains(std::string_view s) {
        std::lock_guard g(m);
        return std::any_of(lines.begin(), lines.end(),
                           [&](const std::string& l) { return l.find(s) != std::string::npos; });
    }
    void clear() {
        std::lock_guard g(m);
        lines.clear();
    }
    std::string text() {
        std::lock_guard g(m);
        std::string out;
        for (const auto& l : lines) out += l + "\n";
        return out;
    }
};

class imap_store_test : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        test::dovecot_options o;
        // Accounts whose INBOX one test has to itself.
        o.users.push_back({"inboxfirst", "inboxfirst-secret"});
        o.users.push_back({"inboxchanges", "inboxchanges-secret"});
        o.users.push_back({"inboxemptied", "inboxemptied-secret"});
        server_ = new test::dovecot(o);
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    static client::endpoint tunnel(std::vector<std::string> disabled = {}) {
        client::endpoint ep;
        ep.tunnel = server_->tunnel_argv("alice");
        ep.user = "alice";
        ep.read_timeout = 30s;
        ep.disabled_capabilities = std::move(disabled);
        return ep;
    }

    std::unique_ptr<imap_store> open(std::vector<std::string> disabled = {},
                                     imap_store_options options = {}) {
        std::string why;
        auto s = imap_store::connect(tunnel(std::move(disabled)), log_.logger(), &why,
                                     std::move(options));
        if (!s) ADD_FAILURE() << why;
        return s ? std::move(*s) : nullptr;
    }

    // A store whose protocol lines go to log_ too.
    std::unique_ptr<imap_store> open_traced(imap_store_options options = {}) {
        std::string why;
        auto s =
            imap_store::connect(tunnel(), log_.logger(log::level::trace), &why, std::move(options));
        if (!s) ADD_FAILURE() << why;
        return s ? std::move(*s) : nullptr;
    }

    // A traced store of `user`'s account (its own INBOX), as open_traced().
    std::unique_ptr<imap_store> open_traced_as(const std::string& user,
                                               imap_store_options options = {}) {
        auto ep = tunnel();
        ep.tunnel = server_->tunnel_argv(user);
        ep.user = user;
        std::string why;
        auto s = imap_store::connect(ep, log_.logger(log::level::trace), &why, std::move(options));
        if (!s) ADD_FAILURE() << why;
        return s ? std::move(*s) : nullptr;
    }

    // The commands a traced store sent so far that contain `text`.
    std::vector<std::string> sent_lines(std::string_view text) {
        std::lock_guard g(log_.m);
        std::vector<std::string> out;
        for (const auto& l : log_.lines)
            if (l.find(" C: ") != std::string::npos && l.find(text) != std::string::npos)
                out.push_back(l.substr(l.find(" C: ") + 4));
        return out;
    }

    // Where the first command containing `text` is among the lines logged; npos if none.
    std::size_t first_sent(std::string_view text) {
        std::lock_guard g(log_.m);
        for (std::size_t i = 0; i < log_.lines.size(); ++i)
            if (log_.lines[i].find(" C: ") != std::string::npos &&
                log_.lines[i].find(text) != std::string::npos)
                return i;
        return std::string::npos;
    }

    // A traced store that spools into spool_ (empty again once every body was taken).
    std::unique_ptr<imap_store> open_spooling() {
        imap_store_options o;
        o.spool_dir = spool_.path();
        return open_traced(o);
    }

    // How many UID FETCH commands of bodies a traced store sent so far.
    std::size_t body_fetches_sent() {
        std::lock_guard g(log_.m);
        return static_cast<std::size_t>(
            std::count_if(log_.lines.begin(), log_.lines.end(), [](const std::string& l) {
                return l.find(" C: ") != std::string::npos &&
                       l.find("UID FETCH") != std::string::npos &&
                       l.find("BODY.PEEK[]") != std::string::npos;
            }));
    }

    static std::uint32_t append(std::string_view box, std::string_view subject,
                                const std::vector<std::string>& f = {},
                                std::string_view message_id = {}) {
        return test::append_message(*server_, "alice", box,
                                    test::make_message(subject, "Hello.\r\n", message_id), f,
                                    "05-Mar-2024 10:20:30 +0100");
    }

    static const mail::message_info* find(const std::vector<mail::message_info>& v, mail::uid u) {
        for (auto& m : v)
            if (m.uid == u) return &m;
        return nullptr;
    }

    static std::vector<mail::uid> uids_of(const std::vector<mail::message_info>& v) {
        std::vector<mail::uid> out;
        for (auto& m : v) out.push_back(m.uid);
        return out;
    }

    static known_state known_from(const mailbox_changes& c) {
        known_state k;
        k.status = c.status;
        for (auto& m : c.messages) k.uids.push_back(m.uid);
        return k;
    }

    static void expect_status(const mailbox_status& st, std::string_view box, bool modseq) {
        auto outside = test::status(*server_, "alice", box);
        EXPECT_EQ(st.uidvalidity, outside.uidvalidity) << box;
        EXPECT_EQ(st.uidnext, outside.uidnext) << box;
        EXPECT_EQ(st.messages, outside.messages) << box;
        EXPECT_EQ(st.highestmodseq, modseq ? outside.highestmodseq : 0) << box;
        EXPECT_EQ(st.tracks_flag_changes, modseq) << box;
    }

    // What the next run hears of in `box`, having recorded `status` and the uids it holds.
    mailbox_changes next_run_changes(const std::string& box, const mailbox_status& status) {
        auto next = open();
        if (!next) return {};
        known_state k;
        k.status = status;
        for (auto& m : test::list_messages(*server_, "alice", box)) k.uids.push_back(m.uid);
        auto c = next->changes(box, k);
        EXPECT_TRUE(c) << next->last_error();
        return c ? std::move(*c) : mailbox_changes{};
    }

    // `n` messages into `user`'s INBOX, and what a first run records of it (`known`).
    std::vector<std::uint32_t> fill_inbox(const std::string& user, int n, known_state& known) {
        std::vector<std::uint32_t> u;
        for (int i = 0; i < n; ++i)
            u.push_back(test::append_message(*server_, user, "INBOX",
                                             test::make_message("m" + std::to_string(i))));
        auto first = open_traced_as(user);
        if (!first) return u;
        auto c = first->changes("INBOX", {});
        EXPECT_TRUE(c) << first->last_error();
        if (c) known = known_from(*c);
        return u;
    }

    // What a next run of `user` hears of in `box`, having recorded `known`.
    mailbox_changes next_run_changes_as(const std::string& user, const std::string& box,
                                        const known_state& known, imap_store_options options) {
        auto next = open_traced_as(user, std::move(options));
        if (!next) return {};
        auto c = next->changes(box, known);
        EXPECT_TRUE(c) << next->last_error();
        return c ? std::move(*c) : mailbox_changes{};
    }

    static test::dovecot* server_;
    captured_log log_;
    test::temp_dir spool_{"tandem-spool-test"};
};

test::dovecot* imap_store_test::server_ = nullptr;

TEST_F(imap_store_test, connect_failure_names_host_and_step_but_not_the_password) {
    client::endpoint ep;
    ep.host = server_->host();
    ep.port = server_->imap_port();
    ep.tls = net::tls_mode::starttls;
    ep.ca_file = server_->ca_file().string();
    ep.user = "alice";
    ep.secret = "wrong-secret-123";
    ep.read_timeout = 30s;
    std::string why;
    auto s = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error(), errc::authentication_failed);
    EXPECT_NE(why.find("alice@127.0.0.1:" + std::to_string(server_->imap_port())),
              std::string::npos)
        << why;
    EXPECT_NE(why.find("authentication"), std::string::npos) << why;
    EXPECT_EQ(why.find("wrong-secret-123"), std::string::npos) << why;

    ep.port = 1;  // nothing listens there
    ep.secret = server_->password("alice");
    why.clear();
    s = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_FALSE(s);
    EXPECT_NE(why.find("127.0.0.1:1"), std::string::npos) << why;
}

TEST_F(imap_store_test, over_tls_lists_and_describes) {
    client::endpoint ep;
    ep.host = server_->host();
    ep.port = server_->imaps_port();
    ep.tls = net::tls_mode::implicit;
    ep.ca_file = server_->ca_file().string();
    ep.user = "alice";
    ep.secret = server_->password("alice");
    ep.read_timeout = 30s;
    std::string why;
    auto s = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_TRUE(s) << why;
    EXPECT_TRUE((*s)->session().encrypted());
    EXPECT_EQ((*s)->describe(), "imap alice@127.0.0.1:" + std::to_string(server_->imaps_port()));
    test::create_mailbox(*server_, "alice", "OverTls");
    append("OverTls", "tls one");
    auto l = (*s)->list();
    ASSERT_TRUE(l) << (*s)->last_error();
    auto it = std::find_if(l->begin(), l->end(), [](auto& e) { return e.name == "OverTls"; });
    ASSERT_NE(it, l->end());
    ASSERT_TRUE(it->status);
    EXPECT_EQ(it->status->messages, 1u);
    EXPECT_EQ(open()->describe(), "imap tunnel");
}

// The lines of Dovecot's logs (server and tunnel) of `user` that contain `what`.
std::size_t count_log_lines(const test::dovecot& server, std::string_view user,
                            std::string_view what) {
    std::size_t n = 0;
    std::string text = server.log_text();
    std::string who = "imap(" + std::string(user) + ")";
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view line(text.data() + pos,
                              (nl == std::string::npos ? text.size() : nl) - pos);
        if (line.find(who) != std::string_view::npos && line.find(what) != std::string_view::npos)
            ++n;
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    return n;
}

// Dovecot logs "Logged out" for a session that ended with LOGOUT, and "Disconnected:
// Connection closed" for one that was dropped. Over TCP and over the tunnel.
TEST_F(imap_store_test, a_finished_store_logs_out) {
    const std::string user = "bob";
    client::endpoint tcp;
    tcp.host = server_->host();
    tcp.port = server_->imap_port();
    tcp.tls = net::tls_mode::starttls;
    tcp.ca_file = server_->ca_file().string();
    tcp.user = user;
    tcp.secret = server_->password(user);
    tcp.read_timeout = 30s;
    client::endpoint tun;
    tun.tunnel = server_->tunnel_argv(user);
    tun.read_timeout = 30s;
    for (auto* ep : {&tcp, &tun}) {
        const bool is_tunnel = ep == &tun;
        auto logged_out = count_log_lines(*server_, user, "Logged out");
        auto dropped = count_log_lines(*server_, user, "Connection closed");
        {
            std::string why;
            auto s = imap_store::connect(*ep, log_.logger(), &why);
            ASSERT_TRUE(s) << why;
            ASSERT_TRUE((*s)->list()) << (*s)->last_error();
        }
        // The server's log service may write the line a moment later.
        auto end = std::chrono::steady_clock::now() + 5s;
        while (count_log_lines(*server_, user, "Logged out") == logged_out &&
               std::chrono::steady_clock::now() < end)
            std::this_thread::sleep_for(20ms);
        EXPECT_EQ(count_log_lines(*server_, user, "Logged out"), logged_out + 1)
            << (is_tunnel ? "tunnel" : "TCP") << "\n"
            << server_->log_text();
        EXPECT_EQ(count_log_lines(*server_, user, "Connection closed"), dropped)
            << (is_tunnel ? "tunnel" : "TCP");
    }
}

// LIST-STATUS in one round trip, and LIST + pipelined STATUS without it: the same answer.
TEST_F(imap_store_test, list_with_status_with_and_without_list_status) {
    test::create_mailbox(*server_, "alice", "Lists/alpha");
    test::create_mailbox(*server_, "alice", "Z&APw-rich");
    append("Lists/alpha", "alpha one");
    append("Lists/alpha", "alpha two", {"\\Seen"});
    append("Z&APw-rich", "zurich one");
    for (bool list_status : {true, false}) {
        SCOPED_TRACE(list_status ? "LIST-STATUS" : "LIST + STATUS");
        auto s = list_status ? open() : open({"LIST-STATUS"});
        ASSERT_TRUE(s);
        EXPECT_EQ(s->session().has("LIST-STATUS"), list_status);
        auto l = s->list();
        ASSERT_TRUE(l) << s->last_error();
        std::map<std::string, mailbox_entry> by_name;
        for (auto& e : *l) by_name[e.name] = e;
        ASSERT_TRUE(by_name.count("INBOX"));
        ASSERT_TRUE(by_name.count("Lists/alpha"));
        ASSERT_TRUE(by_name.count("Zürich"));  // decoded from modified UTF-7
        for (auto [name, wire] : {std::pair{"Lists/alpha", "Lists/alpha"},
                                  std::pair{"Zürich", "Z&APw-rich"}, std::pair{"INBOX", "INBOX"}}) {
            auto& e = by_name[name];
            EXPECT_TRUE(e.selectable) << name;
            ASSERT_TRUE(e.status) << name;
            expect_status(*e.status, wire, true);
        }
        EXPECT_EQ(by_name["Lists/alpha"].status->messages, 2u);
        // The selected mailbox gets no status: it could be stale (RFC 9051 6.3.11).
        ASSERT_TRUE(s->changes("Lists/alpha", {}));
        l = s->list();
        ASSERT_TRUE(l) << s->last_error();
        for (auto& e : *l) {
            if (e.name == "Lists/alpha") {
                EXPECT_FALSE(e.status);
            }
            if (e.name == "Zürich") {
                EXPECT_TRUE(e.status);
            }
        }
        auto st = s->status("Lists/alpha");
        ASSERT_TRUE(st) << s->last_error();
        expect_status(*st, "Lists/alpha", true);
        st = s->status("Zürich");
        ASSERT_TRUE(st) << s->last_error();
        expect_status(*st, "Z&APw-rich", true);
    }
}

TEST_F(imap_store_test, special_use_and_non_selectable) {
    test::dovecot_options o;
    o.special_use = true;
    o.separator = '.';
    test::dovecot other(o);
    test::imap_script(other, "alice", {"CREATE Parent.child"});
    // In Maildir++ a child does not create its parent: LIST shows the parent as
    // \NonExistent (\Noselect), a level without a mailbox.
    test::imap_script(other, "alice", {"CREATE Shelf.box"});
    client::endpoint ep;
    ep.tunnel = other.tunnel_argv("alice");
    ep.read_timeout = 30s;
    std::string why;
    auto s = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_TRUE(s) << why;
    auto l = (*s)->list();
    ASSERT_TRUE(l) << (*s)->last_error();
    std::map<std::string, mailbox_entry> by_name;
    for (auto& e : *l) by_name[e.name] = e;
    ASSERT_TRUE(by_name.count("Sent"));
    EXPECT_EQ(by_name["Sent"].special_use, "\\Sent");
    EXPECT_EQ(by_name["Trash"].special_use, "\\Trash");
    ASSERT_TRUE(by_name.count("Parent/child"));  // '.' on the server, '/' here
    EXPECT_TRUE(by_name["Parent/child"].status);
    ASSERT_TRUE(by_name.count("Shelf"));
    EXPECT_FALSE(by_name["Shelf"].selectable);
    EXPECT_FALSE(by_name["Shelf"].status);
    ASSERT_TRUE(by_name.count("Shelf/box"));
    EXPECT_TRUE(by_name["Shelf/box"].selectable);
    // Canonical names with '/' reach the server with its delimiter.
    ASSERT_TRUE((*s)->create("Projects/2024")) << (*s)->last_error();
    auto names = test::list_mailboxes(other, "alice");
    EXPECT_NE(std::find(names.begin(), names.end(), "Projects.2024"), names.end());
    // A level holding the server's delimiter cannot be named there.
    auto bad = (*s)->create("v1.2");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), errc::invalid_mailbox_name);
    EXPECT_NE((*s)->last_error().find("v1.2"), std::string::npos);
}

TEST_F(imap_store_test, first_changes_are_complete_with_identities_and_content_keys) {
    test::create_mailbox(*server_, "alice", "First");
    auto u1 = append("First", "first one", {"\\Seen", "$Forwarded"});
    auto u2 = append("First", "first two");
    std::string no_id = "From: a@tandem.test\r\nSubject: no id\r\n\r\nBody.\r\n";
    auto u3 =
        test::append_message(*server_, "alice", "First", no_id, {}, "05-Mar-2024 10:20:30 +0100");
    auto s = open();
    ASSERT_TRUE(s);
    auto c = s->changes("First", {});
    ASSERT_TRUE(c) << s->last_error();
    EXPECT_TRUE(c->complete);
    EXPECT_FALSE(c->uidvalidity_changed);
    EXPECT_TRUE(c->vanished.empty());
    expect_status(c->status, "First", true);
    ASSERT_EQ(uids_of(c->messages), (std::vector<mail::uid>{u1, u2, u3}));
    auto m1 = c->messages[0];
    EXPECT_EQ(m1.flags, flags({"\\Seen", "$Forwarded"}));
    auto text1 = test::fetch_message(*server_, "alice", "First", u1);
    ASSERT_TRUE(text1);
    EXPECT_EQ(m1.size, text1->size());
    EXPECT_EQ(m1.internal_date, 1709630430);  // 05-Mar-2024 09:20:30 UTC
    // The key the Maildir store makes from the whole file: the two sides pair.
    EXPECT_EQ(m1.content_key,
              mail::content_key(mail::identify_header(*text1), text1->size(), 1709630430));
    EXPECT_TRUE(m1.content_key.starts_with("<first.one@tandem.test>/" +
                                           std::to_string(text1->size()) + "/"));
    EXPECT_GT(m1.modseq, 0u);
    // Dovecot's X-GUID (on Maildir, the file's base name), different per message.
    EXPECT_FALSE(m1.identity.empty());
    EXPECT_NE(m1.identity, c->messages[1].identity);
    EXPECT_FALSE(c->messages[1].identity.empty());
    EXPECT_EQ(c->messages[2].content_key,
              mail::content_key(mail::identify_header(no_id), no_id.size(), 1709630430));
    EXPECT_TRUE(c->messages[2].content_key.starts_with("nomsgid/" + std::to_string(no_id.size()) +
                                                       "/1709630430/"));
    EXPECT_TRUE(c->messages[1].flags.empty());
    // known.full asks for the complete listing again.
    known_state k = known_from(*c);
    k.full = true;
    auto again = s->changes("First", k);
    ASSERT_TRUE(again) << s->last_error();
    EXPECT_TRUE(again->complete);
    EXPECT_EQ(again->messages.size(), 3u);
    EXPECT_EQ(again->messages[0].content_key, m1.content_key);
    EXPECT_EQ(again->messages[0].identity, m1.identity);
}

// A first sync into an empty mailbox has nothing to pair by content: the listing skips the
// header fields (one read of every message on the server) but keeps the identities.
TEST_F(imap_store_test, a_listing_without_keys_reads_no_headers_but_keeps_identities) {
    test::create_mailbox(*server_, "alice", "NoKeys");
    auto u1 = append("NoKeys", "first one", {"\\Seen"});
    auto u2 = append("NoKeys", "first two");
    auto s = open();
    ASSERT_TRUE(s);
    known_state k;
    k.want_keys = false;
    auto c = s->changes("NoKeys", k);
    ASSERT_TRUE(c) << s->last_error();
    EXPECT_TRUE(c->complete);
    ASSERT_EQ(uids_of(c->messages), (std::vector<mail::uid>{u1, u2}));
    for (const auto& m : c->messages) {
        EXPECT_TRUE(m.content_key.empty()) << m.content_key;
        EXPECT_FALSE(m.identity.empty());
        EXPECT_GT(m.size, 0u);
        EXPECT_GT(m.internal_date, 0);
    }
    EXPECT_EQ(c->messages[0].flags, flags({"\\Seen"}));
    // The same listing with keys: they come, and the identities are the same.
    auto keyed = s->changes("NoKeys", {});
    ASSERT_TRUE(keyed) << s->last_error();
    ASSERT_EQ(keyed->messages.size(), 2u);
    EXPECT_TRUE(keyed->messages[0].content_key.starts_with("<first.one@tandem.test>/"));
    EXPECT_EQ(keyed->messages[0].identity, c->messages[0].identity);

    // Without sizes either (no max-size rule): no RFC822.SIZE, which Dovecot would work out
    // by reading each file; size 0 stands for unknown, the rest is as before.
    k.want_sizes = false;
    auto unsized = s->changes("NoKeys", k);
    ASSERT_TRUE(unsized) << s->last_error();
    EXPECT_TRUE(unsized->complete);
    ASSERT_EQ(uids_of(unsized->messages), (std::vector<mail::uid>{u1, u2}));
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(unsized->messages[i].size, 0u);
        EXPECT_EQ(unsized->messages[i].internal_date, c->messages[i].internal_date);
        EXPECT_EQ(unsized->messages[i].identity, c->messages[i].identity);
        EXPECT_EQ(unsized->messages[i].flags, c->messages[i].flags);
    }
    // Keys need sizes: asked for keys, the sizes come whatever want_sizes says.
    known_state keys_only;
    keys_only.want_sizes = false;
    auto sized = s->changes("NoKeys", keys_only);
    ASSERT_TRUE(sized) << s->last_error();
    ASSERT_EQ(sized->messages.size(), 2u);
    EXPECT_EQ(sized->messages[0].size, c->messages[0].size);
    EXPECT_EQ(sized->messages[0].content_key, keyed->messages[0].content_key);
}

struct tier {
    const char* name;
    std::vector<std::string> disabled;
    bool incremental;  // complete = false
    bool modseq;
};

class imap_store_tier_test : public imap_store_test, public ::testing::WithParamInterface<tier> {};

// After an outside flag change, an expunge and a new message, changes() reports exactly
// those, in each tier; with nothing changed, nothing.
TEST_P(imap_store_tier_test, reports_flag_change_expunge_and_new_message) {
    const auto& t = GetParam();
    std::string box = std::string("Tier") + t.name;
    test::create_mailbox(*server_, "alice", box);
    auto a = append(box, "tier a " + box);
    auto b = append(box, "tier b " + box);
    auto c = append(box, "tier c " + box, {"\\Seen"});
    auto s = open(t.disabled);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->session().qresync_enabled(), t.name == std::string("Qresync"));
    auto first = s->changes(box, {});
    ASSERT_TRUE(first) << s->last_error();
    ASSERT_EQ(uids_of(first->messages), (std::vector<mail::uid>{a, b, c}));
    expect_status(first->status, box, t.modseq);
    auto known = known_from(*first);

    test::store_flags(*server_, "alice", box, b, "+FLAGS", {"\\Flagged"});
    test::expunge_message(*server_, "alice", box, a);
    auto d = append(box, "tier d " + box, {"$Important"});
    // The store still has the mailbox selected: a read now meets the updates first
    // (unsolicited EXPUNGE/VANISHED/FETCH), and they must still show in the next changes().
    std::vector<mail::uid> got;
    ASSERT_TRUE(s->fetch(box, std::vector<mail::uid>{c}, [&](mail::uid u, message_body&&) {
        got.push_back(u);
        return result<void>();
    }));
    EXPECT_EQ(got, std::vector<mail::uid>{c});

    auto second = s->changes(box, known);
    ASSERT_TRUE(second) << s->last_error();
    expect_status(second->status, box, t.modseq);
    EXPECT_FALSE(second->uidvalidity_changed);
    EXPECT_EQ(second->complete, !t.incremental);
    if (t.incremental) {
        EXPECT_EQ(second->vanished, std::vector<mail::uid>{a});
        EXPECT_EQ(uids_of(second->messages), (std::vector<mail::uid>{b, d}));
    } else {
        EXPECT_TRUE(second->vanished.empty());
        EXPECT_EQ(uids_of(second->messages), (std::vector<mail::uid>{b, c, d}));
        ASSERT_TRUE(find(second->messages, c));
        EXPECT_EQ(find(second->messages, c)->flags, flags({"\\Seen"}));
    }
    ASSERT_TRUE(find(second->messages, b));
    EXPECT_EQ(find(second->messages, b)->flags, flags({"\\Flagged"}));
    auto* nd = find(second->messages, d);
    ASSERT_TRUE(nd);
    EXPECT_EQ(nd->flags, flags({"$Important"}));
    auto dtext = test::fetch_message(*server_, "alice", box, d);
    ASSERT_TRUE(dtext);
    EXPECT_EQ(nd->size, dtext->size());
    EXPECT_EQ(nd->content_key,
              mail::content_key(mail::identify_header(*dtext), dtext->size(), nd->internal_date));
    EXPECT_FALSE(nd->identity.empty());
    EXPECT_NE(nd->identity, find(second->messages, b)->identity);

    // Nothing changed since: nothing reported (a complete listing lists what is there).
    known = known_from(*second);
    known.status = second->status;
    known.uids = {b, c, d};
    auto third = s->changes(box, known);
    ASSERT_TRUE(third) << s->last_error();
    EXPECT_TRUE(third->vanished.empty());
    if (t.incremental)
        EXPECT_TRUE(third->messages.empty()) << third->messages.size();
    else
        EXPECT_EQ(uids_of(third->messages), (std::vector<mail::uid>{b, c, d}));

    // An expunge alone (same UIDNEXT, one message fewer) is seen in every tier.
    test::expunge_message(*server_, "alice", box, c);
    auto fourth = s->changes(box, known);
    ASSERT_TRUE(fourth) << s->last_error();
    if (t.incremental) {
        EXPECT_EQ(fourth->vanished, std::vector<mail::uid>{c});
        EXPECT_TRUE(fourth->messages.empty());
    } else {
        EXPECT_EQ(uids_of(fourth->messages), (std::vector<mail::uid>{b, d}));
    }
}

// The messages this store appended after the state it reported (a run's own copies) come
// back on the next changes() with their flags only: no headers, sizes or dates again. A
// message another client added meanwhile still comes whole.
TEST_P(imap_store_tier_test, own_copies_of_the_last_run_are_read_by_flags_only) {
    const auto& t = GetParam();
    std::string box = std::string("Own") + t.name;
    test::create_mailbox(*server_, "alice", box);
    auto a = append(box, "own a " + box);
    std::vector<std::string> sent;
    auto ep = tunnel(t.disabled);
    ep.trace = [&sent](client::trace_direction d, std::string_view line) {
        if (d == client::trace_direction::client) sent.emplace_back(line);
    };
    std::string why;
    auto opened = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_TRUE(opened) << why;
    auto& s = *opened;
    auto first = s->changes(box, {});
    ASSERT_TRUE(first) << s->last_error();
    auto known = known_from(*first);

    std::vector<outgoing_message> out(2);
    out[0].body.data = test::make_message("own x " + box, "x\r\n");
    out[0].flags = flags({"\\Seen"});
    out[1].body.data = test::make_message("own y " + box, "y\r\n");
    auto uids = s->append(box, std::move(out));
    ASSERT_TRUE(uids) << s->last_error();
    ASSERT_EQ(uids->size(), 2u);
    auto x = (*uids)[0], y = (*uids)[1];
    auto z = append(box, "own z " + box);
    known.uids = {a, x, y};

    sent.clear();
    auto second = s->changes(box, known);
    ASSERT_TRUE(second) << s->last_error();
    auto* mx = find(second->messages, x);
    auto* my = find(second->messages, y);
    auto* mz = find(second->messages, z);
    ASSERT_TRUE(mx && my && mz);
    EXPECT_EQ(mx->flags, flags({"\\Seen"}));
    EXPECT_TRUE(my->flags.empty());
    EXPECT_TRUE(mx->content_key.empty()) << mx->content_key;
    EXPECT_TRUE(mz->content_key.starts_with("<own.z." + box + "@tandem.test>/" +
                                            std::to_string(mz->size) + "/"))
        << mz->content_key;
    std::size_t header_fetches = 0;
    for (auto& line : sent) {
        if (line.find("UID FETCH") == std::string::npos) continue;
        if (line.find("HEADER.FIELDS") == std::string::npos) continue;
        ++header_fetches;
        // "T9 UID FETCH <set> (...)"
        auto at = line.find("UID FETCH ") + 10;
        auto set = imap::uid_set::parse(line.substr(at, line.find(' ', at) - at), 1u << 30);
        ASSERT_TRUE(set) << line;
        EXPECT_FALSE(set->contains(x)) << line;
        EXPECT_FALSE(set->contains(y)) << line;
        EXPECT_TRUE(set->contains(z)) << line;
    }
    EXPECT_EQ(header_fetches, 1u);
}

// After list(), changes() sends its FETCH (and SEARCH) in the same flight as the SELECT,
// from what the listing said; the answer is the one of a changes() without a listing. A
// listing that is wrong by then (the mailbox re-created meanwhile) is asked again.
TEST_P(imap_store_tier_test, after_a_listing_the_commands_go_with_the_select) {
    const auto& t = GetParam();
    std::string box = std::string("Flight") + t.name;
    test::create_mailbox(*server_, "alice", box);
    auto a = append(box, "flight a " + box);
    auto b = append(box, "flight b " + box);
    std::vector<std::string> lines;
    auto ep = tunnel(t.disabled);
    ep.trace = [&lines](client::trace_direction d, std::string_view line) {
        if (d != client::trace_direction::info)
            lines.push_back((d == client::trace_direction::client ? "C: " : "S: ") +
                            std::string(line));
    };
    std::string why;
    auto opened = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_TRUE(opened) << why;
    auto& s = *opened;
    // A FETCH the client sent before the server's answer to its SELECT.
    auto fetch_before_select_answer = [&lines]() {
        bool selecting = false;
        for (auto& l : lines) {
            if (l.rfind("C: ", 0) == 0 && l.find(" SELECT ") != std::string::npos) selecting = true;
            if (selecting && l.rfind("C: ", 0) == 0 && l.find(" UID FETCH ") != std::string::npos)
                return true;
            bool tagged = l.rfind("S: T", 0) == 0 && l.size() > 4 &&
                          std::isdigit(static_cast<unsigned char>(l[4]));
            if (selecting && tagged) selecting = false;
        }
        return false;
    };

    ASSERT_TRUE(s->list()) << s->last_error();
    lines.clear();
    auto first = s->changes(box, {});
    ASSERT_TRUE(first) << s->last_error();
    EXPECT_TRUE(fetch_before_select_answer());
    ASSERT_EQ(uids_of(first->messages), (std::vector<mail::uid>{a, b}));
    EXPECT_FALSE(first->messages[0].content_key.empty());
    auto known = known_from(*first);

    test::store_flags(*server_, "alice", box, b, "+FLAGS", {"\\Flagged"});
    auto c = append(box, "flight c " + box);
    ASSERT_TRUE(s->changes("INBOX", {}));  // another mailbox selected meanwhile
    ASSERT_TRUE(s->list()) << s->last_error();
    lines.clear();
    auto second = s->changes(box, known);
    ASSERT_TRUE(second) << s->last_error();
    EXPECT_TRUE(fetch_before_select_answer()) << t.name;
    if (t.incremental)
        EXPECT_EQ(uids_of(second->messages), (std::vector<mail::uid>{b, c}));
    else
        EXPECT_EQ(uids_of(second->messages), (std::vector<mail::uid>{a, b, c}));
    ASSERT_TRUE(find(second->messages, b));
    EXPECT_EQ(find(second->messages, b)->flags, flags({"\\Flagged"}));
    ASSERT_TRUE(find(second->messages, c));
    EXPECT_FALSE(find(second->messages, c)->content_key.empty());
    expect_status(second->status, box, t.modseq);
    known = known_from(*second);
    known.uids = {a, b, c};

    // Listed, then re-created by another client: a new UIDVALIDITY, everything again.
    ASSERT_TRUE(s->changes("INBOX", {}));
    ASSERT_TRUE(s->list()) << s->last_error();
    test::delete_mailbox(*server_, "alice", box);
    test::create_mailbox(*server_, "alice", box);
    auto d = append(box, "flight d " + box);
    auto third = s->changes(box, known);
    ASSERT_TRUE(third) << s->last_error();
    EXPECT_TRUE(third->uidvalidity_changed);
    EXPECT_TRUE(third->complete);
    ASSERT_EQ(uids_of(third->messages), (std::vector<mail::uid>{d}));
    EXPECT_FALSE(third->messages[0].content_key.empty());
    expect_status(third->status, box, t.modseq);
}

INSTANTIATE_TEST_SUITE_P(tiers, imap_store_tier_test,
                         ::testing::Values(tier{"Qresync", {}, true, true},
                                           tier{"Condstore", {"QRESYNC"}, true, true},
                                           tier{"Plain", {"QRESYNC", "CONDSTORE"}, false, false}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(imap_store_test, uidvalidity_change_gives_a_complete_listing) {
    test::create_mailbox(*server_, "alice", "Recreated");
    append("Recreated", "recreated one");
    append("Recreated", "recreated two", {"\\Seen"});
    auto s = open();
    ASSERT_TRUE(s);
    auto first = s->changes("Recreated", {});
    ASSERT_TRUE(first) << s->last_error();
    auto known = known_from(*first);
    ASSERT_TRUE(s->changes("INBOX", {}));  // leave it before another client deletes it

    test::delete_mailbox(*server_, "alice", "Recreated");
    test::create_mailbox(*server_, "alice", "Recreated");
    append("Recreated", "recreated one");
    append("Recreated", "recreated two", {"\\Seen"});
    ASSERT_NE(test::status(*server_, "alice", "Recreated").uidvalidity, known.status.uidvalidity);

    auto second = s->changes("Recreated", known);
    ASSERT_TRUE(second) << s->last_error();
    EXPECT_TRUE(second->uidvalidity_changed);
    EXPECT_TRUE(second->complete);
    expect_status(second->status, "Recreated", true);
    ASSERT_EQ(second->messages.size(), 2u);
    EXPECT_EQ(second->messages[0].content_key, first->messages[0].content_key);
    EXPECT_EQ(second->messages[1].content_key, first->messages[1].content_key);
    EXPECT_EQ(second->messages[1].flags, flags({"\\Seen"}));
}

// The engine plans with the UIDs of the status that changes() (or a listing) reported: if
// another client recreates the mailbox before the plan runs, the same numbers name other
// messages, and a STORE or EXPUNGE by them would change the wrong mail.
TEST_F(imap_store_test, nothing_is_changed_by_uid_in_a_mailbox_recreated_since_its_status) {
    test::create_mailbox(*server_, "alice", "Remade");
    append("Remade", "old one");
    append("Remade", "old two");
    auto s = open();
    ASSERT_TRUE(s);
    auto first = s->changes("Remade", {});
    ASSERT_TRUE(first) << s->last_error();
    ASSERT_EQ(first->messages.size(), 2u);
    const mail::uid old_uid = first->messages[0].uid;
    ASSERT_TRUE(s->changes("INBOX", {}));  // leave it before another client deletes it

    test::delete_mailbox(*server_, "alice", "Remade");
    test::create_mailbox(*server_, "alice", "Remade");
    append("Remade", "new one");
    append("Remade", "new two");
    const auto now = test::status(*server_, "alice", "Remade").uidvalidity;
    ASSERT_NE(now, first->status.uidvalidity);
    ASSERT_EQ(test::list_messages(*server_, "alice", "Remade")[0].uid, old_uid);

    std::vector<flag_change> flag{{old_uid, flags({"\\Flagged"}), {}}};
    auto stored = s->set_flags("Remade", flag);
    ASSERT_FALSE(stored);
    EXPECT_EQ(stored.error(), errc::uidvalidity_changed);
    EXPECT_NE(s->last_error().find("recreated"), std::string::npos) << s->last_error();
    auto expunged = s->expunge("Remade", std::vector<mail::uid>{old_uid});
    ASSERT_FALSE(expunged);
    EXPECT_EQ(expunged.error(), errc::uidvalidity_changed);
    auto listed = test::list_messages(*server_, "alice", "Remade");
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_TRUE(listed[0].flags.empty());

    // A new status of the mailbox gives its UIDs meaning again.
    auto second = s->changes("Remade", known_from(*first));
    ASSERT_TRUE(second) << s->last_error();
    EXPECT_TRUE(second->uidvalidity_changed);
    ASSERT_TRUE(s->set_flags("Remade", flag)) << s->last_error();
    EXPECT_EQ(test::list_messages(*server_, "alice", "Remade")[0].flags,
              std::vector<std::string>{"\\Flagged"});
}

// An APPEND into a mailbox recreated since its status lands in the new mailbox (no mail is
// lost), but its APPENDUID names another UIDVALIDITY: the UIDs are not returned to be
// recorded under the old one, and later operations there are refused as after a SELECT.
TEST_F(imap_store_test, uids_appended_into_a_mailbox_recreated_since_its_status_are_not_returned) {
    test::create_mailbox(*server_, "alice", "Batch");
    test::create_mailbox(*server_, "alice", "Stream");
    append("Batch", "old batch");
    append("Stream", "old stream");
    auto s = open();
    ASSERT_TRUE(s);
    auto batch = s->changes("Batch", {});
    ASSERT_TRUE(batch) << s->last_error();
    auto stream = s->changes("Stream", {});
    ASSERT_TRUE(stream) << s->last_error();
    ASSERT_TRUE(s->changes("INBOX", {}));
    for (const char* box : {"Batch", "Stream"}) {
        test::delete_mailbox(*server_, "alice", box);
        test::create_mailbox(*server_, "alice", box);
    }
    ASSERT_NE(test::status(*server_, "alice", "Batch").uidvalidity, batch->status.uidvalidity);

    const std::string batch_body = test::make_message("into the new Batch");
    std::vector<outgoing_message> msgs(1);
    msgs[0].body.data = batch_body;
    msgs[0].body.size = batch_body.size();
    auto appended = s->append("Batch", std::move(msgs));
    ASSERT_FALSE(appended);
    EXPECT_EQ(appended.error(), errc::uidvalidity_changed);
    EXPECT_NE(s->last_error().find("appended there, their UIDs not recorded"), std::string::npos)
        << s->last_error();
    auto listed = test::list_messages(*server_, "alice", "Batch");
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(test::fetch_message(*server_, "alice", "Batch", listed[0].uid), batch_body);
    std::vector<flag_change> flag{{listed[0].uid, flags({"\\Flagged"}), {}}};
    auto stored = s->set_flags("Batch", flag);
    ASSERT_FALSE(stored);
    EXPECT_EQ(stored.error(), errc::uidvalidity_changed);
    EXPECT_TRUE(test::list_messages(*server_, "alice", "Batch")[0].flags.empty());
    std::vector<outgoing_message> again(1);
    again[0].body.data = batch_body;
    again[0].body.size = batch_body.size();
    auto refused = s->append("Batch", std::move(again));
    ASSERT_FALSE(refused);
    EXPECT_NE(s->last_error().find("nothing was changed there"), std::string::npos)
        << s->last_error();
    EXPECT_EQ(test::list_messages(*server_, "alice", "Batch").size(), 1u);

    const std::string stream_body = test::make_message("into the new Stream");
    auto app = s->begin_append("Stream");
    ASSERT_TRUE(app) << s->last_error();
    outgoing_message m;
    m.body.data = stream_body;
    m.body.size = stream_body.size();
    ASSERT_TRUE((*app)->add(std::move(m))) << s->last_error();
    auto finished = (*app)->finish();
    ASSERT_FALSE(finished);
    EXPECT_EQ(finished.error(), errc::uidvalidity_changed);
    ASSERT_EQ(test::list_messages(*server_, "alice", "Stream").size(), 1u);
    EXPECT_FALSE(s->begin_append("Stream"));

    // A new status of the mailbox makes it usable again.
    ASSERT_TRUE(s->changes("Batch", known_from(*batch))) << s->last_error();
    ASSERT_TRUE(s->set_flags("Batch", flag)) << s->last_error();
}

// Bodies between imap_store_options::direct_threshold and spool_threshold reach their own
// string as they arrive (a sink of the parser); smaller ones through the parsed response.
TEST_F(imap_store_test, bodies_of_every_size_class_are_fetched_byte_for_byte_in_memory) {
    test::create_mailbox(*server_, "alice", "Sizes");
    imap_store_options o;
    o.direct_threshold = 64 * 1024;
    o.spool_threshold = 1024 * 1024;
    auto s = open({}, o);
    ASSERT_TRUE(s);
    std::vector<std::string> bodies{
        test::make_message("tiny"), message_of_size("just under", 64 * 1024 - 1),
        message_of_size("at the threshold", 64 * 1024), message_of_size("middle", 300 * 1024 + 5),
        message_of_size("just under the spool", 1024 * 1024 - 1)};
    std::vector<outgoing_message> msgs(bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        msgs[i].body.data = bodies[i];
        msgs[i].body.size = bodies[i].size();
    }
    auto uids = s->append("Sizes", std::move(msgs));
    ASSERT_TRUE(uids) << s->last_error();
    ASSERT_EQ(uids->size(), bodies.size());
    std::map<mail::uid, message_body> got;
    auto r = s->fetch("Sizes", *uids, [&](mail::uid u, message_body&& b) {
        got[u] = std::move(b);
        return result<void>();
    });
    ASSERT_TRUE(r) << s->last_error();
    ASSERT_EQ(got.size(), bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        const auto& b = got[(*uids)[i]];
        EXPECT_TRUE(b.file.empty()) << i;
        EXPECT_FALSE(b.temporary) << i;
        EXPECT_EQ(b.size, bodies[i].size()) << i;
        EXPECT_TRUE(b.data == bodies[i]) << "body " << i << " differs";
    }
}

TEST_F(imap_store_test, append_then_fetch_byte_for_byte_with_a_spooled_3_mb_message) {
    test::create_mailbox(*server_, "alice", "Roundtrip");
    test::temp_dir spool("tandem-spool-test");
    test::temp_dir src("tandem-src-test");
    imap_store_options o;
    o.spool_dir = spool.path();
    auto s = open({}, o);
    ASSERT_TRUE(s);

    std::string small = test::make_message("round small");
    std::string big = big_message("round big", 3 * 1024 * 1024 + 17);
    auto big_file = src / "big.eml";
    std::ofstream(big_file, std::ios::binary) << big;
    std::vector<outgoing_message> msgs(2);
    msgs[0].flags = flags({"\\Seen", "$Forwarded"});
    msgs[0].internal_date = 1700000000;
    msgs[0].body.data = small;
    msgs[0].body.size = small.size();
    msgs[1].body.file = big_file;
    msgs[1].body.temporary = true;
    msgs[1].body.size = big.size();
    auto uids = s->append("Roundtrip", std::move(msgs));
    ASSERT_TRUE(uids) << s->last_error();
    ASSERT_EQ(uids->size(), 2u);
    EXPECT_NE((*uids)[0], 0u);
    EXPECT_NE((*uids)[1], 0u);
    EXPECT_FALSE(std::filesystem::exists(big_file));  // the temporary body is gone

    EXPECT_EQ(test::fetch_message(*server_, "alice", "Roundtrip", (*uids)[0]), small);
    EXPECT_EQ(test::fetch_message(*server_, "alice", "Roundtrip", (*uids)[1]), big);
    auto listed = test::list_messages(*server_, "alice", "Roundtrip");
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].flags, (std::vector<std::string>{"$Forwarded", "\\Seen"}));
    auto c = s->changes("Roundtrip", {});
    ASSERT_TRUE(c);
    ASSERT_EQ(c->messages.size(), 2u);
    EXPECT_EQ(c->messages[0].internal_date, 1700000000);

    std::map<mail::uid, message_body> got;
    std::vector<mail::uid> wanted{(*uids)[1], 999999, (*uids)[0]};  // 999999: no such message
    auto r = s->fetch("Roundtrip", wanted, [&](mail::uid u, message_body&& b) {
        got[u] = std::move(b);
        return result<void>();
    });
    ASSERT_TRUE(r) << s->last_error();
    ASSERT_EQ(got.size(), 2u);
    auto& sb = got[(*uids)[0]];
    EXPECT_TRUE(sb.file.empty());
    EXPECT_EQ(sb.data, small);
    EXPECT_EQ(sb.size, small.size());
    // The server's RFC822.SIZE comes with each body: the listed size of the message.
    EXPECT_EQ(sb.server_size, c->messages[0].size);
    EXPECT_EQ(got[(*uids)[1]].server_size, c->messages[1].size);
    auto& bb = got[(*uids)[1]];
    ASSERT_FALSE(bb.file.empty());
    EXPECT_TRUE(bb.temporary);
    EXPECT_EQ(bb.file.parent_path(), spool.path());
    EXPECT_EQ(bb.size, big.size());
    EXPECT_TRUE(bb.data.empty());
    EXPECT_EQ(read_file(bb.file), big);
    std::filesystem::remove(bb.file);

    // A failing receiver stops the deliveries and gets its error back; no spool file stays.
    int calls = 0;
    r = s->fetch("Roundtrip", std::vector<mail::uid>{(*uids)[0], (*uids)[1]},
                 [&](mail::uid, message_body&& b) -> result<void> {
                     ++calls;
                     if (b.temporary) std::filesystem::remove(b.file);
                     return errc::storage_full;
                 });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::storage_full);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(std::filesystem::is_empty(spool.path()));
}

// Appends `bodies` to `box`; their uids in order.
std::vector<mail::uid> append_bodies(imap_store& s, const std::string& box,
                                     const std::vector<std::string>& bodies) {
    std::vector<outgoing_message> msgs(bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        msgs[i].body.data = bodies[i];
        msgs[i].body.size = bodies[i].size();
    }
    auto uids = s.append(box, std::move(msgs));
    EXPECT_TRUE(uids) << s.last_error();
    if (!uids) return {};
    EXPECT_EQ(uids->size(), bodies.size());
    return *uids;
}

// What a fetch delivered, by uid, read back from spool files (which it removes), and how
// many times each uid came.
struct fetched_bodies {
    std::map<mail::uid, std::string> bytes;
    std::map<mail::uid, int> times;
    std::function<result<void>(mail::uid, message_body&&)> receiver() {
        return [this](mail::uid u, message_body&& b) -> result<void> {
            ++times[u];
            if (b.file.empty()) {
                bytes[u] = std::move(b.data);
            } else {
                bytes[u] = read_file(b.file);
                std::filesystem::remove(b.file);
            }
            return {};
        };
    }
};

// Expects each of `uids` delivered once with the body at the same index of `bodies`.
void expect_delivered(const fetched_bodies& got, const std::vector<mail::uid>& uids,
                      const std::vector<std::string>& bodies, std::size_t first = 0) {
    EXPECT_EQ(got.bytes.size(), uids.size());
    for (std::size_t i = 0; i < uids.size(); ++i) {
        auto b = got.bytes.find(uids[i]);
        ASSERT_NE(b, got.bytes.end()) << "uid " << uids[i] << " not delivered";
        EXPECT_TRUE(b->second == bodies[first + i]) << "body of uid " << uids[i] << " differs";
        EXPECT_EQ(got.times.at(uids[i]), 1) << uids[i];
    }
}

TEST_F(imap_store_test, a_fetch_ahead_is_the_fetch_of_the_same_messages_that_follows) {
    test::create_mailbox(*server_, "alice", "Ahead");
    auto s = open_spooling();
    ASSERT_TRUE(s);
    // In the response, in memory as they come, in a spool file.
    const std::vector<std::string> bodies{test::make_message("first"),
                                          message_of_size("first, middle", 100 * 1024),
                                          test::make_message("second"),
                                          message_of_size("second, middle", 100 * 1024),
                                          big_message("second, spooled", 1536 * 1024),
                                          test::make_message("second, last")};
    auto uids = append_bodies(*s, "Ahead", bodies);
    ASSERT_EQ(uids.size(), bodies.size());
    const std::vector<mail::uid> first(uids.begin(), uids.begin() + 2);
    const std::vector<mail::uid> second(uids.begin() + 2, uids.end());

    fetched_bodies got1;
    ASSERT_TRUE(s->fetch("Ahead", first, got1.receiver())) << s->last_error();
    expect_delivered(got1, first, bodies);
    const auto sent = body_fetches_sent();
    s->fetch_ahead("Ahead", second);
    EXPECT_EQ(body_fetches_sent(), sent + 1) << "the UID FETCH goes out at once";
    fetched_bodies got2;
    ASSERT_TRUE(s->fetch("Ahead", second, got2.receiver())) << s->last_error();
    expect_delivered(got2, second, bodies, 2);
    EXPECT_EQ(body_fetches_sent(), sent + 1) << "fetch() took the one ahead\n" << log_.text();
    EXPECT_TRUE(std::filesystem::is_empty(spool_.path()));
}

// Another command's wait reads what the server sent for a fetch ahead: the bodies are held
// for the fetch() to come, up to a bound in memory (8 MiB); those past it are asked for again.
TEST_F(imap_store_test, bodies_read_before_their_fetch_are_held_and_past_the_bound_fetched_again) {
    test::create_mailbox(*server_, "alice", "Held");
    auto s = open_spooling();
    ASSERT_TRUE(s);
    std::vector<std::string> bodies;
    for (int i = 0; i < 100; ++i)  // 10 MB in memory as they come
        bodies.push_back(message_of_size("held " + std::to_string(i), 100 * 1024));
    bodies.push_back(big_message("held, spooled", 1536 * 1024));
    auto uids = append_bodies(*s, "Held", bodies);
    ASSERT_EQ(uids.size(), bodies.size());
    ASSERT_TRUE(s->changes("Held", {})) << s->last_error();  // selects it
    const auto sent = body_fetches_sent();
    s->fetch_ahead("Held", uids);
    // Its answer comes after every body of the fetch ahead.
    const flag_change flagged{uids[0], flags({"\\Flagged"}), {}};
    ASSERT_TRUE(s->set_flags("Held", std::span(&flagged, 1))) << s->last_error();
    fetched_bodies got;
    ASSERT_TRUE(s->fetch("Held", uids, got.receiver())) << s->last_error();
    expect_delivered(got, uids, bodies);
    EXPECT_EQ(body_fetches_sent(), sent + 2) << "the one ahead, and one of what was past the bound";
    EXPECT_TRUE(std::filesystem::is_empty(spool_.path()));
}

TEST_F(imap_store_test, a_fetch_ahead_that_the_next_fetch_does_not_ask_for_is_dropped) {
    test::create_mailbox(*server_, "alice", "Dropped");
    test::create_mailbox(*server_, "alice", "Beside");
    auto s = open_spooling();
    ASSERT_TRUE(s);
    const std::vector<std::string> bodies{test::make_message("a"),
                                          big_message("a, spooled", 1536 * 1024),
                                          test::make_message("b"), test::make_message("c")};
    auto uids = append_bodies(*s, "Dropped", bodies);
    ASSERT_EQ(uids.size(), bodies.size());
    const std::vector<std::string> beside_bodies{test::make_message("beside")};
    auto beside = append_bodies(*s, "Beside", beside_bodies);
    ASSERT_EQ(beside.size(), 1u);
    const std::vector<mail::uid> a(uids.begin(), uids.begin() + 2);
    const std::vector<mail::uid> b(uids.begin() + 2, uids.end());

    // Not into a mailbox other than the one selected: that would be a SELECT.
    std::size_t sent = body_fetches_sent();
    s->fetch_ahead("Dropped", a);
    EXPECT_EQ(body_fetches_sent(), sent);
    fetched_bodies warm;
    ASSERT_TRUE(s->fetch("Dropped", b, warm.receiver())) << s->last_error();
    expect_delivered(warm, b, bodies, 2);

    // Other messages of the mailbox: only they are delivered, the bodies ahead are not
    // kept (their spool file neither).
    s->fetch_ahead("Dropped", a);
    fetched_bodies got_b;
    ASSERT_TRUE(s->fetch("Dropped", b, got_b.receiver())) << s->last_error();
    expect_delivered(got_b, b, bodies, 2);
    EXPECT_TRUE(std::filesystem::is_empty(spool_.path()));
    fetched_bodies got_a;
    ASSERT_TRUE(s->fetch("Dropped", a, got_a.receiver())) << s->last_error();
    expect_delivered(got_a, a, bodies);

    // A SELECT of another mailbox in between.
    s->fetch_ahead("Dropped", a);
    fetched_bodies got_beside;
    ASSERT_TRUE(s->fetch("Beside", beside, got_beside.receiver())) << s->last_error();
    expect_delivered(got_beside, beside, beside_bodies);
    sent = body_fetches_sent();
    fetched_bodies again;
    ASSERT_TRUE(s->fetch("Dropped", a, again.receiver())) << s->last_error();
    expect_delivered(again, a, bodies);
    EXPECT_EQ(body_fetches_sent(), sent + 1);
    EXPECT_TRUE(std::filesystem::is_empty(spool_.path()));
}

TEST_F(imap_store_test, an_appender_sends_full_commands_before_finish_and_keeps_the_order) {
    test::create_mailbox(*server_, "alice", "Streamed");
    auto s = open();
    ASSERT_TRUE(s);
    std::vector<std::string> bodies;
    for (int i = 0; i < 7; ++i)
        bodies.push_back(big_message("streamed " + std::to_string(i), 400 * 1024));
    auto app = s->begin_append("Streamed");
    ASSERT_TRUE(app) << s->last_error();
    for (const auto& b : bodies) {
        outgoing_message m;
        m.body.data = b;
        m.body.size = b.size();
        ASSERT_TRUE((*app)->add(std::move(m))) << s->last_error();
    }
    // 2.8 MB in commands of about 1 MiB: the first ones are on the server before finish().
    std::uint32_t seen = 0;
    for (int i = 0; i < 200 && seen < 3; ++i) {
        seen = test::status(*server_, "alice", "Streamed").messages;
        if (seen < 3) std::this_thread::sleep_for(50ms);
    }
    EXPECT_GE(seen, 3u);
    auto uids = (*app)->finish();
    ASSERT_TRUE(uids) << s->last_error();
    ASSERT_EQ(uids->size(), bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i)
        EXPECT_EQ(test::fetch_message(*server_, "alice", "Streamed", (*uids)[i]), bodies[i]) << i;

    // Dropped without finish(): what was sent is answered, and the session goes on.
    {
        auto dropped = s->begin_append("Streamed");
        ASSERT_TRUE(dropped);
        for (int i = 0; i < 3; ++i) {
            outgoing_message m;
            m.body.data = bodies[0];
            ASSERT_TRUE((*dropped)->add(std::move(m)));
        }
    }
    auto st = s->status("Streamed");
    ASSERT_TRUE(st) << s->last_error();
    // The third add() filled a command, which went out and stays (the intent's job).
    EXPECT_EQ(st->messages, 10u);
    EXPECT_EQ(test::status(*server_, "alice", "Streamed").messages, 10u);

    // Without UIDPLUS the messages wait for finish(), which finds their uids again.
    auto plain = open({"UIDPLUS"});
    ASSERT_TRUE(plain);
    auto held = plain->begin_append("Streamed");
    ASSERT_TRUE(held);
    const auto before = test::status(*server_, "alice", "Streamed").messages;
    for (int i = 0; i < 4; ++i) {
        outgoing_message m;
        m.body.data = big_message("held " + std::to_string(i), 400 * 1024);
        ASSERT_TRUE((*held)->add(std::move(m)));
    }
    EXPECT_EQ(test::status(*server_, "alice", "Streamed").messages, before);
    auto held_uids = (*held)->finish();
    ASSERT_TRUE(held_uids) << plain->last_error();
    ASSERT_EQ(held_uids->size(), 4u);
    EXPECT_NE((*held_uids)[3], 0u);
    EXPECT_EQ(test::status(*server_, "alice", "Streamed").messages, before + 4);
}

// The messages a run appends, by its appender: "<subject>" with the given flags.
std::vector<mail::uid> append_own(imap_store& s, const std::string& box,
                                  const std::vector<std::pair<std::string, mail::flag_set>>& m) {
    auto app = s.begin_append(box);
    if (!app) return {};
    for (const auto& [subject, f] : m) {
        outgoing_message o;
        o.flags = f;
        o.body.data = test::make_message(subject);
        if (!(*app)->add(std::move(o))) return {};
    }
    auto uids = (*app)->finish();
    return uids ? *uids : std::vector<mail::uid>{};
}

// A run that only appended vouches for the mailbox: the status it returns is the server's,
// and the next listing from it finds nothing to report. Into a mailbox it created, and into
// one that held messages (whose status came from changes() or from the listing).
TEST_F(imap_store_test, a_mailbox_this_run_only_appended_to_is_vouched_for) {
    const std::vector<std::pair<std::string, mail::flag_set>> own{
        {"own plain", {}},
        {"own seen", flags({"\\Seen"})},
        {"own kw", flags({"\\Seen", "$Label1", "todo"})},
        {"own seen 2", flags({"\\Seen"})},
    };
    for (int how = 0; how < 3; ++how) {
        const std::string box = "Vouch" + std::to_string(how);
        SCOPED_TRACE(box);
        auto s = open();
        ASSERT_TRUE(s);
        if (how == 0) {
            ASSERT_TRUE(s->create(box)) << s->last_error();
        } else {
            test::create_mailbox(*server_, "alice", box);
            append(box, "old one", {"\\Seen"});
            append(box, "old two", {"$Junk"});
            if (how == 1) {
                ASSERT_TRUE(s->changes(box, {})) << s->last_error();
            } else {
                ASSERT_TRUE(s->list()) << s->last_error();
            }
        }
        // Not written to yet: nothing to vouch for, and no command sent for it.
        auto untouched = s->status_after_own_changes("INBOX");
        ASSERT_TRUE(untouched);
        EXPECT_FALSE(*untouched);
        auto uids = append_own(*s, box, own);
        ASSERT_EQ(uids.size(), own.size()) << s->last_error();
        auto after = s->status_after_own_changes(box);
        ASSERT_TRUE(after) << s->last_error();
        ASSERT_TRUE(*after) << "appends alone must be vouched for";
        expect_status(**after, box, true);

        // The next run, from that status and the uids, hears of nothing.
        auto c = next_run_changes(box, **after);
        EXPECT_TRUE(c.messages.empty());
        EXPECT_TRUE(c.vanished.empty());
        EXPECT_EQ(c.status, **after);
        // Asked once: a second call has nothing of this run left to vouch for.
        auto again = s->status_after_own_changes(box);
        ASSERT_TRUE(again);
        EXPECT_FALSE(*again);
    }
}

// Whatever another client did between the status reported and the check, or anything this
// run did besides appending, leaves the mailbox unvouched: the next run looks at it.
TEST_F(imap_store_test, a_mailbox_changed_beside_this_runs_appends_is_not_vouched_for) {
    struct interference {
        std::string name;
        // Gets the store, the mailbox, the old message's uid and this run's uids.
        std::function<void(imap_store&, const std::string&, mail::uid,
                           const std::vector<mail::uid>&)>
            act;
    };
    auto outside = [](std::string op, std::vector<std::string> f, int which) {
        return [op, f, which](imap_store&, const std::string& box, mail::uid old,
                              const std::vector<mail::uid>& ours) {
            test::store_flags(*server_, "alice", box, which < 0 ? old : ours[which], op, f);
        };
    };
    const std::vector<interference> cases{
        {"a flag set on an appended message", outside("+FLAGS", {"\\Flagged"}, 0)},
        {"a flag removed from an appended message", outside("-FLAGS", {"\\Seen"}, 1)},
        {"a new keyword on an appended message", outside("+FLAGS", {"$Phishing"}, 2)},
        {"a keyword removed from an appended message", outside("-FLAGS", {"todo"}, 2)},
        {"\\Deleted set on an appended message", outside("+FLAGS", {"\\Deleted"}, 1)},
        {"a flag changed on an old message", outside("+FLAGS", {"\\Flagged"}, -1)},
        {"an old message expunged",
         [](imap_store&, const std::string& box, mail::uid old, const std::vector<mail::uid>&) {
             test::expunge_message(*server_, "alice", box, old);
         }},
        {"an old message expunged and another one appended",
         [](imap_store&, const std::string& box, mail::uid old, const std::vector<mail::uid>&) {
             append(box, "foreign");
             test::expunge_message(*server_, "alice", box, old);
         }},
        {"a message appended by another client",
         [](imap_store&, const std::string& box, mail::uid, const std::vector<mail::uid>&) {
             append(box, "foreign");
         }},
        {"an appended message expunged and another one appended",
         [](imap_store&, const std::string& box, mail::uid, const std::vector<mail::uid>& ours) {
             append(box, "foreign");
             test::expunge_message(*server_, "alice", box, ours[0]);
         }},
        {"this run's own flag change",
         [](imap_store& s, const std::string& box, mail::uid old, const std::vector<mail::uid>&) {
             std::vector<flag_change> ch{{old, flags({"\\Answered"}), {}}};
             ASSERT_TRUE(s.set_flags(box, ch));
         }},
        {"this run's own expunge",
         [](imap_store& s, const std::string& box, mail::uid old, const std::vector<mail::uid>&) {
             std::vector<mail::uid> gone{old};
             ASSERT_TRUE(s.expunge(box, gone));
         }},
    };
    int n = 0;
    for (const auto& c : cases) {
        const std::string box = "Unvouched" + std::to_string(n++);
        SCOPED_TRACE(c.name);
        test::create_mailbox(*server_, "alice", box);
        auto old = append(box, "old one", {"\\Seen"});
        auto s = open();
        ASSERT_TRUE(s);
        ASSERT_TRUE(s->changes(box, {})) << s->last_error();
        auto ours = append_own(*s, box,
                               {{"own plain", {}},
                                {"own seen", flags({"\\Seen"})},
                                {"own kw", flags({"\\Seen", "$Label1", "todo"})}});
        ASSERT_EQ(ours.size(), 3u) << s->last_error();
        c.act(*s, box, old, ours);
        auto after = s->status_after_own_changes(box);
        ASSERT_TRUE(after) << s->last_error();
        EXPECT_FALSE(*after);
    }
    // One message appended by a store without `disabled` capabilities after its listing of
    // `box`: not vouched for.
    auto one_appended_is_not_vouched = [this](const std::string& box,
                                              std::vector<std::string> disabled) {
        SCOPED_TRACE(box);
        auto s = open(std::move(disabled));
        ASSERT_TRUE(s);
        ASSERT_TRUE(s->changes(box, {}));
        ASSERT_EQ(append_own(*s, box, {{"own", {}}}).size(), 1u);
        auto after = s->status_after_own_changes(box);
        ASSERT_TRUE(after);
        EXPECT_FALSE(*after);
    };
    // One message added to a mailbox of 9: the next run reads its flags for less than the
    // counts over the 9 would cost now.
    test::create_mailbox(*server_, "alice", "Large");
    for (int i = 0; i < 9; ++i) append("Large", "held " + std::to_string(i));
    one_appended_is_not_vouched("Large", {});
    // Without ESEARCH the counts cannot be asked for: never vouched.
    test::create_mailbox(*server_, "alice", "NoEsearch");
    one_appended_is_not_vouched("NoEsearch", {"ESEARCH"});
}

// Flag stores alone are vouched for from the mod-sequences they were answered with: the
// status after them, which the next run starts from, is the server's HIGHESTMODSEQ, and that
// run hears of nothing (no SELECT of its own changes).
TEST_F(imap_store_test, a_mailbox_this_run_only_stored_flags_in_is_vouched_for) {
    test::create_mailbox(*server_, "alice", "FlagVouchOther");
    const auto other = append("FlagVouchOther", "fv other");
    for (int how = 0; how < 2; ++how) {
        const std::string box = "FlagVouch" + std::to_string(how);
        SCOPED_TRACE(box);
        test::create_mailbox(*server_, "alice", box);
        auto u1 = append(box, "fv one", {"\\Seen"});
        auto u2 = append(box, "fv two");
        auto u3 = append(box, "fv three", {"\\Flagged", "$Junk"});
        auto u4 = append(box, "fv four");
        auto s = open();
        ASSERT_TRUE(s);
        // The status it starts from: a listing's (the mailbox unchanged since the journal's
        // record) or a SELECT's (its changes read).
        if (how == 0) {
            ASSERT_TRUE(s->list()) << s->last_error();
        } else {
            ASSERT_TRUE(s->changes(box, {})) << s->last_error();
        }
        const auto before = test::status(*server_, "alice", box);
        // Add and remove groups, new keywords, a system flag with keywords, a message in
        // two groups, in two calls. (Dovecot gives a STORE one mod-sequence per keyword and
        // one for the system flags, and answers with the last.)
        std::vector<flag_change> first{{u1, flags({"\\Answered"}), flags({"\\Seen"})},
                                       {u2, flags({"\\Seen", "todo", "$Label1"}), {}}};
        ASSERT_TRUE(s->set_flags(box, first)) << s->last_error();
        std::vector<flag_change> second{{u3, {}, flags({"$Junk"})}, {u4, flags({"\\Flagged"}), {}}};
        if (how == 1) {
            // Another mailbox selected in between: the second call selects this one again.
            std::vector<flag_change> elsewhere{{other, flags({"\\Seen"}), {}}};
            ASSERT_TRUE(s->set_flags("FlagVouchOther", elsewhere)) << s->last_error();
        }
        ASSERT_TRUE(s->set_flags(box, second)) << s->last_error();
        auto after = s->status_after_own_changes(box);
        ASSERT_TRUE(after) << s->last_error();
        ASSERT_TRUE(*after) << "flag stores alone must be vouched for\n" << log_.text();
        expect_status(**after, box, true);
        EXPECT_GT(after->value().highestmodseq, before.highestmodseq);

        auto c = next_run_changes(box, **after);
        EXPECT_TRUE(c.messages.empty());
        EXPECT_TRUE(c.vanished.empty());
        auto again = s->status_after_own_changes(box);
        ASSERT_TRUE(again);
        EXPECT_FALSE(*again);
    }
}

// Another client's change between the status reported and the flag stores takes a
// mod-sequence among this run's: not vouched for. A change after them is above the status
// vouched for, and the next run hears of it.
TEST_F(imap_store_test, another_clients_change_around_this_runs_flag_stores) {
    struct interference {
        std::string name;
        bool before_stores;  // else after them
        bool on_ours;        // on the message this run stores, else on the other one
        // Gets the mailbox and the message it is on.
        std::function<void(const std::string& box, mail::uid target)> act;
        bool vouched;
    };
    auto flag = [](std::string op, std::string f) {
        return [op, f](const std::string& box, mail::uid target) {
            test::store_flags(*server_, "alice", box, target, op, {f});
        };
    };
    const std::vector<interference> cases{
        {"a flag set on another message", true, false, flag("+FLAGS", "\\Flagged"), false},
        {"a flag set on the message this run stores", true, true, flag("+FLAGS", "\\Flagged"),
         false},
        {"another message expunged", true, false,
         [](const std::string& box, mail::uid target) {
             test::expunge_message(*server_, "alice", box, target);
         },
         false},
        {"a message appended", true, false,
         [](const std::string& box, mail::uid) { append(box, "foreign"); }, false},
        {"a flag set on another message afterwards", false, false, flag("+FLAGS", "\\Flagged"),
         true},
        {"a flag removed from the message this run stored, afterwards", false, true,
         flag("-FLAGS", "\\Seen"), true},
    };
    int n = 0;
    for (const auto& c : cases) {
        for (bool listed : {true, false}) {
            const std::string box = "FlagRace" + std::to_string(n++);
            SCOPED_TRACE(c.name + (listed ? " (listed)" : " (selected)"));
            test::create_mailbox(*server_, "alice", box);
            auto ours = append(box, "race ours");
            auto other = append(box, "race other");
            auto s = open();
            ASSERT_TRUE(s);
            if (listed) {
                ASSERT_TRUE(s->list()) << s->last_error();
            } else {
                ASSERT_TRUE(s->changes(box, {})) << s->last_error();
            }
            const mail::uid target = c.on_ours ? ours : other;
            if (c.before_stores) c.act(box, target);
            std::vector<flag_change> ch{{ours, flags({"\\Seen"}), {}}};
            ASSERT_TRUE(s->set_flags(box, ch)) << s->last_error();
            if (!c.before_stores) c.act(box, target);
            auto after = s->status_after_own_changes(box);
            ASSERT_TRUE(after) << s->last_error();
            ASSERT_EQ(after->has_value(), c.vouched) << log_.text();
            if (!c.vouched) continue;
            // Vouched for up to this run's stores: the next run reads the later change.
            EXPECT_LT(after->value().highestmodseq,
                      test::status(*server_, "alice", box).highestmodseq);
            ASSERT_EQ(test::list_messages(*server_, "alice", box).size(), 2u);
            auto changed = next_run_changes(box, **after);
            ASSERT_EQ(changed.messages.size(), 1u);
            const auto& m = changed.messages[0];
            EXPECT_EQ(m.uid, target);
            EXPECT_EQ(m.flags.has(mail::system_flag::flagged), !c.on_ours);
            EXPECT_FALSE(m.flags.has(mail::system_flag::seen));
        }
    }
}

// Flag stores in two calls with another mailbox selected in between: another client's
// change while this one was not selected shows in the second SELECT. Not vouched for.
TEST_F(imap_store_test, a_change_while_the_mailbox_was_not_selected_is_not_vouched_for) {
    test::create_mailbox(*server_, "alice", "FlagAway");
    test::create_mailbox(*server_, "alice", "FlagAwayOther");
    auto u1 = append("FlagAway", "away one");
    auto u2 = append("FlagAway", "away two");
    auto u3 = append("FlagAway", "away three");
    auto elsewhere = append("FlagAwayOther", "away other");
    auto s = open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->list()) << s->last_error();
    std::vector<flag_change> first{{u1, flags({"\\Seen"}), {}}};
    ASSERT_TRUE(s->set_flags("FlagAway", first)) << s->last_error();
    std::vector<flag_change> away{{elsewhere, flags({"\\Seen"}), {}}};
    ASSERT_TRUE(s->set_flags("FlagAwayOther", away)) << s->last_error();
    test::store_flags(*server_, "alice", "FlagAway", u3, "+FLAGS", {"\\Flagged"});
    std::vector<flag_change> second{{u2, flags({"\\Seen"}), {}}};
    ASSERT_TRUE(s->set_flags("FlagAway", second)) << s->last_error();
    auto after = s->status_after_own_changes("FlagAway");
    ASSERT_TRUE(after) << s->last_error();
    EXPECT_FALSE(*after) << log_.text();
    // The other mailbox saw nothing but this run's store.
    auto other = s->status_after_own_changes("FlagAwayOther");
    ASSERT_TRUE(other) << s->last_error();
    EXPECT_TRUE(*other) << log_.text();
}

// A run that also appended, or expunged, in the mailbox where it stored flags: not vouched
// for from the stores.
TEST_F(imap_store_test, flag_stores_beside_this_runs_appends_or_expunges_are_not_vouched_for) {
    for (int how = 0; how < 2; ++how) {
        const std::string box = "FlagMixed" + std::to_string(how);
        SCOPED_TRACE(box);
        test::create_mailbox(*server_, "alice", box);
        auto u1 = append(box, "mixed one");
        auto u2 = append(box, "mixed two");
        auto s = open();
        ASSERT_TRUE(s);
        ASSERT_TRUE(s->changes(box, {})) << s->last_error();
        std::vector<flag_change> ch{{u1, flags({"\\Seen"}), {}}};
        ASSERT_TRUE(s->set_flags(box, ch)) << s->last_error();
        if (how == 0) {
            ASSERT_EQ(append_own(*s, box, {{"mixed own", {}}}).size(), 1u) << s->last_error();
        } else {
            std::vector<mail::uid> gone{u2};
            ASSERT_TRUE(s->expunge(box, gone)) << s->last_error();
        }
        auto after = s->status_after_own_changes(box);
        ASSERT_TRUE(after) << s->last_error();
        EXPECT_FALSE(*after);
    }
}

TEST_F(imap_store_test, append_without_uidplus_finds_the_uids_by_message_id) {
    test::create_mailbox(*server_, "alice", "NoUidplus");
    auto old = append("NoUidplus", "nouid dup", {}, "<dup@tandem.test>");
    auto s = open({"UIDPLUS"});
    ASSERT_TRUE(s);
    std::vector<outgoing_message> msgs(3);
    msgs[0].body.data = test::make_message("nouid a");
    msgs[1].body.data = test::make_message("nouid again", "Other.\r\n", "<dup@tandem.test>");
    msgs[2].body.data = "From: x@tandem.test\r\nSubject: none\r\n\r\nNo id.\r\n";
    auto uids = s->append("NoUidplus", std::move(msgs));
    ASSERT_TRUE(uids) << s->last_error();
    auto listed = test::list_messages(*server_, "alice", "NoUidplus");
    ASSERT_EQ(listed.size(), 4u);
    ASSERT_EQ(listed[0].uid, old);
    // The old message with the same Message-ID sits below the UIDNEXT of before: not taken.
    EXPECT_EQ(*uids, (std::vector<mail::uid>{listed[1].uid, listed[2].uid, 0}));
}

TEST_F(imap_store_test, set_flags_adds_and_removes_without_clobbering_a_concurrent_flag) {
    test::create_mailbox(*server_, "alice", "Flags");
    auto u1 = append("Flags", "flags one", {"\\Seen"});
    auto u2 = append("Flags", "flags two", {"\\Seen", "\\Flagged"});
    auto u3 = append("Flags", "flags three");
    auto s = open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->changes("Flags", {}));
    // Another client sets a keyword after our listing (scenario S18).
    test::store_flags(*server_, "alice", "Flags", u1, "+FLAGS", {"$Important"});
    std::vector<flag_change> changes{
        {u1, flags({"\\Answered"}), flags({"\\Seen"})},
        {u2, flags({"\\Answered"}), flags({"\\Seen", "\\Flagged"})},
        {u3, flags({"$Label1", "\\Seen"}), {}},
    };
    ASSERT_TRUE(s->set_flags("Flags", changes)) << s->last_error();
    auto listed = test::list_messages(*server_, "alice", "Flags");
    ASSERT_EQ(listed.size(), 3u);
    EXPECT_EQ(listed[0].flags, sorted({"$Important", "\\Answered"}));
    EXPECT_EQ(listed[1].flags, std::vector<std::string>{"\\Answered"});
    EXPECT_EQ(listed[2].flags, sorted({"$Label1", "\\Seen"}));
}

TEST_F(imap_store_test, move_returns_new_uids_in_order_and_uploads_nothing) {
    for (bool with_move : {true, false}) {
        SCOPED_TRACE(with_move ? "MOVE" : "COPY + UID EXPUNGE");
        std::string from = with_move ? "MoveFrom" : "CopyFrom";
        std::string to = with_move ? "MoveTo" : "CopyTo";
        test::create_mailbox(*server_, "alice", from);
        test::create_mailbox(*server_, "alice", to);
        append(to, "already there " + to);  // the destination's UIDs differ from the source's
        auto u1 = append(from, "move one " + from);
        auto u2 = append(from, "move two " + from);
        auto u3 = append(from, "move stays " + from);
        auto saves = server_->count_log_events("save", "alice");
        auto s = with_move ? open() : open({"MOVE"});
        ASSERT_TRUE(s);
        auto before = s->changes(from, {});
        ASSERT_TRUE(before) << s->last_error();
        ASSERT_EQ(before->messages.size(), 3u);
        auto r = s->move(from, std::vector<mail::uid>{u2, u1}, to);
        ASSERT_TRUE(r) << s->last_error();
        ASSERT_EQ(r->size(), 2u);
        EXPECT_EQ(test::fetch_message(*server_, "alice", to, (*r)[0]),
                  test::make_message("move two " + from));
        EXPECT_EQ(test::fetch_message(*server_, "alice", to, (*r)[1]),
                  test::make_message("move one " + from));
        auto left = test::list_messages(*server_, "alice", from);
        ASSERT_EQ(left.size(), 1u);
        EXPECT_EQ(left[0].uid, u3);
        EXPECT_EQ(server_->count_log_events("save", "alice"), saves);
        // The identity stays with the message across the move, and so does its content key.
        auto after = s->changes(to, {});
        ASSERT_TRUE(after) << s->last_error();
        auto* moved = find(after->messages, (*r)[1]);
        ASSERT_TRUE(moved);
        EXPECT_EQ(moved->identity, before->messages[0].identity);
        EXPECT_EQ(moved->content_key, before->messages[0].content_key);
    }
}

TEST_F(imap_store_test, expunge_removes_only_the_given_uids) {
    test::create_mailbox(*server_, "alice", "Expunge");
    auto u1 = append("Expunge", "expunge one");
    auto u2 = append("Expunge", "expunge two");
    auto u3 = append("Expunge", "expunge three");
    test::store_flags(*server_, "alice", "Expunge", u3, "+FLAGS", {"\\Deleted"});  // someone else's
    auto s = open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->expunge("Expunge", std::vector<mail::uid>{u1})) << s->last_error();
    auto listed = test::list_messages(*server_, "alice", "Expunge");
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].uid, u2);
    EXPECT_EQ(listed[1].uid, u3);
    EXPECT_EQ(listed[1].flags, std::vector<std::string>{"\\Deleted"});

    // Without UIDPLUS: refused while another \Deleted message is there; ours keeps \Deleted.
    auto plain = open({"UIDPLUS"});
    ASSERT_TRUE(plain);
    auto r = plain->expunge("Expunge", std::vector<mail::uid>{u2});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::missing_capability);
    EXPECT_NE(plain->last_error().find("UIDPLUS"), std::string::npos) << plain->last_error();
    EXPECT_NE(plain->last_error().find("UID " + std::to_string(u3)), std::string::npos)
        << plain->last_error();
    listed = test::list_messages(*server_, "alice", "Expunge");
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].flags, std::vector<std::string>{"\\Deleted"});

    // Once no one else's message carries \Deleted, the plain EXPUNGE goes ahead.
    test::store_flags(*server_, "alice", "Expunge", u3, "-FLAGS", {"\\Deleted"});
    ASSERT_TRUE(plain->expunge("Expunge", std::vector<mail::uid>{u2})) << plain->last_error();
    listed = test::list_messages(*server_, "alice", "Expunge");
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].uid, u3);
}

TEST_F(imap_store_test, create_and_remove_mailboxes) {
    auto s = open();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->create("Projects/2024")) << s->last_error();
    ASSERT_TRUE(s->create("Café")) << s->last_error();
    auto names = test::list_mailboxes(*server_, "alice");
    EXPECT_NE(std::find(names.begin(), names.end(), "Projects/2024"), names.end());
    EXPECT_NE(std::find(names.begin(), names.end(), "Caf&AOk-"), names.end());
    auto twice = s->create("Café");
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error(), errc::command_failed);
    EXPECT_EQ(s->last_error().rfind("CREATE \"Café\" failed: NO ", 0), 0u) << s->last_error();

    // Removing the selected mailbox leaves the session able to select the next one.
    append("Caf&AOk-", "cafe one");
    ASSERT_TRUE(s->changes("Café", {}));
    ASSERT_TRUE(s->remove("Café")) << s->last_error();
    EXPECT_TRUE(s->session().selected().empty()) << "UNSELECT, not a SELECT of INBOX";
    ASSERT_TRUE(s->remove("Projects/2024")) << s->last_error();
    names = test::list_mailboxes(*server_, "alice");
    EXPECT_EQ(std::find(names.begin(), names.end(), "Projects/2024"), names.end());
    EXPECT_EQ(std::find(names.begin(), names.end(), "Caf&AOk-"), names.end());
    test::create_mailbox(*server_, "alice", "AfterRemove");
    append("AfterRemove", "after one");
    auto c = s->changes("AfterRemove", {});
    ASSERT_TRUE(c) << s->last_error();
    EXPECT_EQ(c->status.messages, 1u);
    EXPECT_EQ(c->messages.size(), 1u);
}

TEST_F(imap_store_test, last_error_of_a_failed_append_names_command_mailbox_and_answer) {
    auto s = open();
    ASSERT_TRUE(s);
    std::vector<outgoing_message> msgs(1);
    msgs[0].body.data = test::make_message("to nowhere");
    auto r = s->append("Nowhere", std::move(msgs));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::command_failed);
    EXPECT_EQ(s->last_error().rfind("APPEND to \"Nowhere\" failed: NO [TRYCREATE] ", 0), 0u)
        << s->last_error();
    auto c = s->changes("Nowhere", {});
    ASSERT_FALSE(c);
    EXPECT_EQ(s->last_error().rfind("SELECT \"Nowhere\" failed: NO ", 0), 0u) << s->last_error();
}

// What Dovecot cannot show: a name with '/' inside a level (skipped with a warning), and
// that without LIST-STATUS every STATUS is on the wire before the first answer.
TEST_F(imap_store_test, list_skips_unrepresentable_names_and_pipelines_status) {
    using fis = test::fake_imap_server;
    fis server({
        fis::send("* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+] fake"),
        fis::expect(R"(T1 LIST "" \*)"),
        fis::send(R"(* LIST () "." INBOX)"),
        fis::send(R"(* LIST () "." "a/b")"),
        fis::send(R"(* LIST () "." Lists.x)"),
        fis::send(R"(* LIST (\Noselect) "." Shelf)"),
        fis::send("T1 OK LIST done"),
        fis::expect(R"(T2 STATUS INBOX \(MESSAGES UIDNEXT UIDVALIDITY\))"),
        fis::expect(R"(T3 STATUS Lists.x \(MESSAGES UIDNEXT UIDVALIDITY\))"),
        fis::send("* STATUS INBOX (MESSAGES 2 UIDNEXT 5 UIDVALIDITY 7)"),
        fis::send("T2 OK STATUS done"),
        fis::send("* STATUS Lists.x (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 9)"),
        fis::send("T3 OK STATUS done"),
        fis::expect(R"(T4 STATUS Lists.x \(MESSAGES UIDNEXT UIDVALIDITY\))"),
        fis::send("T4 NO [NONEXISTENT] gone"),
    });
    client::endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = server.port();
    ep.tls = net::tls_mode::none;
    ep.read_timeout = 10s;
    std::string why;
    auto s = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_TRUE(s) << why;
    auto l = (*s)->list();
    ASSERT_TRUE(l) << (*s)->last_error();
    ASSERT_EQ(l->size(), 3u);
    EXPECT_EQ((*l)[0].name, "INBOX");
    ASSERT_TRUE((*l)[0].status);
    EXPECT_EQ((*l)[0].status->messages, 2u);
    EXPECT_EQ((*l)[0].status->uidnext, 5u);
    EXPECT_EQ((*l)[0].status->uidvalidity, 7u);
    EXPECT_EQ((*l)[0].status->highestmodseq, 0u);
    EXPECT_FALSE((*l)[0].status->tracks_flag_changes);  // no CONDSTORE
    EXPECT_EQ((*l)[1].name, "Lists/x");
    ASSERT_TRUE((*l)[1].status);
    EXPECT_EQ((*l)[1].status->uidvalidity, 9u);
    EXPECT_EQ((*l)[2].name, "Shelf");
    EXPECT_FALSE((*l)[2].selectable);
    EXPECT_FALSE((*l)[2].status);
    EXPECT_TRUE(log_.contains("\"a/b\" skipped")) << "no warning for a/b";
    auto st = (*s)->status("Lists/x");
    ASSERT_FALSE(st);
    EXPECT_EQ((*s)->last_error(), "STATUS \"Lists/x\" failed: NO [NONEXISTENT] gone");
    EXPECT_TRUE(server.finished());
}

// QRESYNC with updates that come during the UID FETCH of new mail: an unsolicited VANISHED
// and a later FETCH of a changed message are folded in; the status is the SELECT's (RFC 7162
// 6), not raised by the MODSEQ of a later FETCH; unknown UIDs in VANISHED (EARLIER) are left
// out; `10:*` answering with a message below 10 adds nothing.
TEST_F(imap_store_test, qresync_changes_fold_updates_that_arrive_meanwhile) {
    using fis = test::fake_imap_server;
    const std::string header = "Message-ID: <n@x>\r\n\r\n";
    fis server({
        fis::send("* PREAUTH [CAPABILITY IMAP4rev1 ENABLE CONDSTORE QRESYNC LITERAL+] fake"),
        fis::expect(R"(T1 ENABLE QRESYNC)"),
        fis::send("* ENABLED QRESYNC"),
        fis::send("T1 OK enabled"),
        fis::expect(R"(T2 LIST "" "")"),
        fis::send(R"(* LIST (\Noselect) "/" "")"),
        fis::send("T2 OK"),
        fis::expect(R"(T3 SELECT INBOX \(QRESYNC \(7 100 4:6\)\))"),
        fis::send("* 4 EXISTS"),
        fis::send("* OK [UIDVALIDITY 7] ok"),
        fis::send("* OK [UIDNEXT 12] ok"),
        fis::send("* OK [HIGHESTMODSEQ 120] ok"),
        fis::send("* VANISHED (EARLIER) 2,4"),
        fis::send(R"(* 2 FETCH (UID 6 FLAGS (\Flagged) MODSEQ (110)))"),
        fis::send("T3 OK [READ-WRITE] selected"),
        fis::expect(R"(T4 UID FETCH 10:\* \(UID FLAGS RFC822.SIZE INTERNALDATE MODSEQ X-GUID )"
                    R"(BODY.PEEK\[HEADER.FIELDS \(MESSAGE-ID DATE FROM TO CC SUBJECT\)\]\))"),
        fis::send("* VANISHED 5"),
        fis::send_raw("* 3 FETCH (UID 10 FLAGS (\\Seen) RFC822.SIZE 42 INTERNALDATE "
                      "\"05-Mar-2024 10:20:30 +0100\" MODSEQ (115) X-GUID abc "
                      "BODY[HEADER.FIELDS (MESSAGE-ID)] {" +
                      std::to_string(header.size()) + "}\r\n" + header + ")\r\n"),
        fis::send(R"(* 1 FETCH (UID 6 FLAGS (\Flagged \Seen) MODSEQ (121)))"),
        fis::send_raw("* 2 FETCH (UID 9 FLAGS () RFC822.SIZE 7 INTERNALDATE "
                      "\"05-Mar-2024 10:20:30 +0100\" MODSEQ (99) X-GUID old "
                      "BODY[HEADER.FIELDS (MESSAGE-ID)] {2}\r\n\r\n)\r\n"),
        fis::send("T4 OK fetched"),
    });
    client::endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = server.port();
    ep.tls = net::tls_mode::none;
    ep.read_timeout = 10s;
    ep.id.clear();
    std::string why;
    auto s = imap_store::connect(ep, log_.logger(), &why);
    ASSERT_TRUE(s) << why;
    known_state known;
    known.status.uidvalidity = 7;
    known.status.uidnext = 10;
    known.status.highestmodseq = 100;
    known.status.messages = 3;
    known.uids = {4, 5, 6};
    auto c = (*s)->changes("INBOX", known);
    ASSERT_TRUE(c) << (*s)->last_error();
    EXPECT_TRUE(server.finished());
    EXPECT_FALSE(c->complete);
    EXPECT_FALSE(c->uidvalidity_changed);
    EXPECT_EQ(c->status.uidvalidity, 7u);
    EXPECT_EQ(c->status.uidnext, 12u);
    EXPECT_EQ(c->status.highestmodseq, 120u);
    EXPECT_EQ(c->status.messages, 4u);
    EXPECT_EQ(c->vanished, (std::vector<mail::uid>{4, 5}));
    ASSERT_EQ(uids_of(c->messages), (std::vector<mail::uid>{6, 10}));
    EXPECT_EQ(c->messages[0].flags, flags({"\\Flagged", "\\Seen"}));
    EXPECT_EQ(c->messages[1].flags, flags({"\\Seen"}));
    EXPECT_EQ(c->messages[1].size, 42u);
    EXPECT_EQ(c->messages[1].identity, "abc");
    EXPECT_EQ(c->messages[1].internal_date, 1709630430);
    EXPECT_TRUE(c->messages[1].content_key.starts_with("<n@x>/42/")) << c->messages[1].content_key;
}

// On Dovecot, an INBOX that held imap_store_options::select_inbox_first messages at the
// last run is selected before the LIST (imap_store::list_ahead()), and the LIST's status of
// it, which comes from that selection, is kept. Below that, or with INBOX unknown, the LIST
// goes first and nothing is selected.
TEST_F(imap_store_test, a_large_inbox_is_selected_before_the_list) {
    const std::string user = "inboxfirst";
    for (int i = 0; i < 3; ++i)
        test::append_message(*server_, user, "INBOX", test::make_message("m" + std::to_string(i)));
    imap_store_options o;
    o.select_inbox_first = 3;
    for (std::uint32_t last : {3u, 2u, 0u}) {
        SCOPED_TRACE("INBOX held " + std::to_string(last));
        log_.clear();
        auto s = open_traced_as(user, o);
        ASSERT_TRUE(s);
        std::vector<known_mailbox> known;
        if (last) known.push_back({"INBOX", last});
        ASSERT_TRUE(s->list_ahead(known));
        auto listed = s->list();
        ASSERT_TRUE(listed) << s->last_error();
        auto inbox = std::find_if(listed->begin(), listed->end(),
                                  [](const mailbox_entry& e) { return e.name == "INBOX"; });
        ASSERT_NE(inbox, listed->end());
        ASSERT_TRUE(inbox->status) << "the status of INBOX is kept\n" << log_.text();
        const auto outside = test::status(*server_, user, "INBOX");
        EXPECT_EQ(inbox->status->messages, 3u);
        EXPECT_EQ(inbox->status->uidnext, outside.uidnext);
        EXPECT_EQ(inbox->status->uidvalidity, outside.uidvalidity);
        EXPECT_EQ(inbox->status->highestmodseq, outside.highestmodseq);
        const auto select = first_sent("SELECT INBOX");
        const auto list = first_sent("LIST ");
        ASSERT_NE(list, std::string::npos) << log_.text();
        if (last == 3) {
            ASSERT_NE(select, std::string::npos) << log_.text();
            EXPECT_LT(select, list) << log_.text();
            EXPECT_EQ(s->session().selected(), "INBOX");
        } else {
            EXPECT_EQ(select, std::string::npos) << log_.text();
            EXPECT_TRUE(s->session().selected().empty());
        }
    }
}

// The changes of an INBOX selected before the LIST come in that selection: one SELECT, then
// UID FETCH (CHANGEDSINCE n VANISHED). What another client did before the SELECT is in the
// answer; what it did after is there or in the next run's, never lost between the two. A
// write there needs no other SELECT.
TEST_F(imap_store_test, the_changes_of_an_inbox_selected_before_the_list_come_in_that_selection) {
    const std::string user = "inboxchanges";
    imap_store_options o;
    o.select_inbox_first = 4;
    known_state known;
    const auto u = fill_inbox(user, 4, known);
    ASSERT_FALSE(HasFailure());
    test::store_flags(*server_, user, "INBOX", u[0], "+FLAGS", {"\\Flagged"});
    test::expunge_message(*server_, user, "INBOX", u[1]);
    const auto u5 = test::append_message(*server_, user, "INBOX", test::make_message("m4"));
    log_.clear();
    auto s = open_traced_as(user, o);
    ASSERT_TRUE(s);
    const std::vector<known_mailbox> last{{"INBOX", 4}};
    ASSERT_TRUE(s->list_ahead(last));
    ASSERT_TRUE(s->list()) << s->last_error();
    // After the SELECT.
    test::store_flags(*server_, user, "INBOX", u[3], "+FLAGS", {"\\Seen"});
    test::expunge_message(*server_, user, "INBOX", u[2]);

    auto c = s->changes("INBOX", known);
    ASSERT_TRUE(c) << s->last_error();
    EXPECT_EQ(sent_lines("SELECT").size(), 1u) << log_.text();
    EXPECT_EQ(
        sent_lines("(CHANGEDSINCE " + std::to_string(known.status.highestmodseq) + " VANISHED)")
            .size(),
        1u)
        << log_.text();
    auto gone = [](const mailbox_changes& ch, mail::uid x) {
        return std::find(ch.vanished.begin(), ch.vanished.end(), x) != ch.vanished.end();
    };
    EXPECT_TRUE(gone(*c, u[1])) << log_.text();
    auto* flagged = find(c->messages, u[0]);
    ASSERT_TRUE(flagged) << log_.text();
    EXPECT_TRUE(flagged->flags.has(mail::system_flag::flagged));
    auto* added = find(c->messages, u5);
    ASSERT_TRUE(added) << log_.text();
    EXPECT_GT(added->size, 0u);

    // The next run, from what this one returned, hears of the rest if this one did not.
    known_state then = known_from(*c);
    then.uids.clear();
    for (auto x : known.uids)
        if (!gone(*c, x)) then.uids.push_back(x);
    then.uids.push_back(u5);
    auto next = next_run_changes_as(user, "INBOX", then, o);
    EXPECT_TRUE(gone(*c, u[2]) || gone(next, u[2])) << log_.text();
    auto seen = [&](const mailbox_changes& ch) {
        auto* m = find(ch.messages, u[3]);
        return m && m->flags.has(mail::system_flag::seen);
    };
    EXPECT_TRUE(seen(*c) || seen(next)) << log_.text();

    // A write in the same selection (the next run's store logged its own SELECT).
    const auto selects = sent_lines("SELECT").size();
    const std::vector<flag_change> change{{u5, flags({"\\Answered"}), {}}};
    ASSERT_TRUE(s->set_flags("INBOX", change)) << s->last_error();
    EXPECT_EQ(sent_lines("SELECT").size(), selects) << log_.text();
    auto after = test::list_messages(*server_, user, "INBOX");
    auto it = std::find_if(after.begin(), after.end(), [&](auto& m) { return m.uid == u5; });
    ASSERT_NE(it, after.end());
    EXPECT_EQ(it->flags, (std::vector<std::string>{"\\Answered"}));
}

// An INBOX emptied since the last run, selected before the LIST: every message it held is
// reported gone, though no FETCH answers there.
TEST_F(imap_store_test, an_inbox_emptied_and_selected_before_the_list_reports_every_message_gone) {
    const std::string user = "inboxemptied";
    imap_store_options o;
    o.select_inbox_first = 3;
    known_state known;
    const auto u = fill_inbox(user, 3, known);
    ASSERT_FALSE(HasFailure());
    for (auto x : u) test::expunge_message(*server_, user, "INBOX", x);
    auto s = open_traced_as(user, o);
    ASSERT_TRUE(s);
    const std::vector<known_mailbox> last{{"INBOX", 3}};
    ASSERT_TRUE(s->list_ahead(last));
    ASSERT_TRUE(s->list()) << s->last_error();
    auto c = s->changes("INBOX", known);
    ASSERT_TRUE(c) << s->last_error();
    EXPECT_EQ(c->status.messages, 0u);
    EXPECT_TRUE(c->messages.empty());
    auto gone = c->vanished;
    std::sort(gone.begin(), gone.end());
    EXPECT_EQ(gone, (std::vector<mail::uid>(u.begin(), u.end()))) << log_.text();
}

}  // namespace
}  // namespace tandem::store
