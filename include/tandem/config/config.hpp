// SPDX-License-Identifier: MIT
// The configuration file (tandem.conf(5)): an INI file whose option descriptions and
// values go through Boost.Program_options. The file is read into plain structs; every
// mistake in it comes back with the file name and line, before anything connects.
#pragma once

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tandem::config {

// One thing wrong, with where it is. `line` is 0 when the problem has no line (a file that
// cannot be opened, a password command that fails at run time).
struct diagnostic {
    std::string file;
    unsigned line = 0;
    std::string text;
    // "tandem.conf:12: unknown key ...", or just the text when there is no file.
    std::string to_string() const;
};

// What went wrong. Loading reports every mistake of a file at once, in line order.
struct error {
    std::vector<diagnostic> diagnostics;
    error() = default;
    explicit error(diagnostic d) { diagnostics.push_back(std::move(d)); }
    // The diagnostics, one per line. Never contains a password or token.
    std::string message() const;
};

template <class T>
using result = boost::system::result<T, error>;

// Lets result<T>::value() throw on an error (found by ADL from boost::system::result).
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

enum class log_level { error, warning, info, debug, trace };
enum class tls_mode { implicit, starttls, none };
// `automatic`: PLAIN if the server offers it, else LOGIN.
enum class auth_method { automatic, login, plain, xoauth2, oauthbearer };
enum class compress_mode { automatic, yes, no };
enum class maildir_layout { verbatim, maildirpp };
enum class direction { both, a_to_b, b_to_a };
// Which sides a channel may create folders on, remove folders from, expunge messages on.
enum class sides { both, a, b, none };

// Where a store's secret comes from.
struct secret_source {
    enum class kind { none, password_command, password_file, token_command };
    kind from = kind::none;
    std::string value;  // the command (run with /bin/sh -c) or the file (expanded path)
    unsigned line = 0;
};

struct imap_store {
    std::string name;
    std::string host;  // empty with a tunnel
    std::uint16_t port = 993;
    tls_mode tls = tls_mode::implicit;
    bool allow_plaintext = false;
    std::string user;  // empty: a preauthenticated tunnel
    auth_method auth = auth_method::automatic;
    secret_source secret;
    // Run with /bin/sh -c, like the password commands, so quoting is the shell's.
    std::string tunnel;
    std::filesystem::path ca_file;  // empty: the system's trust store
    std::string fingerprint;        // SHA-256 of the certificate, lower-case hex without colons
    // False only with `tls-insecure-skip-verify = yes-i-know`.
    bool tls_verify = true;
    unsigned connections = 4;
    compress_mode compress = compress_mode::automatic;
    std::vector<std::string> disabled_capabilities;  // upper case
    std::chrono::milliseconds timeout{60'000};
    unsigned line = 0;  // of the section header

    // The argv that runs the tunnel: {"/bin/sh", "-c", tunnel}.
    std::vector<std::string> tunnel_argv() const;
};

struct maildir_store {
    std::string name;
    std::filesystem::path path;
    maildir_layout layout = maildir_layout::verbatim;
    bool fsync = true;
    unsigned line = 0;
};

using store = std::variant<imap_store, maildir_store>;
const std::string& store_name(const store& s);

// The mass-removal guard: a share of a mailbox in percent, or a number of messages.
struct delete_limit {
    enum class kind { percent, count };
    kind unit = kind::percent;
    std::uint64_t value = 50;
    // Whether removing `removals` of `total` messages stays within the limit.
    bool allows(std::uint64_t removals, std::uint64_t total) const;
    friend bool operator==(const delete_limit&, const delete_limit&) = default;
};

// One pattern of a `mailboxes` list.
struct mailbox_pattern {
    std::string text;  // unquoted; `*` matches across `/`, `%` does not
    bool exclude = false;
    bool has_wildcards() const;
    bool matches(std::string_view canonical_name) const;
    friend bool operator==(const mailbox_pattern&, const mailbox_pattern&) = default;
};

// A `mailboxes` list: `* !Junk "My Folder" !"Old Stuff/*"`. A name is selected when it
// matches some include pattern and no exclude pattern, whatever the order. Names are
// canonical: UTF-8 with `/` between levels; INBOX (as the first level) in any case.
class mailbox_patterns {
  public:
    static result<mailbox_patterns> parse(std::string_view text);
    bool matches(std::string_view canonical_name) const;
    const std::vector<mailbox_pattern>& patterns() const { return patterns_; }

  private:
    std::vector<mailbox_pattern> patterns_;
};

struct channel {
    std::string name;
    std::string a;  // store names
    std::string b;
    mailbox_patterns mailboxes;
    config::direction direction = config::direction::both;
    sides create = sides::both;
    sides remove = sides::none;
    sides expunge = sides::both;
    delete_limit max_delete;
    std::optional<std::uint64_t> max_size;  // bytes; none: no limit
    std::string post_sync_command;  // run with /bin/sh -c after a sync that changed something
    unsigned line = 0;
};

struct general_section {
    std::filesystem::path state_dir;
    log_level level = log_level::info;
};

struct configuration {
    std::filesystem::path file;
    general_section general;
    std::vector<store> stores;  // in file order
    std::vector<channel> channels;

    const store* find_store(std::string_view name) const;
    const channel* find_channel(std::string_view name) const;
};

// Looks up an environment variable; the default one reads the process environment.
using environment = std::function<std::optional<std::string>(std::string_view)>;
environment process_environment();

// Reads and checks a configuration file. Reads nothing else: no password, no network.
result<configuration> load(const std::filesystem::path& file,
                           const environment& env = process_environment());
// The same from text, with `file` as the name in diagnostics and the base of relative paths.
result<configuration> parse(std::string_view text, const std::filesystem::path& file,
                            const environment& env = process_environment());

// $XDG_CONFIG_HOME/tandem/tandem.conf, else ~/.config/tandem/tandem.conf.
std::filesystem::path default_config_path(const environment& env = process_environment());
// $XDG_STATE_HOME/tandem, else ~/.local/state/tandem.
std::filesystem::path default_state_dir(const environment& env = process_environment());

// `~` or `~/...` at the start, `$NAME`, `${NAME}`, `${NAME:-default}` anywhere, `$$` for a
// dollar sign. An unset variable is an error (a path that silently lost a part is worse).
result<std::string> expand_path(std::string_view text, const environment& env);

// Value parsers, shared with the command line.
result<std::uint64_t> parse_size(std::string_view text);  // 512, 512k, 50M, 1G (powers of 1024)
result<delete_limit> parse_delete_limit(std::string_view text);  // 50% or 100
result<std::chrono::milliseconds> parse_duration(
    std::string_view text);                      // 500ms 60s 5m 1h; plain: s
result<bool> parse_bool(std::string_view text);  // yes/no true/false on/off 1/0

// The secret of a store, fetched at run time: the first line of the command's output (run
// with /bin/sh -c), or of the file, which group and others must not be able to read. Errors
// name the store and the command's exit status and error output, never its output.
result<std::string> obtain_secret(const imap_store& store);
result<std::string> run_secret_command(std::string_view store_name, std::string_view key,
                                       const std::string& command);
result<std::string> read_secret_file(std::string_view store_name,
                                     const std::filesystem::path& file);

std::string_view to_string(tls_mode m);
std::string_view to_string(auth_method m);
std::string_view to_string(direction d);
std::string_view to_string(sides s);
std::string_view to_string(log_level l);

}  // namespace tandem::config
