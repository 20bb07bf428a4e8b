// SPDX-License-Identifier: MIT
// Raw DEFLATE (RFC 1951, zlib windowBits -15, no header) in both directions, as
// COMPRESS=DEFLATE (RFC 4978) wants it. zlib stays behind the pimpl.
#pragma once

#include "tandem/util/error.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace tandem::net {

class deflater {
  public:
    deflater();
    ~deflater();
    deflater(const deflater&) = delete;
    deflater& operator=(const deflater&) = delete;
    // Compresses `in` and appends it to `out` ending with a Z_SYNC_FLUSH, so that the peer
    // can decode everything sent so far (RFC 4978 section 4: flush after each write batch).
    void compress(std::string_view in, std::string& out);

  private:
    struct state;
    std::unique_ptr<state> s_;
};

class inflater {
  public:
    inflater();
    ~inflater();
    inflater(const inflater&) = delete;
    inflater& operator=(const inflater&) = delete;
    // Decompresses `in` and appends to `out`; errc::protocol_error on corrupt data.
    result<void> decompress(std::string_view in, std::string& out);
    // The same, stopping once `max_out` bytes were appended (a 1000:1 ratio must not blow
    // up memory); returns how many bytes of `in` were consumed.
    result<std::size_t> decompress(std::string_view in, std::string& out, std::size_t max_out);

  private:
    struct state;
    std::unique_ptr<state> s_;
};

}  // namespace tandem::net
