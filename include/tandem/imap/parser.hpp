// SPDX-License-Identifier: MIT
// Sans-I/O IMAP response parser: bytes in, in chunks of any size; complete responses out.
// It never reads or writes a socket (after Dovecot's imap-parser and Boost.Redis's resp3
// parser): the caller feeds what it read and pulls responses until there are none left.
//
//     imap::parser p;
//     p.feed(bytes);
//     for (;;) {
//         auto r = p.next();
//         if (!r) { log(p.last_error_detail()); drop the connection; }
//         if (!*r) break;           // need more bytes
//         handle(**r);
//     }
//
// FETCH bodies (BODY[...], BINARY[...], RFC822*) can bypass memory: a sink_provider, when
// installed, is asked for a sink at each body literal and the bytes go there in pieces as
// they are fed, so a 50 MB message never sits whole in the parser.
#pragma once

#include "tandem/imap/response.hpp"
#include "tandem/util/error.hpp"

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::imap {

// Hostile or broken input turns into an error at these bounds, never into unbounded memory.
struct parser_limits {
    // Bytes of one response outside its literals (Dovecot's max_line_size; Dovecot itself
    // accepts 64 KiB command lines, and its FETCH/LIST answers are far shorter).
    std::size_t max_line = 1024 * 1024;
    // One literal kept in memory (not streamed to a sink): mailbox names, ENVELOPE strings,
    // bodies when no sink is given.
    std::size_t max_literal = 64 * 1024 * 1024;
    // All literals kept in memory for one response together.
    std::size_t max_response_literals = 128 * 1024 * 1024;
    // Parenthesised lists inside one another (BODYSTRUCTURE nests per MIME level).
    std::size_t max_depth = 64;
    // Tokens in one response (atoms, strings, lists).
    std::size_t max_items = 1000 * 1000;
};

// What the parser knows when a FETCH body starts.
struct body_context {
    std::uint32_t seq = 0;
    std::optional<mail::uid> uid;  // when UID came before the body in this FETCH
    std::string_view item;         // "BODY", "BINARY", "RFC822", "RFC822.HEADER", ...
    std::string_view section;      // "", "HEADER", "HEADER.FIELDS (MESSAGE-ID)", "1.2", ...
    std::optional<std::uint32_t> origin;
    std::uint64_t size = 0;  // octets to come
};

// Receives one body. write() gets the bytes in pieces, in order, then finish() once.
// A sink destroyed without finish() was abandoned (the parser failed or was destroyed);
// whatever it wrote must be discarded.
class body_sink {
  public:
    virtual ~body_sink() = default;
    virtual void write(std::span<const char> piece) = 0;
    virtual void finish() = 0;
};

// Returns the sink for a body, or nullptr to keep it in memory (body_section::data),
// subject to parser_limits::max_literal. Called during next(); the context's views live
// only for the call.
using sink_provider = std::function<std::unique_ptr<body_sink>(const body_context&)>;

class parser {
  public:
    explicit parser(parser_limits limits = {});
    ~parser();
    parser(parser&&) noexcept;
    parser& operator=(parser&&) noexcept;

    // Appends bytes; nothing is parsed until next(). Bytes after an error are ignored.
    void feed(std::span<const char> bytes);
    // Strings, string views and literals alike (a template, so that none is ambiguous).
    template <class T>
    requires std::convertible_to<const T&, std::string_view>
    void feed(const T& bytes) {
        std::string_view view(bytes);
        feed(std::span<const char>(view.data(), view.size()));
    }

    // The next complete response; nullopt when more bytes are needed; an error
    // (errc::protocol_error, line_too_long, literal_too_large, nesting_too_deep) when the
    // input is broken or hostile. Errors are sticky: every later call returns the same one,
    // and the connection must be dropped. Streamed body bytes reach their sink here.
    result<std::optional<response>> next();

    // Literals under `min_size` bytes stay in memory without asking the provider: finding
    // which body a literal is means parsing the response so far, and a provider that takes
    // only large bodies need not be asked for every small one (200,000 messages: 11% of a
    // first sync's CPU went to that parse's early exit).
    void set_sink_provider(sink_provider provider, std::uint64_t min_size = 0);

    // What went wrong and where, with an excerpt of the offending line; empty before an error.
    const std::string& last_error_detail() const;
    bool failed() const;

    // Bytes the parser holds (unparsed input plus the response being assembled), and the
    // most it ever held: tests check that streamed bodies keep these bounded.
    std::size_t buffered_bytes() const;
    std::size_t peak_buffered_bytes() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace tandem::imap
