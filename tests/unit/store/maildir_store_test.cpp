// SPDX-License-Identifier: MIT
#include "tandem/store/maildir_store.hpp"

#include "support/temp_dir.hpp"
#include "tandem/journal/journal.hpp"
#include "tandem/mail/content_key.hpp"
#include "tandem/maildir/filename.hpp"
#include "tandem/maildir/folder.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

namespace tandem::store {
namespace {

namespace fs = std::filesystem;
using mail::system_flag;

std::string message(std::string_view id, std::string_view body = "Hello.\r\n") {
    std::string m = "From: a@example.org\r\nSubject: test\r\n";
    if (!id.empty()) m += "Message-ID: " + std::string(id) + "\r\n";
    return m + "\r\n" + std::string(body);
}

void write_file(const fs::path& p, std::string_view content, std::int64_t mtime = 0) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    ASSERT_TRUE(out) << p;
    if (mtime != 0) {
        struct timeval tv[2] = {{static_cast<time_t>(mtime), 0}, {static_cast<time_t>(mtime), 0}};
        ASSERT_EQ(::utimes(p.c_str(), tv), 0);
    }
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void make_folder(const fs::path& dir, bool marker = false) {
    for (const char* sub : {"tmp", "new", "cur"}) fs::create_directories(dir / sub);
    if (marker) write_file(dir / "maildirfolder", "");
}

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
}

mail::flag_set flags(std::initializer_list<std::string_view> atoms) {
    mail::flag_set f;
    for (auto a : atoms) f.add_imap(a);
    return f;
}

const mail::message_info* by_identity(const mailbox_changes& c, std::string_view base) {
    for (const auto& m : c.messages)
        if (m.identity == base) return &m;
    return nullptr;
}

const mail::message_info* by_uid(const mailbox_changes& c, mail::uid u) {
    for (const auto& m : c.messages)
        if (m.uid == u) return &m;
    return nullptr;
}

known_state known_from(const mailbox_changes& c) {
    known_state k;
    k.status = c.status;
    for (const auto& m : c.messages) k.uids.push_back(m.uid);
    std::sort(k.uids.begin(), k.uids.end());
    return k;
}

outgoing_message outgoing(std::string data, mail::flag_set f = {}, std::int64_t date = 0) {
    outgoing_message m;
    m.flags = std::move(f);
    m.internal_date = date;
    m.body.size = data.size();
    m.body.data = std::move(data);
    return m;
}

long write_enospc(int, const void*, std::size_t) {
    errno = ENOSPC;
    return -1;
}

class maildir_store_test : public ::testing::Test {
  protected:
    void SetUp() override {
        journal::journal_options o;
        o.state_dir = tmp.path() / "state";
        o.durable = false;
        std::string why;
        auto j = journal::journal::open(o, &why);
        ASSERT_TRUE(j) << why;
        jrnl.emplace(std::move(*j));
    }

    // `settle` 0: scans never wait, but a change in the same clock tick as the last one may
    // leave the token as it was; tests that compare tokens pass a settle time.
    std::unique_ptr<maildir_store> make(
        maildir::layout_kind layout = maildir::layout_kind::verbatim,
        maildir::write_function write = nullptr, std::chrono::milliseconds settle = {}) {
        maildir_store_options o{.journal = *jrnl, .root = root};
        o.layout = layout;
        o.fsync = false;
        o.settle = settle;
        o.write = write;
        o.logger = log::logger(log::level::debug, [this](log::level l, std::string_view text) {
            if (l == log::level::warning) warnings.emplace_back(text);
        });
        return std::make_unique<maildir_store>(std::move(o));
    }

    // A store over a verbatim tree with these folders.
    std::unique_ptr<maildir_store> make_with(std::initializer_list<const char*> folders) {
        for (auto f : folders) make_folder(root / f);
        return make();
    }

    test::temp_dir tmp{"maildir-store"};
    fs::path root = tmp.path() / "mail";
    std::optional<journal::journal> jrnl;
    std::vector<std::string> warnings;
};

// ---- list and status

TEST_F(maildir_store_test, describe_and_store_id_use_the_canonical_root) {
    fs::create_directories(root);
    auto s = make();
    EXPECT_EQ(s->describe(), "maildir " + fs::canonical(root).string());
    EXPECT_EQ(s->store_id(), fs::canonical(root).string());
    maildir_store_options o{.journal = *jrnl, .root = root / "." / ".." / "mail"};
    maildir_store other(std::move(o));
    EXPECT_EQ(other.store_id(), s->store_id());
}

TEST_F(maildir_store_test, list_verbatim_gives_canonical_names_and_status) {
    auto s = make_with({"INBOX", "Sent", "Lists/foo"});
    auto l = s->list();
    ASSERT_TRUE(l) << s->last_error();
    ASSERT_EQ(l->size(), 3u);
    EXPECT_EQ((*l)[0].name, "INBOX");
    EXPECT_EQ((*l)[1].name, "Lists/foo");
    EXPECT_EQ((*l)[2].name, "Sent");
    std::vector<mail::uidvalidity> seen;
    for (const auto& e : *l) {
        ASSERT_TRUE(e.status);
        EXPECT_NE(e.status->uidvalidity, 0u);
        EXPECT_EQ(e.status->uidnext, 1u);
        EXPECT_EQ(e.status->messages, 0u);
        EXPECT_FALSE(e.status->scan_token.empty());
        seen.push_back(e.status->uidvalidity);
    }
    // Folders seen at once still get UIDVALIDITYs of their own.
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());

    auto st = s->status("Lists/foo");
    ASSERT_TRUE(st) << s->last_error();
    EXPECT_EQ(*st, *(*l)[1].status);
    // The second listing finds the same records.
    auto again = s->list();
    ASSERT_TRUE(again);
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ((*again)[i].status, (*l)[i].status);
    // The journal's records survive the store object.
    auto s2 = make();
    auto st2 = s2->status("inbox");
    ASSERT_TRUE(st2);
    EXPECT_EQ(st2->uidvalidity, (*l)[0].status->uidvalidity);
}

TEST_F(maildir_store_test, list_maildirpp) {
    make_folder(root);
    make_folder(root / ".Sent", true);
    make_folder(root / ".Lists.foo", true);
    auto s = make(maildir::layout_kind::maildirpp);
    auto l = s->list();
    ASSERT_TRUE(l) << s->last_error();
    std::vector<std::string> names;
    for (const auto& e : *l) names.push_back(e.name);
    EXPECT_EQ(names, (std::vector<std::string>{"INBOX", "Lists/foo", "Sent"}));
    write_file(root / ".Lists.foo" / "cur" / "1.a.host:2,S", message("<x@y>"));
    auto c = s->changes("Lists/foo", {});
    ASSERT_TRUE(c) << s->last_error();
    ASSERT_EQ(c->messages.size(), 1u);
    EXPECT_EQ(c->messages[0].identity, "1.a.host");
    ASSERT_TRUE(s->create("Archive/2024"));
    EXPECT_TRUE(maildir::folder::exists(root / ".Archive.2024"));
    EXPECT_TRUE(fs::exists(root / ".Archive.2024" / "maildirfolder"));
    auto st = s->status("Archive/2024");
    ASSERT_TRUE(st) << s->last_error();
    EXPECT_EQ(st->uidnext, 1u);
}

TEST_F(maildir_store_test, status_of_a_missing_folder_is_not_found) {
    auto s = make_with({"INBOX"});
    auto st = s->status("Nope");
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error(), errc::not_found);
    EXPECT_NE(s->last_error().find("Nope"), std::string::npos);
}

