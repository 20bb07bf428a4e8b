// SPDX-License-Identifier: MIT
// tandem's command line: `tandem COMMAND [options]`. Exit codes (tandem(1)):
//   0 all synced, 1 some mailboxes failed (the rest synced), 2 usage or configuration
//   error, 3 could not connect or authenticate, 4 the mass-removal guard stopped a sync.
#include "cli/common.hpp"
#include "cli/output.hpp"
#include "cli/stores.hpp"
#include "tandem/config/config.hpp"
#include "tandem/journal/journal.hpp"
#include "tandem/sync/engine.hpp"

#include <boost/program_options.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace po = boost::program_options;

namespace tandem::cli {

// Program_options has no counting switch: main_entry takes -v, -vv, --verbose out of the
// arguments and counts them here before the command parses the rest.
static int verbosity_from_args = 0;

static void count_verbosity(std::vector<std::string>& args) {
    std::erase_if(args, [](const std::string& a) {
        if (a == "--verbose") return ++verbosity_from_args, true;
        if (a.size() >= 2 && a[0] == '-' && a[1] == 'v' &&
            a.find_first_not_of('v', 1) == std::string::npos) {
            verbosity_from_args += static_cast<int>(a.size() - 1);
            return true;
        }
        return false;
    });
}

po::options_description common_description(common_options& o) {
    o.verbosity = verbosity_from_args;
    po::options_description d("Common options");
    d.add_options()("help,h", "show this help")(
        "config,c", po::value(&o.config_file),
        "configuration file (default ~/.config/tandem/tandem.conf)")(
        "verbose,v", "more output (twice, -vv: protocol trace)")(
        "quiet,q", po::bool_switch(&o.quiet), "errors only");
    return d;
}

int usage(const std::string& text) {
    std::cerr << "tandem: " << text << "\nTry 'tandem --help'.\n";
    return exit_usage;
}

static void print_main_help() {
    std::cout
        << "Usage: tandem COMMAND [OPTIONS] [ARGS]\n"
           "Keeps two mail stores in step: IMAP with IMAP, or IMAP with a local Maildir.\n\n"
           "Commands:\n"
           "  sync [CHANNEL|CHANNEL:MAILBOX ...]  sync all channels, or those named\n"
           "  list [STORE]                         the mailboxes of a store, with counts\n"
           "  status [CHANNEL]                     what the journal knows (no network)\n"
           "  watch [CHANNEL ...]                  stay connected and sync on every change\n"
           "  check-config [--connect]             check the configuration (and log in)\n\n"
           "  tandem COMMAND --help                the options of a command\n"
           "  tandem --version\n\n"
           "Exit codes: 0 all synced; 1 some mailboxes failed; 2 usage or configuration\n"
           "error; 3 could not connect or authenticate; 4 the mass-removal guard stopped a sync.\n";
}

log::level level_from(const common_options& o, const po::variables_map& vm,
                      config::log_level configured) {
    if (o.quiet) return log::level::error;
    (void)vm;
    const int v = o.verbosity;
    if (v >= 2) return log::level::trace;
    if (v == 1) return log::level::debug;
    return static_cast<log::level>(static_cast<int>(configured));
}

log::logger make_logger(log::level threshold) {
    return log::logger(threshold, [](log::level l, std::string_view text) {
        std::string line = "tandem: ";
        if (l != log::level::info) line += std::string(log::name(l)) + ": ";
        line += text;
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stderr);
    });
}

std::optional<config::configuration> load_config(const common_options& o) {
    std::filesystem::path file = o.config_file.empty() ? config::default_config_path()
                                                       : std::filesystem::path(o.config_file);
    auto cfg = config::load(file);
    if (!cfg) {
        std::cerr << cfg.error().message();
        if (!cfg.error().message().ends_with('\n')) std::cerr << '\n';
        return std::nullopt;
    }
    return std::move(*cfg);
}

std::optional<journal::journal> open_journal(const config::configuration& cfg,
                                             const log::logger& log) {
    journal::journal_options jo;
    jo.state_dir = cfg.general.state_dir;
    std::string diagnostic;
    auto j = journal::journal::open(jo, &diagnostic);
    if (!j) {
        log.error(diagnostic.empty() ? "cannot open the journal in " + jo.state_dir.string() +
                                           ": " + j.error().message()
                                     : diagnostic);
        return std::nullopt;
    }
    return std::move(*j);
}

