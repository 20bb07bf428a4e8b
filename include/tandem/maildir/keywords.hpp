// SPDX-License-Identifier: MIT
// The per-folder `dovecot-keywords` file (protocol.md 4.4, 4.6): lines "<index> <keyword>",
// index 0 is letter 'a', so at most 26 keywords per folder live in file names. Shared with
// Dovecot and with any mail client that follows its convention.
#pragma once

#include "tandem/mail/types.hpp"
#include "tandem/util/error.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::maildir {

// A flag set in Maildir letters. `unmapped` holds the keywords that have no letter in this
// folder: the caller keeps them in its own state (the journal) and warns once.
struct encoded_flags {
    std::string system;    // D F P R S T, ASCII order
    std::string keywords;  // a-z, ASCII order
    std::vector<std::string> unmapped;
    friend bool operator==(const encoded_flags&, const encoded_flags&) = default;
};

struct keyword_options {
    // How long assign() waits for another writer's lock, and the age at which a lock that no
    // live process holds is taken to be left over by a killed writer and removed (a killed
    // tandem's lock must not fail the next run's folder; Dovecot writes within milliseconds).
    std::chrono::milliseconds lock_wait{10000};
    std::chrono::milliseconds stale_after{5000};
};

class keyword_file {
  public:
    static constexpr std::size_t max_keywords = 26;
    static constexpr std::string_view name = "dovecot-keywords";
    // Dovecot's dot-lock name for this file: holding it is the right to replace the file.
    static constexpr std::string_view lock_name = "dovecot-keywords.lock";

    // Reads <folder>/dovecot-keywords. A missing file is an empty map; lines that do not
    // parse, indexes above 25 and repeated keywords are ignored (the first one wins).
    static result<keyword_file> load(const std::filesystem::path& folder,
                                     keyword_options options = {});
    result<void> reload();

    // Keywords match exactly first, then ASCII case-insensitively (RFC 9051 2.3.2).
    std::optional<char> letter_of(std::string_view keyword) const;
    std::optional<std::string_view> keyword_of(char letter) const;
    // Whether a message of the folder can carry `keyword`: $Forwarded always (the 'P' of
    // its file name), another keyword once it has a letter.
    bool holds(std::string_view keyword) const;
    std::size_t size() const;

    // Gives each keyword in `keywords` a letter if it has none, extending the file: under
    // Dovecot's dot-lock (create dovecot-keywords.lock with O_EXCL), the file is read again so
    // that another writer's additions are kept, the new lines are written into the lock file,
    // which is fsynced and renamed over dovecot-keywords, and the folder fsynced. $Forwarded
    // never gets a letter (it is 'P'). Returns the keywords that did not fit in 26 letters.
    result<std::vector<std::string>> assign(std::span<const std::string> keywords);

    // The letters of a flag set under the current map (no file change).
    encoded_flags encode(const mail::flag_set& flags) const;
    // The flags of letters; keyword letters without a line in the file are ignored.
    mail::flag_set decode(std::string_view system, std::string_view keyword_letters) const;

    const std::filesystem::path& folder() const { return folder_; }
    const std::string& last_error() const { return last_error_; }

  private:
    bool break_if_stale(const std::filesystem::path& lock_path) const;
    keyword_file(std::filesystem::path folder, keyword_options options)
        : folder_(std::move(folder)), options_(options) {}
    result<void> read_into(std::array<std::string, max_keywords>& slots);

    std::filesystem::path folder_;
    keyword_options options_;
    std::array<std::string, max_keywords> slots_;  // empty: free letter
    std::string last_error_;
};

}  // namespace tandem::maildir
