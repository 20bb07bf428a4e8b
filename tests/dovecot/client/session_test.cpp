// SPDX-License-Identifier: MIT
// The IMAP session against a real Dovecot: over implicit TLS, STARTTLS and the preauth
// tunnel, each with and without COMPRESS=DEFLATE.
#include "tandem/client/session.hpp"

#include "tandem/util/base64.hpp"

#include "support/dovecot.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <thread>

namespace tandem::client {
namespace {

using namespace std::chrono_literals;
using imap::uid_set;

std::string message_text(std::string_view subject, std::size_t body_bytes = 0) {
    std::string m = "From: a@example.org\r\nTo: b@example.org\r\nSubject: ";
    m += subject;
    m += "\r\nMessage-ID: <" + std::string(subject) + "@tandem.test>\r\n\r\n";
    std::string line = "The quick brown fox jumps over the lazy dog 0123456789.\r\n";
    if (body_bytes == 0) return m + "Hello.\r\n";
    while (m.size() + line.size() <= body_bytes) m += line;
    return m;
}

mail::flag_set flags_of(std::initializer_list<std::string_view> atoms) {
    mail::flag_set f;
    for (auto a : atoms) f.add_imap(a);
    return f;
}

// Collects a streamed body and counts the pieces it came in.
struct collecting_sink : imap::body_sink {
    std::string* out;
    std::size_t* pieces;
    collecting_sink(std::string* o, std::size_t* p) : out(o), pieces(p) {}
    void write(std::span<const char> piece) override {
        out->append(piece.data(), piece.size());
        ++*pieces;
    }
    void finish() override {}
};

struct mode {
    const char* name;
    enum { tls, starttls, tunnel } how;
    bool compress;
};

class session_test : public ::testing::TestWithParam<mode> {
  protected:
    static void SetUpTestSuite() { server_ = new test::dovecot(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    endpoint make_endpoint(const std::string& user = "alice") const {
        endpoint ep;
        ep.host = "localhost";
        ep.user = user;
        ep.secret = server_->password(user);
        ep.ca_file = server_->ca_file().string();
        ep.connect_timeout = 10s;
        ep.read_timeout = 30s;
        ep.compress = GetParam().compress ? compress_mode::yes : compress_mode::no;
        switch (GetParam().how) {
            case mode::tls:
                ep.port = server_->imaps_port();
                ep.tls = net::tls_mode::implicit;
                break;
            case mode::starttls:
                ep.port = server_->imap_port();
                ep.tls = net::tls_mode::starttls;
                break;
            case mode::tunnel:
                ep.tunnel = server_->tunnel_argv(user);
                break;
        }
        return ep;
    }

    std::unique_ptr<session> open(const std::string& user = "alice") const {
        connect_failure why;
        auto s = session::connect(make_endpoint(user), &why);
        EXPECT_TRUE(s) << s.error().message() << ": " << why.message;
        if (!s) return nullptr;
        return std::move(*s);
    }

    // An endpoint whose trace lines ("C: ...", "S: ...", "I: ...") are added to `trace`.
    endpoint traced_endpoint(std::mutex& m, std::string& trace) const {
        auto ep = make_endpoint();
        ep.trace = [&m, &trace](trace_direction d, std::string_view line) {
            std::lock_guard lock(m);
            trace += d == trace_direction::client   ? "C: "
                     : d == trace_direction::server ? "S: "
                                                    : "I: ";
            trace += line;
            trace += "\n";
        };
        return ep;
    }

    // A mailbox of the test's own, so that tests sharing the server do not meet.
    std::string fresh_mailbox(session& s) const {
        std::string name = std::string("box-") + GetParam().name + "-" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name();
        for (auto& c : name)
            if (c == '/') c = '-';
        (void)s.delete_mailbox(name);
        auto c = s.create(name);
        EXPECT_TRUE(c) << s.last_error().describe();
        return name;
    }

    static test::dovecot* server_;
};

test::dovecot* session_test::server_ = nullptr;

TEST_P(session_test, logs_in_with_the_expected_security_and_extensions) {
    auto s = open();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->encrypted(), GetParam().how != mode::tunnel);
    EXPECT_EQ(s->compressed(), GetParam().compress);
    EXPECT_TRUE(s->has("IMAP4rev1"));
    EXPECT_TRUE(s->has("UIDPLUS"));
    EXPECT_TRUE(s->qresync_enabled());
    EXPECT_TRUE(s->condstore_enabled());
    auto n = s->noop();
    ASSERT_TRUE(n);
    EXPECT_EQ(n->status, imap::condition::ok);
    auto bye = s->logout();
    EXPECT_TRUE(bye) << bye.error().message();
}

// What compress_mode::automatic decides on: the kernel's round trip of a TCP connection
// (loopback here: well under the 1 ms of a LAN), none for a tunnel.
TEST_P(session_test, the_round_trip_is_known_over_tcp_only) {
    auto s = open();
    ASSERT_TRUE(s);
    auto rtt = s->round_trip();
    if (GetParam().how == mode::tunnel) {
        EXPECT_FALSE(rtt);
    } else {
        ASSERT_TRUE(rtt);
        EXPECT_LT(*rtt, std::chrono::seconds(1));
    }
}

// compress_mode::automatic over a link assumed far (the benchmark's delaying proxy): the
// earlier runs' rates decide, and the assumed round trip is the one reported.
TEST_P(session_test, automatic_compress_follows_the_measured_rates_on_a_far_link) {
    if (GetParam().how == mode::tunnel) return;  // a tunnel never compresses by itself
    struct {
        measured_rates measured;
        bool compressed;
    } cases[] = {
        {{}, false},                       // nothing measured yet: without first
        {{40'000'000, 0}, true},           // only without: try with
        {{0, 9'000'000}, false},           // only with: try without
        {{40'000'000, 9'000'000}, false},  // a fast link: deflate is the bottleneck
        {{2'000'000, 5'000'000}, true},    // a slow one
    };
    for (const auto& c : cases) {
        auto ep = make_endpoint();
        ep.compress = compress_mode::automatic;
        ep.assumed_round_trip = std::chrono::milliseconds(20);
        ep.measured = c.measured;
        auto s = session::connect(ep);
        ASSERT_TRUE(s) << s.error().message();
        EXPECT_EQ((*s)->compressed(), c.compressed)
            << c.measured.plain << " / " << c.measured.compressed;
        EXPECT_EQ((*s)->round_trip(), std::chrono::microseconds(20'000));
        auto n = (*s)->noop();
        EXPECT_TRUE(n) << n.error().message();
    }
    // Without the assumption, the same evidence on loopback: never.
    auto ep = make_endpoint();
    ep.compress = compress_mode::automatic;
    ep.measured = {2'000'000, 5'000'000};
    auto s = session::connect(ep);
    ASSERT_TRUE(s);
    EXPECT_FALSE((*s)->compressed());
}

// Two connections end in one round trip: both LOGOUTs go out, then each answer is read,
// and no second LOGOUT is sent.
TEST_P(session_test, logout_ahead_sends_it_and_logout_then_reads_the_answer) {
    std::mutex m;
    std::string trace1, trace2;
    auto s1 = session::connect(traced_endpoint(m, trace1));
    auto s2 = session::connect(traced_endpoint(m, trace2));
    ASSERT_TRUE(s1 && s2);
    ASSERT_TRUE((*s1)->logout_ahead());
    ASSERT_TRUE((*s2)->logout_ahead());
    ASSERT_TRUE((*s1)->logout_ahead());  // once is enough
    for (auto* s : {&*s1, &*s2}) {
        auto bye = (*s)->logout();
        ASSERT_TRUE(bye) << bye.error().message();
        EXPECT_EQ(bye->status, imap::condition::ok);
        EXPECT_FALSE((*s)->usable());
    }
    std::lock_guard lock(m);
    for (const auto* t : {&trace1, &trace2}) {
        std::size_t logouts = 0;
        for (std::size_t at = 0; (at = t->find(" LOGOUT\n", at)) != std::string::npos; ++at)
            ++logouts;
        EXPECT_EQ(logouts, 1u) << *t;
        EXPECT_NE(t->find("S: * BYE"), std::string::npos) << *t;
    }
}

TEST_P(session_test, wrong_password_is_an_authentication_error_with_the_server_text) {
    if (GetParam().how == mode::tunnel) return;  // a preauth tunnel has no password
    auto ep = make_endpoint();
    ep.secret = "not-the-password";
    connect_failure why;
    auto s = session::connect(ep, &why);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error(), errc::authentication_failed);
    EXPECT_NE(why.message.find("Authentication failed"), std::string::npos) << why.message;
}

TEST_P(session_test, append_then_fetch_gives_back_bytes_flags_and_internaldate) {
    auto s = open();
    ASSERT_TRUE(s);
    std::string box = fresh_mailbox(*s);
    std::vector<append_item> items;
    std::vector<std::string> bodies = {message_text("one"), message_text("two", 3000),
                                       message_text("three", 70000)};
    imap::date_time when{1700000000, 120};
    for (auto& b : bodies)
        items.push_back(
            {flags_of({"\\Seen", "$Forwarded"}), when, imap::literal_data::from_memory(b)});
    auto a = s->append(box, items);
    ASSERT_TRUE(a) << s->last_error().describe();
    ASSERT_EQ(a->uids.size(), 3u);
    EXPECT_NE(a->uidvalidity, 0u);
    EXPECT_LT(a->uids[0], a->uids[1]);
    EXPECT_LT(a->uids[1], a->uids[2]);

    auto sel = s->select(box);
    ASSERT_TRUE(sel);
    EXPECT_EQ(sel->exists, 3u);
    EXPECT_EQ(sel->uidvalidity, a->uidvalidity);
    EXPECT_GT(sel->highestmodseq, 0u);

    std::map<mail::uid, imap::fetch_data> got;
    auto f = s->uid_fetch(uid_set{{1, uid_set::star}},
                          {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "BODY.PEEK[]"},
                          [&](imap::fetch_data&& d) { got[*d.uid] = std::move(d); });
    ASSERT_TRUE(f) << s->last_error().describe();
    ASSERT_EQ(got.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        auto& d = got.at(a->uids[i]);
        ASSERT_EQ(d.bodies.size(), 1u);
        EXPECT_EQ(d.bodies[0].data, bodies[i]);
        EXPECT_EQ(d.rfc822_size.value_or(0), bodies[i].size());
        EXPECT_EQ(d.internaldate.value_or(0), when.seconds);
        auto fl = d.flag_set();
        EXPECT_TRUE(fl.has(mail::system_flag::seen));
        EXPECT_TRUE(fl.has_keyword("$Forwarded"));
        EXPECT_FALSE(fl.has(mail::system_flag::flagged));
    }
    EXPECT_GT(f->max_modseq, 0u);
}

TEST_P(session_test, an_8_mb_message_streams_to_the_sink_in_pieces) {
    auto s = open();
    ASSERT_TRUE(s);
    std::string box = fresh_mailbox(*s);
    std::string big = message_text("big", 8 * 1024 * 1024);
    auto a = s->append(
        box, {{flags_of({"\\Flagged"}), std::nullopt, imap::literal_data::from_memory(big)}});
    ASSERT_TRUE(a) << s->last_error().describe();
    ASSERT_EQ(a->uids.size(), 1u);
    ASSERT_TRUE(s->select(box));
    std::string streamed;
    std::size_t pieces = 0;
    std::size_t messages = 0;
    auto f = s->uid_fetch(
        uid_set{{a->uids[0], a->uids[0]}}, {"FLAGS", "BODY.PEEK[]"},
        [&](imap::fetch_data&& d) {
            ++messages;
            ASSERT_EQ(d.bodies.size(), 1u);
            EXPECT_TRUE(d.bodies[0].streamed);
            EXPECT_TRUE(d.bodies[0].data.empty());
            EXPECT_TRUE(d.flag_set().has(mail::system_flag::flagged));
        },
        {},
        [&](const imap::body_context& ctx) -> std::unique_ptr<imap::body_sink> {
            EXPECT_EQ(ctx.size, big.size());
            return std::make_unique<collecting_sink>(&streamed, &pieces);
        });
    ASSERT_TRUE(f) << s->last_error().describe();
    EXPECT_EQ(messages, 1u);
    EXPECT_EQ(streamed.size(), big.size());
    EXPECT_TRUE(streamed == big);
    EXPECT_GT(pieces, 4u);
}

TEST_P(session_test, a_store_shows_up_with_its_modseq_on_a_qresync_select_elsewhere) {
    auto s = open();
    auto other = open();
    ASSERT_TRUE(s && other);
    std::string box = fresh_mailbox(*s);
    auto a =
        s->append(box, {{{}, std::nullopt, imap::literal_data::from_memory(message_text("m1"))},
                        {{}, std::nullopt, imap::literal_data::from_memory(message_text("m2"))}});
    ASSERT_TRUE(a);
    auto first = other->select(box);
    ASSERT_TRUE(first);
    ASSERT_TRUE(other->select("INBOX"));  // leave the mailbox, remember its state

    ASSERT_TRUE(s->select(box));
    auto st = s->uid_store(uid_set{{a->uids[1], a->uids[1]}}, imap::cmd::store_mode::add,
                           flags_of({"\\Answered"}), first->highestmodseq);
    ASSERT_TRUE(st) << s->last_error().describe();
    EXPECT_TRUE(st->modified.empty());
    ASSERT_EQ(st->fetched.size(), 1u);
    ASSERT_TRUE(st->fetched[0].modseq);
    mail::modseq new_modseq = *st->fetched[0].modseq;
    EXPECT_GT(new_modseq, first->highestmodseq);

    select_options opts;
    opts.qresync = select_options::qresync_state{first->uidvalidity, first->highestmodseq,
                                                 uid_set{{a->uids[0], a->uids[1]}}};
    auto again = other->select(box, opts);
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->qresync);
    EXPECT_EQ(again->highestmodseq, new_modseq);
    ASSERT_EQ(again->changed.size(), 1u);
    EXPECT_EQ(again->changed[0].uid.value_or(0), a->uids[1]);
    EXPECT_EQ(again->changed[0].modseq.value_or(0), new_modseq);
    EXPECT_TRUE(again->changed[0].flag_set().has(mail::system_flag::answered));
    EXPECT_TRUE(again->vanished.empty());

    // UNCHANGEDSINCE with the old modseq now fails for that message: [MODIFIED].
    auto stale = s->uid_store(uid_set{{a->uids[1], a->uids[1]}}, imap::cmd::store_mode::add,
                              flags_of({"\\Flagged"}), first->highestmodseq);
    ASSERT_TRUE(stale) << s->last_error().describe();
    EXPECT_TRUE(stale->modified.contains(a->uids[1]));
}

TEST_P(session_test, an_expunge_shows_up_as_vanished) {
    auto s = open();
    auto other = open();
    ASSERT_TRUE(s && other);
    std::string box = fresh_mailbox(*s);
    std::vector<append_item> items;
    for (int i = 0; i < 4; ++i)
        items.push_back({{},
                         std::nullopt,
                         imap::literal_data::from_memory(message_text("v" + std::to_string(i)))});
    auto a = s->append(box, items);
    ASSERT_TRUE(a);
    auto before = other->select(box);  // stays selected: it sees the expunge live
    ASSERT_TRUE(before);
    ASSERT_TRUE(s->select(box));
    uid_set gone{{a->uids[1], a->uids[2]}};
    ASSERT_TRUE(s->uid_store(gone, imap::cmd::store_mode::add, flags_of({"\\Deleted"})));
    ASSERT_TRUE(s->uid_expunge(gone));

    // Live, on the connection that has the mailbox selected.
    ASSERT_TRUE(other->noop());
    uid_set live;
    for (auto& u : other->take_unsolicited()) {
        EXPECT_EQ(u.mailbox, box);
        if (auto* v = std::get_if<imap::vanished_data>(&u.data)) {
            EXPECT_FALSE(v->earlier);
            live |= v->uids;
        }
    }
    EXPECT_EQ(live, gone);

    // Later, from a QRESYNC SELECT with the old state.
    auto third = open();
    ASSERT_TRUE(third);
    select_options opts;
    opts.qresync = select_options::qresync_state{before->uidvalidity, before->highestmodseq, {}};
    auto again = third->select(box, opts);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->vanished, gone);
    EXPECT_EQ(again->exists, 2u);

