// SPDX-License-Identifier: MIT
// Tells this process's changes to Maildir folders from anyone else's (inotify, Linux).
//
// A run records each folder's state as found before it changed anything, so the next run
// lists every folder this run wrote to once more (200,000 names for a first sync). With a
// watch on new/ and cur/ from before the first write, a folder whose every change since
// was one of this process's own (folder::take_own_changes) can record its state as it is
// after the run instead: nobody else changed it. Any other change, a full event queue or a
// watch that fails leaves the folder unvouched, and the next run lists it as before.
#pragma once

#include "tandem/maildir/folder.hpp"
#include "tandem/util/error.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace tandem::maildir {

class change_watch {
  public:
    // An inotify instance; an error where the system has none left (fs.inotify limits).
    static result<change_watch> open();
    ~change_watch();
    change_watch(change_watch&&) noexcept;
    change_watch& operator=(change_watch&&) noexcept;
    change_watch(const change_watch&) = delete;
    change_watch& operator=(const change_watch&) = delete;

    // Starts watching new/ and cur/ of the folder at `dir`. Changes made before this call
    // are not seen: the caller checks the folder's token afterwards.
    result<void> add(const std::filesystem::path& dir);
    // Announces changes this process made in `dir` and reads the events queued so far
    // (the kernel queues a bounded number: call it after each batch of changes). Events and
    // announcements cancel out, in whichever order they come.
    void own(const std::filesystem::path& dir, std::vector<folder::own_change>&& changes);
    // Whether `dir` is watched and every change seen in it so far was announced (reads the
    // queued events first). An event lost to a full queue makes every folder unclean.
    bool clean(const std::filesystem::path& dir);
    // Ends the watch without waiting for the kernel's teardown, for a process about to exit.
    // Closing an inotify instance waits for the marks to be freed after an SRCU grace period:
    // 12-23 ms here (Linux 6.18), whatever the number of watches, which was a third of a
    // run that renames a few files. A child process holding only this descriptor closes it
    // after this process did (a plain close where the child cannot be started).
    void close_without_waiting();

  private:
    struct folder_state;
    change_watch() = default;
    void on_event(int wd, std::uint32_t mask, std::string_view name);
    int fd_ = -1;
    std::map<std::filesystem::path, std::unique_ptr<folder_state>> folders_;
    std::unordered_map<int, std::pair<folder_state*, subdir>> by_wd_;
};

}  // namespace tandem::maildir