static mail::per_side<bool> to_sides(config::sides s) {
    switch (s) {
        case config::sides::both:
            return {true, true};
        case config::sides::a:
            return {true, false};
        case config::sides::b:
            return {false, true};
        case config::sides::none:
            return {false, false};
    }
    return {false, false};
}

sync::channel_job make_job(const config::channel& ch, bool force, bool dry_run) {
    sync::channel_job job;
    job.name = ch.name;
    job.rules.dir = ch.direction == config::direction::both     ? sync::direction::both
                    : ch.direction == config::direction::a_to_b ? sync::direction::a_to_b
                                                                : sync::direction::b_to_a;
    job.rules.may_create = to_sides(ch.create);
    job.rules.may_remove = to_sides(ch.remove);
    job.rules.may_expunge = to_sides(ch.expunge);
    if (ch.max_delete.unit == config::delete_limit::kind::percent) {
        job.rules.max_delete_share = static_cast<double>(ch.max_delete.value) / 100.0;
    } else {
        job.rules.max_delete_share = 1.0;
        job.rules.max_delete_count = ch.max_delete.value;
    }
    job.rules.force = force;
    job.rules.max_size = ch.max_size.value_or(0);
    auto patterns = ch.mailboxes;
    job.selects = [patterns](const std::string& name) { return patterns.matches(name); };
    job.dry_run = dry_run;
    return job;
}

static void run_post_sync(const config::channel& ch, const log::logger& log) {
    if (ch.post_sync_command.empty()) return;
    log.debug("running post-sync-command of " + ch.name);
    int rc = std::system(ch.post_sync_command.c_str());
    if (rc != 0)
        log.warning("post-sync-command of channel " + ch.name + " exited with status " +
                    std::to_string(rc));
}

// Opens a channel's two stores. Two IMAP stores connect at the same time: the logins (and a
// tunnel's start, 25 ms for a local Dovecot) overlap instead of adding up. A Maildir store
// opens at once and may read the journal, so it is opened on this thread.
using opened_store = boost::system::result<std::unique_ptr<store::store>, store_failure>;
std::pair<opened_store, opened_store> open_stores(const config::store& a, const config::store& b,
                                                  journal::journal& journal,
                                                  const log::logger& log) {
    if (std::holds_alternative<config::imap_store>(a) &&
        std::holds_alternative<config::imap_store>(b)) {
        std::future<opened_store> second;
        try {
            second = std::async(std::launch::async, [&] { return open_store(b, journal, log); });
        } catch (const std::system_error&) {
            // no thread to be had: one after the other
        }
        if (second.valid()) {
            auto first = open_store(a, journal, log);
            return {std::move(first), second.get()};
        }
    }
    auto first = open_store(a, journal, log);
    if (!first) return {std::move(first), store_failure{}};
    return {std::move(first), open_store(b, journal, log)};
}