    // And from UID FETCH (CHANGEDSINCE .. VANISHED).
    ASSERT_TRUE(s->select(box));
    fetch_options fo;
    fo.changed_since = before->highestmodseq;
    fo.vanished = true;
    auto f = s->uid_fetch(uid_set{{1, uid_set::star}}, {"FLAGS"}, nullptr, fo);
    ASSERT_TRUE(f) << s->last_error().describe();
    EXPECT_EQ(f->vanished, gone);
}

TEST_P(session_test, unsolicited_flag_updates_are_kept_for_the_caller) {
    auto s = open();
    auto other = open();
    ASSERT_TRUE(s && other);
    std::string box = fresh_mailbox(*s);
    auto a =
        s->append(box, {{{}, std::nullopt, imap::literal_data::from_memory(message_text("u"))}});
    ASSERT_TRUE(a);
    ASSERT_TRUE(s->select(box));
    ASSERT_TRUE(other->select(box));
    ASSERT_TRUE(other->uid_store(uid_set{{a->uids[0], a->uids[0]}}, imap::cmd::store_mode::add,
                                 flags_of({"\\Flagged"})));
    // A command of its own that fetches nothing else: the update must not get lost in it.
    auto f = s->uid_fetch(uid_set{{a->uids[0] + 100, a->uids[0] + 100}}, {"FLAGS"}, nullptr);
    ASSERT_TRUE(f);
    ASSERT_TRUE(s->noop());
    bool seen = false;
    for (auto& u : s->take_unsolicited()) {
        if (auto* d = std::get_if<imap::fetch_data>(&u.data)) {
            EXPECT_EQ(d->uid.value_or(0), a->uids[0]);
            EXPECT_TRUE(d->flag_set().has(mail::system_flag::flagged));
            EXPECT_TRUE(d->modseq.has_value());
            seen = true;
        }
    }
    EXPECT_TRUE(seen);
}

TEST_P(session_test, move_moves_with_a_copyuid_mapping) {
    auto s = open();
    ASSERT_TRUE(s);
    std::string box = fresh_mailbox(*s);
    std::string dest = box + "-dest";
    (void)s->delete_mailbox(dest);
    ASSERT_TRUE(s->create(dest));
    std::vector<append_item> items;
    for (int i = 0; i < 3; ++i)
        items.push_back({{},
                         std::nullopt,
                         imap::literal_data::from_memory(message_text("mv" + std::to_string(i)))});
    auto a = s->append(box, items);
    ASSERT_TRUE(a);
    ASSERT_TRUE(s->select(box));
    auto m = s->uid_move(uid_set{{a->uids[0], a->uids[1]}}, dest);
    ASSERT_TRUE(m) << s->last_error().describe();
    ASSERT_EQ(m->mapping.size(), 2u);
    EXPECT_EQ(m->mapping[0].first, a->uids[0]);
    EXPECT_EQ(m->mapping[1].first, a->uids[1]);
    auto left = s->uid_search("ALL");
    ASSERT_TRUE(left);
    EXPECT_EQ(*left, (uid_set{{a->uids[2], a->uids[2]}}));
    auto st = s->status(dest);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages.value_or(0), 2u);
    EXPECT_EQ(st->uidvalidity.value_or(0), m->uidvalidity);
}

TEST_P(session_test, move_without_move_falls_back_to_copy_store_uid_expunge) {
    auto ep = make_endpoint();
    ep.disabled_capabilities = {"MOVE"};
    auto c = session::connect(ep);
    ASSERT_TRUE(c);
    auto& s = **c;
    EXPECT_FALSE(s.has("MOVE"));
    std::string box = fresh_mailbox(s);
    std::string dest = box + "-dest";
    (void)s.delete_mailbox(dest);
    ASSERT_TRUE(s.create(dest));
    auto a =
        s.append(box, {{{}, std::nullopt, imap::literal_data::from_memory(message_text("k"))},
                       {{}, std::nullopt, imap::literal_data::from_memory(message_text("l"))}});
    ASSERT_TRUE(a);
    ASSERT_TRUE(s.select(box));
    // Someone else's \Deleted message must survive our move.
    ASSERT_TRUE(s.uid_store(uid_set{{a->uids[1], a->uids[1]}}, imap::cmd::store_mode::add,
                            flags_of({"\\Deleted"})));
    auto m = s.uid_move(uid_set{{a->uids[0], a->uids[0]}}, dest);
    ASSERT_TRUE(m) << s.last_error().describe();
    ASSERT_EQ(m->mapping.size(), 1u);
    auto left = s.uid_search("ALL");
    ASSERT_TRUE(left);
    EXPECT_EQ(*left, (uid_set{{a->uids[1], a->uids[1]}}));

    // Without UIDPLUS as well, the move is refused before anything happens.
    auto ep2 = make_endpoint();
    ep2.disabled_capabilities = {"MOVE", "UIDPLUS"};
    auto c2 = session::connect(ep2);
    ASSERT_TRUE(c2);
    ASSERT_TRUE((*c2)->select(box));
    auto refused = (*c2)->uid_move(uid_set{{a->uids[1], a->uids[1]}}, dest);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), errc::missing_capability);
    EXPECT_FALSE((*c2)->uid_expunge(uid_set{{a->uids[1], a->uids[1]}}));
    auto st = s.status(dest);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages.value_or(0), 1u);
}

