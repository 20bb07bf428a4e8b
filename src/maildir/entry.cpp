// SPDX-License-Identifier: MIT
#include "tandem/maildir/entry.hpp"

#include <functional>
#include <utility>

namespace tandem::maildir {
namespace {

bool is_keyword_letter(char c) {
    return c >= 'a' && c <= 'z';
}

}  // namespace

// ---- entry

static_assert(sizeof(void*) != 8 || sizeof(entry) <= 64, "an entry per message: keep it small");

entry::entry(std::string file_name, maildir::subdir sd, char separator)
    : subdir(sd), file_name_(std::move(file_name)) {
    const std::string_view name(file_name_);
    const auto sep = name.find(separator);
    base_size_ = static_cast<std::uint32_t>(sep == std::string_view::npos ? name.size() : sep);
    if (sep == std::string_view::npos) return;
    const auto info = name.substr(sep + 1);
    if (!info.starts_with("2,")) return;  // no flags (parse_name: flags_info false)
    for (char c : info.substr(2)) {
        if (c == ',') break;  // the rest is not letters (parse_name: rest)
        if (is_keyword_letter(c))
            keyword_bits_ |= std::uint32_t{1} << (c - 'a');
        else if (c >= 'A' && c <= 'Z')
            system_bits_ |= std::uint32_t{1} << (c - 'A');
        else
            system_bits_ |= other_letters;
    }
}

std::string entry::system() const {
    std::string out;
    if (system_bits_ & other_letters) {
        // Rare: letters outside A-Z, taken from the name as parse_name() takes them.
        auto letters = std::string_view(file_name_).substr(base_size_ + 3);
        letters = letters.substr(0, letters.find(','));
        for (char c : letters)
            if (!is_keyword_letter(c)) out += c;
        return sorted_letters(out);
    }
    for (int i = 0; i < 26; ++i)
        if (system_bits_ & (std::uint32_t{1} << i)) out += static_cast<char>('A' + i);
    return out;
}

std::string entry::keywords() const {
    std::string out;
    for (int i = 0; i < 26; ++i)
        if (keyword_bits_ & (std::uint32_t{1} << i)) out += static_cast<char>('a' + i);
    return out;
}

// ---- listing

std::size_t entry_list::home(std::string_view base) const {
    return std::hash<std::string_view>{}(base) & (slots_.size() - 1);
}

void entry_list::grow(std::size_t slots) {
    slots_.assign(slots, 0);
    const std::size_t mask = slots - 1;
    for (std::size_t pos = 0; pos < entries_.size(); ++pos) {
        const auto base = entries_[pos].base();
        std::size_t j = home(base);
        bool dup = false;
        for (; slots_[j] != 0; j = (j + 1) & mask) {
            if (entries_[slots_[j] - 1].base() == base) {
                dup = true;  // an earlier entry of this base name stays the indexed one
                break;
            }
        }
        if (!dup) slots_[j] = static_cast<std::uint32_t>(pos + 1);
    }
}

void entry_list::reserve(std::size_t n) {
    entries_.reserve(n);
    std::size_t slots = slots_.empty() ? 16 : slots_.size();
    while (n * 4 > slots * 3) slots *= 2;
    if (slots != slots_.size()) grow(slots);
}

void entry_list::clear() {
    entries_ = {};
    slots_ = {};
    unindexed_ = 0;
}

void entry_list::drop_duplicates() {
    if (unindexed_ == 0) return;
    unindexed_ = 0;
    std::vector<char> keep(entries_.size());
    for (std::size_t pos = 0; pos < entries_.size(); ++pos)
        keep[pos] = find(entries_[pos].base()) == pos;
    std::size_t k = 0;
    for (std::size_t pos = 0; pos < entries_.size(); ++pos) {
        if (!keep[pos]) continue;
        if (k != pos) entries_[k] = std::move(entries_[pos]);
        ++k;
    }
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(k), entries_.end());
    grow(slots_.size());
}

std::size_t entry_list::find(std::string_view base) const {
    if (slots_.empty()) return npos;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t j = home(base); slots_[j] != 0; j = (j + 1) & mask) {
        const std::size_t pos = slots_[j] - 1;
        if (entries_[pos].base() == base) return pos;
    }
    return npos;
}

std::size_t entry_list::push_back(entry&& e) {
    const std::size_t pos = entries_.size();
    if ((pos + 1) * 4 > slots_.size() * 3) grow(slots_.empty() ? 16 : slots_.size() * 2);
    const std::size_t mask = slots_.size() - 1;
    const auto base = e.base();  // before the move: a short name lives inside the entry
    std::size_t j = home(base);
    bool dup = false;
    for (; slots_[j] != 0; j = (j + 1) & mask) {
        if (entries_[slots_[j] - 1].base() == base) {
            dup = true;
            break;
        }
    }
    if (dup)
        ++unindexed_;
    else
        slots_[j] = static_cast<std::uint32_t>(pos + 1);
    entries_.push_back(std::move(e));
    return pos;
}

void entry_list::assign(entry&& e) {
    const auto pos = find(e.base());
    if (pos == npos)
        push_back(std::move(e));
    else
        entries_[pos] = std::move(e);
}

bool entry_list::insert(entry&& e) {
    if (find(e.base()) != npos) return false;
    push_back(std::move(e));
    return true;
}

std::size_t entry_list::slot_of(std::size_t pos) const {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t j = home(entries_[pos].base()); slots_[j] != 0; j = (j + 1) & mask)
        if (slots_[j] == pos + 1) return j;
    return npos;
}

bool entry_list::erase(std::string_view base) {
    const auto pos = find(base);
    if (pos == npos) return false;
    // Backward-shift deletion (linear probing): the slots after the freed one that would no
    // longer be reached from their home slot move into it.
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = slot_of(pos);
    for (std::size_t j = i;;) {
        j = (j + 1) & mask;
        if (slots_[j] == 0) break;
        const std::size_t k = home(entries_[slots_[j] - 1].base());
        const bool reachable = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!reachable) {
            slots_[i] = slots_[j];
            i = j;
        }
    }
    slots_[i] = 0;
    // The last entry takes the freed position.
    const std::size_t last = entries_.size() - 1;
    if (pos != last) {
        if (auto s = slot_of(last); s != npos) slots_[s] = static_cast<std::uint32_t>(pos + 1);
        entries_[pos] = std::move(entries_[last]);
    }
    entries_.pop_back();
    return true;
}

}  // namespace tandem::maildir
