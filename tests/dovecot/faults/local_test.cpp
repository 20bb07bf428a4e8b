// SPDX-License-Identifier: MIT
// Faults on the local side and around the process: a full file system under the Maildir,
// a mail client working on the Maildir while tandem syncs it, two tandem processes on one
// journal, and secrets (nothing in the output or the state at -vv, modes 0600/0700, a
// password file readable by others refused).
#include "../sync/e2e_support.hpp"
#include "support/fault_proxy.hpp"

#include <gtest/gtest.h>

#include <sys/mount.h>

#include <random>

namespace tandem::e2e {
namespace {

using test::direction;
using test::fault_plan;

void put(side& s, const std::string& mailbox, const std::string& message,
         const std::vector<std::string>& flags = {}) {
    s.add(mailbox, message, flags, std::nullopt);
}

std::string sized_body(const std::string& subject, std::size_t size) {
    std::string b;
    while (b.size() < size) b += "Body of " + subject + ", " + std::to_string(b.size()) + "\r\n";
    return b;
}

// APPENDs many messages to one mailbox in a single session.
void append_many(const test::dovecot& server, const std::string& user, const std::string& mailbox,
                 const std::vector<std::string>& messages) {
    std::vector<std::string> commands;
    for (const auto& m : messages)
        commands.push_back("APPEND " + test::imap_quote(mailbox) + " {" + std::to_string(m.size()) +
                           "+}\r\n" + m);
    auto t = test::imap_script(server, user, commands);
    ASSERT_TRUE(t.ok()) << t.text.substr(0, 2000);
}

// ---------------------------------------------------------------------------------------
// A full disk

// A tmpfs of `size` mounted at `dir` for the life of the object.
class small_tmpfs {
  public:
    small_tmpfs(fs::path dir, const std::string& size) : dir_(std::move(dir)) {
        fs::create_directories(dir_);
        std::string options = "size=" + size + ",mode=0755";
        mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) == 0;
        if (!mounted_) error_ = std::strerror(errno);
    }
    ~small_tmpfs() {
        if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    }
    small_tmpfs(const small_tmpfs&) = delete;
    small_tmpfs& operator=(const small_tmpfs&) = delete;
    bool mounted() const { return mounted_; }
    const std::string& error() const { return error_; }

  private:
    fs::path dir_;
    bool mounted_ = false;
    std::string error_;
};

// The Maildir on a 4 MiB tmpfs, 3 MiB of it taken by another file, 2.4 MB of mail to copy:
// the sync stops with a message that says the disk is full; the server keeps everything;
// every file in the Maildir is a whole message; once space is freed the next run completes.
// (Needs root for the mount: CI runs as root.)
TEST(local_faults, a_full_disk_stops_the_sync_loses_nothing_and_the_next_run_completes) {
    auto& server = shared_server();
    auto user = fresh_user();
    world w;
    small_tmpfs disk(w.root() / "disk", "4m");
    ASSERT_TRUE(disk.mounted()) << "mount -t tmpfs: " << disk.error()
                                << " (this test needs root, as in CI)";
    auto root = w.root() / "disk" / "Mail";
    w.write_config(w.general() + w.imap_store("server", server, user) +
                   w.maildir_store_at("local", root) + w.channel("c", "server", "local"));
    std::vector<std::string> messages;
    for (int i = 0; i < 24; ++i)
        messages.push_back(test::make_message("big" + std::to_string(i),
                                              sized_body("big" + std::to_string(i), 100000)));
    append_many(server, user, "INBOX", messages);
    imap_side a(server, user);
    auto before = a.snapshot();
    {
        std::ofstream filler(w.root() / "disk" / "filler", std::ios::binary);
        std::string mib(1 << 20, 'x');
        for (int i = 0; i < 3; ++i) filler << mib;
    }

    auto r = w.run({"sync"});
    EXPECT_FALSE(r.timed_out) << r.describe();
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.signal, 0) << r.describe();
    EXPECT_TRUE(contains(lower(r.err), "no space left")) << r.describe();
    EXPECT_EQ(a.snapshot(), before) << "the server keeps everything";
    auto partial = snapshot_maildir(root);
    for (const auto& e : partial["INBOX"])
        EXPECT_TRUE(std::find(before.at("INBOX").begin(), before.at("INBOX").end(), e) !=
                    before.at("INBOX").end())
            << "not a whole copy: " << e;
    EXPECT_LT(partial["INBOX"].size(), 24u);

    fs::remove(w.root() / "disk" / "filler");
    auto r2 = w.run({"sync"});
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();
    EXPECT_EQ(snapshot_maildir(root), before);
    EXPECT_EQ(a.snapshot(), before);
}

// ---------------------------------------------------------------------------------------
// A mail client on the Maildir during a sync

