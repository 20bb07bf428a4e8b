// SPDX-License-Identifier: MIT
#include "tandem/store/shared_store.hpp"

namespace tandem::store {
namespace {

// An appender of the shared store: each add() and the finish() take the turn.
class shared_appender final : public appender {
  public:
    shared_appender(std::unique_ptr<appender> inner, store& owner, std::mutex& turn,
                    std::string& last_error)
        : inner_(std::move(inner)), owner_(owner), turn_(turn), last_error_(last_error) {}
    ~shared_appender() override {
        std::lock_guard lock(turn_);
        inner_.reset();  // removes its tmp/ files: the store's work
    }

    result<void> add(outgoing_message&& message) override {
        std::lock_guard lock(turn_);
        auto r = inner_->add(std::move(message));
        if (!r) last_error_ = owner_.last_error();
        return r;
    }
    result<std::vector<mail::uid>> finish() override {
        std::lock_guard lock(turn_);
        auto r = inner_->finish();
        if (!r) last_error_ = owner_.last_error();
        return r;
    }

  private:
    std::unique_ptr<appender> inner_;
    store& owner_;
    std::mutex& turn_;
    std::string& last_error_;
};

template <class T>
bool failed(const result<T>& r) {
    return !r.has_value();
}

}  // namespace

template <class F>
auto shared_store::in_turn(F&& f) -> decltype(f()) {
    std::lock_guard lock(turn_);
    auto r = f();
    if (failed(r)) last_error_ = inner_.last_error();
    return r;
}

std::string shared_store::describe() const {
    return inner_.describe();  // fixed at construction: no turn needed
}

result<std::vector<mailbox_entry>> shared_store::list() {
    return in_turn([&] { return inner_.list(); });
}

result<mailbox_status> shared_store::status(const std::string& mailbox) {
    return in_turn([&] { return inner_.status(mailbox); });
}

result<mailbox_changes> shared_store::changes(const std::string& mailbox,
                                              const known_state& known) {
    return in_turn([&] { return inner_.changes(mailbox, known); });
}

result<void> shared_store::fetch(
    const std::string& mailbox, std::span<const mail::uid> uids,
    const std::function<result<void>(mail::uid, message_body&&)>& deliver) {
    return in_turn([&] { return inner_.fetch(mailbox, uids, deliver); });
}

result<std::vector<mail::uid>> shared_store::append(const std::string& mailbox,
                                                    std::vector<outgoing_message>&& messages) {
    return in_turn([&] { return inner_.append(mailbox, std::move(messages)); });
}

result<std::unique_ptr<appender>> shared_store::begin_append(const std::string& mailbox) {
    auto inner = in_turn([&] { return inner_.begin_append(mailbox); });
    if (!inner) return inner.error();
    return std::unique_ptr<appender>(
        std::make_unique<shared_appender>(std::move(*inner), inner_, turn_, last_error_));
}

result<void> shared_store::set_flags(const std::string& mailbox,
                                     std::span<const flag_change> changes) {
    return in_turn([&] { return inner_.set_flags(mailbox, changes); });
}

result<std::vector<mail::uid>> shared_store::move(const std::string& from,
                                                  std::span<const mail::uid> uids,
                                                  const std::string& to) {
    return in_turn([&] { return inner_.move(from, uids, to); });
}

result<void> shared_store::expunge(const std::string& mailbox, std::span<const mail::uid> uids) {
    return in_turn([&] { return inner_.expunge(mailbox, uids); });
}

result<std::optional<mailbox_status>> shared_store::status_after_own_changes(
    const std::string& mailbox) {
    return in_turn([&] { return inner_.status_after_own_changes(mailbox); });
}

void shared_store::expect_flags(const std::string& mailbox, mail::uid uid,
                                const mail::flag_set& flags) {
    std::lock_guard lock(turn_);
    inner_.expect_flags(mailbox, uid, flags);
}

bool shared_store::wants_synced_flags() const {
    return inner_.wants_synced_flags();
}

bool shared_store::changes_use_the_journal() const {
    return inner_.changes_use_the_journal();
}

bool shared_store::keeps_keyword(const std::string& mailbox, std::string_view keyword) {
    std::lock_guard lock(turn_);
    return inner_.keeps_keyword(mailbox, keyword);
}

std::chrono::milliseconds shared_store::late_write_window() const {
    return inner_.late_write_window();
}

result<void> shared_store::create(const std::string& mailbox) {
    return in_turn([&] { return inner_.create(mailbox); });
}

result<void> shared_store::remove(const std::string& mailbox) {
    return in_turn([&] { return inner_.remove(mailbox); });
}

}  // namespace tandem::store
