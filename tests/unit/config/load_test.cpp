// SPDX-License-Identifier: MIT
#include "support/temp_dir.hpp"
#include "tandem/config/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>

namespace tandem::config {
namespace {

environment load_env() {
    return [](std::string_view name) -> std::optional<std::string> {
        static const std::map<std::string, std::string, std::less<>> vars{
            {"HOME", "/home/me"}, {"MAILROOT", "/srv/mail"}};
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

result<configuration> from(std::string_view text) {
    return parse(text, "/etc/tandem/tandem.conf", load_env());
}

configuration good(std::string_view text) {
    auto r = from(text);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? *r : configuration{};
}

// The one diagnostic a text produces: its line and its text.
diagnostic only_error(std::string_view text) {
    auto r = from(text);
    EXPECT_FALSE(r) << "expected an error in:\n" << text;
    if (r) return {};
    EXPECT_EQ(r.error().diagnostics.size(), 1u) << r.error().message();
    return r.error().diagnostics.front();
}

constexpr std::string_view sample = R"([general]
state-dir = ~/.local/state/tandem     ; the LMDB journal lives here

[store.work]
type = imap
host = imap.example.com
port = 993
tls = implicit                        ; implicit | starttls | none
user = me@example.com
password-command = pass show mail/work
; tunnel = ssh host /usr/lib/dovecot/imap    (instead of host/port)

[store.local]
type = maildir
path = ~/Mail/work
layout = verbatim                     ; verbatim | maildir++

[channel.work]
a = work
b = local
mailboxes = * !Junk                   ; patterns; ! excludes
direction = both                      ; both | a-to-b | b-to-a
create = both                         ; both | a | b | none
remove = none                         ; both | a | b | none (folders)
expunge = both                        ; both | a | b | none
max-delete = 50%                      ; the mass-removal guard
max-size = 50M                        ; larger messages are skipped
)";

TEST(load, the_sample_of_the_issue) {
    auto cfg = good(sample);
    EXPECT_EQ(cfg.general.state_dir, "/home/me/.local/state/tandem");
    ASSERT_EQ(cfg.stores.size(), 2u);
    const auto& work = std::get<imap_store>(cfg.stores[0]);
    EXPECT_EQ(work.name, "work");
    EXPECT_EQ(work.host, "imap.example.com");
    EXPECT_EQ(work.port, 993);
    EXPECT_EQ(work.tls, tls_mode::implicit);
    EXPECT_EQ(work.user, "me@example.com");
    EXPECT_EQ(work.secret.from, secret_source::kind::password_command);
    EXPECT_EQ(work.secret.value, "pass show mail/work");
    EXPECT_EQ(work.secret.line, 10u);
    EXPECT_EQ(work.auth, auth_method::automatic);
    EXPECT_EQ(work.connections, 4u);
    EXPECT_EQ(work.timeout, std::chrono::seconds(60));
    EXPECT_TRUE(work.tls_verify);
    EXPECT_EQ(work.line, 4u);
    const auto& local = std::get<maildir_store>(cfg.stores[1]);
    EXPECT_EQ(local.path, "/home/me/Mail/work");
    EXPECT_EQ(local.layout, maildir_layout::verbatim);
    EXPECT_TRUE(local.fsync);
    ASSERT_EQ(cfg.channels.size(), 1u);
    const auto& ch = cfg.channels[0];
    EXPECT_EQ(ch.a, "work");
    EXPECT_EQ(ch.b, "local");
    EXPECT_TRUE(ch.mailboxes.matches("INBOX"));
    EXPECT_FALSE(ch.mailboxes.matches("Junk"));
    EXPECT_EQ(ch.direction, direction::both);
    EXPECT_EQ(ch.create, sides::both);
    EXPECT_EQ(ch.remove, sides::none);
    EXPECT_EQ(ch.expunge, sides::both);
    EXPECT_EQ(ch.max_delete, (delete_limit{delete_limit::kind::percent, 50}));
    EXPECT_EQ(ch.max_size, 50u * 1024 * 1024);
    EXPECT_EQ(cfg.find_channel("work"), &cfg.channels[0]);
    EXPECT_EQ(cfg.find_store("local"), &cfg.stores[1]);
    EXPECT_EQ(cfg.find_store("nope"), nullptr);
}

TEST(load, defaults) {
    auto cfg = good(R"(
[store.s]
type = imap
host = mail.example.org
tls = starttls
user = u
password-file = secret
[store.m]
type = maildir
path = $MAILROOT/m
[channel.c]
a = s
b = m
)");
    EXPECT_EQ(cfg.general.state_dir, "/home/me/.local/state/tandem");
    EXPECT_EQ(cfg.general.level, log_level::info);
    const auto& s = std::get<imap_store>(cfg.stores[0]);
    EXPECT_EQ(s.port, 143);  // starttls
    EXPECT_EQ(s.compress, compress_mode::automatic);
    // A relative path is relative to the configuration file.
    EXPECT_EQ(s.secret.value, "/etc/tandem/secret");
    EXPECT_EQ(std::get<maildir_store>(cfg.stores[1]).path, "/srv/mail/m");
    const auto& c = cfg.channels[0];
    EXPECT_TRUE(c.mailboxes.matches("Any/Thing"));
    EXPECT_EQ(c.remove, sides::none);
    EXPECT_EQ(c.max_delete, (delete_limit{delete_limit::kind::percent, 50}));
    EXPECT_FALSE(c.max_size);
    EXPECT_TRUE(c.post_sync_command.empty());
}

TEST(load, every_imap_option) {
    auto cfg = good(R"([general]
log-level = debug
state-dir = "/var/lib/tandem state"
[store.icloud]
type = imap
host = imap.mail.me.com
port = 1993
tls = none
allow-plaintext = yes
user = me
auth = login
password-file = ~/.secret
ca-file = /etc/ssl/my-ca.pem
fingerprint = SHA256:AB:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89
tls-insecure-skip-verify = yes-i-know
connections = 8
compress = no
disable-capabilities = qresync CONDSTORE
timeout = 2m
[store.oauth]
type = imap
host = outlook.office365.com
user = me@example.com
auth = xoauth2
token-command = oauth2-token --account work # inline hash comment
[store.tunneled]
type = imap
tunnel = ssh -q mailhost /usr/lib/dovecot/imap
[store.local]
type = maildir
path = ~/Mail
layout = maildir++
fsync = off
[channel.x]
a = icloud
b = local
direction = a-to-b
create = b
remove = both
expunge = none
max-delete = 20
max-size = 512k
post-sync-command = notmuch new; echo done
mailboxes = INBOX "Sent Messages" Archive/*
)");
    EXPECT_EQ(cfg.general.level, log_level::debug);
    EXPECT_EQ(cfg.general.state_dir, "/var/lib/tandem state");
    const auto& s = std::get<imap_store>(cfg.stores[0]);
    EXPECT_EQ(s.port, 1993);
    EXPECT_EQ(s.tls, tls_mode::none);
    EXPECT_TRUE(s.allow_plaintext);
    EXPECT_EQ(s.auth, auth_method::login);
    EXPECT_EQ(s.secret.from, secret_source::kind::password_file);
    EXPECT_EQ(s.secret.value, "/home/me/.secret");
    EXPECT_EQ(s.ca_file, "/etc/ssl/my-ca.pem");
    EXPECT_EQ(s.fingerprint, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    EXPECT_FALSE(s.tls_verify);
    EXPECT_EQ(s.connections, 8u);
    EXPECT_EQ(s.compress, compress_mode::no);
    EXPECT_EQ(s.disabled_capabilities, (std::vector<std::string>{"QRESYNC", "CONDSTORE"}));
    EXPECT_EQ(s.timeout, std::chrono::minutes(2));
    const auto& o = std::get<imap_store>(cfg.stores[1]);
    EXPECT_EQ(o.auth, auth_method::xoauth2);
    EXPECT_EQ(o.secret.from, secret_source::kind::token_command);
    EXPECT_EQ(o.secret.value, "oauth2-token --account work");
    const auto& t = std::get<imap_store>(cfg.stores[2]);
    EXPECT_EQ(t.tunnel, "ssh -q mailhost /usr/lib/dovecot/imap");
    EXPECT_EQ(t.tls, tls_mode::none);
    EXPECT_TRUE(t.user.empty());
    EXPECT_EQ(t.tunnel_argv(),
              (std::vector<std::string>{"/bin/sh", "-c", "ssh -q mailhost /usr/lib/dovecot/imap"}));
    const auto& m = std::get<maildir_store>(cfg.stores[3]);
    EXPECT_EQ(m.layout, maildir_layout::maildirpp);
    EXPECT_FALSE(m.fsync);
    const auto& c = cfg.channels[0];
    EXPECT_EQ(c.direction, direction::a_to_b);
    EXPECT_EQ(c.create, sides::b);
    EXPECT_EQ(c.remove, sides::both);
    EXPECT_EQ(c.expunge, sides::none);
    EXPECT_EQ(c.max_delete, (delete_limit{delete_limit::kind::count, 20}));
    EXPECT_EQ(c.max_size, 512u * 1024);
    EXPECT_EQ(c.post_sync_command, "notmuch new; echo done");  // `;` after no blank stays
    EXPECT_TRUE(c.mailboxes.matches("Sent Messages"));
    EXPECT_TRUE(c.mailboxes.matches("Archive/2020"));
    EXPECT_FALSE(c.mailboxes.matches("Drafts"));
}

TEST(load, comments_blank_lines_crlf_and_bom) {
    auto cfg = good(
        "\xEF\xBB\xBF# a comment\r\n; another\r\n\r\n[store.m]   ; trailing\r\ntype=maildir\r\n"
        "path = \"/a ; b\" ; the quotes keep the semicolon\r\n");
    EXPECT_EQ(std::get<maildir_store>(cfg.stores[0]).path, "/a ; b");
}

// Every kind of mistake, with its line.

TEST(load_errors, unknown_key_with_suggestion) {
    auto d = only_error(R"([store.work]
type = imap
hots = imap.example.com
user = me
password-command = pass x
)");
    EXPECT_EQ(d.line, 3u);
    EXPECT_EQ(d.to_string(),
              "/etc/tandem/tandem.conf:3: unknown key \"hots\" in [store.work] (did you mean "
              "\"host\"?)");
}

TEST(load_errors, missing_required_keys_point_at_the_section) {
    auto host = only_error("\n[store.work]\ntype = imap\nuser = me\npassword-command = x\n");
    EXPECT_EQ(host.line, 2u);
    EXPECT_NE(host.text.find("missing required key \"host\""), std::string::npos);
    auto type = only_error("[store.work]\nhost = h\n");
    EXPECT_EQ(type.line, 1u);
    EXPECT_NE(type.text.find("\"type\""), std::string::npos);
    auto path = only_error("[general]\n[store.m]\ntype = maildir\n");
    EXPECT_EQ(path.line, 2u);
    EXPECT_NE(path.text.find("\"path\""), std::string::npos);
    auto user = only_error("[store.s]\ntype = imap\nhost = h\n");
    EXPECT_NE(user.text.find("\"user\""), std::string::npos);
    auto b = only_error("[store.m]\ntype = maildir\npath = /m\n[channel.c]\na = m\n");
    EXPECT_EQ(b.line, 4u);
    EXPECT_NE(b.text.find("missing required key \"b\""), std::string::npos);
}

TEST(load_errors, bad_values) {
    const std::string head =
        "[store.m]\ntype = maildir\npath = /m\n[store.n]\ntype = maildir\n"
        "path = /n\n[channel.c]\na = m\nb = n\n";
    struct {
        const char* line;
        const char* expect;
    } cases[] = {
        {"max-size = 50Q", "bad value \"50Q\" for \"max-size\" in [channel.c]: expected a size"},
        {"max-delete = lots", "bad value \"lots\" for \"max-delete\""},
        {"direction = a-to-c", "expected both, a-to-b or b-to-a (did you mean \"a-to-b\"?)"},
        {"expunge = all", "expected both, a, b or none"},
        {"mailboxes = !Junk", "only exclusions"},
        {"mailboxes = \"Open", "closing quote"},
        {"max-size = 0", "must be more than 0"},
    };
    for (const auto& c : cases) {
        auto d = only_error(head + c.line + "\n");
        EXPECT_EQ(d.line, 10u) << c.line;
        EXPECT_NE(d.text.find(c.expect), std::string::npos) << d.text;
    }
}

TEST(load_errors, bad_imap_values) {
    const std::string head = "[store.s]\ntype = imap\nhost = h\nuser = u\npassword-command = p\n";
    struct {
        const char* line;
        const char* expect;
    } cases[] = {
        {"port = 0", "port number from 1 to 65535"},
        {"port = 70000", "port number from 1 to 65535"},
        {"port = imap", "port number"},
        {"tls = ssl", "expected implicit, starttls or none"},
        {"tls = none", "allow-plaintext = yes"},
        {"auth = cram-md5", "expected login, plain, xoauth2 or oauthbearer"},
        {"compress = maybe", "expected auto, yes or no"},
        {"timeout = soon", "expected a duration"},
        {"timeout = 0s", "more than 0"},
        {"connections = 0", "from 1 to 64"},
        {"connections = many", "expected a number"},
        {"tls-verify = no", "tls-insecure-skip-verify = yes-i-know"},
        {"tls-verify = perhaps", "expected yes or no"},
        {"tls-insecure-skip-verify = yes", "takes exactly \"yes-i-know\""},
        {"fingerprint = abcdef", "sha256: and 64 hex digits"},
        {"disable-capabilities = QRESYNC (x)", "bad capability name"},
        {"allow-plaintext = sure", "expected yes or no"},
        {"path = /x", "belongs to another type of store"},
        {"password = hunter2", "does not read passwords from its configuration file"},
        {"tunnel = ssh x imapd", "\"host\" and \"tunnel\" exclude each other"},
        {"token-command = get-token", "two secret sources"},
        {"ca-file = $NOPE/ca.pem", "environment variable \"NOPE\" is not set"},
    };
    for (const auto& c : cases) {
        auto r = from(head + c.line + "\n");
        ASSERT_FALSE(r) << c.line;
        const error e = r.error();
        const auto& d = e.diagnostics.front();
        EXPECT_EQ(d.line, c.line == std::string("tunnel = ssh x imapd") ? 3u : 6u) << c.line;
        EXPECT_NE(d.text.find(c.expect), std::string::npos) << d.text;
        // A secret never reaches a message.
        EXPECT_EQ(r.error().message().find("hunter2"), std::string::npos);
    }
}

TEST(load_errors, two_password_sources) {
    auto d = only_error(R"([store.s]
type = imap
host = h
user = u
password-command = pass show x
password-file = /secret
)");
    EXPECT_EQ(d.line, 6u);
    EXPECT_NE(d.text.find("two secret sources"), std::string::npos);
    EXPECT_NE(d.text.find("line 5"), std::string::npos);
}

TEST(load_errors, oauth_needs_a_token_command) {
    auto d = only_error(
        "[store.s]\ntype = imap\nhost = h\nuser = u\nauth = xoauth2\n"
        "password-command = p\n");
    EXPECT_EQ(d.line, 6u);
    EXPECT_NE(d.text.find("token-command"), std::string::npos);
    auto t = only_error("[store.s]\ntype = imap\nhost = h\nuser = u\ntoken-command = t\n");
    EXPECT_EQ(t.line, 5u);
    EXPECT_NE(t.text.find("needs \"auth = xoauth2\""), std::string::npos);
}

TEST(load_errors, no_password_source) {
    auto d = only_error("[store.s]\ntype = imap\nhost = h\nuser = u\n");
    EXPECT_EQ(d.line, 4u);
    EXPECT_NE(d.text.find("no password source"), std::string::npos);
}

TEST(load_errors, channel_names_a_missing_store) {
    auto d = only_error(R"([store.work]
type = maildir
path = /w
[store.local]
type = maildir
path = /l
[channel.c]
a = wrok
b = local
)");
    EXPECT_EQ(d.line, 8u);
    EXPECT_EQ(d.text,
              "channel \"c\" names store \"wrok\", which is not defined (did you mean \"work\"?)");
    auto far = only_error("[store.m]\ntype = maildir\npath = /m\n[channel.c]\na = m\nb = zzzzzz\n");
    EXPECT_EQ(far.line, 6u);
    EXPECT_NE(far.text.find("add a [store.zzzzzz] section"), std::string::npos);
    auto same = only_error("[store.m]\ntype = maildir\npath = /m\n[channel.c]\na = m\nb = m\n");
    EXPECT_EQ(same.line, 6u);
    EXPECT_NE(same.text.find("same store"), std::string::npos);
}

TEST(load_errors, a_store_with_mistakes_still_counts_as_defined) {
    // One mistake, one message: not a second one for the channel that names the store.
    auto d = only_error(
        "[store.m]\ntype = maildir\npath = /m\nlayout = flat\n[store.n]\n"
        "type = maildir\npath = /n\n[channel.c]\na = m\nb = n\n");
    EXPECT_EQ(d.line, 4u);
}

TEST(load_errors, sections) {
    auto dup = only_error("[general]\nlog-level = info\n[general]\n");
    EXPECT_EQ(dup.line, 3u);
    EXPECT_EQ(dup.text, "duplicate section [general] (first on line 1)");
    auto unknown = only_error("[stor.work]\ntype = imap\n");
    EXPECT_EQ(unknown.line, 1u);
    EXPECT_EQ(unknown.text, "unknown section [stor.work] (did you mean [store.work]?)");
    auto nameless = only_error("[store]\n");
    EXPECT_NE(nameless.text.find("needs a name"), std::string::npos);
    auto other = only_error("[account.x]\n");
    EXPECT_NE(other.text.find("expected [general], [store.NAME] or [channel.NAME]"),
              std::string::npos);
    auto badname = only_error("[channel.a:b]\n");
    EXPECT_NE(badname.text.find("bad channel name"), std::string::npos);
    auto unclosed = only_error("[general\n");
    EXPECT_NE(unclosed.text.find("without \"]\""), std::string::npos);
    auto after = only_error("[general] junk\n");
    EXPECT_NE(after.text.find("text after"), std::string::npos);
    auto outside = only_error("\n\nlog-level = info\n[general]\n");
    EXPECT_EQ(outside.line, 3u);
    EXPECT_NE(outside.text.find("outside any section"), std::string::npos);
}

TEST(load_errors, lines) {
    auto dup = only_error("[store.m]\ntype = maildir\npath = /a\npath = /b\n");
    EXPECT_EQ(dup.line, 4u);
    EXPECT_EQ(dup.text, "duplicate key \"path\" in [store.m] (first on line 3)");
    auto noeq = only_error("[store.m]\ntype = maildir\npath /a\n");
    EXPECT_EQ(noeq.line, 3u);
    EXPECT_NE(noeq.text.find("key = value"), std::string::npos);
    auto empty =
        only_error("[store.m]\ntype = maildir\npath = /a\n[general]\nstate-dir =   ; nothing\n");
    EXPECT_EQ(empty.line, 5u);
    EXPECT_NE(empty.text.find("no value for \"state-dir\""), std::string::npos);
    auto nokey = only_error("[general]\n= x\n");
    EXPECT_EQ(nokey.line, 2u);
}

TEST(load_errors, bad_type) {
    auto d = only_error("[store.m]\npath = /m\ntype = maildri\n");
    EXPECT_EQ(d.line, 3u);
    EXPECT_NE(d.text.find("(did you mean \"maildir\"?)"), std::string::npos);
}

TEST(load_errors, every_mistake_is_reported_in_line_order) {
    auto r = from(R"([general]
log-level = loud
[store.m]
type = maildir
directory = /m
[channel.c]
a = m
b = nowhere
)");
    ASSERT_FALSE(r);
    const error e = r.error();
    const auto& ds = e.diagnostics;
    ASSERT_EQ(ds.size(), 4u) << r.error().message();
    EXPECT_EQ(ds[0].line, 2u);  // log-level
    EXPECT_EQ(ds[1].line, 3u);  // missing path
    EXPECT_EQ(ds[2].line, 5u);  // directory
    EXPECT_EQ(ds[3].line, 8u);  // nowhere
    const std::string message = r.error().message();
    EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 3);
}

TEST(load_errors, tls_none_allowed_explicitly_or_over_a_tunnel) {
    good(
        "[store.s]\ntype = imap\nhost = h\ntls = none\nallow-plaintext = yes\nuser = u\n"
        "password-command = p\n");
    good("[store.s]\ntype = imap\ntunnel = /usr/lib/dovecot/imap\ntls = none\n");
}

TEST(load_file, reads_and_reports_the_path) {
    test::temp_dir dir;
    const auto path = dir / "tandem.conf";
    std::ofstream(path) << "[store.m]\ntype = maildir\npath = mail\nhots = x\n";
    auto r = load(path, load_env());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), path.string() + ":4: unknown key \"hots\" in [store.m]");
    std::ofstream(path) << "[store.m]\ntype = maildir\npath = mail\n";
    auto ok = load(path, load_env());
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_EQ(std::get<maildir_store>(ok->stores[0]).path, dir.path() / "mail");
    auto missing = load(dir / "nope.conf", load_env());
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("nope.conf: cannot read"), std::string::npos);
    EXPECT_THROW(missing.value(), std::runtime_error);
}

}  // namespace
}  // namespace tandem::config
