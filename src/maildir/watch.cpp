// SPDX-License-Identifier: MIT
#include "tandem/maildir/watch.hpp"

#include "sys_p.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <utility>

namespace tandem::maildir {

namespace {

constexpr std::uint32_t watched_events = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                         IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

// One change as a key: subdir, direction, name.
std::string key_of(subdir sd, bool added, std::string_view name) {
    std::string k;
    k.reserve(name.size() + 2);
    k += sd == subdir::cur ? 'c' : 'n';
    k += added ? '+' : '-';
    k += name;
    return k;
}

}  // namespace

struct change_watch::folder_state {
    bool watched = false;
    bool lost = false;                           // a self event, or an add that failed
    std::unordered_multiset<std::string> owned;  // announced, no event yet
    std::unordered_multiset<std::string> seen;   // events not announced (yet)
};

result<change_watch> change_watch::open() {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return sys::from_errno(errno);
    change_watch w;
    w.fd_ = fd;
    return w;
}

change_watch::~change_watch() {
    if (fd_ >= 0) ::close(fd_);
}

void change_watch::close_without_waiting() {
    if (fd_ < 0) return;
    const int fd = std::exchange(fd_, -1);
    folders_.clear();
    by_wd_.clear();
    // The child calls only async-signal-safe functions (the parent may have threads). It
    // drops every other descriptor first: sockets, pipes and the journal's lock are not
    // held a moment longer than the parent holds them.
    if (::fork() == 0) {
        if (fd > 0) ::close_range(0, static_cast<unsigned>(fd) - 1, 0);
        ::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
        ::close(fd);
        ::_exit(0);
    }
    ::close(fd);  // the child's copy keeps the instance alive: no teardown here
}

change_watch::change_watch(change_watch&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), folders_(std::move(o.folders_)), by_wd_(std::move(o.by_wd_)) {}

change_watch& change_watch::operator=(change_watch&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
        folders_ = std::move(o.folders_);
        by_wd_ = std::move(o.by_wd_);
    }
    return *this;
}

result<void> change_watch::add(const std::filesystem::path& dir) {
    auto& st = folders_[dir];
    if (!st) st = std::make_unique<folder_state>();
    if (st->watched) return {};
    for (subdir sd : {subdir::new_, subdir::cur}) {
        auto p = dir / (sd == subdir::cur ? "cur" : "new");
        int wd = ::inotify_add_watch(fd_, p.c_str(), watched_events);
        if (wd < 0) {
            st->lost = true;
            return sys::from_errno(errno);
        }
        by_wd_[wd] = {st.get(), sd};
    }
    st->watched = true;
    return {};
}

void change_watch::on_event(int wd, std::uint32_t mask, std::string_view name) {
    if (mask & IN_Q_OVERFLOW) {
        for (auto& [dir, st] : folders_) st->lost = true;
        return;
    }
    auto it = by_wd_.find(wd);
    if (it == by_wd_.end()) return;
    folder_state& st = *it->second.first;
    if (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
        st.lost = true;
        return;
    }
    const bool added = (mask & (IN_CREATE | IN_MOVED_TO)) != 0;
    auto k = key_of(it->second.second, added, name);
    if (auto o = st.owned.find(k); o != st.owned.end())
        st.owned.erase(o);
    else
        st.seen.insert(std::move(k));
}

void change_watch::own(const std::filesystem::path& dir,
                       std::vector<folder::own_change>&& changes) {
    auto it = folders_.find(dir);
    if (it == folders_.end()) return;
    folder_state& st = *it->second;
    for (auto& c : changes) {
        auto k = key_of(c.subdir, c.added, c.name);
        if (auto s = st.seen.find(k); s != st.seen.end())
            st.seen.erase(s);
        else
            st.owned.insert(std::move(k));
    }
    changes.clear();
    // Read what the kernel queued meanwhile: its queue is bounded (fs.inotify.
    // max_queued_events, 16384 by default) and a first sync makes one event per message.
    alignas(inotify_event) char buf[64 * 1024];
    for (;;) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // EAGAIN: nothing more queued
        for (char* p = buf; p < buf + n;) {
            auto* e = reinterpret_cast<inotify_event*>(p);
            std::string_view name =
                e->len ? std::string_view(e->name, ::strnlen(e->name, e->len)) : std::string_view();
            on_event(e->wd, e->mask, name);
            p += sizeof(inotify_event) + e->len;
        }
    }
}

bool change_watch::clean(const std::filesystem::path& dir) {
    own(dir, {});
    auto it = folders_.find(dir);
    if (it == folders_.end()) return false;
    const auto& st = *it->second;
    return st.watched && !st.lost && st.seen.empty();
}

}  // namespace tandem::maildir