TEST_F(maildir_store_test, list_creates_a_missing_root_for_a_fresh_target) {
    auto s = make();
    ASSERT_FALSE(fs::exists(root));
    auto l = s->list();
    ASSERT_TRUE(l) << s->last_error();
    EXPECT_TRUE(l->empty());
    EXPECT_TRUE(fs::is_directory(root));
}

TEST_F(maildir_store_test, a_vanished_root_that_held_folders_is_an_error_not_an_empty_tree) {
    auto s = make_with({"INBOX", "Sent"});
    ASSERT_TRUE(s->list());
    // As an unmounted disk: the mount point is empty. An empty listing would let the
    // other side remove every folder; the store refuses to list instead.
    fs::remove_all(root);
    fs::create_directories(root);
    auto l = s->list();
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error(), tandem::errc::guard_tripped);
    EXPECT_NE(s->last_error().find("mounted"), std::string::npos) << s->last_error();
    EXPECT_TRUE(names_in(root).empty());  // nothing made in its place
    // And with the mount point gone too.
    fs::remove_all(root);
    l = s->list();
    ASSERT_FALSE(l);
    EXPECT_NE(s->last_error().find(root.string()), std::string::npos) << s->last_error();
    EXPECT_FALSE(fs::exists(root));
}

TEST_F(maildir_store_test, list_status_comes_from_the_journal_without_reading_the_folder) {
    auto s = make_with({"INBOX"});
    write_file(root / "INBOX" / "cur" / "1.a.host:2,S", message("<1@x>"));
    write_file(root / "INBOX" / "cur" / "2.a.host:2,", message("<2@x>"));
    auto c = s->changes("INBOX", {});
    ASSERT_TRUE(c);
    // A file that arrives after the scan is not counted by list(): the count is the
    // journal's, whereas the token (directory times) shows that the folder changed.
    write_file(root / "INBOX" / "cur" / "3.a.host:2,", message("<3@x>"));
    struct timespec earlier[2] = {{0, UTIME_OMIT}, {1'000'000'000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (root / "INBOX" / "cur").c_str(), earlier, 0), 0);
    auto l = s->list();
    ASSERT_TRUE(l);
    ASSERT_EQ(l->size(), 1u);
    EXPECT_EQ((*l)[0].status->messages, 2u);
    EXPECT_EQ((*l)[0].status->uidnext, 3u);
    EXPECT_NE((*l)[0].status->scan_token, c->status.scan_token);
    auto st = s->status("INBOX");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages, 2u);
    auto c2 = s->changes("INBOX", known_from(*c));
    ASSERT_TRUE(c2);
    EXPECT_EQ(c2->status.messages, 3u);
}

TEST_F(maildir_store_test, the_token_is_stable_while_nothing_changes) {
    make_folder(root / "INBOX");
    auto s = make(maildir::layout_kind::verbatim, nullptr, std::chrono::milliseconds(20));
    write_file(root / "INBOX" / "cur" / "1.a.host:2,S", message("<1@x>"));
    auto c = s->changes("INBOX", {});
    ASSERT_TRUE(c);
    auto st = s->status("INBOX");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->scan_token, c->status.scan_token);
    ASSERT_TRUE(s->set_flags(
        "INBOX", std::vector<flag_change>{{c->messages[0].uid, flags({"\\Flagged"}), {}}}));
    auto st2 = s->status("INBOX");
    ASSERT_TRUE(st2);
    EXPECT_NE(st2->scan_token, c->status.scan_token);
}

// ---- changes

class maildir_changes_test : public maildir_store_test {
  protected:
    void SetUp() override {
        maildir_store_test::SetUp();
        inbox = root / "INBOX";
        make_folder(inbox);
        write_file(inbox / "dovecot-keywords", "0 $Label1\n1 NotJunk\n");
        write_file(inbox / "new" / "100.a.host", message("<new@x>"), 1'600'000'000);
        write_file(inbox / "cur" / "200.b.host:2,FS", message("<flagged@x>", "x\r\n"),
                   1'600'000'100);
        write_file(inbox / "cur" / "300.c.host,S=55:2,PRSab", message("<kw@x>"), 1'600'000'200);
        write_file(inbox / "cur" / "400.d.host:2,T", message(""), 1'600'000'300);
        store = make(maildir::layout_kind::verbatim, nullptr, std::chrono::milliseconds(20));
    }

    fs::path inbox;
    std::unique_ptr<maildir_store> store;
};

TEST_F(maildir_changes_test, first_scan_assigns_uids_and_lists_everything) {
    auto c = store->changes("INBOX", {});
    ASSERT_TRUE(c) << store->last_error();
    EXPECT_TRUE(c->complete);
    EXPECT_FALSE(c->uidvalidity_changed);
    EXPECT_TRUE(c->vanished.empty());
    ASSERT_EQ(c->messages.size(), 4u);
    EXPECT_EQ(c->status.messages, 4u);
    EXPECT_EQ(c->status.uidnext, 5u);
    EXPECT_NE(c->status.uidvalidity, 0u);
    EXPECT_FALSE(c->status.scan_token.empty());
    std::vector<mail::uid> uids;
    for (const auto& m : c->messages) uids.push_back(m.uid);
    EXPECT_EQ(uids, (std::vector<mail::uid>{1, 2, 3, 4}));  // ascending, from 1

    auto* n = by_identity(*c, "100.a.host");
    ASSERT_NE(n, nullptr);
    EXPECT_TRUE(n->flags.empty());
    EXPECT_EQ(n->internal_date, 1'600'000'000);
    EXPECT_EQ(n->size, message("<new@x>").size());
    EXPECT_TRUE(n->content_key.starts_with("<new@x>/" + std::to_string(n->size) + "/"))
        << n->content_key;

    auto* f = by_identity(*c, "200.b.host");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->flags, flags({"\\Flagged", "\\Seen"}));
    const auto flagged = message("<flagged@x>", "x\r\n");
    EXPECT_EQ(f->content_key,
              mail::content_key(mail::identify_header(flagged), flagged.size(), f->internal_date));
    EXPECT_TRUE(f->content_key.starts_with("<flagged@x>/" + std::to_string(flagged.size()) + "/"));

    auto* k = by_identity(*c, "300.c.host,S=55");
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->flags, flags({"\\Answered", "\\Seen", "$Forwarded", "$Label1", "NotJunk"}));
    EXPECT_EQ(k->size, 55u);  // the ",S=" field, as Dovecot writes it
    EXPECT_TRUE(k->content_key.starts_with("<kw@x>/55/")) << k->content_key;

    auto* d = by_identity(*c, "400.d.host");
    ASSERT_NE(d, nullptr);
    EXPECT_TRUE(d->flags.has(system_flag::deleted));
    // No Message-ID: size and date, as the IMAP store makes it.
    EXPECT_TRUE(d->content_key.starts_with("nomsgid/" + std::to_string(d->size) + "/" +
                                           std::to_string(d->internal_date) + "/"))
        << d->content_key;
}

TEST_F(maildir_changes_test, a_second_scan_keeps_the_uids) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    auto c2 = store->changes("INBOX", known_from(*c1));
    ASSERT_TRUE(c2) << store->last_error();
    EXPECT_TRUE(c2->complete);
    EXPECT_FALSE(c2->uidvalidity_changed);
    EXPECT_TRUE(c2->vanished.empty());
    EXPECT_EQ(c2->status, c1->status);
    ASSERT_EQ(c2->messages.size(), c1->messages.size());
    for (std::size_t i = 0; i < c1->messages.size(); ++i) {
        EXPECT_EQ(c2->messages[i].uid, c1->messages[i].uid);
        EXPECT_EQ(c2->messages[i].identity, c1->messages[i].identity);
        EXPECT_EQ(c2->messages[i].flags, c1->messages[i].flags);
        // Known messages: no header read unless asked for.
        EXPECT_EQ(c2->messages[i].content_key, "");
    }
    auto k = known_from(*c1);
    k.full = true;
    auto c3 = store->changes("INBOX", k);
    ASSERT_TRUE(c3);
    EXPECT_EQ(by_identity(*c3, "200.b.host")->content_key,
              by_identity(*c1, "200.b.host")->content_key);
    // Another store object on the same journal (the next run) sees the same UIDs.
    auto again = make()->changes("INBOX", known_from(*c1));
    ASSERT_TRUE(again);
    for (std::size_t i = 0; i < c1->messages.size(); ++i)
        EXPECT_EQ(again->messages[i].uid, c1->messages[i].uid);
}

TEST_F(maildir_changes_test, a_changed_uidvalidity_is_reported_with_all_content_keys) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    auto k = known_from(*c1);
    k.status.uidvalidity -= 1;
    auto c2 = store->changes("INBOX", k);
    ASSERT_TRUE(c2);
    EXPECT_TRUE(c2->uidvalidity_changed);
    EXPECT_EQ(by_identity(*c2, "100.a.host")->content_key,
              by_identity(*c1, "100.a.host")->content_key);
}

TEST_F(maildir_changes_test, a_client_renaming_for_flags_keeps_the_uid) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    auto uid_flagged = by_identity(*c1, "200.b.host")->uid;
    auto uid_new = by_identity(*c1, "100.a.host")->uid;
    // A mail client: a flag change, and a message read from new/.
    fs::rename(inbox / "cur" / "200.b.host:2,FS", inbox / "cur" / "200.b.host:2,RS");
    fs::rename(inbox / "new" / "100.a.host", inbox / "cur" / "100.a.host:2,S");
    auto c2 = store->changes("INBOX", known_from(*c1));
    ASSERT_TRUE(c2) << store->last_error();
    EXPECT_TRUE(c2->vanished.empty());
    EXPECT_EQ(c2->status.uidnext, c1->status.uidnext);  // no new UID given out
    EXPECT_NE(c2->status.scan_token, c1->status.scan_token);
    auto* f = by_uid(*c2, uid_flagged);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->identity, "200.b.host");
    EXPECT_EQ(f->flags, flags({"\\Answered", "\\Seen"}));
    auto* n = by_uid(*c2, uid_new);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->flags, flags({"\\Seen"}));
    EXPECT_EQ(n->internal_date, 1'600'000'000);
}

