// SPDX-License-Identifier: MIT
// One message file of a Maildir listing, and a listing's entries found by base name.
// Compact, since a rescan holds one entry per message (200,000 in a large folder): the file
// name once, the base name as its length, the flag letters as bit sets; a listing indexes its
// entries with 4 bytes a slot instead of a node and a copy of the name per message.
// Pure: no I/O.
#pragma once

#include "tandem/maildir/filename.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::maildir {

enum class subdir : std::uint8_t { new_, cur };

class entry {
  public:
    entry() = default;
    // Splits a name of new/ or cur/ as parse_name() does.
    entry(std::string file_name, maildir::subdir subdir, char separator = default_separator);

    std::uint64_t size = 0;  // from ",S=", else from stat (0 for scan_mode::names)
    std::int64_t mtime = 0;  // seconds since the epoch: the INTERNALDATE (0 for scan_mode::names)
    maildir::subdir subdir = maildir::subdir::cur;

    // The unique base name: the identity of the message (file_name::base).
    std::string_view base() const { return std::string_view(file_name_).substr(0, base_size_); }
    // The current name inside new/ or cur/.
    const std::string& file_name() const { return file_name_; }
    // The flag letters of a "2," info as file_name::system and file_name::keywords have them:
    // each in ASCII order, once; `system` every letter that is not a-z (D F P R S T, and
    // unknown ones kept as found), `keywords` the letters a-z. Empty without a "2," info.
    std::string system() const;
    std::string keywords() const;
    // Bit i: the keyword letter 'a' + i.
    std::uint32_t keyword_bits() const { return keyword_bits_; }

  private:
    // Bit i: the letter 'A' + i; `other_letters`: some byte that is neither A-Z nor a-z,
    // read again from the name when asked for.
    static constexpr std::uint32_t other_letters = std::uint32_t{1} << 31;
    // In this order after `subdir`, so that an entry is 64 bytes.
    std::uint32_t base_size_ = 0;
    std::uint32_t system_bits_ = 0;
    std::uint32_t keyword_bits_ = 0;
    std::string file_name_;
};

// The entries of a listing, in the order they were added, and an index of them by base
// name (open addressing over their positions). Several entries may share a base name (two
// files of one message caught half-way through a client's rename); find() gives the first.
// An entry may be changed in place through operator[] or the iterators as long as its base
// name stays the same.
class entry_list {
  public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    entry& operator[](std::size_t i) { return entries_[i]; }
    const entry& operator[](std::size_t i) const { return entries_[i]; }
    auto begin() { return entries_.begin(); }
    auto end() { return entries_.end(); }
    auto begin() const { return entries_.begin(); }
    auto end() const { return entries_.end(); }

    // Room for n entries without a reallocation of the entries or a rehash of the index.
    void reserve(std::size_t n);
    // Removes every entry and frees the memory.
    void clear();

    // The position of the first entry with this base name, or npos.
    std::size_t find(std::string_view base) const;
    // Appends `e`; the index keeps an earlier entry of the same base name. Its position.
    std::size_t push_back(entry&& e);
    // The entry of e's base name becomes `e` (the first of them, if several); else appends.
    void assign(entry&& e);
    // Appends `e` unless its base name is there already. Whether it was appended.
    bool insert(entry&& e);
    // Removes the first entry with this base name (the last entry takes its position). False
    // if there is none.
    bool erase(std::string_view base);
    // Removes the entries that find() does not give (all but the first of a base name).
    void drop_duplicates();

  private:
    std::size_t home(std::string_view base) const;
    void grow(std::size_t slots);
    // The slot that holds `pos` (found from its entry's base name), or npos if unindexed.
    std::size_t slot_of(std::size_t pos) const;

    std::vector<entry> entries_;
    // Position + 1 of an entry, 0 for a free slot; a power of two in size, at most 3/4 full.
    std::vector<std::uint32_t> slots_;
    std::size_t unindexed_ = 0;  // entries appended while their base name was there already
};

}  // namespace tandem::maildir