TEST_P(session_test, list_status_create_rename_delete_with_utf8_names) {
    auto s = open();
    ASSERT_TRUE(s);
    std::string box = fresh_mailbox(*s);
    std::string child = box + "/Entwürfe ☃";
    ASSERT_TRUE(s->create(child)) << s->last_error().describe();
    auto a =
        s->append(child, {{{}, std::nullopt, imap::literal_data::from_memory(message_text("x"))}});
    ASSERT_TRUE(a);
    auto l = s->list(box + "*");
    ASSERT_TRUE(l) << s->last_error().describe();
    const list_entry* found = nullptr;
    for (auto& e : *l)
        if (e.name == child) found = &e;
    ASSERT_NE(found, nullptr);
    EXPECT_TRUE(found->name_decoded);
    EXPECT_EQ(found->delimiter.value_or('?'), '/');
    if (!s->utf8_enabled()) {
        EXPECT_NE(found->raw_name, found->name);  // modified UTF-7 on the wire
    }
    ASSERT_TRUE(found->status);
    EXPECT_EQ(found->status->messages.value_or(99), 1u);
    EXPECT_EQ(found->status->uidvalidity.value_or(0), a->uidvalidity);
    EXPECT_TRUE(found->status->highestmodseq.has_value());

    std::string renamed = box + "/Renamed ✓";
    ASSERT_TRUE(s->rename(child, renamed));
    auto st = s->status(renamed);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages.value_or(0), 1u);
    ASSERT_TRUE(s->delete_mailbox(renamed));
    auto missing = s->status(renamed);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), errc::command_failed);
    EXPECT_FALSE(s->last_error().text.empty());
}

