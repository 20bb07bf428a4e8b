// SPDX-License-Identifier: MIT
// One Maildir folder: a directory with tmp/, new/ and cur/ (cr.yp.to/proto/maildir.html;
// protocol.md 4.1, 4.2, 4.7). Scans that survive concurrent renames, a cheap change check
// from the directory times, safe delivery (tmp/ -> fsync -> rename), flag renames, removal,
// moves to another folder, reading by base name.
//
// Messages are named by their base name (file_name::base): a mail client that changes flags
// renames the file but keeps the base, so every call that takes a base name finds the file
// again if it was renamed meanwhile (a rename that fails with ENOENT rescans the folder and
// retries, as mbsync's maildir_again). A message that is nowhere to be found is reported as
// `outcome::gone`, not as an error.
//
// Not thread-safe; one object per thread. Several processes may work on one folder: no
// locks are taken (Maildir needs none), but do not let two synchronizers write one folder.
#pragma once

#include "tandem/mail/content_key.hpp"
#include "tandem/maildir/entry.hpp"
#include "tandem/util/error.hpp"
#include "tandem/util/fs.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::maildir {

enum class scan_mode : std::uint8_t {
    full,   // stat every file: size (unless ",S=" gives it) and mtime
    names,  // names and flags only, no stat per file: fast for flag-only diffs
};

struct scan_result {
    // One per file, found by base name. A base in both new/ and cur/: the cur/ one only; two
    // files of one base in cur/ (a client's link-then-unlink rename caught half-way): both,
    // and entry_list::find() gives the first.
    entry_list entries;
    std::string token;  // change_token() as of the start of the listing, settled
};

// What happened to a message named by its base name.
enum class outcome : std::uint8_t { done, gone };

// Writes bytes to a descriptor; ::write by default. Tests inject failures (ENOSPC) here.
using write_function = long (*)(int fd, const void* data, std::size_t size);

struct folder_options {
    char separator = ':';  // see filename.hpp default_separator
    // fsync each delivered file and the cur/ directory before a delivery returns. Off only for
    // tests and throw-away trees: ext4/btrfs/xfs may otherwise lose a file after a crash.
    bool fsync = true;
    // A directory whose mtime is younger than this could still change within the same time
    // stamp (file systems stamp in ticks of 1 ns to 1 s; FAT 2 s). See change_token().
    std::chrono::milliseconds settle{1000};
    write_function write = nullptr;  // nullptr: ::write
};

// How old a sub-second directory stamp must be before no later change can share it: two
// ticks of the kernel's coarse clock, at least 2 ms (25 ms if the kernel does not say).
// A run that changed a folder waits this long at most for a settled token; it was a fixed
// 25 ms before, most of the wall of a run that changes a few flags.
std::chrono::nanoseconds subsecond_settle();

// Reads the body of a message to deliver: fills `buffer` and returns the number of bytes
// written into it, 0 at the end; an error aborts the delivery.
using body_reader = std::function<result<std::size_t>(std::span<char> buffer)>;

struct new_message {
    std::string system;              // system flag letters, e.g. "FS"
    std::string keywords;            // keyword letters of this folder
    std::int64_t internal_date = 0;  // becomes the file's mtime; 0: the time of delivery
};

// An open message file. The descriptor stays valid whatever happens to the name.
class message_file {
  public:
    message_file() = default;
    message_file(int fd, std::uint64_t size, std::string file_name);
    ~message_file();
    message_file(message_file&& o) noexcept;
    message_file& operator=(message_file&& o) noexcept;
    message_file(const message_file&) = delete;
    message_file& operator=(const message_file&) = delete;

    int fd() const { return fd_; }
    std::uint64_t size() const { return size_; }
    const std::string& file_name() const { return file_name_; }
    // Reads up to buffer.size() bytes from the current position; 0 at the end.
    result<std::size_t> read(std::span<char> buffer);
    // The whole remaining content (for small messages and tests).
    result<std::string> read_all();

  private:
    int fd_ = -1;
    std::uint64_t size_ = 0;
    std::string file_name_;
};

class folder;

// Deliveries whose fsyncs are grouped: add() writes each message to tmp/ without fsync;
// commit() fsyncs the files, renames them all into cur/ and fsyncs cur/ once. A batch that
// is destroyed before commit() removes its temporary files.
class delivery_batch {
  public:
    explicit delivery_batch(folder& f) : folder_(&f) {}
    ~delivery_batch();
    delivery_batch(delivery_batch&&) noexcept = default;
    delivery_batch& operator=(delivery_batch&&) noexcept = delete;
    delivery_batch(const delivery_batch&) = delete;
    delivery_batch& operator=(const delivery_batch&) = delete;

