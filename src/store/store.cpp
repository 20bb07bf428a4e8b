// SPDX-License-Identifier: MIT
#include "tandem/store/store.hpp"

#include <filesystem>

namespace tandem::store {
namespace {

// For a store that takes messages only all at once.
class buffered_appender final : public appender {
  public:
    buffered_appender(store& s, std::string mailbox) : store_(s), mailbox_(std::move(mailbox)) {}
    ~buffered_appender() override {
        for (const auto& m : held_) discard_spool(m.body);
    }

    result<void> add(outgoing_message&& message) override {
        held_.push_back(std::move(message));
        return {};
    }
    result<std::vector<mail::uid>> finish() override {
        return store_.append(mailbox_, std::exchange(held_, {}));
    }

  private:
    store& store_;
    std::string mailbox_;
    std::vector<outgoing_message> held_;
};

}  // namespace

void discard_spool(const message_body& body) {
    std::error_code ignored;
    if (body.temporary && !body.file.empty()) std::filesystem::remove(body.file, ignored);
}

result<std::unique_ptr<appender>> store::begin_append(const std::string& mailbox) {
    return std::unique_ptr<appender>(std::make_unique<buffered_appender>(*this, mailbox));
}

}  // namespace tandem::store
