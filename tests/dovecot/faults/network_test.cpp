// SPDX-License-Identifier: MIT
// `tandem sync` through a faulty network (tests/support/fault_proxy): a connection cut at
// many points of a first and of an incremental sync, a stalled link, a slow one, and a man
// in the middle who strips STARTTLS or injects bytes before the TLS handshake. Every fault
// ends in a clean error in bounded time, and the next clean run gives the right result,
// read from outside.
#include "../sync/e2e_support.hpp"
#include "support/fault_proxy.hpp"

#include <gtest/gtest.h>

namespace tandem::e2e {
namespace {

using test::direction;
using test::fault;
using test::fault_plan;

// A channel whose IMAP stores are reached through a fault proxy in front of the shared
// Dovecot; side b a Maildir or a second account.
class proxied_channel {
  public:
    proxied_channel(bool imap_b, const std::string& store_extra = "timeout = 5s\n")
        : proxy(shared_server().imap_port()), user_a_(fresh_user()) {
        a_ = std::make_unique<imap_side>(shared_server(), user_a_);
        std::string cfg = w.general() + store("server", user_a_, store_extra);
        if (imap_b) {
            user_b_ = fresh_user();
            b_ = std::make_unique<imap_side>(shared_server(), user_b_);
            cfg += store("other", user_b_, store_extra);
        } else {
            b_ = std::make_unique<maildir_side>(w.maildir(), layout::verbatim);
            cfg += w.maildir_store("local");
        }
        cfg += w.channel("c", "server", imap_b ? "other" : "local", "max-delete = 100%\n");
        w.write_config(cfg);
    }

    // An IMAP store through the proxy. No COMPRESS: the proxy reads the protocol to tell a
    // cut in the middle of a session from one during LOGOUT.
    std::string store(const std::string& name, const std::string& user,
                      const std::string& extra) const {
        return "[store." + name +
               "]\ntype = imap\nhost = 127.0.0.1\nport = " + std::to_string(proxy.port()) +
               "\ntls = none\nallow-plaintext = yes\ncompress = no\nuser = " + user +
               "\npassword-file = " + w.password_file(shared_server(), user).string() + "\n" +
               extra + "\n";
    }

    run_result sync(run_options o = {}) const {
        o.timeout = std::min<std::chrono::milliseconds>(o.timeout, 60s);
        return w.run({"sync"}, o);
    }

    world w;
    test::fault_proxy proxy;
    imap_side& a() { return *a_; }
    side& b() { return *b_; }
    const std::string& user_a() const { return user_a_; }
    const std::string& user_b() const { return user_b_; }