// list_ahead() sends the LIST at once; list() then reads that answer instead of asking
// again, and a list() of another pattern asks for its own.
TEST_P(session_test, a_listing_sent_ahead_is_read_by_the_next_list) {
    std::mutex m;
    std::string trace;
    auto ep = traced_endpoint(m, trace);
    auto opened = session::connect(ep);
    ASSERT_TRUE(opened);
    auto& s = *opened;
    std::string box = fresh_mailbox(*s);
    ASSERT_TRUE(s->create(box + "/one"));
    auto plain = s->list(box + "*");
    ASSERT_TRUE(plain);
    ASSERT_EQ(plain->size(), 2u);

    auto lists_sent = [&] {
        std::lock_guard lock(m);
        std::size_t n = 0;
        for (auto at = trace.find(" LIST \"\" "); at != std::string::npos;
             at = trace.find(" LIST \"\" ", at + 1))
            ++n;
        return n;
    };
    ASSERT_EQ(lists_sent(), 1u);
    ASSERT_TRUE(s->list_ahead(box + "*"));
    EXPECT_EQ(lists_sent(), 2u) << trace;  // sent before list() is called
    auto ahead = s->list(box + "*");
    ASSERT_TRUE(ahead) << s->last_error().describe();
    EXPECT_EQ(lists_sent(), 2u) << trace;  // read, not asked again
    ASSERT_EQ(ahead->size(), plain->size());
    for (std::size_t i = 0; i < ahead->size(); ++i) {
        EXPECT_EQ((*ahead)[i].name, (*plain)[i].name);
        ASSERT_EQ((*ahead)[i].status.has_value(), (*plain)[i].status.has_value());
        if ((*ahead)[i].status) {
            EXPECT_EQ((*ahead)[i].status->uidnext, (*plain)[i].status->uidnext);
        }
    }

    // Ahead for one pattern, then a list() of another: the second gets its own answer.
    ASSERT_TRUE(s->list_ahead(box + "*"));
    auto only_child = s->list(box + "/one");
    ASSERT_TRUE(only_child) << s->last_error().describe();
    ASSERT_EQ(only_child->size(), 1u);
    EXPECT_EQ((*only_child)[0].name, box + "/one");
    ASSERT_TRUE(s->noop());  // the session is still in step
}

