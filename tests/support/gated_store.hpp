// SPDX-License-Identifier: MIT
// A store in front of another that makes the engine's concurrency visible: its changes() and
// select_ahead() wait at a gate until enough calls are in progress together (or its patience
// ran out), and the gate counts what it saw. another() opens the inner store's next connection
// behind a gate too, or is refused on request.
#pragma once

#include "tandem/store/store.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace tandem::test {

struct gate {
    std::mutex m;
    std::condition_variable cv;
    int inside = 0;
    int most_inside = 0;
    int calls = 0;
    // Distinct mailboxes whose changes() were in progress together, at most.
    std::size_t most_mailboxes = 0;
    // A call waits until this many calls (by_mailbox: mailboxes) are in progress.
    std::size_t wanted = 2;
    bool by_mailbox = false;
    std::chrono::milliseconds patience{3000};
    int opened = 0;        // stores that another() gave
    int closed_ahead = 0;  // of those, how many were told close_ahead() before their end
    int flag_calls = 0;    // set_flags() calls
    int selects_ahead = 0;  // select_ahead() calls, which pass the gate as "<mailbox> ahead"
    // The copies' steps in order: "fetch <n> from <uid>", "ahead <n> from <uid>" (fetch_ahead)
    // and "finish" (an appender's).
    std::vector<std::string> transfers;
    void note(std::string what) {
        std::lock_guard g(m);
        transfers.push_back(std::move(what));
    }
    bool refuse_another = false;
    // What each list_ahead() was told: "list ahead INBOX=3 Sent=1".
    std::vector<std::string> lists_ahead;
    // The mailboxes of changes() calls in the order they came.
    std::vector<std::string> changes_order;
    // is_open() says so for this one too.
    std::string open_mailbox;

    void enter(const std::string& mailbox) {
        std::unique_lock g(m);
        ++calls;
        most_inside = std::max(most_inside, ++inside);
        in_progress.insert(mailbox);
        most_mailboxes = std::max(most_mailboxes, distinct());
        cv.notify_all();
        cv.wait_for(g, patience, [&] {
            return (by_mailbox ? distinct() : static_cast<std::size_t>(inside)) >= wanted;
        });
    }
    void leave(const std::string& mailbox) {
        std::lock_guard g(m);
        --inside;
        in_progress.erase(in_progress.find(mailbox));
    }

  private:
    std::size_t distinct() const {
        return std::set<std::string>(in_progress.begin(), in_progress.end()).size();
    }
    std::multiset<std::string> in_progress;
};

// Every call goes to `inner`; changes() passes the gate first.
class gated_store final : public tandem::store::store {
  public:
    gated_store(tandem::store::store& inner, gate& g, bool uses_journal)
        : inner_(inner), gate_(g), uses_journal_(uses_journal) {}
    gated_store(std::unique_ptr<tandem::store::store> owned, gate& g, bool uses_journal)
        : owned_(std::move(owned)), inner_(*owned_), gate_(g), uses_journal_(uses_journal) {}
    ~gated_store() override {
        if (!owned_ || !closing_) return;
        std::lock_guard lock(gate_.m);
        ++gate_.closed_ahead;
    }
    gated_store(const gated_store&) = delete;
    gated_store& operator=(const gated_store&) = delete;