int run_sync(const config::configuration& cfg, journal::journal& journal, const sync_request& req,
             const log::logger& log) {
    output out(isatty(STDERR_FILENO) && !req.quiet && !req.json);
    int code = exit_ok;
    std::vector<sync::channel_report> reports;
    for (const auto& [ch, only] : req.channels) {
        auto job = make_job(*ch, req.force, req.dry_run);
        job.only = only;
        // A Maildir adds no connections: the IMAP side's setting (the lower of two) bounds.
        job.connections = 64;
        for (const auto* st : {cfg.find_store(ch->a), cfg.find_store(ch->b)})
            if (const auto* imap = std::get_if<config::imap_store>(st))
                job.connections = std::min(job.connections, imap->connections);
        // For tests: every mailbox worth a connection of its own (channel_job::lane_work).
        if (const char* v = std::getenv("TANDEM_LANE_WORK")) {
            std::uint64_t n = 0;
            const std::string_view text(v);
            if (std::from_chars(text.data(), text.data() + text.size(), n).ec == std::errc() && n)
                job.lane_work = n;
        }
        sync::channel_report rep;
        rep.channel = ch->name;
        auto [a, b] = open_stores(*cfg.find_store(ch->a), *cfg.find_store(ch->b), journal, log);
        std::unique_ptr<store::store> b_store;
        if (a) {
            if (b)
                b_store = std::move(*b);
            else {
                rep.failed = true;
                rep.failure = b.error().code;
                rep.error = b.error().message;
            }
        } else {
            rep.failed = true;
            rep.failure = a.error().code;
            rep.error = a.error().message;
        }
        if (!rep.failed) {
            rep = sync::run_channel(journal, job, **a, *b_store, log, out.progress_callback());
            if (!req.dry_run) {
                remember_link(journal, *cfg.find_store(ch->a), **a, log);
                remember_link(journal, *cfg.find_store(ch->b), *b_store, log);
            }
            // Both LOGOUTs out before either answer is waited for.
            (*a)->close_ahead();
            b_store->close_ahead();
        }
        out.finish_progress();
        if (rep.failed) {
            log.error("channel " + ch->name + ": " + rep.error);
            // A store that refuses to list because it looks unmounted is the guard's case.
            // Precedence: 3 over 4 over 1.
            if (rep.failure != errc::guard_tripped)
                code = exit_connect;
            else if (code != exit_connect)
                code = exit_guard;
        } else {
            for (const auto& m : rep.mailboxes) {
                if (m.failed) code = std::max(code, exit_partial);
                if (m.guarded && code < exit_connect) code = exit_guard;
            }
            if (!req.dry_run && rep.total.any()) run_post_sync(*ch, log);
        }
        if (!req.json && !req.quiet) out.summary(rep, req.dry_run);
        reports.push_back(std::move(rep));
    }
    if (req.json) std::cout << to_json(reports, code) << '\n';
    return code;
}

namespace {

int cmd_sync(std::vector<std::string> args) {
    common_options o;
    bool dry_run = false, force = false, json = false;
    std::vector<std::string> targets;
    auto desc = common_description(o);
    desc.add_options()("dry-run,n", po::bool_switch(&dry_run),
                       "print what would be done; change nothing")("force", po::bool_switch(&force),
                                                                   "pass the mass-removal guard")(
        "json", po::bool_switch(&json), "print the summary as JSON on stdout");
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
        std::cout << "Usage: tandem sync [OPTIONS] [CHANNEL|CHANNEL:MAILBOX ...]\n" << desc;
        return exit_ok;
    }
    auto cfg = load_config(o);
    if (!cfg) return exit_usage;
    auto log = make_logger(level_from(o, vm, cfg->general.level));

    // CHANNEL or CHANNEL:MAILBOX; none: every channel.
    std::vector<std::pair<const config::channel*, std::vector<std::string>>> selected;
    auto select = [&](const config::channel* ch) -> std::vector<std::string>& {
        for (auto& s : selected)
            if (s.first == ch) return s.second;
        selected.push_back({ch, {}});
        return selected.back().second;
    };
    if (targets.empty()) {
        for (const auto& ch : cfg->channels) select(&ch);
    }
    for (const auto& t : targets) {
        auto colon = t.find(':');
        std::string name = t.substr(0, colon);
        const auto* ch = cfg->find_channel(name);
        if (!ch) return usage("no channel named \"" + name + "\" in " + cfg->file.string());
        auto& only = select(ch);
        if (colon != std::string::npos) only.push_back(t.substr(colon + 1));
    }

    auto journal = open_journal(*cfg, log);
    if (!journal) return exit_partial;
    sync_request req;
    req.dry_run = dry_run;
    req.force = force;
    req.json = json;
    req.quiet = o.quiet;
    req.channels = std::move(selected);
    return run_sync(*cfg, *journal, req, log);
}

int cmd_status(std::vector<std::string> args) {
    common_options o;
    std::vector<std::string> targets;
    bool json = false;
    auto desc = common_description(o);
    desc.add_options()("json", po::bool_switch(&json), "print as JSON");
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
        std::cout
            << "Usage: tandem status [OPTIONS] [CHANNEL ...]\nFrom the journal alone, no network.\n"
            << desc;
        return exit_ok;
    }
    auto cfg = load_config(o);
    if (!cfg) return exit_usage;
    auto log = make_logger(level_from(o, vm, cfg->general.level));
    for (const auto& t : targets)
        if (!cfg->find_channel(t)) return usage("no channel named \"" + t + "\"");
    auto journal = open_journal(*cfg, log);
    if (!journal) return exit_partial;
    return print_status(*cfg, *journal, targets, json) ? exit_ok : exit_partial;
}