// select_send() puts the SELECT on the wire and the mailbox counts as selected at once; a
// LIST sent behind it is answered after it, and select_wait() still gets the SELECT's answer
// read meanwhile. A failed one leaves nothing selected. The server names itself in ID.
TEST_P(session_test, a_select_sent_ahead_is_read_after_the_list_behind_it) {
    std::mutex m;
    std::string trace;
    auto ep = traced_endpoint(m, trace);
    auto opened = session::connect(ep);
    ASSERT_TRUE(opened);
    auto& s = *opened;
    EXPECT_EQ(s->server_software(), "Dovecot");
    std::string box = fresh_mailbox(*s);
    ASSERT_TRUE(
        s->append(box, {{{}, std::nullopt, imap::literal_data::from_memory(message_text("m1"))},
                        {{}, std::nullopt, imap::literal_data::from_memory(message_text("m2"))}}));
    auto plain = s->select(box);
    ASSERT_TRUE(plain) << s->last_error().describe();
    ASSERT_TRUE(s->unselect());

    auto flight = s->select_send(box);
    ASSERT_TRUE(flight) << s->last_error().describe();
    EXPECT_EQ(s->selected(), box);
    {
        std::lock_guard lock(m);
        EXPECT_NE(trace.find(" SELECT "), std::string::npos) << "sent before any wait\n" << trace;
    }
    ASSERT_TRUE(s->list_ahead(box));
    auto listed = s->list(box);
    ASSERT_TRUE(listed) << s->last_error().describe();
    ASSERT_EQ(listed->size(), 1u);
    auto sel = s->select_wait(*flight);
    ASSERT_TRUE(sel) << s->last_error().describe();
    EXPECT_EQ(sel->exists, 2u);
    EXPECT_EQ(sel->uidvalidity, plain->uidvalidity);
    EXPECT_EQ(sel->uidnext, plain->uidnext);
    EXPECT_EQ(s->selected(), box);

    auto missing = s->select_send(box + "/none");
    ASSERT_TRUE(missing);
    auto failed = s->select_wait(*missing);
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error(), errc::command_failed);
    EXPECT_TRUE(s->selected().empty());
    ASSERT_TRUE(s->noop());  // the session is still in step
}