    std::string describe() const override { return inner_.describe(); }
    const std::string& last_error() const override { return inner_.last_error(); }
    result<std::vector<tandem::store::mailbox_entry>> list() override { return inner_.list(); }
    bool list_ahead(std::span<const tandem::store::known_mailbox> known) override {
        std::string what = "list ahead";
        for (const auto& k : known) what += " " + k.name + "=" + std::to_string(k.messages);
        {
            std::lock_guard g(gate_.m);
            gate_.lists_ahead.push_back(std::move(what));
        }
        return inner_.list_ahead(known);
    }
    bool is_open(const std::string& mailbox) override {
        return mailbox == gate_.open_mailbox || inner_.is_open(mailbox);
    }
    result<tandem::store::mailbox_status> status(const std::string& mailbox) override {
        return inner_.status(mailbox);
    }
    result<tandem::store::mailbox_changes> changes(
        const std::string& mailbox, const tandem::store::known_state& known) override {
        {
            std::lock_guard g(gate_.m);
            gate_.changes_order.push_back(mailbox);
        }
        gate_.enter(mailbox);
        auto r = inner_.changes(mailbox, known);
        gate_.leave(mailbox);
        return r;
    }
    void select_ahead(const std::string& mailbox) override {
        {
            std::lock_guard g(gate_.m);
            ++gate_.selects_ahead;
        }
        gate_.enter(mailbox + " ahead");
        inner_.select_ahead(mailbox);
        gate_.leave(mailbox + " ahead");
    }
    result<void> fetch(const std::string& mailbox, std::span<const mail::uid> uids,
                       const std::function<result<void>(mail::uid, tandem::store::message_body&&)>&
                           deliver) override {
        gate_.note("fetch " + counted(uids));
        return inner_.fetch(mailbox, uids, deliver);
    }
    void fetch_ahead(const std::string& mailbox, std::span<const mail::uid> uids) override {
        gate_.note("ahead " + counted(uids));
        inner_.fetch_ahead(mailbox, uids);
    }
    result<std::vector<mail::uid>> append(
        const std::string& mailbox,
        std::vector<tandem::store::outgoing_message>&& messages) override {
        return inner_.append(mailbox, std::move(messages));
    }
    result<std::unique_ptr<tandem::store::appender>> begin_append(
        const std::string& mailbox) override {
        auto inner = inner_.begin_append(mailbox);
        if (!inner) return inner.error();
        return std::unique_ptr<tandem::store::appender>(
            std::make_unique<noted_appender>(std::move(*inner), gate_));
    }
    result<void> set_flags(const std::string& mailbox,
                           std::span<const tandem::store::flag_change> changes) override {
        {
            std::lock_guard g(gate_.m);
            ++gate_.flag_calls;
        }
        return inner_.set_flags(mailbox, changes);
    }
    result<std::vector<mail::uid>> move(const std::string& from, std::span<const mail::uid> uids,
                                        const std::string& to) override {
        return inner_.move(from, uids, to);
    }
    result<void> expunge(const std::string& mailbox, std::span<const mail::uid> uids) override {
        return inner_.expunge(mailbox, uids);
    }
    result<std::optional<tandem::store::mailbox_status>> status_after_own_changes(
        const std::string& mailbox) override {
        return inner_.status_after_own_changes(mailbox);
    }
    void expect_flags(const std::string& mailbox, mail::uid uid,
                      const mail::flag_set& flags) override {
        inner_.expect_flags(mailbox, uid, flags);
    }
    bool wants_synced_flags() const override { return inner_.wants_synced_flags(); }
    bool changes_use_the_journal() const override { return uses_journal_; }
    bool keeps_keyword(const std::string& mailbox, std::string_view keyword) override {
        return inner_.keeps_keyword(mailbox, keyword);
    }
    std::chrono::milliseconds late_write_window() const override {
        return inner_.late_write_window();
    }
    result<void> create(const std::string& mailbox) override { return inner_.create(mailbox); }
    result<void> remove(const std::string& mailbox) override { return inner_.remove(mailbox); }
    opener another() override {
        auto inner = inner_.another();
        if (!inner) return {};
        return [inner, &g = gate_,
                journal = uses_journal_]() -> result<std::unique_ptr<tandem::store::store>> {
            {
                std::lock_guard lock(g.m);
                if (g.refuse_another) return make_error_code(errc::authentication_failed);
            }
            auto next = inner();
            if (!next) return next.error();
            std::lock_guard lock(g.m);
            ++g.opened;
            return std::unique_ptr<tandem::store::store>(
                std::make_unique<gated_store>(std::move(*next), g, journal));
        };
    }

    void close_ahead() override {
        closing_ = true;
        inner_.close_ahead();
    }

  private:
    class noted_appender final : public tandem::store::appender {
      public:
        noted_appender(std::unique_ptr<tandem::store::appender> inner, gate& g)
            : inner_(std::move(inner)), gate_(g) {}
        result<void> add(tandem::store::outgoing_message&& message) override {
            return inner_->add(std::move(message));
        }
        result<std::vector<mail::uid>> finish() override {
            gate_.note("finish");
            return inner_->finish();
        }

      private:
        std::unique_ptr<tandem::store::appender> inner_;
        gate& gate_;
    };

    static std::string counted(std::span<const mail::uid> uids) {
        return std::to_string(uids.size()) + " from " +
               (uids.empty() ? std::string("-") : std::to_string(uids.front()));
    }

    bool closing_ = false;
    std::unique_ptr<tandem::store::store> owned_;
    tandem::store::store& inner_;
    gate& gate_;
    bool uses_journal_;
};

}  // namespace tandem::test
