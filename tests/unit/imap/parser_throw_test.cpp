// SPDX-License-Identifier: MIT
// The parser's normal path throws nothing: a streamed body is found without an exception
// (a throw costs the unwinder's tables, tens of pages, in a short run's memory).
#include "tandem/imap/parser.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <typeinfo>

// This program links with --wrap=__cxa_throw (tests/CMakeLists.txt): every throw comes
// here first.
namespace {
std::atomic<int> thrown{0};
}
extern "C" [[noreturn]] void __real___cxa_throw(void*, std::type_info*, void (*)(void*));
extern "C" [[noreturn]] void __wrap___cxa_throw(void* e, std::type_info* type,
                                                void (*dtor)(void*)) {
    ++thrown;
    __real___cxa_throw(e, type, dtor);
}

namespace tandem::imap {
namespace {

class counting_sink final : public body_sink {
  public:
    explicit counting_sink(std::size_t& bytes) : bytes_(bytes) {}
    void write(std::span<const char> piece) override { bytes_ += piece.size(); }
    void finish() override {}

  private:
    std::size_t& bytes_;
};

TEST(parser_throw, streamed_bodies_are_found_without_an_exception) {
    std::size_t bodies = 0, bytes = 0;
    parser p;
    p.set_sink_provider([&](const body_context&) -> std::unique_ptr<body_sink> {
        ++bodies;
        return std::make_unique<counting_sink>(bytes);
    });
    const std::string body(1000, 'x');
    thrown = 0;
    for (int i = 1; i <= 50; ++i) {
        auto response = "* " + std::to_string(i) + " FETCH (UID " + std::to_string(100 + i) +
                        " FLAGS (\\Seen) BODY[] {1000}\r\n" + body + ")\r\n";
        // The marker's line first, as it comes off the wire: the prefix analysis runs then.
        auto marker_end = response.find("}\r\n") + 3;
        p.feed(std::string_view(response).substr(0, marker_end));
        auto none = p.next();
        ASSERT_TRUE(none);
        EXPECT_FALSE(*none);
        p.feed(std::string_view(response).substr(marker_end));
        auto r = p.next();
        ASSERT_TRUE(r && *r) << p.last_error_detail();
        EXPECT_TRUE(std::get<fetch_data>(**r).bodies.at(0).streamed);
    }
    EXPECT_EQ(bodies, 50u);
    EXPECT_EQ(bytes, 50'000u);
    EXPECT_EQ(thrown, 0);

    // The count works: a malformed response is reported through an exception inside the
    // parser (parse_error, caught there).
    p.feed("* 51 FETCH (UID x)\r\n");
    EXPECT_FALSE(p.next());
    EXPECT_GE(thrown, 1);
}

}  // namespace
}  // namespace tandem::imap