int cmd_list(std::vector<std::string> args) {
    common_options o;
    std::vector<std::string> targets;
    auto desc = common_description(o);
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
        std::cout << "Usage: tandem list [OPTIONS] [STORE ...]\nThe mailboxes of each store, with "
                     "message counts.\n"
                  << desc;
        return exit_ok;
    }
    auto cfg = load_config(o);
    if (!cfg) return exit_usage;
    auto log = make_logger(level_from(o, vm, cfg->general.level));
    for (const auto& t : targets)
        if (!cfg->find_store(t)) return usage("no store named \"" + t + "\"");
    auto journal = open_journal(*cfg, log);
    if (!journal) return exit_partial;
    int code = exit_ok;
    for (const auto& s : cfg->stores) {
        const auto& name = config::store_name(s);
        if (!targets.empty() && std::find(targets.begin(), targets.end(), name) == targets.end())
            continue;
        auto st = open_store(s, *journal, log);
        if (!st) {
            log.error(st.error().message);
            code = exit_connect;
            continue;
        }
        auto boxes = (*st)->list();
        if (!boxes) {
            log.error("listing " + (*st)->describe() + ": " + (*st)->last_error());
            code = std::max(code, exit_partial);
            continue;
        }
        std::cout << name << " (" << (*st)->describe() << ")\n";
        for (const auto& m : *boxes) {
            std::uint32_t messages = 0;
            if (m.status)
                messages = m.status->messages;
            else if (m.selectable)
                if (auto s2 = (*st)->status(m.name)) messages = s2->messages;
            std::cout << "  " << m.name;
            if (m.selectable)
                std::cout << "  " << messages << " messages";
            else
                std::cout << "  (not selectable)";
            if (!m.special_use.empty()) std::cout << "  " << m.special_use;
            std::cout << '\n';
        }
    }
    return code;
}

int cmd_check_config(std::vector<std::string> args) {
    common_options o;
    bool connect = false;
    auto desc = common_description(o);
    desc.add_options()("connect", po::bool_switch(&connect),
                       "log in to each store and report step by step");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        return usage(e.what());
    }
    if (vm.count("help")) {
        std::cout << "Usage: tandem check-config [OPTIONS]\n" << desc;
        return exit_ok;
    }
    auto cfg = load_config(o);
    if (!cfg) return exit_usage;
    std::cout << cfg->file.string() << ": OK, " << cfg->stores.size() << " stores, "
              << cfg->channels.size() << " channels\n";
    if (!connect) return exit_ok;
    auto log = make_logger(level_from(o, vm, cfg->general.level));
    return check_connections(*cfg, log) ? exit_ok : exit_connect;
}

// The soft limit on open files up to the hard one (at most 65,536): a Maildir delivery keeps
// each batch's files open from their write to their fsync (maildir::delivery_batch), and
// nothing in the process uses select(2), which would not take descriptors above 1,023.
// Children (a tunnel's command) start with it too.
void raise_open_files_limit() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    const rlim_t want = std::min<rlim_t>(rl.rlim_max, 65536);
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = want;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
}

}  // namespace

int main_entry(int argc, char** argv) {
    raise_open_files_limit();
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        print_main_help();
        return exit_usage;
    }
    std::string command = args.front();
    args.erase(args.begin());
    count_verbosity(args);
    if (command == "--help" || command == "-h" || command == "help") {
        print_main_help();
        return exit_ok;
    }
    if (command == "--version" || command == "version") {
        std::cout << "tandem " << TANDEM_VERSION << '\n';
        return exit_ok;
    }
    if (command == "sync") return cmd_sync(args);
    if (command == "status") return cmd_status(args);
    if (command == "list") return cmd_list(args);
    if (command == "check-config") return cmd_check_config(args);
    if (command == "watch") return cmd_watch(args);
    return usage("unknown command \"" + command + "\"");
}

}  // namespace tandem::cli

int main(int argc, char** argv) {
    try {
        return tandem::cli::main_entry(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "tandem: internal error: " << e.what() << '\n';
        return 1;
    }
}