  private:
    std::string user_a_, user_b_;
    std::unique_ptr<imap_side> a_;
    std::unique_ptr<side> b_;
};

// The error of a run that lost its connection: it names the account (user@host, or the
// store's section name) and did not crash or hang.
::testing::AssertionResult clean_failure(const run_result& r, const proxied_channel& c,
                                         std::initializer_list<int> codes = {1, 3}) {
    if (r.timed_out) return ::testing::AssertionFailure() << "hung:\n" << r.describe();
    if (r.signal) return ::testing::AssertionFailure() << "crashed:\n" << r.describe();
    if (std::find(codes.begin(), codes.end(), r.exit_code) == codes.end())
        return ::testing::AssertionFailure() << "unexpected exit code:\n" << r.describe();
    auto all = r.all();
    bool named = contains(all, c.user_a() + "@") || contains(all, "server") ||
                 (!c.user_b().empty() && contains(all, c.user_b() + "@"));
    if (!named)
        return ::testing::AssertionFailure() << "the message names no store:\n" << r.describe();
    return ::testing::AssertionSuccess();
}

std::string body(int n, std::size_t size) {
    std::string b;
    while (b.size() < size) b += "line " + std::to_string(n) + " of a test message\r\n";
    return b;
}

void put_message(side& s, const std::string& mailbox, const std::string& message,
                 const std::vector<std::string>& flags) {
    s.add(mailbox, message, flags, std::nullopt);
}

// Mail on both sides for a first sync: some large enough that a cut lands in a body.
void fill(proxied_channel& c) {
    c.a().create("Archive");
    for (int i = 0; i < 10; ++i)
        put_message(c.a(), i < 7 ? "INBOX" : "Archive",
                    test::make_message("a" + std::to_string(i), body(i, i % 3 == 0 ? 30000 : 500)),
                    i % 2 ? std::vector<std::string>{"\\Seen"} : std::vector<std::string>{});
    for (int i = 0; i < 4; ++i)
        put_message(c.b(), "INBOX", test::make_message("b" + std::to_string(i), body(i, 8000)),
                    {"\\Flagged"});
}

struct traffic {
    std::uint64_t c2s = 0, s2c = 0;
    std::uint64_t in(direction d) const { return d == direction::client_to_server ? c2s : s2c; }
};

class network : public ::testing::TestWithParam<bool> {};  // true: IMAP-IMAP

// A first sync cut at 5%, 35%, 65% and 95% of its traffic, either way: each cut run fails
// cleanly, the next clean run copies everything once, and a third changes nothing.
TEST_P(network, a_cut_during_the_first_sync_then_a_clean_run_gives_the_full_result) {
    traffic full;
    store_snapshot expected;
    {
        proxied_channel pilot(GetParam());
        fill(pilot);
        expected = merged(pilot.a().snapshot(), pilot.b().snapshot());
        auto r = pilot.sync();
        ASSERT_EQ(r.exit_code, 0) << r.describe();
        full = {pilot.proxy.bytes(direction::client_to_server),
                pilot.proxy.bytes(direction::server_to_client)};
        ASSERT_EQ(pilot.a().snapshot(), expected);
        ASSERT_EQ(pilot.b().snapshot(), expected);
    }
    for (auto dir : {direction::client_to_server, direction::server_to_client}) {
        for (int percent : {5, 35, 65, 95}) {
            std::uint64_t at = full.in(dir) * static_cast<std::uint64_t>(percent) / 100;
            SCOPED_TRACE(std::string(dir == direction::client_to_server ? "client->server"
                                                                        : "server->client") +
                         " cut after " + std::to_string(at) + " bytes");
            proxied_channel c(GetParam());
            fill(c);
            c.proxy.set(fault_plan::cut_after(dir, at));
            auto started = std::chrono::steady_clock::now();
            auto r = c.sync();
            EXPECT_LT(std::chrono::steady_clock::now() - started, 20s);
            ASSERT_TRUE(c.proxy.fired());
            if (c.proxy.fired_mid_session()) {
                EXPECT_TRUE(clean_failure(r, c));
            }
            c.proxy.set({});
            auto r2 = c.sync();
            ASSERT_EQ(r2.exit_code, 0) << r2.describe();
            EXPECT_EQ(c.a().snapshot(), expected);
            EXPECT_EQ(c.b().snapshot(), expected);
            auto saves = shared_server().count_log_events("save", c.user_a());
            auto r3 = c.sync();
            ASSERT_EQ(r3.exit_code, 0) << r3.describe();
            EXPECT_EQ(shared_server().count_log_events("save", c.user_a()), saves);
        }
    }
}

// Changes on both sides, then an incremental sync cut at several points: the next clean
// run applies every change once.
TEST_P(network, a_cut_during_an_incremental_sync_then_a_clean_run_applies_every_change) {
    proxied_channel c(GetParam());
    fill(c);
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    int round = 0;
    // The same kind of changes each time: new mail both ways, flags both ways, a move on a,
    // an expunge on b. A move whose source mailbox failed in a cut run used to lose the
    // message on the other side: the destination's state was recorded, and the next run
    // took the message's absence from the source for an expunge ("chaos bug 2").
    auto change = [&](int k) {
        auto n = std::to_string(k);
        put_message(c.a(), "INBOX", test::make_message("na" + n, body(k, 6000)), {"\\Seen"});
        put_message(c.b(), "INBOX", test::make_message("nb" + n, body(k, 6000)), {});
        c.a().set_flags("INBOX", k == 0 ? "a1" : "na" + std::to_string(k - 1), {"\\Answered"}, {});
        c.b().set_flags("INBOX", k == 0 ? "b0" : "nb" + std::to_string(k - 1), {"\\Seen"}, {});
        c.a().move("INBOX", k == 0 ? "a1" : "na" + std::to_string(k - 1), "Archive");
        c.b().expunge("INBOX", k == 0 ? "b1" : "nb" + std::to_string(k - 1));
    };
    auto check = [&](int k) {
        auto sa = c.a().snapshot();
        auto sb = c.b().snapshot();
        EXPECT_EQ(sa, sb);
        auto n = std::to_string(k);
        EXPECT_EQ(flags_of(sa, "INBOX", "na" + n), "\\Seen");
        EXPECT_EQ(flags_of(sa, "INBOX", "nb" + n), "");
        auto prev_a = k == 0 ? "a1" : "na" + std::to_string(k - 1);
        auto prev_b = k == 0 ? "b1" : "nb" + std::to_string(k - 1);
        EXPECT_EQ(flags_of(sa, "Archive", prev_a), "\\Answered \\Seen");
        EXPECT_EQ(flags_of(sa, "INBOX", prev_a), "<missing>");
        EXPECT_EQ(flags_of(sa, "INBOX", prev_b), "<missing>");
    };
    // The first change without a fault, to measure its traffic.
    c.proxy.set({});
    change(round);
    r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    traffic full{c.proxy.bytes(direction::client_to_server),
                 c.proxy.bytes(direction::server_to_client)};
    check(round);
    for (auto dir : {direction::client_to_server, direction::server_to_client}) {
        for (int percent : {10, 50, 90}) {
            ++round;
            std::uint64_t at = full.in(dir) * static_cast<std::uint64_t>(percent) / 100;
            SCOPED_TRACE("round " + std::to_string(round) + ": cut after " + std::to_string(at) +
                         " bytes " + (dir == direction::client_to_server ? "c->s" : "s->c"));
            change(round);
            c.proxy.set(fault_plan::cut_after(dir, at));
            auto rc = c.sync();
            if (c.proxy.fired_mid_session()) {
                EXPECT_TRUE(clean_failure(rc, c));
            }
            c.proxy.set({});
            auto r2 = c.sync();
            ASSERT_EQ(r2.exit_code, 0) << r2.describe();
            check(round);
        }
    }
}

// A link that stops answering: the configured timeout (2s) ends the run with an error that
// says so, in bounded time; the next run completes.
TEST_P(network, a_stalled_link_times_out_and_the_next_run_completes) {
    proxied_channel c(GetParam(), "timeout = 2s\n");
    fill(c);
    auto expected = merged(c.a().snapshot(), c.b().snapshot());
    // 0: not even the greeting; 60: within the login; 20000: in the middle of the bodies.
    for (std::uint64_t at : {0, 60, 20000}) {
        SCOPED_TRACE("stalled after " + std::to_string(at) + " bytes from the server");
        c.proxy.set(fault_plan::stall_after(direction::server_to_client, at));
        auto started = std::chrono::steady_clock::now();
        auto r = c.sync();
        auto took = std::chrono::steady_clock::now() - started;
        EXPECT_TRUE(c.proxy.fired());
        EXPECT_LT(took, 20s) << r.describe();
        EXPECT_GE(took, 1900ms) << r.describe();
        EXPECT_TRUE(clean_failure(r, c));
        auto text = lower(r.all());
        EXPECT_TRUE(contains(text, "timed out") || contains(text, "timeout")) << r.describe();
    }
    c.proxy.set({});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(c.a().snapshot(), expected);
    EXPECT_EQ(c.b().snapshot(), expected);
}

// A slow link that keeps moving is not a timeout: every read waits less than the timeout.
TEST_P(network, a_slow_link_completes) {
    proxied_channel c(GetParam(), "timeout = 2s\n");
    fill(c);
    auto expected = merged(c.a().snapshot(), c.b().snapshot());
    c.proxy.set(fault_plan::slow(4096, 5ms));
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(c.a().snapshot(), expected);
    EXPECT_EQ(c.b().snapshot(), expected);
}

// A run killed with its APPEND still on the way: the server commits it after the process
// died (the proxy holds it back a second, as socket buffers and a slow uplink do). The next
// run, started at once, finds the earlier run's intent and waits for such late writes before
// it lists the server (store::late_write_window): it copies nothing a second time.
TEST(late_writes, an_append_that_lands_after_its_sender_died_is_not_copied_again) {
    proxied_channel c(false);
    const int count = 20;
    for (int i = 0; i < count; ++i)
        put_message(c.b(), "INBOX", test::make_message("l" + std::to_string(i), body(i, 3000)), {});
    auto expected = merged(c.a().snapshot(), c.b().snapshot());
    c.proxy.set(fault_plan::late(1000ms, "APPEND"));
    // Killed once the proxy has every message and the APPEND's final CRLF (the last literal
    // is followed by the line's end, the others by a space and the next one's date).
    run_options o;
    o.kill_if = [&] {
        auto sent = c.proxy.client_bytes();
        for (int i = 0; i < count; ++i)
            if (!contains(sent, "Subject: l" + std::to_string(i) + "\r\n")) return false;
        return sent.ends_with("test message\r\n\r\n");
    };
    auto killed = c.sync(o);
    ASSERT_TRUE(killed.killed) << killed.describe();
    EXPECT_EQ(shared_server().count_log_events("save", c.user_a()), 0u)
        << "the APPEND landed before the kill: the proxy did not hold it back";
    c.proxy.set({});
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_TRUE(eventually([&] { return c.proxy.open_connections() == 0; }, 10s))
        << "the killed run's bytes were delivered";
    EXPECT_EQ(shared_server().count_log_events("save", c.user_a()), static_cast<std::size_t>(count))
        << "every message saved once on the server";
    EXPECT_EQ(c.a().snapshot(), expected);
    EXPECT_EQ(c.b().snapshot(), expected);
}

INSTANTIATE_TEST_SUITE_P(kinds, network, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "imap_imap" : "maildir"; });

// ---------------------------------------------------------------------------------------
// A man in the middle of STARTTLS (RFC 3207 section 5, RFC 9051 section 11.1)

std::string starttls_store(const proxied_channel& c, const std::string& user) {
    return "[store.server]\ntype = imap\nhost = 127.0.0.1\nport = " +
           std::to_string(c.proxy.port()) +
           "\ntls = starttls\nca-file = " + shared_server().ca_file().string() +
           "\ntimeout = 5s\nuser = " + user +
           "\npassword-file = " + c.w.password_file(shared_server(), user).string() + "\n\n";
}

TEST(man_in_the_middle, stripped_starttls_is_refused_before_any_credentials_are_sent) {
    proxied_channel c(false);
    c.w.write_config(c.w.general() + starttls_store(c, c.user_a()) + c.w.maildir_store("local") +
                     c.w.channel("c", "server", "local"));
    c.a().add_new("INBOX", "m1");

    // Without the attacker, STARTTLS works through the proxy: the refusal below is its doing.
    auto ok = c.sync();
    ASSERT_EQ(ok.exit_code, 0) << ok.describe();

    c.proxy.set(fault_plan::only(fault::strip_starttls));
    c.a().add_new("INBOX", "m2");
    auto r = c.sync();
    EXPECT_TRUE(c.proxy.stripped());
    EXPECT_EQ(r.exit_code, 3) << r.describe();
    EXPECT_TRUE(contains(r.all(), "STARTTLS")) << r.describe();
    auto sent = c.proxy.client_bytes();
    EXPECT_FALSE(contains(lower(sent), "login")) << sent;
    EXPECT_FALSE(contains(lower(sent), "authenticate")) << sent;
    const auto& password = shared_server().password(c.user_a());
    EXPECT_FALSE(contains(sent, password));
    EXPECT_FALSE(contains(sent, base64(std::string(1, '\0') + c.user_a() + '\0' + password)));
    EXPECT_EQ(flags_of(c.b().snapshot(), "INBOX", "m2"), "<missing>");
}

TEST(man_in_the_middle, bytes_injected_before_the_tls_handshake_are_never_acted_on) {
    proxied_channel c(false);
    c.w.write_config(c.w.general() + starttls_store(c, c.user_a()) + c.w.maildir_store("local") +
                     c.w.channel("c", "server", "local"));
    c.a().add_new("INBOX", "m1");
    c.b().add_new("INBOX", "local1");
    auto expected = merged(c.a().snapshot(), c.b().snapshot());
    // A BYE whose words would show in the error if tandem read it as the server's.
    c.proxy.set(fault_plan::only(fault::inject_before_tls));
    auto r = c.sync();
    EXPECT_TRUE(c.proxy.injected());
    EXPECT_FALSE(r.timed_out) << r.describe();
    EXPECT_EQ(r.signal, 0) << r.describe();
    EXPECT_FALSE(contains(r.all(), "INJECTED")) << r.describe();
    // Discarded, so the session goes on (a client that fed them to TLS would fail the
    // handshake: a clean exit 3, but not what the design promises).
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(c.a().snapshot(), expected);
    EXPECT_EQ(c.b().snapshot(), expected);
}

}  // namespace
}  // namespace tandem::e2e