// The files of a Maildir folder whose Subject is `subject` (read as a client would).
std::optional<fs::path> file_of(const fs::path& folder, const std::string& subject) {
    for (const char* sub : {"cur", "new"}) {
        std::error_code ec;
        for (const auto& f : fs::directory_iterator(folder / sub, ec)) {
            std::ifstream in(f.path(), std::ios::binary);
            if (!in) continue;
            std::string head(512, '\0');
            in.read(head.data(), static_cast<std::streamsize>(head.size()));
            head.resize(static_cast<std::size_t>(in.gcount()));
            if (subject_of(head) == subject) return f.path();
        }
    }
    return std::nullopt;
}

// While tandem renames every file (a \Seen set on the server) and downloads new mail
// through a slow link, a client flags ten messages, deletes five, delivers five, and sets
// and takes back \Answered on five others over and over, each step retried on a fresh
// listing when tandem renamed the file under it, as a client does. The run succeeds; after
// one more run both sides hold every change of both.
TEST(local_faults, a_mail_client_working_during_the_sync_loses_no_change) {
    auto& server = shared_server();
    auto user = fresh_user();
    world w;
    test::fault_proxy proxy(server.imap_port());
    auto pw = w.password_file(server, user);
    w.write_config(w.general() + "[store.server]\ntype = imap\nhost = 127.0.0.1\nport = " +
                   std::to_string(proxy.port()) + "\ntls = none\nallow-plaintext = yes\nuser = " +
                   user + "\npassword-file = " + pw.string() + "\n\n" + w.maildir_store("local") +
                   w.channel("c", "server", "local", "max-delete = 100%\n"));
    std::vector<std::string> first;
    for (int i = 0; i < 30; ++i)
        first.push_back(test::make_message("s" + std::to_string(i), sized_body("s", 2000)));
    append_many(server, user, "INBOX", first);
    auto r = w.run({"sync"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    // The server's changes: \Seen everywhere, ten new messages.
    auto t = test::imap_script(server, user, {"SELECT INBOX", "STORE 1:* +FLAGS.SILENT (\\Seen)"});
    ASSERT_TRUE(t.ok()) << t.text;
    std::vector<std::string> fresh;
    for (int i = 0; i < 10; ++i)
        fresh.push_back(test::make_message("n" + std::to_string(i), sized_body("n", 30000)));
    append_many(server, user, "INBOX", fresh);

    const fs::path inbox = w.maildir() / "INBOX";
    std::atomic<bool> stop{false};
    std::atomic<int> retries{0};
    std::vector<std::string> client_errors;
    proxy.set(fault_plan::slow(1024, 5ms));
    std::thread client([&] {
        std::mt19937 rng(42);
        auto pause = [&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(40 + rng() % 80));
        };
        auto retry = [&](const std::string& subject,
                         const std::function<bool(const fs::path&)>& f) {
            int unseen = 0;
            for (int attempt = 0; attempt < 200 && !stop; ++attempt) {
                // A listing of cur/ then new/ misses a file that tandem renames meanwhile
                // (new/ to cur/, or a flag change within cur/): a client lists again.
                auto p = file_of(inbox, subject);
                if (!p) {
                    if (++unseen < 20) continue;
                    client_errors.push_back("no file for " + subject);
                    return;
                }
                if (f(*p)) return;
                ++retries;
            }
            client_errors.push_back("gave up on " + subject);
        };
        for (int i = 0; i < 15 && !stop; ++i) {
            auto subject = "s" + std::to_string(i);
            if (i < 10) {
                retry(subject, [&](const fs::path& p) {
                    auto name = p.filename().string();
                    auto colon = name.find(":2,");
                    std::string base = name.substr(0, colon);
                    std::string info = colon == std::string::npos ? "" : name.substr(colon + 3);
                    if (info.find('F') == std::string::npos) info += 'F';
                    std::sort(info.begin(), info.end());
                    std::error_code ec;
                    fs::rename(p, inbox / "cur" / (base + ":2," + info), ec);
                    return !ec;
                });
            } else {
                retry(subject, [&](const fs::path& p) {
                    std::error_code ec;
                    return fs::remove(p, ec) && !ec;
                });
            }
            // And a flag set and taken back again on another message, racing tandem's
            // own renames.
            auto toggled = "s" + std::to_string(15 + i % 5);
            for (char letter_on : {'R', '\0'}) {
                retry(toggled, [&](const fs::path& p) {
                    auto name = p.filename().string();
                    auto colon = name.find(":2,");
                    std::string base = name.substr(0, colon);
                    std::string info = colon == std::string::npos ? "" : name.substr(colon + 3);
                    info.erase(std::remove(info.begin(), info.end(), 'R'), info.end());
                    if (letter_on) info += letter_on;
                    std::sort(info.begin(), info.end());
                    std::error_code ec;
                    fs::rename(p, inbox / "cur" / (base + ":2," + info), ec);
                    return !ec;
                });
                std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 10));
            }
            pause();
            if (i % 3 == 0) {
                auto c = "c" + std::to_string(i / 3);
                auto base = "1700000000.client" + std::to_string(i) + ".host";
                write_file(inbox / "tmp" / base, test::make_message(c, "From the client.\r\n"));
                fs::rename(inbox / "tmp" / base, inbox / "new" / base);
            }
        }
    });
    r = w.run({"sync"});
    client.join();
    stop = true;
    proxy.set({});
    EXPECT_TRUE(client_errors.empty()) << client_errors.front();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    auto r2 = w.run({"sync"});
    ASSERT_EQ(r2.exit_code, 0) << r2.describe();

    imap_side a(server, user);
    auto sa = a.snapshot();
    EXPECT_EQ(sa, snapshot_maildir(w.maildir()));
    for (int i = 0; i < 30; ++i) {
        auto s = "s" + std::to_string(i);
        EXPECT_EQ(flags_of(sa, "INBOX", s), i < 10   ? "\\Flagged \\Seen"
                                            : i < 15 ? "<missing>"
                                                     : "\\Seen")
            << s;
    }
    for (int i = 0; i < 10; ++i) EXPECT_EQ(flags_of(sa, "INBOX", "n" + std::to_string(i)), "");
    for (int i = 0; i < 5; ++i) EXPECT_EQ(flags_of(sa, "INBOX", "c" + std::to_string(i)), "");
    std::cout << "client retries (a file renamed under it by tandem): " << retries << "\n";
}

