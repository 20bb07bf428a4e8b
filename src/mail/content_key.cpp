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
// (RFC 5322 2.2.3) and without CR.
template <class F>
void for_each_field(std::string_view header, F&& f) {
    std::string name, value;
    bool in_field = false;
    auto flush = [&] {
        if (in_field) f(std::string_view(name), std::string_view(value));
        in_field = false;
    };
    while (!header.empty()) {
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

}  // namespace

std::string header_digest(std::string_view header) {
    static constexpr std::string_view fields[] = {"Date", "From", "To", "Cc", "Subject"};
    std::optional<std::string> values[std::size(fields)];
    for_each_field(header, [&](std::string_view name, std::string_view value) {
        for (std::size_t i = 0; i < std::size(fields); ++i) {
            if (values[i] || !iequals(name, fields[i])) continue;
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
    });
    std::uint64_t h = 0xcbf29ce484222325u;  // FNV-1a 64: stable across builds and machines
    auto mix = [&h](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3u;
        }
    };
    for (std::size_t i = 0; i < std::size(fields); ++i) {
        mix(fields[i]);
        mix(values[i] ? std::string_view("=") : std::string_view("-"));
        if (values[i]) mix(*values[i]);
        mix(std::string_view("\0", 1));
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = hex[h & 15];
    return out;
}

header_identity identify_header(std::string_view header) {
    return header_identity{find_message_id(header), header_digest(header)};
}

std::string content_key(const header_identity& h, std::uint64_t size, std::int64_t date) {
    if (h.message_id) return *h.message_id + "/" + std::to_string(size) + "/" + h.digest;
    return "nomsgid/" + std::to_string(size) + "/" + std::to_string(date) + "/" + h.digest;
}

std::optional<std::string> find_message_id(std::string_view header) {
    std::optional<std::string> value;
    bool in_field = false;
    while (!header.empty()) {
        auto nl = header.find('\n');
        auto line = header.substr(0, nl);
        header = nl == std::string_view::npos ? std::string_view() : header.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;  // end of the header
        if (line.front() == ' ' || line.front() == '\t') {
            if (in_field) *value += line;  // RFC 5322 2.2.3: unfolding drops only the CRLF
            continue;
        }
        if (in_field) break;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        auto fname = line.substr(0, colon);
        while (!fname.empty() && (fname.back() == ' ' || fname.back() == '\t'))
            fname.remove_suffix(1);
        if (iequals(fname, "Message-ID")) {
            value = std::string(line.substr(colon + 1));
            in_field = true;
        }
    }
    if (!value) return std::nullopt;
    auto& v = *value;
    auto ws = [](char c) { return c == ' ' || c == '\t'; };
    while (!v.empty() && ws(v.back())) v.pop_back();
    auto first = std::find_if_not(v.begin(), v.end(), ws);
    v.erase(v.begin(), first);
    if (v.empty()) return std::nullopt;
    return value;
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

result<std::string> read_header(const std::filesystem::path& file, std::size_t limit) {
    fs::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return error_code(errno, boost::system::generic_category());
    constexpr std::size_t chunk = 16 * 1024;
    std::string head;
    while (head.size() < limit) {
        const std::size_t had = head.size();
        head.resize(had + std::min(chunk, limit - had));
        const auto n = ::read(fd.get(), head.data() + had, head.size() - had);
        if (n < 0) {
            const int e = errno;
            head.resize(had);
            if (e == EINTR) continue;
            return error_code(e, boost::system::generic_category());
        }
        head.resize(had + static_cast<std::size_t>(n));
        if (n == 0) break;
        // An empty line may begin up to two bytes before the new ones ("\n" + "\r\n").
        if (auto end = header_length(head, had < 2 ? 0 : had - 2); end != std::string_view::npos) {
            head.resize(end);
            return head;
        }
    }
    return head;  // no empty line within the limit or the file
}

}  // namespace tandem::mail
