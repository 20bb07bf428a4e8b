// SPDX-License-Identifier: MIT
// The command line end to end: exit codes, configuration errors, authentication failures,
// --dry-run, --json, `status` without network, `check-config --connect`, secrets kept out of
// traces and journal files, `watch`, --help and --version. Results are read from outside.
#include "../sync/e2e_support.hpp"
#include "tandem/journal/journal.hpp"

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <csignal>

namespace tandem::e2e {
namespace {

const channel_kind maildir_kind{"maildir", false, layout::verbatim, transport::plain};

// The line of `needle` (1-based) in `text`.
unsigned line_of(const std::string& text, const std::string& needle) {
    auto pos = text.find(needle);
    if (pos == std::string::npos) throw std::runtime_error("no " + needle + " in config");
    return static_cast<unsigned>(
               std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n')) +
           1;
}

TEST(cli, configuration_errors_name_the_file_and_line_and_exit_2) {
    world w;
    const std::string good = w.general() + w.maildir_store("local") +
                             w.maildir_store_at("other", w.root() / "Other") +
                             w.channel("c", "local", "other");
    struct broken {
        const char* what;
        std::string text;
        std::string marker;  // the line the diagnostic must name
    };
    std::vector<broken> cases = {
        {"unknown key", good + "[store.x]\ntype = maildir\npath = /tmp/x\nbogus-key = 1\n",
         "bogus-key"},
        {"bad value", good + "[store.y]\ntype = imap\nhost = localhost\ntls = sometimes\n",
         "tls = sometimes"},
        {"missing store", good + "[channel.d]\na = local\nb = nowhere\n", "b = nowhere"},
        {"unknown section", good + "[colour]\nred = 1\n", "[colour]"},
    };
    for (const auto& b : cases) {
        SCOPED_TRACE(b.what);
        w.write_config(b.text);
        for (const char* command : {"sync", "check-config", "status"}) {
            auto r = w.run({command});
            EXPECT_EQ(r.exit_code, 2) << command << ": " << r.describe();
            auto where = "tandem.conf:" + std::to_string(line_of(b.text, b.marker));
            EXPECT_TRUE(contains(r.err, where)) << command << ": wanted " << where << " in\n"
                                                << r.describe();
        }
    }
    EXPECT_FALSE(fs::exists(w.root() / "Other")) << "nothing runs with a broken configuration";

    // A missing file, a bad command, a bad option.
    auto missing = run_tandem({"sync", "--config", (w.root() / "nope.conf").string()});
    EXPECT_EQ(missing.exit_code, 2) << missing.describe();
    EXPECT_TRUE(contains(missing.err, "nope.conf")) << missing.describe();
    auto bad_command = run_tandem({"synchronise"});
    EXPECT_EQ(bad_command.exit_code, 2) << bad_command.describe();
    w.write_config(good);
    auto bad_option = w.run({"sync", "--no-such-option"});
    EXPECT_EQ(bad_option.exit_code, 2) << bad_option.describe();
    auto bad_channel = w.run({"sync", "nosuchchannel"});
    EXPECT_EQ(bad_channel.exit_code, 2) << bad_channel.describe();
}

TEST(cli, a_wrong_password_exits_3_and_says_authentication_failed) {
    auto& server = shared_server();
    world w;
    auto user = fresh_user();
    const std::string wrong = "definitely-not-the-password-42";
    auto pw = w.root() / "wrong-password";
    write_file(pw, wrong + "\n", fs::perms(0600));
    w.write_config(w.general() + "[store.server]\ntype = imap\nhost = 127.0.0.1\nport = " +
                   std::to_string(server.imap_port()) +
                   "\ntls = none\nallow-plaintext = yes\nuser = " + user +
                   "\npassword-file = " + pw.string() + "\n\n" + w.maildir_store("local") +
                   w.channel("c", "server", "local"));
    for (std::vector<std::string> args :
         {std::vector<std::string>{"sync"}, std::vector<std::string>{"sync", "-vv"},
          std::vector<std::string>{"check-config", "--connect"}}) {
        auto r = w.run(args);
        EXPECT_EQ(r.exit_code, 3) << args.back() << ": " << r.describe();
        EXPECT_TRUE(contains(lower(r.all()), "authentication failed")) << r.describe();
        EXPECT_FALSE(contains(r.all(), wrong)) << "the password must not appear";
    }
    EXPECT_FALSE(fs::exists(w.maildir() / "INBOX")) << "nothing synced";
}

// The environment of the runs in one scope.
class scoped_env {
  public:
    scoped_env(const char* name, const std::string& value) : name_(name) {
        ::setenv(name, value.c_str(), 1);
    }
    ~scoped_env() { ::unsetenv(name_); }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

  private:
    const char* name_;
};

// OpenSSL is mapped only by a run that needs TLS: its module, tandem-tls.so, is loaded at
// the first TLS connection. LD_DEBUG=files names every object the loader opens.
TEST(cli, openssl_is_loaded_only_by_a_run_over_tls) {
    auto& server = shared_server();
    world w;
    auto user = fresh_user();
    const auto config = [&](transport how) {
        return w.general() + w.imap_store("server", server, user, how) + w.maildir_store("local") +
               w.channel("c", "server", "local");
    };
    run_result plain, tls;
    {
        scoped_env debug("LD_DEBUG", "files");
        w.write_config(config(transport::plain));
        plain = w.run({"sync"});
        w.write_config(config(transport::tls));
        tls = w.run({"sync"});
    }
    ASSERT_EQ(plain.exit_code, 0) << plain.describe();
    EXPECT_FALSE(contains(plain.err, "libssl")) << plain.describe();
    EXPECT_FALSE(contains(plain.err, "libcrypto")) << plain.describe();
    EXPECT_FALSE(contains(plain.err, "tandem-tls")) << plain.describe();
    ASSERT_EQ(tls.exit_code, 0) << tls.describe();
    EXPECT_TRUE(contains(tls.err, "tandem-tls.so")) << tls.describe();
    EXPECT_TRUE(contains(tls.err, "libssl.so")) << tls.describe();
}

// Without its TLS module a TLS store cannot connect (exit 3), and the message says what is
// missing and where it was looked for; a plain store does not need it.
TEST(cli, a_missing_tls_module_is_named_and_only_tls_needs_it) {
    auto& server = shared_server();
    world w;
    auto user = fresh_user();
    const std::string missing = (w.root() / "nowhere" / "tandem-tls.so").string();
    scoped_env module("TANDEM_TLS_MODULE", missing);
    w.write_config(w.general() + w.imap_store("server", server, user, transport::tls) +
                   w.maildir_store("local") + w.channel("c", "server", "local"));
    for (std::vector<std::string> args : {std::vector<std::string>{"sync"},
                                          std::vector<std::string>{"check-config", "--connect"}}) {
        auto r = w.run(args);
        EXPECT_EQ(r.exit_code, 3) << args.front() << ": " << r.describe();
        EXPECT_TRUE(contains(r.all(), "TLS needs tandem's module tandem-tls.so")) << r.describe();
        EXPECT_TRUE(contains(r.all(), missing)) << r.describe();
    }
    w.write_config(w.general() + w.imap_store("server", server, user, transport::plain) +
                   w.maildir_store("local") + w.channel("c", "server", "local"));
    auto plain = w.run({"sync"});
    EXPECT_EQ(plain.exit_code, 0) << plain.describe();
}

TEST(cli, dry_run_changes_nothing_on_either_side_and_says_what_it_would_do) {
    channel_under_test c(shared_server(), maildir_kind);
    c.a().create("Work");
    for (int i = 0; i < 5; ++i) c.a().add_new("INBOX", "m" + std::to_string(i));
    c.a().add_new("Work", "w0");
    c.b().add_new("INBOX", "local-0");

    // A dry first sync: no Maildir folder appears, the server stays as it is.
    auto marks = server_marks(c.server(), c.user_a());
    auto files = maildir_files(c.w.maildir());
    auto dry = c.sync({"--dry-run"});
    EXPECT_EQ(dry.exit_code, 0) << dry.describe();
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks);
    EXPECT_EQ(maildir_files(c.w.maildir()), files);
    EXPECT_FALSE(fs::exists(c.w.maildir() / "Work")) << "a dry run creates no folder";
    EXPECT_TRUE(contains(lower(dry.all()), "would")) << dry.describe();

    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    // Changes on both sides, then a dry run.
    c.a().add_new("INBOX", "new-on-a");
    c.a().expunge("INBOX", "m0");
    c.a().set_flags("INBOX", "m1", {"\\Seen"}, {});
    c.b().set_flags("INBOX", "m2", {"\\Flagged"}, {});
    c.b().add_new("Fresh", "in-fresh");
    auto sa = c.a().snapshot(), sb = c.b().snapshot();
    ASSERT_NE(sa, sb);
    marks = server_marks(c.server(), c.user_a());
    files = maildir_files(c.w.maildir());
    auto saves = c.saves(true);
    auto dry2 = c.sync({"--dry-run"});
    EXPECT_EQ(dry2.exit_code, 0) << dry2.describe();
    EXPECT_EQ(server_marks(c.server(), c.user_a()), marks);
    EXPECT_EQ(c.a().snapshot(), sa);
    EXPECT_EQ(c.b().snapshot(), sb);
    EXPECT_EQ(maildir_files(c.w.maildir()), files);
    EXPECT_EQ(c.saves(true), saves);
    EXPECT_TRUE(contains(lower(dry2.all()), "would")) << dry2.describe();
    EXPECT_TRUE(contains(dry2.all(), "Fresh")) << "the new folder is named: " << dry2.describe();

    // The real run then does all of it.
    auto real = c.sync();
    ASSERT_EQ(real.exit_code, 0) << real.describe();
    auto after = c.a().snapshot();
    EXPECT_EQ(after, c.b().snapshot());
    EXPECT_EQ(flags_of(after, "INBOX", "m0"), "<missing>");
    EXPECT_EQ(flags_of(after, "INBOX", "m2"), "\\Flagged");
    EXPECT_EQ(flags_of(after, "Fresh", "in-fresh"), "");
}

const boost::json::object* find_channel(const boost::json::value& top, const std::string& name) {
    if (!top.is_object()) return nullptr;
    const auto* channels = top.as_object().if_contains("channels");
    if (!channels || !channels->is_array()) return nullptr;
    for (const auto& ch : channels->as_array())
        if (ch.is_object() && ch.as_object().if_contains("channel") &&
            ch.as_object().at("channel") == boost::json::value(name))
            return &ch.as_object();
    return nullptr;
}

std::int64_t count_in(const boost::json::object& ch, const char* direction, const char* what) {
    const auto* d = ch.if_contains(direction);
    if (!d || !d->is_object()) return -1;
    const auto* v = d->as_object().if_contains(what);
    if (!v || !v->is_number()) return -1;
    return v->to_number<std::int64_t>();
}

TEST(cli, json_summary_parses_and_has_the_counts) {
    channel_under_test c(shared_server(), maildir_kind);
    for (int i = 0; i < 5; ++i) c.a().add_new("INBOX", "m" + std::to_string(i));
    c.b().add_new("INBOX", "local-0");
    c.b().add_new("INBOX", "local-1");

    auto r = c.sync({"--json"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    boost::system::error_code ec;
    auto top = boost::json::parse(r.out, ec);
    ASSERT_FALSE(ec) << "stdout is not JSON: " << r.out;
    ASSERT_TRUE(top.is_object()) << r.out;
    const auto* exit_code = top.as_object().if_contains("exit_code");
    ASSERT_TRUE(exit_code && exit_code->is_number()) << r.out;
    EXPECT_EQ(exit_code->to_number<int>(), 0);
    const auto* ch = find_channel(top, "c");
    ASSERT_TRUE(ch) << r.out;
    EXPECT_EQ(count_in(*ch, "to_b", "copied"), 5) << r.out;
    EXPECT_EQ(count_in(*ch, "to_a", "copied"), 2) << r.out;
    EXPECT_GT(count_in(*ch, "to_b", "bytes"), 0) << r.out;

    // Nothing left: the counts say zero.
    c.a().set_flags("INBOX", "m1", {"\\Flagged"}, {});
    auto r2 = c.sync({"--json"});
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    auto top2 = boost::json::parse(r2.out, ec);
    ASSERT_FALSE(ec) << r2.out;
    const auto* ch2 = find_channel(top2, "c");
    ASSERT_TRUE(ch2) << r2.out;
    EXPECT_EQ(count_in(*ch2, "to_b", "copied"), 0) << r2.out;
    EXPECT_EQ(count_in(*ch2, "to_b", "flags"), 1) << r2.out;
}

TEST(cli, status_works_with_the_server_gone) {
    auto server = std::make_unique<test::dovecot>(many_users());
    channel_under_test c(*server, maildir_kind);
    c.a().create("Work");
    c.a().add_new("INBOX", "m0");
    c.a().add_new("Work", "w0");
    c.a().add_new("Work", "w1");
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    server.reset();  // the network is down

    run_options quick;
    quick.timeout = 15s;
    auto st = c.w.run({"status"}, quick);
    EXPECT_EQ(st.exit_code, 0) << st.describe();
    EXPECT_TRUE(contains(st.out, "INBOX")) << st.describe();
    EXPECT_TRUE(contains(st.out, "Work")) << st.describe();

    auto js = c.w.run({"status", "--json"}, quick);
    EXPECT_EQ(js.exit_code, 0) << js.describe();
    boost::system::error_code ec;
    auto v = boost::json::parse(js.out, ec);
    EXPECT_FALSE(ec) << js.out;
    EXPECT_TRUE(contains(js.out, "Work")) << js.out;

    // And sync says it cannot connect.
    auto s = c.sync({}, quick);
    EXPECT_EQ(s.exit_code, 3) << s.describe();
}

TEST(cli, check_config_connect_reports_the_capabilities) {
    channel_under_test c(shared_server(), maildir_kind);
    auto r = c.w.run({"check-config", "--connect"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    for (const char* cap : {"QRESYNC", "CONDSTORE", "UIDPLUS", "MOVE", "LIST-STATUS"})
        EXPECT_TRUE(contains(r.out, cap)) << cap << " in\n" << r.describe();

    // A server that hides QRESYNC: the report must differ on that line.
    auto options = many_users();
    options.hidden_capabilities = {"QRESYNC"};
    test::dovecot hidden(options);
    channel_under_test c2(hidden, maildir_kind);
    auto r2 = c2.w.run({"check-config", "--connect"});
    EXPECT_EQ(r2.exit_code, 0) << r2.describe();
    auto line_with = [](const std::string& text, const std::string& word) {
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);)
            if (contains(line, word) && !contains(line, "CONDSTORE")) return line;
        return std::string("<none>");
    };
    EXPECT_NE(line_with(r.out, "QRESYNC"), line_with(r2.out, "QRESYNC")) << r2.describe();
}

// Every regular file under `dir`, with its bytes.
std::vector<std::pair<fs::path, std::string>> files_under(const fs::path& dir) {
    std::vector<std::pair<fs::path, std::string>> out;
    for (const auto& f : fs::recursive_directory_iterator(dir))
        if (f.is_regular_file()) out.emplace_back(f.path(), read_file(f.path()));
    return out;
}

TEST(cli, secrets_stay_out_of_traces_and_journal_files_which_are_private) {
    auto& server = shared_server();
    for (transport how : {transport::plain, transport::password_command}) {
        SCOPED_TRACE(how == transport::plain ? "password-file" : "password-command");
        world w;
        auto user = fresh_user();
        const auto& password = server.password(user);
        w.write_config(w.general() + w.imap_store("server", server, user, how) +
                       w.maildir_store("local") + w.channel("c", "server", "local"));
        imap_side a(server, user);
        a.add_new("INBOX", "m0", {"\\Seen"});
        a.add_new("INBOX", "m1");
        auto r = w.run({"sync", "-vv"});
        ASSERT_EQ(r.exit_code, 0) << r.describe();
        // A protocol trace is there...
        EXPECT_TRUE(contains(r.all(), "UID FETCH") || contains(r.all(), "SELECT") ||
                    contains(r.all(), "STATUS"))
            << "-vv should show the protocol: " << r.describe();
        // ...without the password, plain or base64 (AUTHENTICATE PLAIN).
        const std::string plain_b64 =
            base64(std::string("\0", 1) + user + std::string("\0", 1) + password);
        const std::string plain_b64_authz =
            base64(user + std::string("\0", 1) + user + std::string("\0", 1) + password);
        for (const auto& secret : {password, plain_b64, plain_b64_authz}) {
            EXPECT_FALSE(contains(r.all(), secret)) << "secret in the -vv output: " << secret;
        }
        auto journal = files_under(w.state_dir());
        ASSERT_FALSE(journal.empty()) << "no journal in " << w.state_dir();
        for (const auto& [path, bytes] : journal) {
            EXPECT_FALSE(contains(bytes, password)) << path;
            EXPECT_FALSE(contains(bytes, plain_b64)) << path;
            auto perms = fs::status(path).permissions();
            EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none)
                << path << " must be 0600";
        }
    }
}

// ---- compress = auto's evidence: the rate at which bodies came, kept per IMAP store

std::string large_message(const std::string& subject) {
    std::string body;
    for (int line = 0; body.size() < (1u << 20); ++line)
        body += subject + " line " + std::to_string(line) + " " + std::string(60, 'a' + line % 26) +
                "\r\n";
    return test::make_message(subject, body);
}

journal::link_history link_of(const world& w, const std::string& store) {
    journal::journal_options o;
    o.state_dir = w.state_dir();
    std::string why;
    auto j = journal::journal::open(o, &why);
    if (!j) throw std::runtime_error("journal: " + why);
    auto t = j->begin_read();
    if (!t) throw std::runtime_error("journal read: " + t.error().message());
    auto h = j->find_link(*t, store);
    if (!h) throw std::runtime_error("link: " + h.error().message());
    return *h;
}

// The server store with `compress = ...` (the section's other lines as the world writes them).
void set_compress(channel_under_test& c, const std::string& value) {
    c.w.write_config(c.w.general() + c.w.imap_store("server", c.server(), c.user_a()) +
                     "compress = " + value + "\n\n" + c.w.maildir_store("local") +
                     c.w.channel("c", "server", "local"));
}

TEST(cli, a_run_keeps_the_rate_its_bodies_came_at_with_and_without_compress) {
    channel_under_test c(shared_server(), maildir_kind);
    set_compress(c, "yes");
    for (int i = 0; i < 5; ++i)
        c.a().add("INBOX", large_message("big" + std::to_string(i)), {}, {});
    const auto start = static_cast<std::int64_t>(std::time(nullptr));
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto h = link_of(c.w, "server");
    EXPECT_GT(h.compressed.bytes_per_second, 0u);
    EXPECT_GE(h.compressed.when, start);
    EXPECT_EQ(h.plain, journal::link_sample{});

    set_compress(c, "no");
    for (int i = 5; i < 10; ++i)
        c.a().add("INBOX", large_message("big" + std::to_string(i)), {}, {});
    r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto h2 = link_of(c.w, "server");
    EXPECT_GT(h2.plain.bytes_per_second, 0u);
    EXPECT_EQ(h2.compressed, h.compressed);

    // A few small bodies are no evidence: nothing changes.
    c.a().add_new("INBOX", "small");
    r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(link_of(c.w, "server"), h2);
    EXPECT_EQ(c.a().snapshot(), c.b().snapshot());

    // `status` shows both rates.
    auto st = c.w.run({"status"});
    EXPECT_EQ(st.exit_code, 0) << st.describe();
    EXPECT_TRUE(contains(st.out, "store server: bodies came at")) << st.out;
    EXPECT_TRUE(contains(st.out, "kB/s without COMPRESS")) << st.out;
    EXPECT_TRUE(contains(st.out, "kB/s with COMPRESS")) << st.out;
    auto js = c.w.run({"status", "--json"});
    EXPECT_EQ(js.exit_code, 0) << js.describe();
    boost::system::error_code ec;
    auto v = boost::json::parse(js.out, ec);
    ASSERT_FALSE(ec) << js.out;
    const auto* ch = v.is_array() && !v.as_array().empty() && v.as_array()[0].is_object()
                         ? &v.as_array()[0].as_object()
                         : nullptr;
    ASSERT_TRUE(ch) << js.out;
    const auto* links = ch->if_contains("links");
    ASSERT_TRUE(links && links->is_array() && links->as_array().size() == 1) << js.out;
    const auto& link = links->as_array()[0].as_object();
    EXPECT_EQ(link.at("store"), boost::json::value("server"));
    EXPECT_EQ(link.at("plain").at("bytes_per_second").to_number<std::uint64_t>(),
              h2.plain.bytes_per_second);
    EXPECT_EQ(link.at("compressed").at("when").to_number<std::int64_t>(), h2.compressed.when);
}

// On a link taken as far (TANDEM_ROUND_TRIP_MS, as the benchmark's delaying proxy needs),
// compress = auto follows the kept rates; on loopback it never compresses.
TEST(cli, compress_auto_follows_the_kept_rates_on_a_far_link) {
    channel_under_test c(shared_server(), maildir_kind);
    c.a().add_new("INBOX", "m0");
    auto put = [&](journal::link_history h) {
        journal::journal_options o;
        o.state_dir = c.w.state_dir();
        auto j = journal::journal::open(o);
        ASSERT_TRUE(j);
        ASSERT_TRUE(
            j->write([&](journal::lmdb::write_txn& t) { return j->put_link(t, "server", h); }));
    };
    auto compressed = [&](const run_result& r) {
        return contains(r.all(), "COMPRESS=DEFLATE active");
    };
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    put({{2'000'000, now - 60}, {5'000'000, now - 30}});  // a slow link: deflate pays
    auto loopback = c.sync({"-vv"});
    ASSERT_EQ(loopback.exit_code, 0) << loopback.describe();
    EXPECT_FALSE(compressed(loopback));

    ::setenv("TANDEM_ROUND_TRIP_MS", "20", 1);
    auto slow = c.sync({"-vv"});
    put({{90'000'000, now - 60}, {30'000'000, now - 30}});  // a fast one: deflate is slower
    auto fast = c.sync({"-vv"});
    put({{90'000'000, now - 40 * 24 * 3600}, {30'000'000, now - 30}});  // plain: too old
    auto stale = c.sync({"-vv"});
    ::unsetenv("TANDEM_ROUND_TRIP_MS");
    for (const auto* r : {&slow, &fast, &stale}) ASSERT_EQ(r->exit_code, 0) << r->describe();
    EXPECT_TRUE(compressed(slow)) << slow.describe();
    EXPECT_FALSE(compressed(fast)) << fast.describe();
    EXPECT_FALSE(compressed(stale)) << "only the compressed rate is recent: try without";
}

TEST(cli, watch_propagates_changes_within_ten_seconds) {
    channel_under_test c(shared_server(), maildir_kind);
    c.a().add_new("INBOX", "before-watch");
    auto* md = c.b_maildir();
    background_tandem watch({"watch", "--config", c.w.config_path().string()});
    ASSERT_TRUE(
        eventually([&] { return flags_of(md->snapshot(), "INBOX", "before-watch") == ""; }, 20s))
        << "the first pass of watch did not sync: " << watch.output();

    // A new server message reaches the Maildir.
    auto t0 = std::chrono::steady_clock::now();
    c.a().add_new("INBOX", "arrives-by-idle", {"\\Seen"});
    EXPECT_TRUE(eventually(
        [&] { return flags_of(md->snapshot(), "INBOX", "arrives-by-idle") == "\\Seen"; }, 10s))
        << watch.output();
    auto took = std::chrono::steady_clock::now() - t0;
    RecordProperty(
        "server_to_maildir_ms",
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));

    // A Maildir flag change reaches the server.
    md->set_flags("INBOX", "before-watch", {"\\Flagged"}, {});
    EXPECT_TRUE(eventually(
        [&] { return flags_of(c.a().snapshot(), "INBOX", "before-watch") == "\\Flagged"; }, 10s))
        << watch.output();
    // And a message written into the Maildir reaches the server.
    md->add_new("INBOX", "arrives-by-inotify");
    EXPECT_TRUE(eventually(
        [&] { return flags_of(c.a().snapshot(), "INBOX", "arrives-by-inotify") == ""; }, 10s))
        << watch.output();
    EXPECT_TRUE(watch.running()) << watch.output();
}

// The first pass creates the Maildir root, so inotify can only watch it afterwards: a
// change made in that window raised no event and still has to reach the server (a CI run
// lost one when the IDLE leg above happened to be fast).
TEST(cli, watch_sees_a_maildir_change_made_as_its_first_pass_ends) {
    channel_under_test c(shared_server(), maildir_kind);
    c.a().add_new("INBOX", "first");
    auto* md = c.b_maildir();
    background_tandem watch({"watch", "--config", c.w.config_path().string()});
    ASSERT_TRUE(eventually([&] { return flags_of(md->snapshot(), "INBOX", "first") == ""; }, 20s))
        << watch.output();
    md->set_flags("INBOX", "first", {"\\Answered"}, {});
    EXPECT_TRUE(eventually(
        [&] { return flags_of(c.a().snapshot(), "INBOX", "first") == "\\Answered"; }, 10s))
        << watch.output();
}

// The network goes away under `watch` (the tunnel refuses to start and running sessions are
// cut), then comes back: watch reconnects and syncs what arrived meanwhile.
TEST(cli, watch_recovers_after_a_network_outage) {
    auto& server = shared_server();
    world w;
    auto user = fresh_user();
    auto down = w.root() / "network-down";
    auto pids = w.root() / "tunnel-pids";
    auto wrapper = w.root() / "tunnel.sh";
    write_file(wrapper,
               "#!/bin/sh\n"
               "if [ -e " +
                   test::shell_quote(down.string()) +
                   " ]; then echo 'tunnel: network down' >&2; exit 1; fi\n"
                   "echo $$ >> " +
                   test::shell_quote(pids.string()) + "\n" + server.tunnel_command(user) + "\n",
               fs::perms(0755));
    w.write_config(w.general() + "[store.server]\ntype = imap\ntunnel = /bin/sh " +
                   wrapper.string() + "\n\n" + w.maildir_store("local") +
                   w.channel("c", "server", "local"));
    imap_side a(server, user);
    maildir_side md(w.maildir(), layout::verbatim);
    a.add_new("INBOX", "before");

    background_tandem watch({"watch", "--config", w.config_path().string()});
    ASSERT_TRUE(eventually([&] { return flags_of(md.snapshot(), "INBOX", "before") == ""; }, 20s))
        << watch.output();

    // Down: no new tunnel starts, the running ones are cut.
    write_file(down, "");
    std::ifstream in(pids);
    for (pid_t p; in >> p;) {
        // Only a tunnel our wrapper started that still runs this Dovecot's imap.
        const std::string args = test::read_proc_file(p, "cmdline");
        if (contains(args, server.config_file().string())) ::kill(p, SIGKILL);
    }
    a.add_new("INBOX", "during-outage");
    std::this_thread::sleep_for(3s);
    EXPECT_EQ(flags_of(md.snapshot(), "INBOX", "during-outage"), "<missing>")
        << "the outage was not real: " << watch.output();
    EXPECT_TRUE(watch.running()) << "watch must survive the outage: " << watch.output();

    // Up again.
    fs::remove(down);
    EXPECT_TRUE(
        eventually([&] { return flags_of(md.snapshot(), "INBOX", "during-outage") == ""; }, 25s))
        << "watch did not recover: " << watch.output();
}

// A mailbox that cannot be synced (its Maildir folder's place is taken by a file) fails
// alone: the others sync, and the exit code is 1.
TEST(cli, one_failing_mailbox_does_not_stop_the_others_and_exits_1) {
    channel_under_test c(shared_server(), maildir_kind);
    c.a().create("Work");
    c.a().create("Blocked");
    c.a().add_new("INBOX", "m0");
    c.a().add_new("Work", "w0");
    c.a().add_new("Blocked", "x0");
    fs::create_directories(c.w.maildir());
    write_file(c.w.maildir() / "Blocked", "not a folder\n");
    auto r = c.sync();
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(contains(r.all(), "Blocked")) << "the error names the mailbox: " << r.describe();
    auto sb = c.b().snapshot();
    EXPECT_EQ(flags_of(sb, "INBOX", "m0"), "");
    EXPECT_EQ(flags_of(sb, "Work", "w0"), "");
    EXPECT_EQ(read_file(c.w.maildir() / "Blocked"), "not a folder\n");
}

TEST(cli, post_sync_command_runs_only_after_a_sync_that_changed_something) {
    world probe;  // only for a path of its own
    auto marker = probe.root() / "post-sync-ran";
    channel_under_test c(shared_server(), maildir_kind,
                         "post-sync-command = touch " + marker.string() + "\n");
    c.a().add_new("INBOX", "m0");
    auto r = c.sync();
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(fs::exists(marker)) << r.describe();
    fs::remove(marker);
    auto again = c.sync();
    ASSERT_EQ(again.exit_code, 0) << again.describe();
    EXPECT_FALSE(fs::exists(marker)) << "nothing changed, so nothing to run";
    c.a().add_new("INBOX", "m1");
    auto dry = c.sync({"--dry-run"});
    ASSERT_EQ(dry.exit_code, 0) << dry.describe();
    EXPECT_FALSE(fs::exists(marker)) << "a dry run runs nothing";
}

TEST(cli, list_shows_the_mailboxes_of_each_store) {
    channel_under_test c(shared_server(), maildir_kind);
    c.a().create("Work");
    c.a().create("Entwürfe");
    c.a().add_new("Work", "w0");
    auto r = c.w.run({"list", "server"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    for (const char* name : {"INBOX", "Work", "Entwürfe"})
        EXPECT_TRUE(contains(r.out, name)) << name << " in " << r.describe();
    EXPECT_EQ(test::list_mailboxes(c.server(), c.user_a()).size(), 3u) << "list changes nothing";
    EXPECT_FALSE(fs::exists(c.w.maildir() / "Work")) << "list changes nothing";
}

TEST(cli, version_and_help_of_every_command_exit_0) {
    auto v = run_tandem({"--version"});
    EXPECT_EQ(v.exit_code, 0) << v.describe();
    EXPECT_TRUE(contains(v.out, "tandem")) << v.describe();
    auto h = run_tandem({"--help"});
    EXPECT_EQ(h.exit_code, 0) << h.describe();
    for (const char* command : {"sync", "list", "status", "watch", "check-config"}) {
        auto r = run_tandem({command, "--help"});
        EXPECT_EQ(r.exit_code, 0) << command << ": " << r.describe();
        EXPECT_TRUE(contains(r.out, command)) << command << ": " << r.describe();
        EXPECT_FALSE(r.out.empty());
    }
    auto sync_help = run_tandem({"sync", "--help"});
    for (const char* option : {"--dry-run", "--force", "--json", "--config"})
        EXPECT_TRUE(contains(sync_help.out, option)) << option << " in " << sync_help.out;
}

}  // namespace
}  // namespace tandem::e2e