    result<void> add(std::string_view content, const new_message& m);
    result<void> add(const body_reader& body, const new_message& m);
    // Takes over the file `spool` (a rename into tmp/ where it is on the same file system,
    // else a copy that leaves `spool` in place).
    result<void> add_file(const std::filesystem::path& spool, const new_message& m);
    std::size_t size() const { return pending_.size(); }

    // Returns the base names in the order of add(). On failure, committed() lists those that
    // reached cur/ before the failure; the others are removed from tmp/.
    result<std::vector<std::string>> commit();
    const std::vector<std::string>& committed() const { return committed_; }

  private:
    struct pending {
        std::string tmp_name;
        std::string base;  // with ",S="
        std::string final_name;
        bool synced = false;
        // The file, open since its write for the fsync at commit() (saves opening it again),
        // while the process has descriptors to spare; else closed.
        tandem::fs::unique_fd file;
    };
    friend class folder;
    void discard();
    // tmp/'s descriptor, opened at the first call; -1 if it cannot be (paths are used then).
    int tmp_dir();
    folder* folder_;
    std::vector<pending> pending_;
    std::vector<std::string> committed_;
    tandem::fs::unique_fd tmp_dir_;
    bool tmp_dir_tried_ = false;
};

class folder {
  public:
    // A folder object for `dir`; nothing is checked until the first call.
    explicit folder(std::filesystem::path dir, folder_options options = {});
    // Creates dir/ (and missing parents) with tmp/, new/ and cur/ (mode 0700; cur/ last, so
    // that a half-made folder is not a folder) and, for Maildir++ subfolders, an empty
    // `maildirfolder` file. An existing folder is completed, not an error.
    static result<folder> create(const std::filesystem::path& dir, bool maildirfolder_marker,
                                 folder_options options = {});
    // True if dir has cur/ and new/ directories.
    static bool exists(const std::filesystem::path& dir);

    const std::filesystem::path& path() const { return dir_; }
    const folder_options& options() const { return options_; }

    // Lists new/ and cur/ (dot files skipped). The directories are stated before and after the
    // listing and the listing starts over if either changed (readdir can skip a file renamed
    // during it); a file gone before its stat is skipped. If a directory changed less than
    // `settle` ago, the scan waits until that time stamp is over first, so the token is
    // settled. Fails with std::errc::resource_unavailable_try_again if the folder changed on
    // every one of 8 attempts.
    //
    // The locations found are remembered for the calls that take a base name, unless
    // `remember` is false: then the caller hands the entries back with remember() once it
    // is done with them, so that a large folder is not held twice at once.
    //
    // `expected`: how many files the folder is thought to hold (the count of the last scan);
    // room for them and a few more is made before the listing, which would otherwise grow
    // its entries by doubling.
    result<scan_result> scan(scan_mode mode = scan_mode::full, bool remember = true,
                             std::size_t expected = 0);
    // Takes the locations of `entries` (of a scan of this folder) as the ones to try first:
    // the listing itself becomes the folder's, nothing is copied.
    void remember(entry_list&& entries);

    // An opaque token of the mtimes (ns) and inodes of new/ and cur/.
    //
    // The same-tick rule: a change made in the same time-stamp tick as the token's mtime
    // would leave the mtime as it is. So a token whose newest directory mtime is less than
    // `settle` older than the clock when it was taken is "unsettled", and changed_since() of
    // an unsettled token is always true. scan() returns settled tokens.
    result<std::string> change_token() const;
    // change_token() once settled: sleeps out the rest of the newest mtime's tick when that
    // takes at most `max_wait`, and gives an unsettled token otherwise.
    result<std::string> settled_change_token(std::chrono::nanoseconds max_wait) const;
    // False only if `token` is settled and new/ and cur/ still have its mtimes and inodes.
    // A token that does not parse counts as changed.
    result<bool> changed_since(std::string_view token) const;

    // Delivers one message: tmp/<unique> created with O_EXCL 0600, written (streamed in 64 KB
    // chunks from a reader), its mtime set to the INTERNALDATE, fsynced, renamed to
    // cur/<base>:2,<flags>, cur/ fsynced. Returns the base name, which ends with ",S=<size>".
    //
    // Always cur/, even without flags: new/ means "not yet seen by a mail client", and a
    // synced message has been seen by one on the other side; a file in new/ would also be
    // renamed into cur/ by the next client that opens the folder, which costs a rescan.
    //
    // ENOSPC or EDQUOT fail with errc::storage_full; the temporary file is removed.
    result<std::string> deliver(std::string_view content, const new_message& m);
    result<std::string> deliver(const body_reader& body, const new_message& m);

