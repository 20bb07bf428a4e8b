// SPDX-License-Identifier: MIT
// libFuzzer target for the Maildir text that comes from outside: file names in cur/ and new/
// (written by any mail client), the dovecot-keywords file, and folder names (from the other
// store) mapped to directories and back in both layouts. Aborts on any broken invariant:
//  - file names: parse/format is stable (format(parse(x)) parses to the same thing and
//    formats to itself), the base never holds the separator, letters are sorted and unique;
//    a unique name built from a hostile host name keeps its size hint and has no separator;
//  - dovecot-keywords: at most 26 keywords, each one line's atom, and each letter's keyword
//    maps back to that letter; encode/decode of the file's keywords is an identity;
//  - folder names: a name path_of() accepts comes back from name_of() as canonical(name),
//    the directory is one level of the root in maildir++ and at most 255 bytes per level;
//    a directory name that name_of() accepts maps back to that very directory.
#include "tandem/maildir/filename.hpp"
#include "tandem/maildir/keywords.hpp"
#include "tandem/maildir/layout.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace {

namespace md = tandem::maildir;

void check(bool ok) {
    if (!ok) std::abort();
}

bool sorted_unique(std::string_view s) {
    return std::adjacent_find(s.begin(), s.end(), [](char a, char b) { return a >= b; }) == s.end();
}

void file_names(std::string_view text, char separator) {
    auto n = md::parse_name(text, separator);
    check(n.base.find(separator) == std::string::npos);
    check(sorted_unique(n.system) && sorted_unique(n.keywords));
    check(std::all_of(n.keywords.begin(), n.keywords.end(),
                      [](char c) { return c >= 'a' && c <= 'z'; }));
    check(n.has_info == (text.find(separator) != std::string_view::npos));
    auto f = md::format_name(n, separator);
    check(f.size() <= text.size());  // letters are only ever sorted and deduplicated
    check(md::parse_name(f, separator) == n);
    check(md::format_name(md::parse_name(f, separator), separator) == f);
    // The base name's fields on their own.
    (void)md::size_hint(n.base);
    (void)md::vsize_hint(n.base);
    // Flag letters both ways: the known letters survive a round trip through a flag set.
    tandem::mail::flag_set flags;
    md::add_system_letters(n.system, flags);
    auto letters = md::system_letters(flags);
    std::string known;
    for (char c : n.system)
        if (md::is_known_system_letter(c)) known += c;
    check(letters == known);
}

void unique_name(std::string_view host, std::uint64_t size, char separator) {
    md::unique_parts p;
    p.seconds = 1700000000;
    p.microseconds = 1;
    p.pid = 42;
    p.counter = 7;
    p.random = 0xdeadbeef;
    p.host = std::string(host);
    auto u = md::format_unique(p, size, separator);
    check(u.find(separator) == std::string::npos && u.find('/') == std::string::npos);
    check(std::none_of(u.begin(), u.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x21 || c == 0x7f; }));
    check(md::size_hint(u) == size);
    auto parsed = md::parse_name(md::cur_name(u, "S", "", separator), separator);
    check(parsed.base == u && parsed.system == "S");
}

// Never destroyed (so that the exit handler that removes it may still read it).
const std::filesystem::path& scratch() {
    static const auto* dir = [] {
        auto* d = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                            ("tandem-fuzz-maildir-" + std::to_string(::getpid())));
        std::filesystem::create_directories(*d);
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratch(), ec);
        });
        return d;
    }();
    return *dir;
}

void keywords(std::string_view text) {
    const auto& dir = scratch();
    {
        std::ofstream out(dir / std::string(md::keyword_file::name),
                          std::ios::binary | std::ios::trunc);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
    auto k = md::keyword_file::load(dir);
    check(k.has_value());
    check(k->size() <= md::keyword_file::max_keywords);
    tandem::mail::flag_set all;
    std::string letters;
    for (char l = 'a'; l <= 'z'; ++l) {
        auto kw = k->keyword_of(l);
        if (!kw) continue;
        check(!kw->empty() && kw->find('\n') == std::string_view::npos &&
              kw->find(' ') == std::string_view::npos);
        check(k->letter_of(*kw) == l);
        letters += l;
        all.add_keyword(std::string(*kw));
    }
    check(k->decode("", letters) == all);
    auto enc = k->encode(all);
    check(enc.unmapped.empty() && enc.keywords == letters);
}

void folder_names(std::string_view name) {
    for (auto kind : {md::layout_kind::verbatim, md::layout_kind::maildirpp}) {
        md::tree t("/fuzz/root", kind);
        auto path = t.path_of(name);
        if (!path) {
            check(!t.last_error().empty());
            check(!t.canonical(name));
        } else {
            auto canonical = t.canonical(name);
            check(canonical.has_value());
            auto rel = path->lexically_relative("/fuzz/root");
            check(!rel.empty() && *rel.begin() != "..");
            for (const auto& part : rel) check(part.string().size() <= 255);
            if (kind == md::layout_kind::maildirpp && *canonical != "INBOX")
                check(std::distance(rel.begin(), rel.end()) == 1);
            auto back = t.name_of(*path);
            check(back.has_value() && *back == *canonical);
            // The canonical name is a fixed point.
            auto again = t.path_of(*canonical);
            check(again.has_value() && *again == *path);
        }
        // The input as a directory name under the root (what list() finds there).
        if (name.find('\0') != std::string_view::npos || name.empty()) continue;
        auto dir = std::filesystem::path("/fuzz/root") / std::string(name);
        if (auto n = t.name_of(dir)) {
            auto again = t.path_of(*n);
            // "root/." is the root itself: compare as directories, trailing '/' or '.' aside.
            check(again.has_value() &&
                  (*again / "").lexically_normal() == (dir / "").lexically_normal());
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // The first byte picks the info separator (':' mostly, as on a Linux disk, else '!' or ';')
    // and the size hint of the unique name.
    const char separators[] = {':', ':', '!', ';'};
    const char separator = separators[data[0] & 3];
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

    file_names(text, separator);
    unique_name(text.substr(0, 300), static_cast<std::uint64_t>(data[0]) * 1000003u, separator);
    keywords(text);
    folder_names(text);
    return 0;
}