// ---------------------------------------------------------------------------------------
// Two tandem processes on one journal

// While a sync runs (slowed by the proxy), a second one exits 1 at once with a message
// naming the first one's pid; the first completes, and the next run finds a consistent
// journal: nothing to do, nothing copied twice.
TEST(local_faults, a_second_tandem_on_the_same_journal_exits_naming_the_first) {
    auto& server = shared_server();
    auto user = fresh_user();
    world w;
    test::fault_proxy proxy(server.imap_port());
    auto pw = w.password_file(server, user);
    w.write_config(w.general() + "[store.server]\ntype = imap\nhost = 127.0.0.1\nport = " +
                   std::to_string(proxy.port()) + "\ntls = none\nallow-plaintext = yes\nuser = " +
                   user + "\npassword-file = " + pw.string() + "\n\n" + w.maildir_store("local") +
                   w.channel("c", "server", "local"));
    std::vector<std::string> messages;
    for (int i = 0; i < 10; ++i)
        messages.push_back(test::make_message("m" + std::to_string(i), sized_body("m", 40000)));
    append_many(server, user, "INBOX", messages);
    maildir_side b(w.maildir(), layout::verbatim);
    put(b, "INBOX", test::make_message("local", "Local.\r\n"));
    imap_side a(server, user);
    auto expected = merged(a.snapshot(), b.snapshot());

    proxy.set(fault_plan::slow(1024, 5ms));
    background_tandem first({"sync", "--config", w.config_path().string()});
    ASSERT_TRUE(eventually([&] { return proxy.connections() > 0; }, 10s));
    auto started = std::chrono::steady_clock::now();
    auto second = w.run({"sync"});
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(second.exit_code, 1) << second.describe();
    EXPECT_TRUE(contains(second.err, std::to_string(first.pid()))) << second.describe();
    EXPECT_LT(took, 5s) << "the second one does not wait for the first";
    ASSERT_TRUE(eventually([&] { return !first.running(); }, 60s)) << first.output();
    proxy.set({});
    EXPECT_FALSE(contains(first.output(), "error")) << first.output();
    EXPECT_EQ(a.snapshot(), expected);
    EXPECT_EQ(b.snapshot(), expected);

    auto saves = server.count_log_events("save", user);
    auto files = maildir_files(w.maildir());
    auto third = w.run({"sync"});
    ASSERT_EQ(third.exit_code, 0) << third.describe();
    EXPECT_EQ(server.count_log_events("save", user), saves);
    EXPECT_EQ(maildir_files(w.maildir()), files);
    EXPECT_EQ(a.snapshot(), expected);
}

// ---------------------------------------------------------------------------------------
// Secrets

// Every file under `dir` that holds `needle`.
std::vector<std::string> files_holding(const fs::path& dir, const std::string& needle) {
    std::vector<std::string> out;
    for (const auto& f : fs::recursive_directory_iterator(dir)) {
        if (!f.is_regular_file()) continue;
        if (contains(read_file(f.path()), needle)) out.push_back(f.path().string());
    }
    return out;
}