TEST_P(session_test, the_trace_never_shows_the_password) {
    if (GetParam().how == mode::tunnel) return;  // no login over the tunnel
    std::mutex m;
    std::string trace;
    auto ep = traced_endpoint(m, trace);
    for (auto mech : {auth_mechanism::login, auth_mechanism::plain}) {
        ep.auth = mech;
        auto s = session::connect(ep);
        ASSERT_TRUE(s);
        ASSERT_TRUE((*s)->noop());
    }
    EXPECT_NE(trace.find("LOGIN"), std::string::npos) << trace;
    EXPECT_NE(trace.find("AUTHENTICATE PLAIN"), std::string::npos) << trace;
    EXPECT_EQ(trace.find(ep.secret), std::string::npos) << trace;
    EXPECT_EQ(trace.find(util::base64_encode(imap::cmd::sasl_plain(ep.user, ep.secret))),
              std::string::npos)
        << trace;
}

TEST_P(session_test, a_flight_of_200_pipelined_commands_completes) {
    auto s = open();
    ASSERT_TRUE(s);
    std::string box = fresh_mailbox(*s);
    std::vector<append_item> items;
    for (int i = 0; i < 20; ++i)
        items.push_back(
            {{},
             std::nullopt,
             imap::literal_data::from_memory(message_text("p" + std::to_string(i), 2000))});
    auto a = s->append(box, items);
    ASSERT_TRUE(a);
    ASSERT_TRUE(s->select(box));
    std::vector<std::string> tags;
    std::size_t fetched = 0;
    for (int i = 0; i < 200; ++i) {
        mail::uid u = a->uids[static_cast<std::size_t>(i) % a->uids.size()];
        imap::command cmd =
            i % 2 ? imap::cmd::uid_fetch(std::to_string(u), {"UID", "BODY.PEEK[]"})
                  : imap::cmd::uid_store(std::to_string(u), imap::cmd::store_mode::add,
                                         flags_of({"$p" + std::to_string(i)}), true);
        auto t = s->send(cmd, [&](imap::response& r) {
            if (!std::holds_alternative<imap::fetch_data>(r)) return false;
            ++fetched;
            return true;
        });
        ASSERT_TRUE(t);
        tags.push_back(*t);
    }
    for (auto& t : tags) {
        auto c = s->wait(t);
        ASSERT_TRUE(c) << t << ": " << s->last_error().describe();
    }
    EXPECT_GE(fetched, 100u);  // every FETCH answered (STOREs may add their own FETCHes)
}

