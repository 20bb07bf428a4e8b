// SPDX-License-Identifier: MIT
// The IMAP store's pure pieces: name translation, content keys, flag grouping, pairing of
// UIDs found by Message-ID. No server.
// src/ is not on the include path of the tests; the private header is reached from here.
#include "../../../src/store/imap_store_p.hpp"

#include <gtest/gtest.h>

namespace tandem::store::detail {
namespace {

mail::flag_set flags(std::initializer_list<std::string_view> atoms) {
    mail::flag_set f;
    for (auto a : atoms) f.add_imap(a);
    return f;
}

TEST(imap_store_names, canonical_from_server) {
    EXPECT_EQ(canonical_name("INBOX", '/'), "INBOX");
    EXPECT_EQ(canonical_name("inbox", '.'), "INBOX");
    EXPECT_EQ(canonical_name("Inbox.Sub", '.'), "INBOX/Sub");
    EXPECT_EQ(canonical_name("Lists.tandem.dev", '.'), "Lists/tandem/dev");
    EXPECT_EQ(canonical_name("Lists/tandem", '/'), "Lists/tandem");
    EXPECT_EQ(canonical_name("Zürich", '.'), "Zürich");
    // A level holding '/' cannot be told from two levels.
    EXPECT_EQ(canonical_name("a/b.c", '.'), std::nullopt);
    EXPECT_EQ(canonical_name("a/b", std::nullopt), std::nullopt);
    EXPECT_EQ(canonical_name("flat", std::nullopt), "flat");
    // Not INBOX: only a whole first level is.
    EXPECT_EQ(canonical_name("inboxes.x", '.'), "inboxes/x");
}

TEST(imap_store_names, server_from_canonical) {
    EXPECT_EQ(server_name("Lists/tandem/dev", '.'), "Lists.tandem.dev");
    EXPECT_EQ(server_name("Lists/tandem", '/'), "Lists/tandem");
    EXPECT_EQ(server_name("INBOX", '.'), "INBOX");
    EXPECT_EQ(server_name("a.b/c", '.'), std::nullopt);  // a level holds the delimiter
    EXPECT_EQ(server_name("a/b", std::nullopt), std::nullopt);
    EXPECT_EQ(server_name("flat", std::nullopt), "flat");
    for (std::string n : {"Archive/2024/Q1", "Zürich/Bahnhof", "INBOX/x"})
        EXPECT_EQ(canonical_name(*server_name(n, '.'), '.'), n);
}

TEST(imap_store_keys, special_use) {
    EXPECT_EQ(special_use({"\\HasNoChildren", "\\sent"}), "\\Sent");
    EXPECT_EQ(special_use({"\\Trash"}), "\\Trash");
    EXPECT_EQ(special_use({"\\HasChildren"}), "");
}

TEST(imap_store_flags, groups_by_identical_deltas) {
    std::vector<flag_change> changes{
        {1, flags({"\\Seen"}), {}},
        {2, flags({"\\Seen"}), flags({"\\Flagged"})},
        {3, flags({"\\Seen", "$Forwarded"}), flags({"\\Flagged"})},
        {4, {}, {}},  // nothing to do
        {5, flags({"\\Seen"}), {}},
    };
    auto g = group_flag_changes(changes);
    ASSERT_EQ(g.add.size(), 2u);
    EXPECT_EQ(g.add[0].flags, flags({"\\Seen"}));
    EXPECT_EQ(g.add[0].uids.to_string(), "1:2,5");
    EXPECT_EQ(g.add[1].flags, flags({"\\Seen", "$Forwarded"}));
    EXPECT_EQ(g.add[1].uids.to_string(), "3");
    ASSERT_EQ(g.remove.size(), 1u);
    EXPECT_EQ(g.remove[0].flags, flags({"\\Flagged"}));
    EXPECT_EQ(g.remove[0].uids.to_string(), "2:3");
}

TEST(imap_store_append, pairs_found_uids_in_order) {
    std::vector<std::optional<std::string>> ids{std::string("<a>"), std::nullopt,
                                                std::string("<b>"), std::string("<a>"),
                                                std::string("<a>")};
    std::vector<std::string> distinct{"<a>", "<b>"};
    std::vector<std::vector<mail::uid>> found{{10, 12}, {11}};
    // The third "<a>" finds no UID left: 0, as for the message without a Message-ID.
    EXPECT_EQ(assign_found_uids(ids, distinct, found), (std::vector<mail::uid>{10, 0, 11, 12, 0}));
}

std::string joined(const std::optional<std::vector<std::string>>& tokens) {
    if (!tokens) return "<none>";
    std::string out;
    for (const auto& t : *tokens) out += (out.empty() ? "" : " ") + t;
    return out;
}

TEST(imap_store_vouch, flag_mismatch_names_every_system_flag_and_keyword_once) {
    const std::vector<std::string> universe{"\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                            "\\Draft",    "\\Recent",  "$Junk",     "todo"};
    // No flags: any flag set is a difference.
    EXPECT_EQ(joined(flag_mismatch_criteria(universe, {})),
              "OR SEEN OR ANSWERED OR FLAGGED OR DELETED OR DRAFT OR KEYWORD $Junk KEYWORD todo");
    // Flags held: their absence is; a keyword of the message that FLAGS does not list (yet)
    // is checked too, and one listed in another case is the same keyword.
    EXPECT_EQ(joined(flag_mismatch_criteria(universe, flags({"\\Seen", "$junk", "new"}))),
              "OR UNSEEN OR ANSWERED OR FLAGGED OR DELETED OR DRAFT OR UNKEYWORD $Junk OR "
              "KEYWORD todo UNKEYWORD new");
    // The system flags are checked even when FLAGS leaves them out.
    EXPECT_EQ(joined(flag_mismatch_criteria({}, flags({"\\Draft"}))),
              "OR SEEN OR ANSWERED OR FLAGGED OR DELETED UNDRAFT");
    // A system flag that SEARCH has no key for: no criteria can cover it.
    EXPECT_EQ(joined(flag_mismatch_criteria({"\\Seen", "\\Important"}, {})), "<none>");
}

TEST(imap_store_flag_vouching, keeps_flags_listed_or_allowed_by_the_wildcard) {
    const std::vector<std::string> dovecot{"\\Answered", "\\Flagged", "\\Deleted",
                                           "\\Seen",     "\\Draft",   "\\*"};
    EXPECT_TRUE(keeps_flags(dovecot, flags({"\\Seen", "$Junk", "todo"})));
    EXPECT_TRUE(keeps_flags(dovecot, {}));
    EXPECT_TRUE(keeps_flags({"\\seen"}, flags({"\\Seen"})));  // system flags in any case
    // No \* : only the keywords listed; \* never stands for a system flag.
    const std::vector<std::string> fixed{"\\Seen", "\\Flagged", "$Junk"};
    EXPECT_TRUE(keeps_flags(fixed, flags({"\\Seen", "$junk"})));
    EXPECT_FALSE(keeps_flags(fixed, flags({"todo"})));
    EXPECT_FALSE(keeps_flags(fixed, flags({"\\Draft"})));
    EXPECT_FALSE(keeps_flags({"\\*"}, flags({"\\Answered"})));
    EXPECT_FALSE(keeps_flags({}, flags({"\\Seen"})));  // PERMANENTFLAGS () or none sent
}

}  // namespace
}  // namespace tandem::store::detail