TEST_F(maildir_changes_test, a_deleted_file_vanishes_and_its_uid_is_not_reused) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    auto gone = by_identity(*c1, "400.d.host")->uid;
    fs::remove(inbox / "cur" / "400.d.host:2,T");
    write_file(inbox / "new" / "500.e.host", message("<late@x>"));
    auto c2 = store->changes("INBOX", known_from(*c1));
    ASSERT_TRUE(c2) << store->last_error();
    EXPECT_EQ(c2->messages.size(), 4u);
    EXPECT_EQ(by_uid(*c2, gone), nullptr);
    EXPECT_EQ(c2->vanished, (std::vector<mail::uid>{gone}));
    auto* late = by_identity(*c2, "500.e.host");
    ASSERT_NE(late, nullptr);
    EXPECT_EQ(late->uid, c1->status.uidnext);
    EXPECT_TRUE(late->content_key.starts_with("<late@x>/" +
                                              std::to_string(message("<late@x>").size()) + "/"))
        << late->content_key;
    // Only the new one was read: the others keep empty keys.
    EXPECT_EQ(by_identity(*c2, "100.a.host")->content_key, "");
    EXPECT_EQ(c2->status.uidnext, c1->status.uidnext + 1);
    // The same base name coming back later is a new message with a new UID.
    write_file(inbox / "cur" / "400.d.host:2,T", message(""));
    auto c3 = store->changes("INBOX", known_from(*c2));
    ASSERT_TRUE(c3);
    EXPECT_EQ(by_identity(*c3, "400.d.host")->uid, c2->status.uidnext);
}

// With the records' flags offered, a rescan reports only what differs from them: a
// client's flag change, a file gone, a new file; a message with the flags of its record
// is left out, one whose record has keywords is always listed.
TEST_F(maildir_changes_test, with_the_synced_flags_a_rescan_reports_only_what_changed) {
    write_file(inbox / "cur" / "600.f.host:2,", message("<six@x>"));
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    const auto uid_of = [&](std::string_view base) { return by_identity(*c1, base)->uid; };
    known_state k = known_from(*c1);
    for (auto u : k.uids) {
        const auto* m = by_uid(*c1, u);
        k.synced_flags.push_back(m->flags.keywords().empty() ? m->flags.system_bits()
                                                             : known_state::synced_unknown);
    }
    fs::rename(inbox / "cur" / "200.b.host:2,FS", inbox / "cur" / "200.b.host:2,RS");
    fs::remove(inbox / "cur" / "400.d.host:2,T");
    write_file(inbox / "new" / "500.e.host", message("<late@x>"));
    // P is a system letter that stands for the keyword $Forwarded: a change all the same.
    fs::rename(inbox / "cur" / "600.f.host:2,", inbox / "cur" / "600.f.host:2,P");
    auto c2 = store->changes("INBOX", k);
    ASSERT_TRUE(c2) << store->last_error();
    EXPECT_FALSE(c2->complete);
    EXPECT_EQ(c2->vanished, (std::vector<mail::uid>{uid_of("400.d.host")}));
    std::vector<std::string> listed;
    for (const auto& m : c2->messages) listed.push_back(m.identity);
    std::sort(listed.begin(), listed.end());
    // 100.a.host (new/, no flags) is unchanged; 300.c.host has keywords: listed.
    EXPECT_EQ(listed, (std::vector<std::string>{"200.b.host", "300.c.host,S=55", "500.e.host",
                                                "600.f.host"}));
    EXPECT_EQ(by_identity(*c2, "200.b.host")->flags, flags({"\\Answered", "\\Seen"}));
    EXPECT_EQ(by_identity(*c2, "600.f.host")->flags, flags({"$Forwarded"}));
    EXPECT_EQ(c2->status.messages, 5u);

    // Without them, or asked for everything, the listing is complete as before.
    known_state all = known_from(*c1);
    auto c3 = store->changes("INBOX", all);
    ASSERT_TRUE(c3);
    EXPECT_TRUE(c3->complete);
    EXPECT_EQ(c3->messages.size(), 5u);
    k.full = true;
    auto c4 = store->changes("INBOX", k);
    ASSERT_TRUE(c4);
    EXPECT_TRUE(c4->complete);
    EXPECT_EQ(c4->messages.size(), 5u);
}

