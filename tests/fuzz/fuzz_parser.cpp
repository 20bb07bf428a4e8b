// SPDX-License-Identifier: MIT
// libFuzzer target for the IMAP response parser (and uid_set parsing). Any bytes give
// responses or one sticky error, never a crash or unbounded memory; and feeding the same
// bytes whole or in pieces (cut where the input's first bytes say, a body sink or not)
// gives the same responses and the same error.
#include "tandem/imap/parser.hpp"
#include "tandem/imap/uid_set.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace {

using namespace tandem;

struct counting_sink final : imap::body_sink {
    std::uint64_t* total;
    explicit counting_sink(std::uint64_t* t) : total(t) {}
    void write(std::span<const char> piece) override { *total += piece.size(); }
    void finish() override {}
};

struct outcome {
    std::vector<imap::response> responses;
    error_code error;
    std::uint64_t streamed = 0;
};

outcome run(std::string_view input, std::size_t step, bool sink) {
    imap::parser_limits limits;
    limits.max_line = 4096;
    limits.max_literal = 4096;
    limits.max_response_literals = 16384;
    limits.max_depth = 32;
    limits.max_items = 4096;
    imap::parser p(limits);
    outcome out;
    if (sink)
        p.set_sink_provider([&out](const imap::body_context&) {
            return std::make_unique<counting_sink>(&out.streamed);
        });
    std::size_t at = 0;
    do {
        auto n = std::min(step, input.size() - at);
        p.feed(input.substr(at, n));
        at += n;
        for (;;) {
            auto r = p.next();
            if (!r) {
                out.error = r.error();
                if (p.last_error_detail().empty()) std::abort();
                if (!p.failed() || p.buffered_bytes() != 0) std::abort();
                return out;
            }
            if (!*r) break;
            out.responses.push_back(std::move(**r));
        }
        // Unparsed bytes stay within a line plus what one feed added.
        if (p.buffered_bytes() > limits.max_line + limits.max_response_literals + step + 64)
            std::abort();
    } while (at < input.size());
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    auto whole = run(input, input.size() + 1, false);
    auto step = size == 0 ? 1 : static_cast<std::size_t>(data[0] % 17) + 1;
    auto pieces = run(input, step, false);
    if (whole.error != pieces.error || !(whole.responses == pieces.responses)) std::abort();

    // With a sink, bodies leave the responses but nothing else changes, except that a body
    // too large for memory is no longer an error.
    auto streamed = run(input, step, true);
    if (whole.error != make_error_code(errc::literal_too_large) &&
        (streamed.error != whole.error || streamed.responses.size() != whole.responses.size()))
        std::abort();

    // uid_set: whatever parses prints back to something that parses to the same set.
    auto line = input.substr(0, std::min<std::size_t>(input.find('\n'), 256));
    if (auto set = imap::uid_set::parse(line)) {
        auto again = imap::uid_set::parse(set->to_string());
        if (!again || !(*again == *set)) std::abort();
        imap::uid_set back;
        for (const auto& piece : set->split(40)) {
            if (piece.size() > 40) std::abort();
            auto part = imap::uid_set::parse(piece);
            if (!part) std::abort();
            back |= *part;
        }
        if (!(back == *set)) std::abort();
    }
    return 0;
}
