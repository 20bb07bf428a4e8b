// SPDX-License-Identifier: MIT
// An isolated Dovecot IMAP server for the tests, started in the foreground as a child process.
//
//     tandem::test::dovecot server;                       // alice and bob, default options
//     connect to 127.0.0.1:server.imap_port() (plain + STARTTLS) or server.imaps_port() (TLS),
//     trust server.ca_file(), log in as "alice" with server.password("alice");
//     or run server.tunnel_argv("alice") for a preauthenticated session over stdin/stdout.
//
// Everything lives in one temporary directory: dovecot.conf, run/ (base_dir), log/, ssl/,
// mail/<user>/Maildir. Nothing touches /etc/dovecot or the system's Dovecot. As root the
// mail belongs to the system user "tandemtest" (created when missing); as another user,
// every Dovecot process runs as that user.
//
// The master is a child of the test with PR_SET_PDEATHSIG, tied by Linux to the creating
// thread: construct the fixture in the test's thread (or one that outlives it).
// The CA, the unrelated CA and the server certificate are made once per system user and
// shared by every fixture (cached in $TMPDIR/tandem-test-certs-<euid>-v1); each fixture
// gets its own copy of the files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace tandem::test {

struct dovecot_user {
    std::string name;
    std::string password;
};

struct dovecot_options {
    std::vector<dovecot_user> users = {{"alice", "alice-secret"}, {"bob", "bob-secret"}};
    // The imap_zlib plugin: COMPRESS=DEFLATE (RFC 4978).
    bool compress = true;
    // Capabilities that Dovecot must not advertise after login, e.g. {"CONDSTORE", "QRESYNC"}.
    // Dovecot's imap_capability replaces the whole list, so the pre-login greeting then shows
    // the post-login words too (plus STARTTLS and AUTH=); after LOGIN they are exact.
    // Hiding a capability only hides the word: Dovecot still accepts the command
    // (hiding "COMPRESS=DEFLATE" is the exception: it leaves out the plugin too).
    std::vector<std::string> hidden_capabilities;
    // Sent, Drafts, Trash, Junk and Archive with their RFC 6154 attributes, created and
    // subscribed automatically.
    bool special_use = false;
    // The hierarchy separator and prefix of the personal namespace.
    char separator = '/';
    std::string prefix;
    // mail_log plugin: one log line per save, copy, expunge, flag change and mailbox
    // create/delete/rename (see dovecot::log_events).
    bool mail_log = true;
    // Raw lines appended to dovecot.conf (a later setting overrides an earlier one).
    std::vector<std::string> extra_config;
};

// One "Logged out in=N out=M" line: protocol bytes of a session as Dovecot counted them
// (in = client to server, out = server to client; uncompressed, before TLS).
struct dovecot_session_bytes {
    std::string user;
    std::uint64_t in = 0;
    std::uint64_t out = 0;
    std::uint64_t body_count = 0;  // messages whose body was fetched (%{fetch_body_count})
    std::uint64_t body_bytes = 0;  // bytes of bodies fetched (%{fetch_body_bytes})
};

class dovecot {
  public:
    // Starts Dovecot and returns once its listeners accept connections.
    // Throws std::runtime_error (with the log) when it does not start.
    explicit dovecot(dovecot_options options = {});
    // Stops Dovecot and waits until its master process and its children are gone.
    ~dovecot();
    dovecot(const dovecot&) = delete;
    dovecot& operator=(const dovecot&) = delete;

    const dovecot_options& options() const { return options_; }
    std::string host() const { return "127.0.0.1"; }
    std::uint16_t imap_port() const { return imap_port_; }    // plain, STARTTLS offered
    std::uint16_t imaps_port() const { return imaps_port_; }  // implicit TLS
    // The CA that signed the server certificate (PEM); SAN DNS:localhost, IP:127.0.0.1.
    std::filesystem::path ca_file() const;
    // Another CA, unrelated to the server's certificate: verification against it must fail.
    std::filesystem::path other_ca_file() const;
    std::filesystem::path server_cert_file() const;
    // SHA-256 of the server certificate (DER), 64 lowercase hex digits, no separators.
    const std::string& server_cert_sha256() const { return cert_sha256_; }
    const std::string& password(std::string_view user) const;

    const std::filesystem::path& dir() const;
    std::filesystem::path config_file() const;
    std::filesystem::path log_file() const;  // the server's log (sessions over the network)
    // The log of the preauth tunnel processes: a standalone imap process logs to stderr.
    std::filesystem::path tunnel_log_file() const;
    std::filesystem::path maildir(std::string_view user) const;
    pid_t pid() const;  // the master process
    // Dovecot's instance_name, unique per fixture: the children's titles read
    // "dovecot-<instance_name>/<service>".
    const std::string& instance_name() const;

    // A preauthenticated IMAP session as `user` over stdin/stdout (`* PREAUTH` greeting);
    // as root it drops to the mail user first, since Dovecot's imap refuses to run as root.
    // Its stderr (and so its log) goes to tunnel_log_file().
    std::vector<std::string> tunnel_argv(std::string_view user) const;
    // The same as one /bin/sh command line.
    std::string tunnel_command(std::string_view user) const;

    // The post-login capabilities as advertised (in the PREAUTH greeting), upper case.
    std::vector<std::string> capabilities() const;

    // Both logs (server and tunnel) as text.
    std::string log_text() const;
    // The mail_log lines of an event ("save", "copy", "expunge", "flag_change"), optionally
    // only those of `user` and of mailbox `box` (the target mailbox of a copy). Lines read:
    //   imap(alice)<..>: Info: save: box=INBOX, uid=3, msgid=<x@y>, size=120, flags=(\Seen)
    //   imap(alice)<..>: Info: copy from INBOX: box=Archive, uid=1, msgid=<x@y>, size=120, flags=()
    // A MOVE logs a copy and an expunge; only an APPEND logs a save: a test that a move did
    // not upload the message again checks that the count of saves did not grow.
    // Mailbox creation and removal log "Mailbox created: NAME" (see log_text()).
    std::vector<std::string> log_events(std::string_view event, std::string_view user = {},
                                        std::string_view box = {}) const;
    std::size_t count_log_events(std::string_view event, std::string_view user = {},
                                 std::string_view box = {}) const {
        return log_events(event, user, box).size();
    }
    // Every finished session so far, server and tunnel, in log order.
    std::vector<dovecot_session_bytes> session_bytes() const;

    // Keep the directory after the test (also with TANDEM_KEEP_TEMP=1 in the environment).
    void keep();

  private:
    struct impl;
    dovecot_options options_;
    std::unique_ptr<impl> impl_;
    std::uint16_t imap_port_ = 0;
    std::uint16_t imaps_port_ = 0;
    std::string cert_sha256_;
};

}  // namespace tandem::test