// A rescan with the records' flags remembers only the files that the engine's hints
// (expect_flags) cannot name: the others are found from their hint, still without a
// listing. A file named otherwise (its letters out of order) stays remembered.
TEST_F(maildir_changes_test, unchanged_files_where_their_hint_says_are_not_remembered) {
    write_file(inbox / "cur" / "700.g.host:2,SF", message("<seven@x>"));
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    known_state k = known_from(*c1);
    for (auto u : k.uids) {
        const auto* m = by_uid(*c1, u);
        k.synced_flags.push_back(m->flags.keywords().empty() ? m->flags.system_bits()
                                                             : known_state::synced_unknown);
    }
    auto c2 = store->changes("INBOX", k);
    ASSERT_TRUE(c2) << store->last_error();
    EXPECT_TRUE(c2->messages.size() == 1u && c2->messages[0].identity == "300.c.host,S=55");
    const auto* f = store->folder_of("INBOX");
    ASSERT_NE(f, nullptr);
    // Kept: 100.a.host (in new/), 300.c.host (keywords), 700.g.host (":2,SF"). Not:
    // 200.b.host:2,FS and 400.d.host:2,T.
    EXPECT_EQ(f->remembered(), 3u);
    const auto listed = f->listings();

    auto change = [&](std::string_view base, const mail::flag_set& was, flag_change ch) {
        ch.uid = by_identity(*c1, base)->uid;
        store->expect_flags("INBOX", ch.uid, was);
        return store->set_flags("INBOX", std::span(&ch, 1));
    };
    ASSERT_TRUE(
        change("200.b.host", flags({"\\Flagged", "\\Seen"}), {0, flags({"\\Answered"}), {}}))
        << store->last_error();
    EXPECT_TRUE(fs::exists(inbox / "cur" / "200.b.host:2,FRS"));
    ASSERT_TRUE(change("700.g.host", flags({"\\Flagged", "\\Seen"}), {0, {}, flags({"\\Flagged"})}))
        << store->last_error();
    EXPECT_TRUE(fs::exists(inbox / "cur" / "700.g.host:2,S"));
    EXPECT_EQ(f->listings(), listed);
}

std::size_t last_txnid(journal::journal& j) {
    MDB_envinfo info{};
    mdb_env_info(j.env().handle(), &info);
    return info.me_last_txnid;
}

TEST_F(maildir_changes_test, a_scan_that_finds_nothing_new_or_gone_writes_nothing) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    const auto before = last_txnid(*jrnl);
    // A client's flag change is no new name: still nothing to write.
    fs::rename(inbox / "cur" / "200.b.host:2,FS", inbox / "cur" / "200.b.host:2,S");
    auto c2 = make()->changes("INBOX", known_from(*c1));
    ASSERT_TRUE(c2) << store->last_error();
    EXPECT_EQ(by_identity(*c2, "200.b.host")->flags, flags({"\\Seen"}));
    EXPECT_EQ(last_txnid(*jrnl), before);
    // A new file is: one transaction gives it its UID.
    write_file(inbox / "new" / "500.e.host", message("<late@x>"));
    auto c3 = make()->changes("INBOX", known_from(*c2));
    ASSERT_TRUE(c3);
    EXPECT_EQ(last_txnid(*jrnl), before + 1);
    EXPECT_EQ(by_identity(*c3, "500.e.host")->uid, c1->status.uidnext);
}