TEST_P(session_test, idle_returns_when_a_message_arrives) {
    auto s = open();
    auto other = open();
    ASSERT_TRUE(s && other);
    std::string box = fresh_mailbox(*s);
    ASSERT_TRUE(s->select(box));
    auto quiet = s->idle(300ms);
    ASSERT_TRUE(quiet);
    EXPECT_FALSE(*quiet);
    std::thread t([&] {
        std::this_thread::sleep_for(300ms);
        (void)other->append(
            box, {{{}, std::nullopt, imap::literal_data::from_memory(message_text("i"))}});
    });
    auto start = std::chrono::steady_clock::now();
    auto woke = s->idle(20s);
    t.join();
    ASSERT_TRUE(woke) << woke.error().message();
    EXPECT_TRUE(*woke);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
    bool exists = false;
    for (auto& u : s->take_unsolicited())
        if (auto* e = std::get_if<imap::exists_data>(&u.data)) exists = e->count == 1;
    EXPECT_TRUE(exists);
}

const mode modes[] = {
    {"tls", mode::tls, false},
    {"starttls", mode::starttls, false},
    {"tunnel", mode::tunnel, false},
    {"tls_compress", mode::tls, true},
    {"tunnel_compress", mode::tunnel, true},
};

INSTANTIATE_TEST_SUITE_P(over, session_test, ::testing::ValuesIn(modes),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- certificate and STARTTLS policy (one transport each)

class security_test : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { server_ = new test::dovecot(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    endpoint tls_endpoint() const {
        endpoint ep;
        ep.host = "localhost";
        ep.port = server_->imaps_port();
        ep.user = "alice";
        ep.secret = server_->password("alice");
        ep.ca_file = server_->ca_file().string();
        ep.connect_timeout = 10s;
        ep.read_timeout = 30s;
        return ep;
    }
    static test::dovecot* server_;
};

test::dovecot* security_test::server_ = nullptr;

TEST_F(security_test, a_certificate_the_configured_ca_did_not_sign_is_refused) {
    auto ep = tls_endpoint();
    ep.ca_file = server_->other_ca_file().string();
    connect_failure why;
    auto s = session::connect(ep, &why);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error(), errc::tls_failed);
    EXPECT_EQ(why.step, "TLS verification");
    EXPECT_EQ(why.transport.step, net::step::tls_verify);
    EXPECT_NE(why.message.find("localhost"), std::string::npos) << why.message;
    EXPECT_NE(why.message.find("unable to get local issuer certificate"), std::string::npos)
        << why.message;
}

TEST_F(security_test, skipping_verification_accepts_an_unknown_issuer_only_when_set) {
    auto ep = tls_endpoint();
    ep.ca_file = server_->other_ca_file().string();
    ep.host = "127.0.0.1";
    ep.tls_verify = false;
    auto ok = session::connect(ep);
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_TRUE((*ok)->encrypted());
    ASSERT_TRUE((*ok)->noop());
    EXPECT_TRUE((*ok)->logout());

    ep.tls_verify = true;
    auto refused = session::connect(ep);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), errc::tls_failed);
}

