// SPDX-License-Identifier: MIT
// The example configurations shipped in contrib/ must parse: they are what users copy.
#include "tandem/config/config.hpp"

#include <gtest/gtest.h>

namespace tandem::config {
namespace {

environment fake_env() {
    return [](std::string_view name) -> std::optional<std::string> {
        if (name == "HOME") return "/home/me";
        return std::nullopt;
    };
}

class example : public testing::TestWithParam<const char*> {};

TEST_P(example, parses_without_error) {
    const std::filesystem::path file = std::filesystem::path(TANDEM_SOURCE_DIR) / GetParam();
    ASSERT_TRUE(std::filesystem::exists(file)) << file;
    auto r = load(file, fake_env());
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_FALSE(r->stores.empty());
    ASSERT_FALSE(r->channels.empty());
    for (const auto& ch : r->channels) {
        EXPECT_NE(r->find_store(ch.a), nullptr) << ch.name;
        EXPECT_NE(r->find_store(ch.b), nullptr) << ch.name;
    }
}

INSTANTIATE_TEST_SUITE_P(contrib, example,
                         testing::Values("contrib/tandem.conf.example",
                                         "contrib/examples/gmail.conf",
                                         "contrib/examples/microsoft365.conf",
                                         "contrib/examples/fastmail.conf",
                                         "contrib/examples/dovecot.conf"));

TEST(example_content, the_annotated_sample_has_both_kinds_of_channel) {
    auto r =
        load(std::filesystem::path(TANDEM_SOURCE_DIR) / "contrib/tandem.conf.example", fake_env());
    ASSERT_TRUE(r) << r.error().message();
    bool imap_maildir = false, imap_imap = false;
    for (const auto& ch : r->channels) {
        const bool a_imap = std::holds_alternative<imap_store>(*r->find_store(ch.a));
        const bool b_imap = std::holds_alternative<imap_store>(*r->find_store(ch.b));
        imap_maildir |= a_imap != b_imap;
        imap_imap |= a_imap && b_imap;
    }
    EXPECT_TRUE(imap_maildir);
    EXPECT_TRUE(imap_imap);
}

TEST(example_content, microsoft365_uses_oauth) {
    auto r = load(std::filesystem::path(TANDEM_SOURCE_DIR) / "contrib/examples/microsoft365.conf",
                  fake_env());
    ASSERT_TRUE(r) << r.error().message();
    bool oauth = false;
    for (const auto& s : r->stores)
        if (const auto* i = std::get_if<imap_store>(&s))
            oauth |= i->secret.from == secret_source::kind::token_command;
    EXPECT_TRUE(oauth);
}

}  // namespace
}  // namespace tandem::config