TEST_F(maildir_changes_test, known_messages_are_not_stated_unless_their_date_may_be_needed) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    // The first listing has every date; a later one only those of new messages and of
    // names without a size; a full listing all of them again.
    EXPECT_EQ(by_identity(*c1, "300.c.host,S=55")->internal_date, 1'600'000'200);
    write_file(inbox / "cur" / "600.f.host,S=9:2,S", "123456789", 1'600'000'600);
    auto c2 = store->changes("INBOX", known_from(*c1));
    ASSERT_TRUE(c2);
    EXPECT_EQ(by_identity(*c2, "300.c.host,S=55")->internal_date, 0);
    EXPECT_EQ(by_identity(*c2, "200.b.host")->internal_date, 1'600'000'100);
    EXPECT_EQ(by_identity(*c2, "600.f.host,S=9")->internal_date, 1'600'000'600);
    auto k = known_from(*c2);
    k.full = true;
    auto c3 = store->changes("INBOX", k);
    ASSERT_TRUE(c3);
    EXPECT_EQ(by_identity(*c3, "300.c.host,S=55")->internal_date, 1'600'000'200);
    // A UID the engine does not know (no record holds it) gets its date too.
    auto k2 = known_from(*c2);
    auto u = by_identity(*c2, "300.c.host,S=55")->uid;
    k2.uids.erase(std::find(k2.uids.begin(), k2.uids.end(), u));
    auto c4 = store->changes("INBOX", k2);
    ASSERT_TRUE(c4);
    EXPECT_EQ(by_uid(*c4, u)->internal_date, 1'600'000'200);
}

// The run after a first sync: the folder that run created has no state (uidvalidity 0)
// but its records hold the uids of what it delivered. Those are not stat'ed again; a file
// that no record holds is.
TEST_F(maildir_changes_test, a_side_without_state_stats_only_the_messages_no_record_holds) {
    write_file(inbox / "cur" / "500.e.host,S=9:2,S", "123456789", 1'600'000'500);
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    auto k = known_from(*c1);
    k.status = {};  // never recorded
    auto u = by_identity(*c1, "500.e.host,S=9")->uid;
    k.uids.erase(std::find(k.uids.begin(), k.uids.end(), u));
    auto c2 = store->changes("INBOX", k);
    ASSERT_TRUE(c2);
    EXPECT_EQ(by_identity(*c2, "300.c.host,S=55")->internal_date, 0);
    EXPECT_EQ(by_uid(*c2, u)->internal_date, 1'600'000'500);
    EXPECT_EQ(by_uid(*c2, u)->size, 9u);
}

TEST_F(maildir_changes_test, two_files_of_one_base_name_are_one_message) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    // A client's rename by link and unlink, caught between the two.
    fs::create_hard_link(inbox / "cur" / "200.b.host:2,FS", inbox / "cur" / "200.b.host:2,F");
    auto c2 = store->changes("INBOX", known_from(*c1));
    ASSERT_TRUE(c2) << store->last_error();
    EXPECT_EQ(c2->messages.size(), 4u);
    EXPECT_EQ(c2->status.messages, 4u);
    EXPECT_EQ(c2->status.uidnext, c1->status.uidnext);
    EXPECT_TRUE(c2->vanished.empty());
}

TEST_F(maildir_changes_test, set_flags_finds_a_file_that_a_client_renamed_after_the_scan) {
    auto c1 = store->changes("INBOX", {});
    ASSERT_TRUE(c1);
    auto u = by_identity(*c1, "200.b.host")->uid;
    fs::rename(inbox / "cur" / "200.b.host:2,FS", inbox / "cur" / "200.b.host:2,DFS");
    flag_change ch;
    ch.uid = u;
    ch.add = flags({"\\Answered"});
    ch.remove = flags({"\\Flagged"});
    ASSERT_TRUE(store->set_flags("INBOX", std::span(&ch, 1))) << store->last_error();
    EXPECT_TRUE(fs::exists(inbox / "cur" / "200.b.host:2,DRS"));
    EXPECT_FALSE(fs::exists(inbox / "cur" / "200.b.host:2,DFS"));
}

TEST_F(maildir_store_test, a_scan_survives_a_mail_client_renaming_and_deleting_files) {
    auto s = make_with({"INBOX"});
    const fs::path cur = root / "INBOX" / "cur";
    constexpr int count = 1500;
    for (int i = 0; i < count; ++i)
        write_file(cur / (std::to_string(1000 + i) + ".x.host:2,"),
                   message("<" + std::to_string(i) + "@x>"));
    auto c1 = s->changes("INBOX", {});
    ASSERT_TRUE(c1) << s->last_error();
    std::map<std::string, mail::uid> uid_of;
    for (const auto& m : c1->messages) uid_of[m.identity] = m.uid;

    // The client works while the next scan runs: it marks every 5th message seen and
    // deletes every 7th (a bounded burst, as a person or a filter would).
    std::atomic<bool> started{false};
    std::thread client([&] {
        started = true;
        for (int i = 0; i < count; i += 5) {
            auto base = std::to_string(1000 + i) + ".x.host";
            std::error_code ec;
            fs::rename(cur / (base + ":2,"), cur / (base + ":2,S"), ec);
        }
        for (int i = 3; i < count; i += 7) {
            std::error_code ec;
            auto base = std::to_string(1000 + i) + ".x.host";
            if (!fs::remove(cur / (base + ":2,"), ec)) fs::remove(cur / (base + ":2,S"), ec);
        }
    });
    while (!started) std::this_thread::yield();
    auto during = s->changes("INBOX", known_from(*c1));
    client.join();
    ASSERT_TRUE(during) << s->last_error();
    for (const auto& m : during->messages) EXPECT_EQ(uid_of.at(m.identity), m.uid);

    auto after = s->changes("INBOX", known_from(*during));
    ASSERT_TRUE(after) << s->last_error();
    std::size_t expected = 0;
    for (int i = 0; i < count; ++i) {
        auto base = std::to_string(1000 + i) + ".x.host";
        auto* m = by_identity(*after, base);
        bool deleted = i >= 3 && (i - 3) % 7 == 0;
        if (deleted) {
            EXPECT_EQ(m, nullptr) << base;
            continue;
        }
        ++expected;
        ASSERT_NE(m, nullptr) << base;
        EXPECT_EQ(m->uid, uid_of.at(base));
        EXPECT_EQ(m->flags.has(system_flag::seen), i % 5 == 0) << base;
    }
    EXPECT_EQ(after->messages.size(), expected);
    EXPECT_EQ(after->status.uidnext, c1->status.uidnext);
}

// ---- append and fetch

TEST_F(maildir_store_test, append_then_fetch_round_trips_byte_for_byte) {
    auto s = make_with({"INBOX"});
    // Bytes that a text mode would change: CR, LF alone, NUL, 8-bit.
    std::string odd = message("<odd@x>", std::string("a\rb\nc\0d\xff\r\n", 10));
    std::string big(5 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>((i * 131 + i / 977) & 0xff);
    big = message("<big@x>") + big;
    const fs::path spool = tmp.path() / "spool-1";
    write_file(spool, big);
    const fs::path borrowed = tmp.path() / "borrowed";
    const std::string borrowed_text = message("<borrowed@x>", "lent\r\n");
    write_file(borrowed, borrowed_text);

    std::vector<outgoing_message> in;
    in.push_back(outgoing(odd, flags({"\\Seen", "$Label1"}), 1'500'000'000));
    outgoing_message large;
    large.body.file = spool;
    large.body.temporary = true;
    large.body.size = big.size();
    large.internal_date = 1'500'000'100;
    in.push_back(std::move(large));
    outgoing_message lent;
    lent.body.file = borrowed;
    lent.body.size = borrowed_text.size();
    lent.flags = flags({"\\Draft"});
    in.push_back(std::move(lent));

    auto uids = s->append("INBOX", std::move(in));
    ASSERT_TRUE(uids) << s->last_error();
    ASSERT_EQ(uids->size(), 3u);
    EXPECT_EQ(*uids, (std::vector<mail::uid>{1, 2, 3}));
    EXPECT_FALSE(fs::exists(spool));    // taken over
    EXPECT_TRUE(fs::exists(borrowed));  // only read
    EXPECT_TRUE(names_in(root / "INBOX" / "tmp").empty());
    EXPECT_TRUE(names_in(root / "INBOX" / "new").empty());
    auto files = names_in(root / "INBOX" / "cur");
    ASSERT_EQ(files.size(), 3u);
    EXPECT_EQ(read_file(root / "INBOX" / "dovecot-keywords"), "0 $Label1\n");
    EXPECT_EQ(std::count_if(files.begin(), files.end(),
                            [](const auto& n) { return n.ends_with(":2,Sa"); }),
              1);

    std::map<mail::uid, message_body> got;
    std::vector<mail::uid> want{3, 1, 2, 99};
    auto r = s->fetch("INBOX", want, [&](mail::uid u, message_body&& b) -> result<void> {
        if (!b.file.empty()) {
            EXPECT_FALSE(b.temporary);
            b.data = read_file(b.file);  // read within the call, as the contract says
        }
        got.emplace(u, std::move(b));
        return {};
    });
    ASSERT_TRUE(r) << s->last_error();
    ASSERT_EQ(got.size(), 3u);  // 99 is nobody
    EXPECT_EQ(got[1].data, odd);
    EXPECT_TRUE(got[1].file.empty());
    EXPECT_EQ(got[1].size, odd.size());
    EXPECT_FALSE(got[2].file.empty());  // over 1 MiB: the file itself
    EXPECT_EQ(got[2].size, big.size());
    EXPECT_TRUE(got[2].data == big);
    EXPECT_EQ(got[3].data, borrowed_text);

    // Its own deliveries carry no key in a first listing (they are paired already): ask
    // for all of them, as a run resolving an interrupted copy does.
    tandem::store::known_state all;
    all.full = true;
    auto c = s->changes("INBOX", all);
    ASSERT_TRUE(c);
    EXPECT_EQ(by_uid(*c, 1)->flags, flags({"\\Seen", "$Label1"}));
    EXPECT_EQ(by_uid(*c, 1)->internal_date, 1'500'000'000);
    EXPECT_EQ(by_uid(*c, 2)->internal_date, 1'500'000'100);
    EXPECT_EQ(by_uid(*c, 2)->size, big.size());
    EXPECT_TRUE(
        by_uid(*c, 2)->content_key.starts_with("<big@x>/" + std::to_string(big.size()) + "/"))
        << by_uid(*c, 2)->content_key;
    EXPECT_EQ(by_uid(*c, 3)->flags, flags({"\\Draft"}));
    EXPECT_EQ(c->status.uidnext, 4u);
}

TEST_F(maildir_store_test, fetch_finds_a_renamed_file_and_skips_a_deleted_one) {
    auto s = make_with({"INBOX"});
    std::vector<outgoing_message> in;
    in.push_back(outgoing(message("<1@x>")));
    in.push_back(outgoing(message("<2@x>")));
    auto uids = s->append("INBOX", std::move(in));
    ASSERT_TRUE(uids);
    auto c = s->changes("INBOX", {});
    ASSERT_TRUE(c);
    const fs::path cur = root / "INBOX" / "cur";
    for (const auto& n : names_in(cur)) {
        auto base = maildir::parse_name(n).base;
        if (base == by_uid(*c, 1)->identity)
            fs::rename(cur / n, cur / (base + ":2,FS"));
        else
            fs::remove(cur / n);
    }
    std::vector<mail::uid> delivered;
    auto r = s->fetch("INBOX", *uids, [&](mail::uid u, message_body&& b) -> result<void> {
        delivered.push_back(u);
        EXPECT_EQ(b.data, message("<1@x>"));
        return {};
    });
    ASSERT_TRUE(r) << s->last_error();
    EXPECT_EQ(delivered, (std::vector<mail::uid>{1}));
    // The receiver's failure stops the fetch and is returned.
    r = s->fetch("INBOX", *uids, [](mail::uid, message_body&&) -> result<void> {
        return make_error_code(errc::connection_closed);
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::connection_closed);
}

TEST_F(maildir_store_test, a_full_disk_is_storage_full_and_leaves_nothing_behind) {
    make_folder(root / "INBOX");
    auto s = make(maildir::layout_kind::verbatim, &write_enospc);
    const fs::path spool = tmp.path() / "spool";
    write_file(spool, message("<spooled@x>"));
    std::vector<outgoing_message> in;
    in.push_back(outgoing(message("<1@x>"), flags({"\\Seen"})));
    outgoing_message m;
    m.body.file = spool;
    m.body.temporary = true;
    in.push_back(std::move(m));
    auto r = s->append("INBOX", std::move(in));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::storage_full);
    EXPECT_NE(s->last_error().find("disk is full"), std::string::npos) << s->last_error();
    EXPECT_NE(s->last_error().find(fs::canonical(root / "INBOX").string()), std::string::npos)
        << s->last_error();
    for (const char* sub : {"tmp", "new", "cur"})
        EXPECT_TRUE(names_in(root / "INBOX" / sub).empty()) << sub;
    EXPECT_FALSE(fs::exists(spool));  // ours once passed in, failure or not
    auto st = s->status("INBOX");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages, 0u);
    EXPECT_EQ(st->uidnext, 1u);
}

TEST_F(maildir_store_test, append_to_a_missing_folder_fails_and_deletes_the_spool) {
    auto s = make_with({"INBOX"});
    const fs::path spool = tmp.path() / "spool";
    write_file(spool, message("<spooled@x>"));
    std::vector<outgoing_message> in;
    outgoing_message m;
    m.body.file = spool;
    m.body.temporary = true;
    in.push_back(std::move(m));
    auto r = s->append("Nope", std::move(in));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::not_found);
    EXPECT_FALSE(fs::exists(spool));
}

TEST_F(maildir_store_test, an_appender_writes_each_file_as_it_comes_and_commits_at_finish) {
    auto s = make_with({"INBOX"});
    const fs::path spool = tmp.path() / "spool-a";
    write_file(spool, message("<spooled@x>"));
    auto app = s->begin_append("INBOX");
    ASSERT_TRUE(app) << s->last_error();
    ASSERT_TRUE((*app)->add(outgoing(message("<1@x>"), flags({"\\Seen", "$Work"}))));
    // Written already, before any other message comes: nothing is held in memory.
    EXPECT_EQ(names_in(root / "INBOX" / "tmp").size(), 1u);
    outgoing_message m;
    m.body.file = spool;
    m.body.temporary = true;
    ASSERT_TRUE((*app)->add(std::move(m)));
    EXPECT_EQ(names_in(root / "INBOX" / "tmp").size(), 2u);
    EXPECT_FALSE(fs::exists(spool));  // taken over at add()
    EXPECT_TRUE(names_in(root / "INBOX" / "cur").empty());
    auto uids = (*app)->finish();
    ASSERT_TRUE(uids) << s->last_error();
    EXPECT_EQ(*uids, (std::vector<mail::uid>{1, 2}));
    EXPECT_TRUE(names_in(root / "INBOX" / "tmp").empty());
    EXPECT_EQ(names_in(root / "INBOX" / "cur").size(), 2u);
    EXPECT_EQ(read_file(root / "INBOX" / "dovecot-keywords"), "0 $Work\n");

    // Dropped without finish(): nothing stays, neither in tmp/ nor as a message.
    const fs::path spool2 = tmp.path() / "spool-b";
    write_file(spool2, message("<spooled2@x>"));
    {
        auto dropped = s->begin_append("INBOX");
        ASSERT_TRUE(dropped);
        ASSERT_TRUE((*dropped)->add(outgoing(message("<3@x>"))));
        outgoing_message m2;
        m2.body.file = spool2;
        m2.body.temporary = true;
        ASSERT_TRUE((*dropped)->add(std::move(m2)));
        EXPECT_EQ(names_in(root / "INBOX" / "tmp").size(), 2u);
    }
    EXPECT_TRUE(names_in(root / "INBOX" / "tmp").empty());
    EXPECT_FALSE(fs::exists(spool2));
    EXPECT_EQ(names_in(root / "INBOX" / "cur").size(), 2u);
    auto st = s->status("INBOX");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages, 2u);
    EXPECT_EQ(st->uidnext, 3u);
}

// An engine batch can be 5,000 messages of unlisted sizes: every 32 MB the files so far go
// to cur/ with their uids, and a dropped appender takes those back out as well.
TEST_F(maildir_store_test, an_appender_moves_every_32_mb_to_cur_and_a_drop_takes_them_back) {
    auto s = make_with({"INBOX"});
    const std::string big = message("<big@x>") + std::string(12u << 20, 'x') + "\n";
    auto app = s->begin_append("INBOX");
    ASSERT_TRUE(app) << s->last_error();
    ASSERT_TRUE((*app)->add(outgoing(big)));
    ASSERT_TRUE((*app)->add(outgoing(big)));
    EXPECT_TRUE(names_in(root / "INBOX" / "cur").empty());
    EXPECT_EQ(names_in(root / "INBOX" / "tmp").size(), 2u);
    ASSERT_TRUE((*app)->add(outgoing(big)));  // 36 MB: past the mark
    EXPECT_EQ(names_in(root / "INBOX" / "cur").size(), 3u);
    EXPECT_TRUE(names_in(root / "INBOX" / "tmp").empty());
    ASSERT_TRUE((*app)->add(outgoing(message("<small@x>"))));
    EXPECT_EQ(names_in(root / "INBOX" / "tmp").size(), 1u);
    auto uids = (*app)->finish();
    ASSERT_TRUE(uids) << s->last_error();
    EXPECT_EQ(*uids, (std::vector<mail::uid>{1, 2, 3, 4}));
    EXPECT_EQ(names_in(root / "INBOX" / "cur").size(), 4u);

    {
        auto dropped = s->begin_append("INBOX");
        ASSERT_TRUE(dropped);
        for (int i = 0; i < 3; ++i) ASSERT_TRUE((*dropped)->add(outgoing(big)));
        ASSERT_TRUE((*dropped)->add(outgoing(message("<small2@x>"))));
        EXPECT_EQ(names_in(root / "INBOX" / "cur").size(), 7u);
    }
    EXPECT_EQ(names_in(root / "INBOX" / "cur").size(), 4u);
    EXPECT_TRUE(names_in(root / "INBOX" / "tmp").empty());
    auto c = s->changes("INBOX", {});
    ASSERT_TRUE(c) << s->last_error();
    EXPECT_EQ(c->messages.size(), 4u);
}

// ---- flags

TEST_F(maildir_store_test, set_flags_applies_changes_to_the_current_flags_with_keyword_letters) {
    auto s = make_with({"INBOX"});
    write_file(root / "INBOX" / "dovecot-keywords", "0 $Label1\n");
    std::vector<outgoing_message> in;
    in.push_back(outgoing(message("<1@x>"), flags({"\\Seen", "$Label1"})));
    auto uids = s->append("INBOX", std::move(in));
    ASSERT_TRUE(uids);
    const fs::path cur = root / "INBOX" / "cur";
    auto name = names_in(cur).at(0);
    auto base = maildir::parse_name(name).base;
    EXPECT_EQ(name, base + ":2,Sa");
    // Meanwhile a mail client flags it.
    fs::rename(cur / name, cur / (base + ":2,FSa"));

    std::vector<flag_change> ch{
        {uids->at(0), flags({"\\Answered", "NotJunk", "$Forwarded"}), flags({"\\Seen"})}};
    ASSERT_TRUE(s->set_flags("INBOX", ch)) << s->last_error();
    EXPECT_EQ(read_file(root / "INBOX" / "dovecot-keywords"), "0 $Label1\n1 NotJunk\n");
    EXPECT_EQ(names_in(cur), (std::vector<std::string>{base + ":2,FPRab"}));

    ch = {{uids->at(0), {}, flags({"$Label1", "\\Flagged", "$Forwarded"})}};
    ASSERT_TRUE(s->set_flags("INBOX", ch)) << s->last_error();
    EXPECT_EQ(names_in(cur), (std::vector<std::string>{base + ":2,Rb"}));
    auto c = s->changes("INBOX", {});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->messages.at(0).uid, uids->at(0));
    EXPECT_EQ(c->messages.at(0).flags, flags({"\\Answered", "NotJunk"}));

    // Gone meanwhile, or never known: not an error.
    fs::remove(cur / (base + ":2,Rb"));
    ch = {{uids->at(0), flags({"\\Seen"}), {}}, {77, flags({"\\Seen"}), {}}};
    ASSERT_TRUE(s->set_flags("INBOX", ch)) << s->last_error();
    EXPECT_TRUE(names_in(cur).empty());
}

// ---- a run's own changes (maildir/watch.hpp)

// A store vouches for a folder only if every change since the status it reported was its
// own: then the engine records the state after the run and the next run lists nothing.
class own_changes_test : public maildir_store_test {
  protected:
    // A folder with two synced messages and a store that has just listed it (a new run).
    void SetUp() override {
        maildir_store_test::SetUp();
        auto first = make_with({"INBOX"});
        std::vector<outgoing_message> in;
        in.push_back(outgoing(message("<1@x>"), flags({"\\Seen"})));
        in.push_back(outgoing(message("<2@x>")));
        uids = first->append("INBOX", std::move(in)).value();
        first.reset();
        // Past the settle time: the listed token is a settled one.
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        store = make(maildir::layout_kind::verbatim, nullptr, std::chrono::milliseconds(20));
        ASSERT_TRUE(store->list());
    }
    bool flag_first() {
        std::vector<flag_change> ch{{uids.at(0), flags({"\\Flagged"}), {}}};
        return static_cast<bool>(store->set_flags("INBOX", ch));
    }
    void client_renames_the_second() {
        auto cur = root / "INBOX" / "cur";
        for (const auto& n : names_in(cur))
            if (n.ends_with(":2,")) fs::rename(cur / n, cur / (n + "S"));
    }
    std::vector<mail::uid> uids;
    std::unique_ptr<maildir_store> store;
};

TEST_F(own_changes_test, only_own_changes_give_the_status_after_them_which_the_next_run_lists) {
    EXPECT_FALSE(store->status_after_own_changes("INBOX").value());  // nothing written yet
    ASSERT_TRUE(flag_first()) << store->last_error();
    auto after = store->status_after_own_changes("INBOX").value();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->messages, 2u);
    // The next run's listing: the same status, so the engine sees nothing to do.
    auto next = make();
    auto listed = next->status("INBOX").value();
    EXPECT_EQ(listed, *after);
}

// A store that watched its writes leaves the inotify teardown to a forked child
// (change_watch::close_without_waiting). The child drops every other descriptor and exits:
// a pipe's write end open here when the store goes reaches EOF once this process closes
// it (a child that kept it, or never exited, would leave the read waiting).
TEST_F(own_changes_test, closing_the_watch_leaves_no_descriptor_behind) {
    ASSERT_TRUE(flag_first()) << store->last_error();  // the watch is open now
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    store.reset();
    ::close(pipe_fds[1]);
    pollfd p{pipe_fds[0], POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the write end is still open somewhere";
    char c;
    EXPECT_EQ(::read(pipe_fds[0], &c, 1), 0);
    ::close(pipe_fds[0]);
    auto next = make();
    EXPECT_TRUE(next->status("INBOX"));
}

// A `tandem watch` process closes a store every cycle. Each closer is reaped at the next
// close once it has exited: children do not pile up as zombies. (Peeks with WNOWAIT until
// the closer of each round has exited, then counts what is left to reap: the last one.)
TEST_F(own_changes_test, closers_of_earlier_watches_are_reaped_at_the_next_close) {
    auto drain = [] {
        int n = 0;
        int status = 0;
        while (::waitpid(-1, &status, WNOHANG) > 0) ++n;
        return n;
    };
    auto wait_for_an_exited_child = [] {
        for (int i = 0; i < 500; ++i) {
            siginfo_t info{};
            if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0)
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    };
    store.reset();
    ASSERT_TRUE(wait_for_an_exited_child());
    drain();  // this test's first closer, and any other test's
    for (int round = 0; round < 4; ++round) {
        store = make(maildir::layout_kind::verbatim, nullptr, std::chrono::milliseconds(20));
        ASSERT_TRUE(store->list());
        ASSERT_TRUE(flag_first()) << store->last_error();
        store.reset();
        ASSERT_TRUE(wait_for_an_exited_child()) << "round " << round;
    }
    EXPECT_EQ(drain(), 1) << "only the last closer is left to reap";
}

TEST_F(own_changes_test, a_client_change_before_the_first_write_is_not_vouched_for) {
    client_renames_the_second();
    ASSERT_TRUE(flag_first()) << store->last_error();
    EXPECT_FALSE(store->status_after_own_changes("INBOX").value());
}

TEST_F(own_changes_test, a_client_change_after_the_writes_is_not_vouched_for) {
    ASSERT_TRUE(flag_first()) << store->last_error();
    client_renames_the_second();
    EXPECT_FALSE(store->status_after_own_changes("INBOX").value());
}

TEST_F(own_changes_test, a_client_delivery_between_two_writes_is_not_vouched_for) {
    ASSERT_TRUE(flag_first()) << store->last_error();
    write_file(root / "INBOX" / "new" / "1700000000.M1P1.client", message("<3@x>"));
    ASSERT_TRUE(store->expunge("INBOX", std::vector<mail::uid>{uids.at(1)}));
    EXPECT_FALSE(store->status_after_own_changes("INBOX").value());
}

TEST_F(own_changes_test, a_folder_this_run_created_and_filled_is_vouched_for_and_moves_too) {
    ASSERT_TRUE(store->create("Archive"));
    std::vector<outgoing_message> in;
    in.push_back(outgoing(message("<a@x>")));
    ASSERT_TRUE(store->append("Archive", std::move(in)));
    ASSERT_TRUE(store->move("INBOX", std::vector<mail::uid>{uids.at(0)}, "Archive"));
    auto archive = store->status_after_own_changes("Archive").value();
    auto inbox = store->status_after_own_changes("INBOX").value();
    ASSERT_TRUE(archive);
    ASSERT_TRUE(inbox);
    EXPECT_EQ(archive->messages, 2u);
    EXPECT_EQ(inbox->messages, 1u);
    auto next = make();
    EXPECT_EQ(next->status("Archive").value(), *archive);
    EXPECT_EQ(next->status("INBOX").value(), *inbox);
}

TEST_F(maildir_store_test, a_keyword_without_a_letter_is_dropped_from_the_name_and_reported_once) {
    auto s = make_with({"INBOX"});
    std::string kw;
    for (int i = 0; i < 26; ++i) kw += std::to_string(i) + " k" + std::to_string(i) + "\n";
    write_file(root / "INBOX" / "dovecot-keywords", kw);
    for (int round = 0; round < 2; ++round) {
        std::vector<outgoing_message> in;
        in.push_back(outgoing(message("<1@x>"), flags({"\\Seen", "k25", "Extra"})));
        ASSERT_TRUE(s->append("INBOX", std::move(in))) << s->last_error();
    }
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("\"Extra\""), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("INBOX"), std::string::npos) << warnings[0];
    EXPECT_EQ(read_file(root / "INBOX" / "dovecot-keywords"), kw);
    for (const auto& n : names_in(root / "INBOX" / "cur")) EXPECT_TRUE(n.ends_with(":2,Sz")) << n;
    // The engine asks before it reads the missing keyword as removed on this side.
    EXPECT_TRUE(s->keeps_keyword("INBOX", "k25"));
    EXPECT_FALSE(s->keeps_keyword("INBOX", "Extra"));
}

// ---- move, expunge

TEST_F(maildir_store_test, move_keeps_the_base_name_and_gives_a_new_uid_in_the_destination) {
    auto s = make_with({"INBOX", "Archive"});
    write_file(root / "Archive" / "dovecot-keywords", "0 Other\n");
    std::vector<outgoing_message> in;
    in.push_back(outgoing(message("<1@x>"), flags({"\\Seen", "$Label1"})));
    in.push_back(outgoing(message("<2@x>")));
    in.push_back(outgoing(message("<3@x>")));
    auto uids = s->append("INBOX", std::move(in));
    ASSERT_TRUE(uids);
    auto before = s->changes("INBOX", {});
    ASSERT_TRUE(before);
    // Something in the destination already, so its UIDs differ from the source's.
    std::vector<outgoing_message> one;
    one.push_back(outgoing(message("<a@x>")));
    ASSERT_TRUE(s->append("Archive", std::move(one)));

    std::vector<mail::uid> moving{uids->at(0), 999, uids->at(2)};
    auto moved = s->move("INBOX", moving, "Archive");
    ASSERT_TRUE(moved) << s->last_error();
    EXPECT_EQ(*moved, (std::vector<mail::uid>{2, 0, 3}));

    auto base1 = by_uid(*before, uids->at(0))->identity;
    auto archived = names_in(root / "Archive" / "cur");
    EXPECT_NE(std::find(archived.begin(), archived.end(), base1 + ":2,Sb"), archived.end());
    EXPECT_EQ(read_file(root / "Archive" / "dovecot-keywords"), "0 Other\n1 $Label1\n");

    auto src = s->changes("INBOX", known_from(*before));
    ASSERT_TRUE(src);
    EXPECT_EQ(src->messages.size(), 1u);
    EXPECT_EQ(src->vanished, (std::vector<mail::uid>{uids->at(0), uids->at(2)}));
    auto dst = s->changes("Archive", {});
    ASSERT_TRUE(dst);
    ASSERT_EQ(dst->messages.size(), 3u);
    auto* m = by_uid(*dst, 2);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->identity, base1);
    EXPECT_EQ(m->flags, flags({"\\Seen", "$Label1"}));
    EXPECT_EQ(dst->status.uidnext, 4u);  // the scan found no stranger

    // A message gone meanwhile moves nowhere: 0.
    fs::remove_all(root / "INBOX" / "cur");
    fs::create_directories(root / "INBOX" / "cur");
    auto none = s->move("INBOX", std::vector<mail::uid>{uids->at(1)}, "Archive");
    ASSERT_TRUE(none) << s->last_error();
    EXPECT_EQ(*none, (std::vector<mail::uid>{0}));
}

TEST_F(maildir_store_test, expunge_unlinks_and_forgets) {
    auto s = make_with({"INBOX"});
    std::vector<outgoing_message> in;
    in.push_back(outgoing(message("<1@x>")));
    in.push_back(outgoing(message("<2@x>")));
    auto uids = s->append("INBOX", std::move(in));
    ASSERT_TRUE(uids);
    ASSERT_TRUE(s->expunge("INBOX", std::vector<mail::uid>{uids->at(0)})) << s->last_error();
    EXPECT_EQ(names_in(root / "INBOX" / "cur").size(), 1u);
    auto st = s->status("INBOX");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages, 1u);
    // Already gone, or gone by a mail client's hand: fine.
    ASSERT_TRUE(s->expunge("INBOX", std::vector<mail::uid>{uids->at(0)}));
    fs::remove(root / "INBOX" / "cur" / names_in(root / "INBOX" / "cur").at(0));
    ASSERT_TRUE(s->expunge("INBOX", std::vector<mail::uid>{uids->at(1)})) << s->last_error();
    st = s->status("INBOX");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->messages, 0u);
    EXPECT_EQ(st->uidnext, 3u);
}

// ---- create, remove

TEST_F(maildir_store_test, a_recreated_folder_gets_a_greater_uidvalidity) {
    auto s = make_with({"INBOX"});
    ASSERT_TRUE(s->create("Work/2024")) << s->last_error();
    EXPECT_TRUE(maildir::folder::exists(root / "Work" / "2024"));
    auto st1 = s->status("Work/2024");
    ASSERT_TRUE(st1);
    std::vector<outgoing_message> in;
    in.push_back(outgoing(message("<1@x>")));
    ASSERT_TRUE(s->append("Work/2024", std::move(in)));
    auto c = s->changes("Work/2024", {});
    ASSERT_TRUE(c);
    ASSERT_TRUE(s->remove("Work/2024")) << s->last_error();
    EXPECT_FALSE(maildir::folder::exists(root / "Work" / "2024"));
    EXPECT_EQ(s->status("Work/2024").error(), errc::not_found);
    // Within the same second: the clock alone would give the same number.
    ASSERT_TRUE(s->create("Work/2024"));
    auto st2 = s->status("Work/2024");
    ASSERT_TRUE(st2);
    EXPECT_GT(st2->uidvalidity, st1->uidvalidity);
    EXPECT_EQ(st2->uidnext, 1u);
    EXPECT_EQ(st2->messages, 0u);
    auto k = known_from(*c);
    auto c2 = s->changes("Work/2024", k);
    ASSERT_TRUE(c2);
    EXPECT_TRUE(c2->uidvalidity_changed);

    // Removed by a mail client and made again by tandem: a new UIDVALIDITY too.
    fs::remove_all(root / "Work" / "2024");
    ASSERT_TRUE(s->create("Work/2024"));
    auto st3 = s->status("Work/2024");
    ASSERT_TRUE(st3);
    EXPECT_GT(st3->uidvalidity, st2->uidvalidity);
    // Creating a folder that exists changes nothing.
    ASSERT_TRUE(s->create("Work/2024"));
    EXPECT_EQ(s->status("Work/2024")->uidvalidity, st3->uidvalidity);
}

TEST_F(maildir_store_test, remove_refuses_a_folder_with_messages_never_synced) {
    auto s = make_with({"INBOX", "Old"});
    write_file(root / "Old" / "new" / "1.a.host", message("<1@x>"));
    auto r = s->remove("Old");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::directory_not_empty);
    EXPECT_NE(s->last_error().find("never synced"), std::string::npos) << s->last_error();
    EXPECT_NE(s->last_error().find("1.a.host"), std::string::npos) << s->last_error();
    EXPECT_TRUE(fs::exists(root / "Old" / "new" / "1.a.host"));
    // Once the scan has given it a UID (the engine synced it), it may go.
    ASSERT_TRUE(s->changes("Old", {}));
    ASSERT_TRUE(s->remove("Old")) << s->last_error();
    EXPECT_FALSE(fs::exists(root / "Old"));
    auto l = s->list();
    ASSERT_TRUE(l);
    ASSERT_EQ(l->size(), 1u);
    EXPECT_EQ((*l)[0].name, "INBOX");
    EXPECT_EQ(s->remove("INBOX").error(), errc::invalid_argument);
}

TEST_F(maildir_store_test, invalid_names_are_refused) {
    auto s = make_with({"INBOX"});
    auto r = s->create("a/../b");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::invalid_mailbox_name);
    EXPECT_FALSE(s->last_error().empty());
    EXPECT_EQ(s->status("x/cur").error(), errc::invalid_mailbox_name);
}

}  // namespace
}  // namespace tandem::store
