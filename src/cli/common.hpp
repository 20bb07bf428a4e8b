// SPDX-License-Identifier: MIT
// What the commands share: options, loading the configuration and the journal, a sync pass.
#pragma once

#include "tandem/config/config.hpp"
#include "tandem/journal/journal.hpp"
#include "tandem/sync/engine.hpp"
#include "tandem/util/log.hpp"

#include <boost/program_options.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tandem::cli {

// tandem(1) EXIT STATUS.
constexpr int exit_ok = 0, exit_partial = 1, exit_usage = 2, exit_connect = 3, exit_guard = 4;

struct common_options {
    std::string config_file;
    int verbosity = 0;
    bool quiet = false;
};

boost::program_options::options_description common_description(common_options& o);
int usage(const std::string& text);
log::level level_from(const common_options& o, const boost::program_options::variables_map& vm,
                      config::log_level configured);
log::logger make_logger(log::level threshold);
std::optional<config::configuration> load_config(const common_options& o);
std::optional<journal::journal> open_journal(const config::configuration& cfg,
                                             const log::logger& log);
sync::channel_job make_job(const config::channel& ch, bool force, bool dry_run);

struct sync_request {
    // The channels, each with its CHANNEL:MAILBOX restrictions (empty: all its mailboxes).
    std::vector<std::pair<const config::channel*, std::vector<std::string>>> channels;
    bool dry_run = false;
    bool force = false;
    bool json = false;
    bool quiet = false;
};

// One sync pass over the requested channels; returns the exit code.
int run_sync(const config::configuration& cfg, journal::journal& journal, const sync_request& req,
             const log::logger& log);

}  // namespace tandem::cli
