// SPDX-License-Identifier: MIT
#include "tandem/mail/content_key.hpp"

#include "tandem/util/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <iterator>

namespace tandem::mail {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// Calls f(name, value) for each field of `header` (up to the first empty line), unfolded
// (RFC 5322 2.2.3: only the line breaks go) and without CR, until f returns false.
template <class F>
void for_each_field(std::string_view header, F&& f) {
    std::string name, value;
    bool in_field = false;
    bool go_on = true;
    auto flush = [&] {
        if (in_field) go_on = f(std::string_view(name), std::string_view(value));
        in_field = false;
    };
    while (!header.empty() && go_on) {
        auto nl = header.find('\n');
        auto line = header.substr(0, nl);
        header = nl == std::string_view::npos ? std::string_view() : header.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        if (line.front() == ' ' || line.front() == '\t') {
            if (in_field) value += line;
            continue;
        }
        flush();
        if (!go_on) return;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        auto fname = line.substr(0, colon);
        while (!fname.empty() && (fname.back() == ' ' || fname.back() == '\t'))
            fname.remove_suffix(1);
        name.assign(fname);
        value.assign(line.substr(colon + 1));
        in_field = true;
    }
    flush();
}

// The fields header_digest reads.
constexpr std::string_view digest_fields[] = {"Date", "From", "To", "Cc", "Subject"};
using digest_values = std::optional<std::string>[std::size(digest_fields)];

// Keeps the first value of each digest field, its white space made single spaces.
void take_digest_field(digest_values& values, std::string_view name, std::string_view value) {
    for (std::size_t i = 0; i < std::size(digest_fields); ++i) {
        if (values[i] || !iequals(name, digest_fields[i])) continue;
        std::string v;
        for (char c : value) {
            if (c == ' ' || c == '\t') {
                if (!v.empty() && v.back() != ' ') v += ' ';
            } else {
                v += c;
            }
        }
        if (!v.empty() && v.back() == ' ') v.pop_back();
        values[i] = std::move(v);
    }
}

std::string digest_of(const digest_values& values) {
    std::uint64_t h = 0xcbf29ce484222325u;  // FNV-1a 64: stable across builds and machines
    auto mix = [&h](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3u;
        }
    };
    for (std::size_t i = 0; i < std::size(digest_fields); ++i) {
        mix(digest_fields[i]);
        mix(values[i] ? std::string_view("=") : std::string_view("-"));
        if (values[i]) mix(*values[i]);
        mix(std::string_view("\0", 1));
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = hex[h & 15];
    return out;
}

// A Message-ID field's value trimmed; nullopt when nothing is left.
std::optional<std::string> trimmed_message_id(std::string_view value) {
    auto ws = [](char c) { return c == ' ' || c == '\t'; };
    while (!value.empty() && ws(value.back())) value.remove_suffix(1);
    while (!value.empty() && ws(value.front())) value.remove_prefix(1);
    if (value.empty()) return std::nullopt;
    return std::string(value);
}

}  // namespace

std::string header_digest(std::string_view header) {
    digest_values values;
    for_each_field(header, [&](std::string_view name, std::string_view value) {
        take_digest_field(values, name, value);
        return true;
    });
    return digest_of(values);
}

// One walk over the header for both (a listing identifies every new message).
header_identity identify_header(std::string_view header) {
    header_identity id;
    bool id_seen = false;
    digest_values values;
    for_each_field(header, [&](std::string_view name, std::string_view value) {
        if (!id_seen && iequals(name, "Message-ID")) {
            id_seen = true;
            id.message_id = trimmed_message_id(value);
        }
        take_digest_field(values, name, value);
        return true;
    });
    id.digest = digest_of(values);
    return id;
}

std::string content_key(const header_identity& h, std::uint64_t size, std::int64_t date) {
    if (h.message_id) return *h.message_id + "/" + std::to_string(size) + "/" + h.digest;
    return "nomsgid/" + std::to_string(size) + "/" + std::to_string(date) + "/" + h.digest;
}

std::optional<std::string> find_message_id(std::string_view header) {
    std::optional<std::string> id;
    for_each_field(header, [&](std::string_view name, std::string_view value) {
        if (!iequals(name, "Message-ID")) return true;
        id = trimmed_message_id(value);
        return false;  // the first one only, even when it is empty
    });
    return id;
}

namespace {

// The length of the header at the start of `s` (see header_of), or npos if no empty line
// ends it within `s`. Line ends before `from` have been looked at already.
std::size_t header_length(std::string_view s, std::size_t from = 0) {
    if (from == 0 && (s.starts_with('\n') || s.starts_with("\r\n"))) return 0;
    for (auto nl = s.find('\n', from); nl != std::string_view::npos; nl = s.find('\n', nl + 1)) {
        auto rest = s.substr(nl + 1);
        if (rest.starts_with('\n') || rest.starts_with("\r\n")) return nl + 1;
    }
    return std::string_view::npos;
}

}  // namespace

std::string_view header_of(std::string_view message) {
    return message.substr(0, header_length(message));
}

result<std::string> read_header(const byte_source& read, std::size_t limit) {
    constexpr std::size_t chunk = 16 * 1024;
    std::string head;
    while (head.size() < limit) {
        const std::size_t had = head.size();
        head.resize(had + std::min(chunk, limit - had));
        auto n = read(std::span<char>(head.data() + had, head.size() - had));
        if (!n) return n.error();
        head.resize(had + *n);
        if (*n == 0) break;
        // An empty line may begin up to two bytes before the new ones ("\n" + "\r\n").
        if (auto end = header_length(head, had < 2 ? 0 : had - 2); end != std::string_view::npos) {
            head.resize(end);
            return head;
        }
    }
    return head;  // no empty line within the limit or the source
}

result<std::string> read_header(const std::filesystem::path& file, std::size_t limit) {
    fs::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return error_code(errno, boost::system::generic_category());
    return read_header(
        [&](std::span<char> buffer) -> result<std::size_t> {
            for (;;) {
                auto n = ::read(fd.get(), buffer.data(), buffer.size());
                if (n >= 0) return static_cast<std::size_t>(n);
                if (errno != EINTR) return error_code(errno, boost::system::generic_category());
            }
        },
        limit);
}

}  // namespace tandem::mail
