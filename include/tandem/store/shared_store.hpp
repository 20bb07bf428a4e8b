// SPDX-License-Identifier: MIT
// One store for several threads: each thread has its own shared_store in front of it, and
// they take turns, one call at a time (a fetch() with every deliver() it makes). The
// engine puts a Maildir store behind these when mailboxes sync on several IMAP connections
// at once: a Maildir store is one object per root (its folders' UIDs and its caches), and
// its calls are short next to a server's.
#pragma once

#include "tandem/store/store.hpp"

#include <mutex>

namespace tandem::store {

class shared_store final : public store {
  public:
    shared_store(store& inner, std::mutex& turn) : inner_(inner), turn_(turn) {}

    std::string describe() const override;
    // The words of this thread's last failure (another thread's calls leave them alone).
    const std::string& last_error() const override { return last_error_; }

    result<std::vector<mailbox_entry>> list() override;
    result<mailbox_status> status(const std::string& mailbox) override;
    result<mailbox_changes> changes(const std::string& mailbox, const known_state& known) override;
    result<void> fetch(
        const std::string& mailbox, std::span<const mail::uid> uids,
        const std::function<result<void>(mail::uid, message_body&&)>& deliver) override;
    result<std::vector<mail::uid>> append(const std::string& mailbox,
                                          std::vector<outgoing_message>&& messages) override;
    result<std::unique_ptr<appender>> begin_append(const std::string& mailbox) override;
    result<void> set_flags(const std::string& mailbox,
                           std::span<const flag_change> changes) override;
    result<std::vector<mail::uid>> move(const std::string& from, std::span<const mail::uid> uids,
                                        const std::string& to) override;
    result<void> expunge(const std::string& mailbox, std::span<const mail::uid> uids) override;
    result<std::optional<mailbox_status>> status_after_own_changes(
        const std::string& mailbox) override;
    void expect_flags(const std::string& mailbox, mail::uid uid,
                      const mail::flag_set& flags) override;
    bool wants_synced_flags() const override;
    bool changes_use_the_journal() const override;
    bool keeps_keyword(const std::string& mailbox, std::string_view keyword) override;
    std::chrono::milliseconds late_write_window() const override;
    result<void> create(const std::string& mailbox) override;
    result<void> remove(const std::string& mailbox) override;

  private:
    // Calls f with the turn held; a failure's words are kept for this thread.
    template <class F>
    auto in_turn(F&& f) -> decltype(f());

    store& inner_;
    std::mutex& turn_;
    std::string last_error_;
};

}  // namespace tandem::store
