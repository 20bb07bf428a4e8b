// SPDX-License-Identifier: MIT
// What tandem prints: a progress line per running mailbox on a terminal, the summary, JSON.
#pragma once

#include "tandem/config/config.hpp"
#include "tandem/journal/journal.hpp"
#include "tandem/sync/engine.hpp"
#include "tandem/util/log.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace tandem::cli {

class output {
  public:
    explicit output(bool terminal) : terminal_(terminal) {}
    // Progress lines on a terminal; nothing otherwise (cron, systemd).
    sync::progress_fn progress_callback();
    void finish_progress();
    void summary(const sync::channel_report& report, bool dry_run) const;

  private:
    bool terminal_;
    bool line_open_ = false;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_ = {};
};

std::string to_json(const std::vector<sync::channel_report>& reports, int exit_code);
std::string human_bytes(std::uint64_t bytes);

// `tandem status`: from the journal alone.
bool print_status(const config::configuration& cfg, journal::journal& journal,
                  const std::vector<std::string>& channels, bool json);
// `tandem check-config --connect`: logs in to each store and says what works.
bool check_connections(const config::configuration& cfg, const log::logger& log);
int cmd_watch(std::vector<std::string> args);

}  // namespace tandem::cli