// A full sync at -vv (the protocol trace), IMAP-IMAP: one account by password file with
// AUTHENTICATE PLAIN, the other by password command. Neither password, in clear or in the
// base64 of the SASL exchange, reaches the output or any file of the state directory;
// those files are 0600 and the directories 0700.
TEST(secrets, a_full_sync_at_the_highest_verbosity_shows_no_password) {
    channel_under_test c(shared_server(), {"imap_imap", true, layout::verbatim, transport::plain});
    c.a().add_new("INBOX", "one", {"\\Seen"});
    c.a().create("Work");
    c.a().add_new("Work", "two");
    c.b().add_new("INBOX", "three");
    auto r = c.sync({"-vv"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_TRUE(contains(r.err, "C: ")) << "the protocol trace is on at -vv:\n" << r.describe();
    EXPECT_EQ(c.a().snapshot(), c.b().snapshot());
    for (const auto& user : {c.user_a(), c.user_b()}) {
        const auto& password = c.server().password(user);
        std::vector<std::string> forms = {
            password, base64(std::string(1, '\0') + user + '\0' + password),
            base64(user + '\0' + user + '\0' + password), base64(password)};
        for (const auto& f : forms) {
            SCOPED_TRACE(user + ": " + f);
            EXPECT_FALSE(contains(r.all(), f));
            EXPECT_EQ(files_holding(c.w.state_dir(), f), std::vector<std::string>{});
        }
    }
    std::size_t files = 0;
    auto mode = [](const fs::path& p) {
        struct stat st {};
        ::stat(p.c_str(), &st);
        return st.st_mode & 07777;
    };
    EXPECT_EQ(mode(c.w.state_dir()), 0700u);
    for (const auto& f : fs::recursive_directory_iterator(c.w.state_dir())) {
        if (f.is_directory()) {
            EXPECT_EQ(mode(f.path()), 0700u) << f.path();
        } else {
            ++files;
            EXPECT_EQ(mode(f.path()), 0600u) << f.path();
        }
    }
    EXPECT_GE(files, 2u) << "the journal and its lock at least";
}

// An OAuth2 token (here refused by the server, which has no OAuth) stays out of the
// output at -vv, alone or inside its SASL string.
TEST(secrets, a_token_does_not_reach_the_output) {
    auto user = fresh_user();
    world w;
    const std::string token = "ya29.TOKEN-s3cr3t-do-not-print";
    w.write_config(w.general() + "[store.server]\ntype = imap\nhost = 127.0.0.1\nport = " +
                   std::to_string(shared_server().imap_port()) +
                   "\ntls = none\nallow-plaintext = yes\nauth = xoauth2\nuser = " + user +
                   "\ntoken-command = echo " + token + "\n\n" + w.maildir_store("local") +
                   w.channel("c", "server", "local"));
    auto r = w.run({"sync", "-vv"});
    EXPECT_EQ(r.exit_code, 3) << r.describe();
    EXPECT_FALSE(contains(r.all(), token)) << r.describe();
    EXPECT_FALSE(
        contains(r.all(), base64("user=" + user + "\x01" + "auth=Bearer " + token + "\x01\x01")))
        << r.describe();
    if (fs::exists(w.state_dir())) {
        EXPECT_EQ(files_holding(w.state_dir(), token), std::vector<std::string>{});
    }
}

// A password file that others can read is refused before anything connects, with the fix
// in the message.
TEST(secrets, a_password_file_readable_by_others_is_refused) {
    auto user = fresh_user();
    world w;
    auto pw = w.root() / "password-0644";
    write_file(pw, shared_server().password(user) + "\n", fs::perms(0644));
    w.write_config(w.general() + "[store.server]\ntype = imap\nhost = 127.0.0.1\nport = " +
                   std::to_string(shared_server().imap_port()) +
                   "\ntls = none\nallow-plaintext = yes\nuser = " + user +
                   "\npassword-file = " + pw.string() + "\n\n" + w.maildir_store("local") +
                   w.channel("c", "server", "local"));
    auto logins = shared_server().session_bytes().size();
    auto r = w.run({"sync"});
    EXPECT_TRUE(r.exit_code == 2 || r.exit_code == 3) << r.describe();
    EXPECT_TRUE(contains(r.err, "chmod 600") || contains(r.err, "600")) << r.describe();
    EXPECT_TRUE(contains(r.err, pw.string())) << r.describe();
    EXPECT_FALSE(contains(r.all(), shared_server().password(user)));
    EXPECT_EQ(shared_server().session_bytes().size(), logins) << "nothing logged in";
}

}  // namespace
}  // namespace tandem::e2e
