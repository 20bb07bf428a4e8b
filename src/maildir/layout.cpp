// SPDX-License-Identifier: MIT
#include "tandem/maildir/layout.hpp"

#include "sys_p.hpp"
#include "tandem/maildir/keywords.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

namespace tandem::maildir {
namespace {

constexpr std::size_t max_dir_name = 255;  // NAME_MAX on Linux file systems
constexpr int max_depth = 64;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// RFC 3629 section 4: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80           ? 1
                          : (c >> 5) == 0x6  ? 2
                          : (c >> 4) == 0xe  ? 3
                          : (c >> 3) == 0x1e ? 4
                                             : 0;
        if (len == 0 || i + len > s.size()) return false;
        std::uint32_t cp = len == 1   ? c
                           : len == 2 ? (c & 0x1f)
                           : len == 3 ? (c & 0x0f)
                                      : (c & 0x07);
        for (std::size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        static constexpr std::uint32_t min_of_len[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_of_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

std::string escape_level(std::string_view level) {
    std::string out;
    for (char c : level) {
        if (c == '.')
            out += "\\2e";
        else if (c == '\\')
            out += "\\5c";
        else
            out += c;
    }
    return out;
}

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string unescape_level(std::string_view level) {
    std::string out;
    for (std::size_t i = 0; i < level.size(); ++i) {
        if (level[i] == '\\' && i + 2 < level.size() && hex(level[i + 1]) >= 0 &&
            hex(level[i + 2]) >= 0) {
            out += static_cast<char>(hex(level[i + 1]) * 16 + hex(level[i + 2]));
            i += 2;
        } else {
            out += level[i];
        }
    }
    return out;
}

bool is_dir(const std::filesystem::path& p, struct stat* st = nullptr) {
    struct stat s {};
    if (::stat(p.c_str(), &s) != 0 || !S_ISDIR(s.st_mode)) return false;
    if (st) *st = s;
    return true;
}

}  // namespace

tree::tree(std::filesystem::path root, layout_kind kind, folder_options options)
    : root_(std::move(root)), kind_(kind), options_(options) {}

error_code tree::invalid(std::string_view name, std::string_view why) {
    last_error_ = "invalid folder name \"" + std::string(name) + "\": " + std::string(why);
    return errc::invalid_mailbox_name;
}

error_code tree::fail(std::string_view what, const std::filesystem::path& p, const error_code& ec) {
    last_error_ = sys::describe(what, p, ec);
    return ec;
}

result<std::vector<std::string>> tree::levels(std::string_view name) {
    if (name.empty()) return invalid(name, "empty");
    if (!valid_utf8(name)) return invalid(name, "not valid UTF-8");
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        auto slash = name.find('/', start);
        auto level = name.substr(start, slash == std::string_view::npos ? slash : slash - start);
        if (level.empty()) return invalid(name, "empty level (a leading, trailing or double '/')");
        if (level == "." || level == "..")
            return invalid(name, "a level may not be \".\" or \"..\"");
        for (char c : level)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                return invalid(name, "control character");
        if (out.empty() && iequals(level, "INBOX")) level = "INBOX";
        if (kind_ == layout_kind::verbatim) {
            if (level == "cur" || level == "new" || level == "tmp")
                return invalid(name,
                               "cur, new and tmp are the folder's own directories in the "
                               "verbatim layout");
            if (level.front() == '.')
                return invalid(name,
                               "a level starting with '.' would be a hidden directory in "
                               "the verbatim layout");
            if (level == "maildirfolder" || level.starts_with("dovecot-") ||
                level.starts_with("dovecot."))
                return invalid(name, "the name of a Maildir or Dovecot file");
            if (level.size() > max_dir_name) return invalid(name, "a level longer than 255 bytes");
        }
        out.emplace_back(level);
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    if (kind_ == layout_kind::maildirpp && !(out.size() == 1 && out[0] == "INBOX")) {
        std::size_t len = 0;
        for (const auto& l : out) len += 1 + escape_level(l).size();
        if (len > max_dir_name)
            return invalid(name, "longer than 255 bytes as a Maildir++ directory");
    }
    return out;
}

result<std::string> tree::canonical(std::string_view name) {
    auto lv = levels(name);
    if (!lv) return lv.error();
    std::string out;
    for (const auto& l : *lv) {
        if (!out.empty()) out += '/';
        out += l;
    }
    return out;
}

result<std::filesystem::path> tree::path_of(std::string_view name) {
    auto lv = levels(name);
    if (!lv) return lv.error();
    if (kind_ == layout_kind::verbatim) {
        auto p = root_;
        for (const auto& l : *lv) p /= l;
        return p;
    }
    if (lv->size() == 1 && (*lv)[0] == "INBOX") return root_;
    std::string dir;
    for (const auto& l : *lv) dir += '.' + escape_level(l);
    return root_ / dir;
}

result<std::string> tree::name_of(const std::filesystem::path& dir) {
    auto root = root_.lexically_normal();
    auto rel = dir.lexically_normal().lexically_relative(root);
    auto outside = [&] {
        last_error_ = "\"" + dir.string() + "\" is not a folder directory of " + root_.string();
        return errc::invalid_mailbox_name;
    };
    if (rel.empty() || *rel.begin() == "..") return outside();
    std::string name;
    if (kind_ == layout_kind::verbatim) {
        if (rel == ".") return outside();
        for (const auto& part : rel) {
            if (part.empty()) continue;  // a trailing slash
            if (!name.empty()) name += '/';
            name += part.string();
        }
    } else {
        if (rel == ".") return std::string("INBOX");
        auto s = rel.string();
        while (!s.empty() && s.back() == '/') s.pop_back();
        if (s.size() < 2 || s.front() != '.' || s.find('/') != std::string::npos) return outside();
        std::size_t start = 1;
        for (;;) {
            auto dot = s.find('.', start);
            if (!name.empty() || start > 1) name += '/';
            name += unescape_level(
                std::string_view(s).substr(start, dot == std::string::npos ? dot : dot - start));
            if (dot == std::string::npos) break;
            start = dot + 1;
        }
    }
    // Only names that map back to this very directory: "inbox" or "\2E" would alias another.
    auto back = path_of(name);
    if (!back) return back.error();
    if (back->lexically_normal() != dir.lexically_normal()) {
        auto b = *back;
        last_error_ =
            "\"" + dir.string() + "\" would be the folder \"" + name + "\", which is " + b.string();
        return errc::invalid_mailbox_name;
    }
    return canonical(name);
}

result<void> tree::create_root() {
    std::error_code ec;
    std::filesystem::create_directories(root_, ec);
    if (ec) return fail("create", root_, error_code(ec.value(), boost::system::generic_category()));
    ::chmod(root_.c_str(), 0700);
    return {};
}

result<void> tree::require_root() {
    if (is_dir(root_)) return {};
    last_error_ = "the Maildir root " + root_.string() + " does not exist (not mounted?)";
    return errc::not_found;
}

void tree::walk(const std::filesystem::path& dir, int depth, listing& out,
                std::vector<std::pair<std::uint64_t, std::uint64_t>>& seen) {
    if (depth > max_depth) return;
    auto names = sys::list_dir(dir);
    if (!names) return;  // vanished or unreadable: not a folder we could use anyway
    for (const auto& n : *names) {
        if (n.front() == '.' || n == "cur" || n == "new" || n == "tmp") continue;
        auto p = dir / n;
        struct stat st {};
        if (!is_dir(p, &st)) continue;
        std::pair<std::uint64_t, std::uint64_t> id{st.st_dev, st.st_ino};
        if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
        seen.push_back(id);
        if (folder::exists(p)) {
            if (auto name = name_of(p))
                out.folders.push_back(*name);
            else
                out.skipped.push_back(p);
        }
        walk(p, depth + 1, out, seen);
    }
}

result<listing> tree::list() {
    if (auto r = require_root(); !r) return r.error();
    listing out;
    if (kind_ == layout_kind::verbatim) {
        struct stat st {};
        is_dir(root_, &st);
        std::vector<std::pair<std::uint64_t, std::uint64_t>> seen{{st.st_dev, st.st_ino}};
        // A root that is a maildir itself is probably a Maildir++ tree configured as verbatim.
        if (folder::exists(root_)) out.skipped.push_back(root_);
        walk(root_, 0, out, seen);
    } else {
        if (folder::exists(root_)) out.folders.emplace_back("INBOX");
        auto names = sys::list_dir(root_);
        if (!names) return fail("list", root_, names.error());
        for (const auto& n : *names) {
            if (n.size() < 2 || n.front() != '.' || n == "..") continue;
            auto p = root_ / n;
            if (!is_dir(p) || !folder::exists(p)) continue;
            if (auto name = name_of(p))
                out.folders.push_back(*name);
            else
                out.skipped.push_back(p);
        }
    }
    std::sort(out.folders.begin(), out.folders.end());
    std::sort(out.skipped.begin(), out.skipped.end());
    return out;
}

result<folder> tree::open(std::string_view name) {
    auto p = path_of(name);
    if (!p) return p.error();
    if (!folder::exists(*p)) {
        last_error_ = "no folder \"" + std::string(name) + "\" (" + p->string() + ")";
        return errc::not_found;
    }
    return folder(*p, options_);
}

result<folder> tree::create(std::string_view name) {
    auto p = path_of(name);
    if (!p) return p.error();
    if (auto r = require_root(); !r) return r.error();
    bool marker = kind_ == layout_kind::maildirpp && *p != root_;
    auto f = folder::create(*p, marker, options_);
    if (!f) return fail("create", *p, f.error());
    return f;
}

result<void> tree::remove(std::string_view name, bool with_contents) {
    auto cn = canonical(name);
    if (!cn) return cn.error();
    if (*cn == "INBOX") {
        last_error_ = "INBOX cannot be deleted";
        return errc::invalid_argument;
    }
    auto p = path_of(*cn);
    if (!p) return p.error();
    if (!folder::exists(*p)) {
        last_error_ = "no folder \"" + *cn + "\" (" + p->string() + ")";
        return errc::not_found;
    }
    if (!with_contents) {
        for (const char* sub : {"cur", "new"}) {
            auto names = sys::list_dir(*p / sub);
            if (!names) return fail("list", *p / sub, names.error());
            auto n = std::count_if(names->begin(), names->end(),
                                   [](const auto& s) { return s.front() != '.'; });
            if (n > 0) {
                last_error_ = "folder \"" + *cn + "\" still holds " + std::to_string(n) +
                              " message(s) in " + sub + "/";
                return sys::generic(std::errc::directory_not_empty);
            }
        }
    }
    // cur/ first: without it the directory stops being a folder, so an interrupted removal
    // does not leave a folder with half its messages.
    for (const char* sub : {"cur", "new", "tmp"}) {
        auto d = *p / sub;
        auto names = sys::list_dir(d);
        if (!names) {
            if (names.error() == std::errc::no_such_file_or_directory) continue;
            return fail("list", d, names.error());
        }
        for (const auto& n : *names) {
            bool is_message = n.front() != '.';
            if (std::string_view(sub) != "tmp" && is_message && !with_contents) continue;
            if (::unlink((d / n).c_str()) != 0 && errno != ENOENT)
                return fail("unlink", d / n, sys::from_errno(errno));
        }
        if (::rmdir(d.c_str()) != 0 && errno != ENOENT)
            return fail("remove", d, sys::from_errno(errno));
    }
    for (auto file :
         {std::string_view("maildirfolder"), keyword_file::name, keyword_file::lock_name}) {
        auto f = *p / file;
        if (::unlink(f.c_str()) != 0 && errno != ENOENT)
            return fail("unlink", f, sys::from_errno(errno));
    }
    // Children (verbatim) or files we do not know keep the directory alive.
    if (::rmdir(p->c_str()) != 0 && errno != ENOTEMPTY && errno != EEXIST)
        return fail("remove", *p, sys::from_errno(errno));
    if (options_.fsync) (void)sys::fsync_path(p->parent_path(), true);
    return {};
}

result<void> tree::rename(std::string_view from, std::string_view to) {
    auto cf = canonical(from);
    if (!cf) return cf.error();
    auto ct = canonical(to);
    if (!ct) return ct.error();
    if (*cf == "INBOX" || *ct == "INBOX") {
        last_error_ = "INBOX cannot be renamed, nor be the target of a rename";
        return errc::invalid_argument;
    }
    if (*cf == *ct) return {};
    if (ct->starts_with(*cf + "/")) return invalid(*ct, "a folder cannot move into itself");
    if (auto r = require_root(); !r) return r.error();
    auto pf = path_of(*cf);
    auto pt = path_of(*ct);
    if (!pf) return pf.error();
    if (!pt) return pt.error();

    if (kind_ == layout_kind::verbatim) {
        if (!is_dir(*pf)) {
            last_error_ = "no folder \"" + *cf + "\" (" + pf->string() + ")";
            return errc::not_found;
        }
        struct stat st {};
        if (::lstat(pt->c_str(), &st) == 0) {
            last_error_ = "rename to \"" + *ct + "\": " + pt->string() + " exists";
            return sys::generic(std::errc::file_exists);
        }
        std::error_code ec;
        std::filesystem::create_directories(pt->parent_path(), ec);
        if (ec)
            return fail("create", pt->parent_path(),
                        error_code(ec.value(), boost::system::generic_category()));
        if (::rename(pf->c_str(), pt->c_str()) != 0)
            return fail("rename", *pf, sys::from_errno(errno));
        if (options_.fsync) {
            (void)sys::fsync_path(pf->parent_path(), true);
            (void)sys::fsync_path(pt->parent_path(), true);
        }
        return {};
    }

    // maildir++: the folder and every ".<from>.<child>" directory.
    auto from_dir = pf->filename().string();
    auto to_dir = pt->filename().string();
    auto names = sys::list_dir(root_);
    if (!names) return fail("list", root_, names.error());
    std::vector<std::pair<std::string, std::string>> moves;
    for (const auto& n : *names) {
        if (n == from_dir || n.starts_with(from_dir + "."))
            moves.emplace_back(n, to_dir + n.substr(from_dir.size()));
    }
    if (moves.empty()) {
        last_error_ = "no folder \"" + *cf + "\" (" + pf->string() + ")";
        return errc::not_found;
    }
    for (const auto& [src, dst] : moves) {
        struct stat st {};
        if (::lstat((root_ / dst).c_str(), &st) == 0) {
            last_error_ = "rename to \"" + *ct + "\": " + (root_ / dst).string() + " exists";
            return sys::generic(std::errc::file_exists);
        }
        if (dst.size() > max_dir_name)
            return invalid(*ct, "a child's directory name would exceed 255 bytes");
    }
    for (const auto& [src, dst] : moves)
        if (::rename((root_ / src).c_str(), (root_ / dst).c_str()) != 0)
            return fail("rename", root_ / src, sys::from_errno(errno));
    if (options_.fsync) (void)sys::fsync_path(root_, true);
    return {};
}

}  // namespace tandem::maildir
