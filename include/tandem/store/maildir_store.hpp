// SPDX-License-Identifier: MIT
// The store interface over a tree of Maildir folders (protocol.md 4). Messages are named by
// their unique base names in the files; the UIDs and UIDVALIDITY that the engine needs live
// in the journal's Maildir UID map, keyed by the store id and the canonical folder name, so
// a mail client that renames a file for a flag change, or moves it from new/ to cur/, keeps
// its UID, and nothing of tandem's is written into the Maildir besides the messages and
// Dovecot's dovecot-keywords files.
//
// Each call that changes the journal commits its own short write transaction: none stays
// open between calls, so the engine may write the journal between two calls of this store.
#pragma once

#include "tandem/maildir/filename.hpp"
#include "tandem/maildir/folder.hpp"
#include "tandem/maildir/layout.hpp"
#include "tandem/store/store.hpp"
#include "tandem/util/log.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace tandem::journal {
class journal;
}

namespace tandem::store {

struct maildir_store_options {
    journal::journal& journal;  // outlives the store
    std::filesystem::path root{};
    maildir::layout_kind layout = maildir::layout_kind::verbatim;
    // fsync delivered files and changed directories before the journal records them. Off
    // only for tests and throw-away trees.
    bool fsync = true;
    // The journal's key for this tree; empty: the canonical absolute path of `root`. Two
    // spellings of one root must give one id, or the UIDs of one would void the other's.
    std::string store_id{};
    log::logger logger{};
    // Passed to every folder (folder.hpp): the info separator, how long a directory time
    // stamp needs to settle, and the write hook through which tests inject ENOSPC.
    char separator = maildir::default_separator;
    std::chrono::milliseconds settle{1000};
    maildir::write_function write = nullptr;
};

class maildir_store final : public store {
  public:
    explicit maildir_store(maildir_store_options options);
    ~maildir_store() override;
    maildir_store(const maildir_store&) = delete;
    maildir_store& operator=(const maildir_store&) = delete;

    // "maildir /abs/root".
    std::string describe() const override;
    const std::string& last_error() const override;

    // The folders of the tree with their status from the journal and the directory times:
    // no directory of messages is listed. A missing root is created, unless the journal
    // knows folders of this store: then the root is presumed unmounted and the listing is
    // empty (every known folder missing), with a warning.
    result<std::vector<mailbox_entry>> list() override;
    result<mailbox_status> status(const std::string& mailbox) override;
    // A full scan: base names without a UID get the next ones, UIDs whose files are gone are
    // forgotten, both in one transaction. Always complete.
    result<mailbox_changes> changes(const std::string& mailbox, const known_state& known) override;
    // Bodies under 1 MiB come in memory, larger ones as the message's own file (not
    // temporary: read it within `deliver`, before the next call of this store).
    result<void> fetch(
        const std::string& mailbox, std::span<const mail::uid> uids,
        const std::function<result<void>(mail::uid, message_body&&)>& deliver) override;
    // One delivery batch (grouped fsyncs). On failure nothing of the call is left in the
    // folder and the temporary bodies passed in are deleted. ENOSPC/EDQUOT:
    // errc::storage_full.
    result<std::vector<mail::uid>> append(const std::string& mailbox,
                                          std::vector<outgoing_message>&& messages) override;
    // Each add() writes its file to tmp/ (no fsync); finish() is append()'s commit: every
    // file fsynced, renamed into cur/, given its uid in one journal transaction.
    result<std::unique_ptr<appender>> begin_append(const std::string& mailbox) override;
    // True when the folder's dovecot-keywords file has a letter for `keyword`.
    result<std::optional<mailbox_status>> status_after_own_changes(
        const std::string& mailbox) override;
    void expect_flags(const std::string& mailbox, mail::uid uid,
                      const mail::flag_set& flags) override;
    bool keeps_keyword(const std::string& mailbox, std::string_view keyword) override;
    bool wants_synced_flags() const override { return true; }
    bool changes_use_the_journal() const override { return true; }
    result<void> set_flags(const std::string& mailbox,
                           std::span<const flag_change> changes) override;
    result<std::vector<mail::uid>> move(const std::string& from, std::span<const mail::uid> uids,
                                        const std::string& to) override;
    result<void> expunge(const std::string& mailbox, std::span<const mail::uid> uids) override;
    // A folder (re)created here that had a journal record gets a new UIDVALIDITY.
    result<void> create(const std::string& mailbox) override;
    // Refuses (std::errc::directory_not_empty) a folder holding a message without a UID in
    // the journal: it was never synced, so removing it would lose it.
    result<void> remove(const std::string& mailbox) override;

    const std::string& store_id() const;
    // The folder object of `mailbox` (its listings() and remembered(), for tests), or null
    // where no call has opened it.
    const maildir::folder* folder_of(const std::string& mailbox);

  private:
    struct impl;
    class delivery;
    std::unique_ptr<impl> impl_;
};

}  // namespace tandem::store
