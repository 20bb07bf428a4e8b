// SPDX-License-Identifier: MIT
#include "tandem/maildir/watch.hpp"

#include "sys_p.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>
#include <utility>
#include <vector>

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

namespace {

// What a closer shares with this process: the first bytes of its stack's mapping (the
// stack grows down from the other end).
struct closer_handoff {
    int fd;
    std::uint32_t parent_closed;  // a futex word
};

// A system call that sets no errno: the closer shares the memory, and the thread-local
// errno, of the thread that started it (glibc's syscall() writes errno on failure, and a
// futex wait fails with EAGAIN whenever the word changed before it).
#if defined(__x86_64__)
#define TANDEM_RAW_SYSCALLS 1
long raw_syscall(long nr, long a = 0, long b = 0, long c = 0, long d = 0) {
    register long r10 asm("r10") = d;
    long ret;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                 : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define TANDEM_RAW_SYSCALLS 1
long raw_syscall(long nr, long a = 0, long b = 0, long c = 0, long d = 0) {
    register long x8 asm("x8") = nr;
    register long x0 asm("x0") = a;
    register long x1 asm("x1") = b;
    register long x2 asm("x2") = c;
    register long x3 asm("x3") = d;
    asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#else
#define TANDEM_RAW_SYSCALLS 0
#endif

// A forked child that holds only `fd` (the process's pages become copy-on-write).
void close_through_a_fork(int fd) {
    if (::fork() == 0) {
        if (fd > 0) ::close_range(0, static_cast<unsigned>(fd) - 1, 0);
        ::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
        ::close(fd);
        ::_exit(0);
    }
    ::close(fd);
}

#if TANDEM_RAW_SYSCALLS
// Valgrind stops a program at a clone() that is neither a thread nor a fork ("Valgrind
// does not support general clone()"); under it, the closer is a fork. Its preload library
// is how it shows (contrib/bench/hot_symbols.py runs tandem under callgrind).
bool under_valgrind() {
    static const bool yes = [] {
        const char* preload = std::getenv("LD_PRELOAD");
        return preload != nullptr && std::strstr(preload, "/vgpreload_") != nullptr;
    }();
    return yes;
}

// The closer runs in this process's memory (CLONE_VM) on a stack of its own, while this
// process goes on: it reads only its handoff, and makes only raw system calls (no errno,
// no locks: the parent may be anywhere). Its descriptor table is a copy; it drops every
// other descriptor first, so sockets, pipes and the journal's lock are not held a moment
// longer than the parent holds them. It closes the watch only once the parent has closed
// its own copy, so that its close is the last one, which waits for the teardown; a
// parent killed in between costs it a second.
__attribute__((no_sanitize("address", "undefined"))) int close_in_child(void* arg) {
    auto* h = static_cast<closer_handoff*>(arg);
    const auto fd = static_cast<unsigned>(h->fd);
    if (fd > 0) raw_syscall(SYS_close_range, 0, fd - 1, 0);
    raw_syscall(SYS_close_range, fd + 1, ~0U, 0);
    timespec wait_at_most{1, 0};
    if (__atomic_load_n(&h->parent_closed, __ATOMIC_ACQUIRE) == 0)
        raw_syscall(SYS_futex, reinterpret_cast<long>(&h->parent_closed), FUTEX_WAIT_PRIVATE, 0,
                    reinterpret_cast<long>(&wait_at_most));
    raw_syscall(SYS_close, fd);
    return 0;
}

constexpr std::size_t closer_stack_size = 64 * 1024;

// Closers started and not yet reaped, with their stacks: a stack is unmapped only once its
// closer has exited. A process that exits first leaves them to the kernel.
struct closers {
    std::mutex lock;
    std::vector<std::pair<pid_t, void*>> running;

    // A stack is unmapped only where waitpid reports its closer exited; one that somebody
    // else reaped (ECHILD) stays mapped, 64 KB of address space.
    void reap() {
        std::erase_if(running, [](const std::pair<pid_t, void*>& c) {
            int status = 0;
            const pid_t r = ::waitpid(c.first, &status, WNOHANG);
            if (r == 0) return false;
            if (r == c.first) ::munmap(c.second, closer_stack_size);
            return true;
        });
    }
};

closers& all_closers() {
    static closers c;
    return c;
}

// Closes `fd`, leaving the last close to a closer where the system lets us start one.
void close_through_a_closer(int fd) {
    if (under_valgrind()) return close_through_a_fork(fd);
    auto& c = all_closers();
    std::lock_guard guard(c.lock);
    c.reap();
    void* stack = ::mmap(nullptr, closer_stack_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED) {
        ::close(fd);
        return;
    }
    auto* h = new (stack) closer_handoff{fd, 0};
    void* top = static_cast<char*>(stack) + closer_stack_size;
    // The child starts with every signal blocked and never unblocks one: a handler of this
    // process run by the child would change this process's memory under it.
    sigset_t all, before;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &before);
    const pid_t pid = ::clone(close_in_child, top, CLONE_VM | SIGCHLD, h);
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    ::close(fd);
    if (pid < 0) {
        ::munmap(stack, closer_stack_size);
        return;
    }
    __atomic_store_n(&h->parent_closed, 1U, __ATOMIC_RELEASE);
    ::syscall(SYS_futex, &h->parent_closed, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0U);
    c.running.emplace_back(pid, stack);
}
#else
void close_through_a_closer(int fd) {
    close_through_a_fork(fd);
}
#endif

}  // namespace

void change_watch::close_without_waiting() {
    if (fd_ < 0) return;
    const int fd = std::exchange(fd_, -1);
    folders_.clear();
    by_wd_.clear();
    // A child that shares this process's memory: a fork would copy the page tables and
    // make the next write to every page fault once (copy-on-write): 110 faults and 2-3 ms
    // in the journal's close after a 50-flag run. This one copies only the descriptors.
    close_through_a_closer(fd);
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