    // Renames the message to carry these flags (D F P R S T from `system`; upper-case letters
    // that tandem does not know stay as they were; keyword letters replace the old ones).
    // A message in new/ moves to cur/. No rename if the name is already right.
    result<outcome> set_flags(std::string_view base, std::string_view system,
                              std::string_view keywords);
    // unlink(2); a message already gone is outcome::gone.
    result<outcome> remove(std::string_view base);
    // Renames the message into `to`'s cur/, keeping its base name. Keyword letters belong to
    // a folder's dovecot-keywords, so the caller passes the letters valid in `to` (nullopt:
    // keep the current letters). Both folders must be on one file system (std::errc::
    // cross_device_link otherwise).
    result<outcome> move_to(std::string_view base, folder& to,
                            std::optional<std::string_view> system = std::nullopt,
                            std::optional<std::string_view> keywords = std::nullopt);
    // Opens the message for reading; outcome::gone as an error-free empty optional.
    result<std::optional<message_file>> open(std::string_view base);
    // The Message-ID field of the message (from its first 64 KB), as written, without the
    // folding white space; nullopt if it has none or the message is gone.
    result<std::optional<std::string>> message_id(std::string_view base);
    // What the header of an entry's file says of the message's identity (first 64 KB);
    // nullopt if the message is gone.
    result<std::optional<mail::header_identity>> identify(const entry& e);

    // Flag renames, removals and moves are not fsynced one by one (a rename is durable only
    // once its directory is): call sync() before recording them as done in the journal; it
    // fsyncs the directories of this folder changed since the last sync(), once each. A move
    // marks the destination folder object, so sync() that one too. (No-op without
    // folder_options::fsync.) deliver() and delivery_batch::commit() sync by themselves.
    result<void> sync();

    // Where a message probably is, without a listing: cur/ with these flag letters (what the
    // journal last saw). Taken only for a base name the folder has no location for; an
    // operation that finds no file there lists the folder as it would have anyway.
    void expect(std::string_view base, std::string_view system, std::string_view keywords);

    // The current entry of a base name (cached from the last scan or operation, looked up
    // with a listing otherwise); nullopt if gone.
    result<std::optional<entry>> find(std::string_view base);

    // Fills in e.size (unless ",S=" gives it) and e.mtime for an entry of a names-only scan,
    // from its file, found again by its base name if a mail client renamed it since (e is
    // then updated). False if the message is gone.
    result<bool> stat(entry& e);

    // How many times this object listed its directories (scans and look-ups).
    std::size_t listings() const { return listings_; }
    // How many locations it remembers (from a scan, remember() or expect()).
    std::size_t remembered() const { return cache_.size(); }

    // One change this object made to new/ or cur/: a name that appeared (delivery, the
    // target of a rename or move) or went away (removal, the source of a rename or move).
    struct own_change {
        maildir::subdir subdir;
        std::string name;
        bool added = false;
    };
    // Once on, each change this object makes is logged until taken, so that a watcher can
    // tell this process's changes from a mail client's (store::maildir_store).
    void log_own_changes(bool on) { log_own_ = on; }
    std::vector<own_change> take_own_changes() { return std::exchange(own_, {}); }

    // What the last failed call was doing: "rename /m/cur/x:2,S: No space left ...".
    const std::string& last_error() const { return last_error_; }

  private:
    friend class delivery_batch;
    struct location {
        maildir::subdir subdir;
        std::string file_name;
    };
    result<std::optional<location>> locate(std::string_view base, bool fresh);
    result<void> relist();
    result<std::optional<std::string>> read_message_id(message_file&& m);
    result<std::string> read_head(message_file&& m);
    std::filesystem::path file_path(const location& l) const;
    error_code fail(std::string_view what, const std::filesystem::path& p, const error_code& ec);
    error_code fail_errno(std::string_view what, const std::filesystem::path& p, int e);

    // Delivery steps shared with delivery_batch.
    // `into`: the batch the file is for (its tmp/ descriptor; the file may stay open).
    result<delivery_batch::pending> write_tmp(const body_reader& body, const new_message& m,
                                              bool sync, delivery_batch* into = nullptr);
    result<delivery_batch::pending> adopt_tmp(const std::filesystem::path& spool,
                                              const new_message& m, bool sync);
    result<void> finish_tmp(int fd, std::string_view tmp_name, const new_message& m, bool sync);
    bool writes_back(int fd);

    std::filesystem::path dir_;
    folder_options options_;
    entry_list cache_;  // where the files are, by base name; the size and mtime are not kept up
    bool dirty_new_ = false;
    bool dirty_cur_ = false;
    std::size_t listings_ = 0;
    int writeback_ = -1;  // whether the file system writes back to a device; -1: not known yet
    bool log_own_ = false;
    std::vector<own_change> own_;
    void note(maildir::subdir sd, const std::string& name, bool added) {
        if (log_own_) own_.push_back({sd, name, added});
    }
    std::string last_error_;
};

}  // namespace tandem::maildir
