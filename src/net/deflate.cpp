// SPDX-License-Identifier: MIT
#include "tandem/net/deflate.hpp"

#include <zlib.h>

#include <cstring>
#include <new>

namespace tandem::net {

namespace {
constexpr int raw_window_bits = -15;  // negative: raw deflate without zlib header (RFC 4978 §2)
constexpr std::size_t chunk = 16 * 1024;
}  // namespace

struct deflater::state {
    z_stream z{};
};

deflater::deflater() : s_(std::make_unique<state>()) {
    if (deflateInit2(&s_->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, raw_window_bits, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::bad_alloc();
}

deflater::~deflater() {
    deflateEnd(&s_->z);
}

void deflater::compress(std::string_view in, std::string& out) {
    auto& z = s_->z;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    // Z_SYNC_FLUSH ends on a byte boundary with an empty stored block; with avail_out left
    // over after the call, all output has been produced.
    do {
        std::size_t old = out.size();
        out.resize(old + chunk);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + old);
        z.avail_out = static_cast<uInt>(chunk);
        deflate(&z, Z_SYNC_FLUSH);
        out.resize(old + chunk - z.avail_out);
    } while (z.avail_out == 0);
}

struct inflater::state {
    z_stream z{};
};

inflater::inflater() : s_(std::make_unique<state>()) {
    if (inflateInit2(&s_->z, raw_window_bits) != Z_OK) throw std::bad_alloc();
}

inflater::~inflater() {
    inflateEnd(&s_->z);
}

result<void> inflater::decompress(std::string_view in, std::string& out) {
    auto used = decompress(in, out, static_cast<std::size_t>(-1));
    if (!used) return used.error();
    return {};
}

result<std::size_t> inflater::decompress(std::string_view in, std::string& out,
                                         std::size_t max_out) {
    auto& z = s_->z;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::size_t produced = 0;
    auto consumed = [&] { return in.size() - z.avail_in; };
    while (produced < max_out) {
        std::size_t room = std::min(chunk, max_out - produced);
        std::size_t old = out.size();
        out.resize(old + room);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + old);
        z.avail_out = static_cast<uInt>(room);
        int rc = inflate(&z, Z_SYNC_FLUSH);
        std::size_t got = room - z.avail_out;
        out.resize(old + got);
        produced += got;
        if (rc == Z_STREAM_END) {
            // The peer ended the deflate stream; RFC 4978 has no such thing mid-session.
            if (z.avail_in != 0) return errc::protocol_error;
            return consumed();
        }
        if (rc == Z_BUF_ERROR) {
            if (z.avail_in == 0) return consumed();  // need more input
            if (z.avail_out == 0) continue;
            return errc::protocol_error;
        }
        if (rc != Z_OK) return errc::protocol_error;
        if (z.avail_in == 0 && z.avail_out != 0) return consumed();
    }
    return consumed();
}

}  // namespace tandem::net
