// SPDX-License-Identifier: MIT
// A tree of Maildir folders under one root, in one of two layouts (protocol.md 4.3, 4.5).
// Folder names are canonical, as the engine uses them: UTF-8, '/' between levels, "INBOX"
// (matched case-insensitively as the first level, RFC 9051 5.1) for the inbox.
//
// verbatim (Dovecot's LAYOUT=fs, mbsync's SubFolders Verbatim): a folder is the directory of
// its name under the root, so "INBOX" is root/INBOX/, "Sent" root/Sent/, "Lists/foo"
// root/Lists/foo/. A folder may have children, and a directory that is not a folder may
// hold folders (an IMAP \Noselect parent). Names cannot have a level that is cur, new or tmp,
// starts with '.' (hidden: .notmuch, .git live there), is maildirfolder or starts with
// "dovecot-" or "dovecot." (Dovecot's files beside cur/).
//
// maildir++ (Courier, Dovecot's default): "INBOX" is the root's own cur/new/tmp; every other
// folder is root/.<levels joined by '.'>, "Lists/foo" is root/.Lists.foo/, with an empty
// maildirfolder file. A literal '.' in a level is written \2e and a '\' as \5c (Dovecot's
// escape character convention), so every name is representable.
//
// Both: a level is never empty, "." or "..", and has no control character; names are valid
// UTF-8; a directory name is at most 255 bytes. Any other name is errc::invalid_mailbox_name
// and last_error() says why. A directory whose name does not map back to itself (".inbox",
// "\2E") is not listed as a folder but reported in listing::skipped.
#pragma once

#include "tandem/maildir/folder.hpp"
#include "tandem/util/error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::maildir {

enum class layout_kind : std::uint8_t { verbatim, maildirpp };

struct listing {
    std::vector<std::string> folders;            // canonical names, sorted
    std::vector<std::filesystem::path> skipped;  // maildirs whose names we cannot represent
};

class tree {
  public:
    tree(std::filesystem::path root, layout_kind kind, folder_options options = {});

    const std::filesystem::path& root() const { return root_; }
    layout_kind kind() const { return kind_; }

    // The canonical spelling of a name ("inbox/x" -> "INBOX/x"), or invalid_mailbox_name.
    result<std::string> canonical(std::string_view name);
    // name -> directory, and back. name_of() accepts only directories under the root that
    // path_of() would produce.
    result<std::filesystem::path> path_of(std::string_view name);
    result<std::string> name_of(const std::filesystem::path& dir);

    // Creates the root directory (0700, with parents). The other calls never create it, so
    // that an unmounted file system is not silently replaced by an empty tree.
    result<void> create_root();

    // Every folder (a directory with cur/ and new/). Symbolic links are followed; a directory
    // seen twice (a link loop) is visited once.
    result<listing> list();
    // The folder of `name`; errc::not_found if it is not a folder.
    result<folder> open(std::string_view name);
    // Creates the folder, and in verbatim its missing parents as plain directories. An
    // existing folder is completed, not an error (so a retry after a crash succeeds).
    // errc::not_found if the root does not exist.
    result<folder> create(std::string_view name);
    // Deletes a folder. Without `with_contents`, a folder with files in cur/ or new/ is left
    // alone (std::errc::directory_not_empty): the caller checks first that it holds nothing
    // it did not sync. With it, the messages go too. Either way tmp/, maildirfolder and
    // dovecot-keywords go, and the directory itself if nothing else is left in it (verbatim
    // children and unknown files stay, and the directory stays as their parent).
    // INBOX cannot be deleted (errc::invalid_argument).
    result<void> remove(std::string_view name, bool with_contents = false);
    // Renames a folder with its children (RFC 9051 6.3.6). The target must not exist
    // (std::errc::file_exists); missing verbatim parents are created. INBOX can be neither
    // source nor target (its RENAME semantics move messages: the engine does that itself).
    // In maildir++ each child is one rename(2), so a crash can leave part of them renamed;
    // renaming again finishes the job.
    result<void> rename(std::string_view from, std::string_view to);

    const std::string& last_error() const { return last_error_; }

  private:
    result<std::vector<std::string>> levels(std::string_view name);
    error_code invalid(std::string_view name, std::string_view why);
    error_code fail(std::string_view what, const std::filesystem::path& p, const error_code& ec);
    result<void> require_root();
    void walk(const std::filesystem::path& dir, int depth, listing& out,
              std::vector<std::pair<std::uint64_t, std::uint64_t>>& seen);

    std::filesystem::path root_;
    layout_kind kind_;
    folder_options options_;
    std::string last_error_;
};

}  // namespace tandem::maildir