TEST_F(security_test, a_fingerprint_pin_works_and_a_wrong_one_is_refused) {
    auto ep = tls_endpoint();
    ep.ca_file.clear();
    ep.host = "127.0.0.1";
    ep.fingerprint = server_->server_cert_sha256();
    auto ok = session::connect(ep);
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_TRUE((*ok)->encrypted());

    std::string wrong = server_->server_cert_sha256();
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    ep.fingerprint = "sha256:" + wrong;
    connect_failure why;
    auto bad = session::connect(ep, &why);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), errc::tls_failed);
    EXPECT_NE(why.message.find("pinned fingerprint"), std::string::npos) << why.message;
}

TEST_F(security_test, starttls_required_but_not_offered_is_an_error) {
    // Dovecot always offers STARTTLS before login; the capability mask hides it as a server
    // without STARTTLS would.
    auto ep = tls_endpoint();
    ep.port = server_->imap_port();
    ep.tls = net::tls_mode::starttls;
    ep.disabled_capabilities = {"STARTTLS"};
    std::string trace;  // what the client sent
    ep.trace = [&](trace_direction d, std::string_view line) {
        if (d == trace_direction::client) (trace += line) += "\n";
    };
    connect_failure why;
    auto s = session::connect(ep, &why);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error(), errc::starttls_unavailable);
    EXPECT_EQ(why.step, "STARTTLS");
    EXPECT_EQ(trace.find("LOGIN"), std::string::npos) << "credentials sent in clear:\n" << trace;
}

TEST_F(security_test, wrong_password_says_so_with_the_server_text) {
    auto ep = tls_endpoint();
    ep.secret = "wrong";
    connect_failure why;
    auto s = session::connect(ep, &why);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error(), errc::authentication_failed);
    EXPECT_EQ(why.step, "authentication");
    EXPECT_EQ(why.server.status, imap::condition::no);
    EXPECT_NE(why.message.find("alice"), std::string::npos) << why.message;
    EXPECT_NE(why.message.find("AUTHENTICATIONFAILED"), std::string::npos) << why.message;
}

}  // namespace
}  // namespace tandem::client
