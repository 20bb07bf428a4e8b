// SPDX-License-Identifier: MIT
// `tandem watch`: sync, then wait for a change and sync again. IMAP IDLE on each server's
// INBOX and inotify on every Maildir folder wake it within seconds; a periodic full pass
// catches what neither reports (other folders of a server). A failed pass is retried with
// back-off, so a network loss ends in a reconnect and a sync.
#include "cli/common.hpp"
#include "cli/output.hpp"
#include "cli/stores.hpp"

#include "tandem/client/session.hpp"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

namespace po = boost::program_options;

namespace tandem::cli {
namespace {

// Wakes the main loop; the watchers set it from their threads.
class trigger {
  public:
    void fire(std::string why) {
        std::lock_guard lock(mutex_);
        if (!fired_) why_ = std::move(why);
        fired_ = true;
        cv_.notify_all();
    }
    // Waits up to `timeout`; returns the reason, or "" on time-out.
    std::string wait(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, timeout, [&] { return fired_; });
        std::string why = fired_ ? why_ : "";
        fired_ = false;
        return why;
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool fired_ = false;
    std::string why_;
};

// IDLE on INBOX of one IMAP store, reconnecting with back-off.
void idle_watcher(const config::imap_store cfg, const log::logger& log, trigger& t,
                  std::atomic<bool>& stop) {
    auto backoff = std::chrono::seconds(1);
    while (!stop) {
        auto ep = make_endpoint(cfg, log);
        if (!ep) {
            log.error("watch: " + ep.error().message);
            return;
        }
        ep->trace = nullptr;
        auto session = client::session::connect(*ep);
        if (!session || !(*session)->has("IDLE")) {
            if (session) {
                log.warning("watch: " + cfg.name + " has no IDLE; relying on the periodic pass");
                return;
            }
            log.warning("watch: cannot connect to " + cfg.name + ": " + session.error().message() +
                        "; retrying in " + std::to_string(backoff.count()) + " s");
            std::this_thread::sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::seconds(300));
            continue;
        }
        if (auto sel = (*session)->select("INBOX"); !sel) {
            log.warning("watch: cannot select INBOX on " + cfg.name);
            return;
        }
        backoff = std::chrono::seconds(1);
        while (!stop) {
            // RFC 2177: re-issue IDLE at least every 29 minutes.
            auto r = (*session)->idle(std::chrono::minutes(25));
            if (!r) {
                log.warning("watch: connection to " + cfg.name + " lost; reconnecting");
                t.fire("connection to " + cfg.name + " lost");
                break;
            }
            if (*r) {
                (void)(*session)->take_unsolicited();
                t.fire("IMAP IDLE on " + cfg.name);
            }
        }
    }
}

// inotify on the new/ and cur/ directories of every folder below a Maildir root.
void maildir_watcher(const config::maildir_store cfg, const log::logger& log, trigger& t,
                     std::atomic<bool>& stop) {
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) {
        log.warning("watch: inotify unavailable; relying on the periodic pass");
        return;
    }
    // Returns whether the root exists; called again after every event and, while the root
    // is missing (the first sync creates it), every second.
    auto add_all = [&] {
        std::error_code ec;
        if (!std::filesystem::is_directory(cfg.path, ec)) return false;
        constexpr auto mask =
            IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR;
        inotify_add_watch(fd, cfg.path.c_str(), mask);
        for (std::filesystem::recursive_directory_iterator it(cfg.path, ec), end; !ec && it != end;
             it.increment(ec)) {
            if (!it->is_directory(ec)) continue;
            auto name = it->path().filename().string();
            if (name == "tmp") {
                it.disable_recursion_pending();
                continue;
            }
            inotify_add_watch(fd, it->path().c_str(), mask);
            if (name == "cur" || name == "new") it.disable_recursion_pending();
        }
        return true;
    };
    bool watching = add_all();
    char buf[16384];
    while (!stop) {
        pollfd p{fd, POLLIN, 0};
        int n = ::poll(&p, 1, 1000);
        if (n <= 0) {
            // A change made between the root's creation (by the first pass) and these
            // watches raised no event: one more pass picks it up.
            if (!watching && (watching = add_all())) t.fire(cfg.path.string() + " appeared");
            continue;
        }
        bool any = false;
        while (::read(fd, buf, sizeof buf) > 0) any = true;
        if (any) {
            watching = add_all();  // a new folder gets its watches too
            t.fire("change in " + cfg.path.string());
        }
    }
    ::close(fd);
}

}  // namespace

int cmd_watch(std::vector<std::string> args) {
    common_options o;
    std::vector<std::string> targets;
    unsigned interval = 300;
    auto desc = common_description(o);
    desc.add_options()("interval", po::value(&interval),
                       "seconds between full passes (default 300)");
    po::options_description hidden;
    hidden.add_options()("target", po::value(&targets));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("target", -1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return usage(e.what());
    }
    if (vm.count("help")) {
        std::cout << "Usage: tandem watch [OPTIONS] [CHANNEL ...]\n"
                     "Stays connected; syncs within seconds of a change (IMAP IDLE, inotify).\n"
                  << desc;
        return exit_ok;
    }
    auto cfg = load_config(o);
    if (!cfg) return exit_usage;
    auto log = make_logger(level_from(o, vm, cfg->general.level));
    sync_request req;
    req.quiet = o.quiet;
    for (const auto& t : targets) {
        const auto* ch = cfg->find_channel(t);
        if (!ch) return usage("no channel named \"" + t + "\"");
        req.channels.push_back({ch, {}});
    }
    if (targets.empty())
        for (const auto& ch : cfg->channels) req.channels.push_back({&ch, {}});
    auto journal = open_journal(*cfg, log);
    if (!journal) return exit_partial;

    trigger t;
    std::atomic<bool> stop{false};
    std::vector<std::thread> watchers;
    std::vector<std::string> watched;
    for (const auto& [ch, only] : req.channels) {
        for (const auto* name : {&ch->a, &ch->b}) {
            if (std::find(watched.begin(), watched.end(), *name) != watched.end()) continue;
            watched.push_back(*name);
            const auto* s = cfg->find_store(*name);
            if (const auto* imap = std::get_if<config::imap_store>(s))
                watchers.emplace_back(idle_watcher, *imap, std::cref(log), std::ref(t),
                                      std::ref(stop));
            else
                watchers.emplace_back(maildir_watcher, std::get<config::maildir_store>(*s),
                                      std::cref(log), std::ref(t), std::ref(stop));
        }
    }
    for (auto& w : watchers) w.detach();

    auto backoff = std::chrono::seconds(1);
    for (;;) {
        int code = run_sync(*cfg, *journal, req, log);
        std::chrono::milliseconds wait = std::chrono::seconds(interval);
        if (code == exit_connect || code == exit_partial) {
            wait = backoff;
            backoff = std::min(backoff * 2, std::chrono::seconds(300));
            log.info(
                "watch: retrying in " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(wait).count()) +
                " s");
        } else {
            backoff = std::chrono::seconds(1);
        }
        std::string why = t.wait(wait);
        if (!why.empty()) {
            log.debug("watch: " + why);
            // Let a burst of changes settle into one pass.
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            (void)t.wait(std::chrono::milliseconds(0));
        }
    }
}

}  // namespace tandem::cli
