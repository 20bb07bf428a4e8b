// SPDX-License-Identifier: MIT
// Reads tandem.conf. The lines are split here, so that every diagnostic carries its line
// (Program_options' own INI reader keeps no line numbers, knows no inline `;` comments and
// no duplicate sections); the keys and values of each section then go through a
// Program_options description of that section's kind, whose typed values parse the
// values.
#include "values_p.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace tandem::config {

// Program_options parses typed values through `validate` overloads found by ADL; the parsers'
// own messages travel in bad_value and end up after "bad value ... :" in the diagnostic.
namespace {

class bad_value : public po::error {
  public:
    explicit bad_value(const std::string& what) : po::error(what) {}
};

template <class E, std::size_t N>
void validate_enum(boost::any& v, const std::vector<std::string>& values,
                   const std::array<detail::enum_entry<E>, N>& table) {
    const std::string& s = po::validators::get_single_string(values);
    if (auto e = detail::lookup(table, s)) {
        v = *e;
        return;
    }
    std::string text = "expected " + detail::alternatives(table);
    if (auto guess = detail::closest(s, [&] {
            std::vector<std::string> names;
            for (const auto& e : table) names.emplace_back(e.name);
            return names;
        }()))
        text += " (did you mean \"" + *guess + "\"?)";
    throw bad_value(text);
}

template <class T>
T unwrap(result<T> r) {
    if (!r) throw bad_value(r.error().message());
    return *r;
}

struct flag {
    bool value = false;
};
struct port_number {
    std::uint16_t value = 0;
};
struct count {
    std::uint64_t value = 0;
};
struct size_value {
    std::uint64_t value = 0;
};
struct duration_value {
    std::chrono::milliseconds value{0};
};

void validate(boost::any& v, const std::vector<std::string>& values, flag*, int) {
    v = flag{unwrap(parse_bool(po::validators::get_single_string(values)))};
}
void validate(boost::any& v, const std::vector<std::string>& values, count*, int) {
    const std::string& s = po::validators::get_single_string(values);
    std::uint64_t n = 0;
    if (s.empty() || s.size() > 9 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw bad_value("expected a number");
    for (char c : s) n = n * 10 + static_cast<unsigned>(c - '0');
    v = count{n};
}
void validate(boost::any& v, const std::vector<std::string>& values, port_number*, int) {
    count c;
    boost::any tmp;
    try {
        validate(tmp, values, &c, 0);
    } catch (const bad_value&) {
        throw bad_value("expected a port number from 1 to 65535");
    }
    c = boost::any_cast<count>(tmp);
    if (c.value == 0 || c.value > 65535) throw bad_value("expected a port number from 1 to 65535");
    v = port_number{static_cast<std::uint16_t>(c.value)};
}
void validate(boost::any& v, const std::vector<std::string>& values, size_value*, int) {
    v = size_value{unwrap(parse_size(po::validators::get_single_string(values)))};
}
void validate(boost::any& v, const std::vector<std::string>& values, duration_value*, int) {
    v = duration_value{unwrap(parse_duration(po::validators::get_single_string(values)))};
}

}  // namespace

// The public value types parse in the namespace that declares them.
void validate(boost::any& v, const std::vector<std::string>& values, tls_mode*, int) {
    validate_enum(v, values, detail::tls_modes);
}
void validate(boost::any& v, const std::vector<std::string>& values, auth_method*, int) {
    validate_enum(v, values, detail::auth_methods);
}
void validate(boost::any& v, const std::vector<std::string>& values, compress_mode*, int) {
    validate_enum(v, values, detail::compress_modes);
}
void validate(boost::any& v, const std::vector<std::string>& values, maildir_layout*, int) {
    validate_enum(v, values, detail::maildir_layouts);
}
void validate(boost::any& v, const std::vector<std::string>& values, direction*, int) {
    validate_enum(v, values, detail::directions);
}
void validate(boost::any& v, const std::vector<std::string>& values, sides*, int) {
    validate_enum(v, values, detail::sides_values);
}
void validate(boost::any& v, const std::vector<std::string>& values, log_level*, int) {
    validate_enum(v, values, detail::log_levels);
}
void validate(boost::any& v, const std::vector<std::string>& values, delete_limit*, int) {
    v = unwrap(parse_delete_limit(po::validators::get_single_string(values)));
}
void validate(boost::any& v, const std::vector<std::string>& values, mailbox_patterns*, int) {
    v = unwrap(mailbox_patterns::parse(po::validators::get_single_string(values)));
}

namespace {

// The option descriptions, one per kind of section. These names are the interface that
// scripts and docs rely on (issue 4); tandem.conf(5) documents each.
po::options_description general_options() {
    po::options_description d("[general]");
    d.add_options()                                                         //
        ("state-dir", po::value<std::string>(), "where the journal lives")  //
        ("log-level", po::value<log_level>(), "error|warning|info|debug|trace");
    return d;
}

po::options_description imap_options() {
    po::options_description d("[store.NAME] type = imap");
    d.add_options()                                                                        //
        ("type", po::value<std::string>(), "imap")                                         //
        ("host", po::value<std::string>(), "server name")                                  //
        ("port", po::value<port_number>(), "993 with tls = implicit, else 143")            //
        ("tls", po::value<tls_mode>(), "implicit|starttls|none")                           //
        ("allow-plaintext", po::value<flag>(), "required for tls = none")                  //
        ("user", po::value<std::string>(), "login name")                                   //
        ("auth", po::value<auth_method>(), "login|plain|xoauth2|oauthbearer")              //
        ("password-command", po::value<std::string>(), "prints the password")              //
        ("password-file", po::value<std::string>(), "holds the password (mode 600)")       //
        ("token-command", po::value<std::string>(), "prints the OAuth2 access token")      //
        ("tunnel", po::value<std::string>(), "command speaking IMAP on stdin/stdout")      //
        ("ca-file", po::value<std::string>(), "trust anchors instead of the system's")     //
        ("fingerprint", po::value<std::string>(), "sha256:HEX of the server certificate")  //
        ("tls-verify", po::value<flag>(), "yes")                                           //
        ("tls-insecure-skip-verify", po::value<std::string>(), "yes-i-know")               //
        ("connections", po::value<count>(), "parallel connections, default 4")             //
        ("compress", po::value<compress_mode>(), "auto|yes|no (COMPRESS=DEFLATE)")         //
        ("disable-capabilities", po::value<std::string>(), "capabilities to ignore")       //
        ("timeout", po::value<duration_value>(), "default 60s");
    return d;
}

po::options_description maildir_options() {
    po::options_description d("[store.NAME] type = maildir");
    d.add_options()                                                     //
        ("type", po::value<std::string>(), "maildir")                   //
        ("path", po::value<std::string>(), "root of the Maildir tree")  //
        ("layout", po::value<maildir_layout>(), "verbatim|maildir++")   //
        ("fsync", po::value<flag>(), "default yes");
    return d;
}

po::options_description channel_options() {
    po::options_description d("[channel.NAME]");
    d.add_options()                                                                      //
        ("a", po::value<std::string>(), "store of side a")                               //
        ("b", po::value<std::string>(), "store of side b")                               //
        ("mailboxes", po::value<mailbox_patterns>(), "patterns, ! excludes; default *")  //
        ("direction", po::value<direction>(), "both|a-to-b|b-to-a")                      //
        ("create", po::value<sides>(), "both|a|b|none")                                  //
        ("remove", po::value<sides>(), "both|a|b|none")                                  //
        ("expunge", po::value<sides>(), "both|a|b|none")                                 //
        ("max-delete", po::value<delete_limit>(), "50% or a number of messages")         //
        ("max-size", po::value<size_value>(), "larger messages are skipped")             //
        ("post-sync-command", po::value<std::string>(), "run after a sync that changed something");
    return d;
}

std::vector<std::string> option_names(const po::options_description& d) {
    std::vector<std::string> names;
    for (const auto& o : d.options()) names.push_back(o->long_name());
    return names;
}

struct entry {
    std::string key;
    std::string value;
    unsigned line = 0;
    bool broken = false;  // reported already; only keeps "missing key" quiet for its key
};

struct section {
    std::string header;  // "store.work"
    std::string kind;    // "general", "store", "channel"
    std::string name;
    unsigned line = 0;
    std::vector<entry> entries;
};

bool valid_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == '@' || c == '+';
    });
}

// A `;` or `#` that begins the text or follows a blank starts a comment, unless it is
// inside double quotes: `pass show a;b` keeps its `;`, `"Foo ; Bar"` too.
std::string_view strip_comment(std::string_view s) {
    bool quoted = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (quoted) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if ((c == ';' || c == '#') && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
            return s.substr(0, i);
        }
    }
    return s;
}

// A value wholly in double quotes loses them (paths with blanks or `;`); commands and
// mailbox patterns keep theirs, which belong to the shell's or the pattern syntax.
std::string unquote(std::string_view v) {
    if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::string(v);
    std::string out;
    for (std::size_t i = 1; i + 1 < v.size(); ++i) {
        if (v[i] == '\\' && i + 2 < v.size())
            ++i;
        else if (v[i] == '"')
            return std::string(v);  // "a" "b": not one quoted string
        out += v[i];
    }
    return out;
}

class loader {
  public:
    loader(std::string file, std::filesystem::path base, const environment& env)
        : file_(std::move(file)), base_(std::move(base)), env_(env) {}

    result<configuration> run(std::string_view text) {
        configuration cfg;
        cfg.file = file_;
        cfg.general.state_dir = default_state_dir(env_);
        std::vector<section> sections = lex(text);
        std::map<std::string, unsigned> seen;
        for (auto& s : sections) {
            if (auto [it, fresh] = seen.emplace(s.header, s.line); !fresh) {
                report(s.line, "duplicate section [" + s.header + "] (first on line " +
                                   std::to_string(it->second) + ")");
                continue;
            }
            if (s.kind == "general")
                read_general(s, cfg.general);
            else if (s.kind == "store")
                read_store(s, cfg);
            else
                read_channel(s, cfg);
        }
        check_references(cfg);
        if (!diagnostics_.empty()) {
            std::stable_sort(
                diagnostics_.begin(), diagnostics_.end(),
                [](const diagnostic& x, const diagnostic& y) { return x.line < y.line; });
            error e;
            e.diagnostics = std::move(diagnostics_);
            return e;
        }
        return cfg;
    }

  private:
    void report(unsigned line, std::string text) {
        diagnostics_.push_back(diagnostic{file_, line, std::move(text)});
    }

    std::vector<section> lex(std::string_view text) {
        std::vector<section> out;
        if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a UTF-8 BOM
        unsigned number = 0;
        bool skipping = false;  // inside a section that was not understood
        while (!text.empty()) {
            ++number;
            const std::size_t nl = text.find('\n');
            std::string_view raw = text.substr(0, nl);
            text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
            std::string_view line = detail::trim(raw);
            if (line.empty() || line.front() == ';' || line.front() == '#') continue;
            if (line.front() == '[') {
                skipping = true;
                const std::size_t close = line.find(']');
                if (close == std::string_view::npos) {
                    report(number, "section header without \"]\"");
                    continue;
                }
                if (!detail::trim(strip_comment(line.substr(close + 1))).empty()) {
                    report(number, "text after the section header");
                    continue;
                }
                section s;
                s.line = number;
                s.header = std::string(detail::trim(line.substr(1, close - 1)));
                const std::size_t dot = s.header.find('.');
                s.kind = s.header.substr(0, dot);
                if (dot != std::string::npos) s.name = s.header.substr(dot + 1);
                if (s.header == "general") {
                    // fine
                } else if ((s.kind == "store" || s.kind == "channel") && dot != std::string::npos) {
                    if (!valid_name(s.name)) {
                        report(number, "bad " + s.kind + " name \"" + s.name +
                                           "\" (letters, digits and - _ . @ + only)");
                        continue;
                    }
                } else {
                    std::string msg = "unknown section [" + s.header + "]";
                    const std::string kind = dot == std::string::npos ? s.header : s.kind;
                    if (auto guess = detail::closest(
                            kind, std::vector<std::string>{"general", "store", "channel"});
                        guess && *guess != "general" && dot != std::string::npos)
                        msg += " (did you mean [" + *guess + "." + s.name + "]?)";
                    else if (guess && *guess == "general" && dot == std::string::npos)
                        msg += " (did you mean [general]?)";
                    else if (guess && dot == std::string::npos)
                        msg += " ([" + *guess + ".NAME] needs a name)";
                    else
                        msg += " (expected [general], [store.NAME] or [channel.NAME])";
                    report(number, msg);
                    continue;
                }
                skipping = false;
                out.push_back(std::move(s));
                continue;
            }
            std::string_view content = detail::trim(strip_comment(line));
            if (content.empty()) continue;
            const std::size_t eq = content.find('=');
            if (eq == std::string_view::npos) {
                report(number, "expected \"key = value\"");
                if (!out.empty() && !skipping) {
                    const std::string_view word = content.substr(0, content.find_first_of(" \t"));
                    out.back().entries.push_back(entry{std::string(word), {}, number, true});
                }
                continue;
            }
            entry e;
            e.line = number;
            e.key = std::string(detail::trim(content.substr(0, eq)));
            e.value = std::string(detail::trim(content.substr(eq + 1)));
            if (e.key.empty()) {
                report(number, "expected a key before \"=\"");
                continue;
            }
            if (out.empty() && !skipping) {
                report(number, "\"" + e.key +
                                   "\" outside any section (start with [general], "
                                   "[store.NAME] or [channel.NAME])");
                skipping = true;  // one report is enough for a header that is missing
                continue;
            }
            if (skipping) continue;
            if (e.value.empty()) {
                report(number, "no value for \"" + e.key + "\" in [" + out.back().header + "]");
                continue;
            }
            out.back().entries.push_back(std::move(e));
        }
        return out;
    }

    // Runs the section's entries through its Program_options description. Returns the lines
    // of the keys that were stored.
    std::map<std::string, unsigned> store_options(const section& s,
                                                  const po::options_description& desc,
                                                  po::variables_map& vm,
                                                  const std::vector<std::string>& elsewhere = {}) {
        std::map<std::string, unsigned> lines;
        // Keys the user evidently meant (a typo, a line without "="): the mistake is reported
        // once, not a second time as a missing key.
        std::map<std::string, unsigned> attempted;
        const auto names = option_names(desc);
        for (const auto& e : s.entries) {
            const std::string where = " in [" + s.header + "]";
            if (e.broken) {
                attempted.emplace(e.key, e.line);
                continue;
            }
            if (lines.count(e.key)) {
                report(e.line, "duplicate key \"" + e.key + "\"" + where + " (first on line " +
                                   std::to_string(lines[e.key]) + ")");
                continue;
            }
            if (!desc.find_nothrow(e.key, false, false, false)) {
                std::string msg = "unknown key \"" + e.key + "\"" + where;
                if (e.key == "password" || e.key == "pass")
                    msg +=
                        " (tandem does not read passwords from its configuration file: use "
                        "password-command, or password-file with mode 600)";
                else if (std::find(elsewhere.begin(), elsewhere.end(), e.key) != elsewhere.end())
                    msg += " (it belongs to another type of store)";
                else if (auto guess = detail::closest(e.key, names)) {
                    msg += " (did you mean \"" + *guess + "\"?)";
                    attempted.emplace(*guess, e.line);
                }
                report(e.line, msg);
                continue;
            }
            po::parsed_options parsed(&desc);
            po::option opt(e.key, {e.value});
            opt.original_tokens = {e.key, e.value};
            parsed.options.push_back(std::move(opt));
            try {
                po::store(parsed, vm);
                lines[e.key] = e.line;
            } catch (const po::error& x) {
                report(e.line, "bad value \"" + e.value + "\" for \"" + e.key + "\"" + where +
                                   ": " + x.what());
                // store() leaves an empty value behind; the key counts as given (no "missing"
                // report, a second one is a duplicate) but has no value.
                vm.erase(e.key);
                lines[e.key] = e.line;
            }
        }
        for (const auto& [key, line] : attempted) lines.emplace(key, line);
        return lines;
    }

    std::optional<std::filesystem::path> path_value(const po::variables_map& vm,
                                                    const std::map<std::string, unsigned>& lines,
                                                    const std::string& key,
                                                    const std::string& header) {
        auto expanded = expand_path(unquote(vm[key].as<std::string>()), env_);
        if (!expanded) {
            report(lines.at(key), "cannot expand \"" + key + "\" in [" + header +
                                      "]: " + expanded.error().message());
            return std::nullopt;
        }
        std::filesystem::path p(*expanded);
        if (p.is_relative()) p = base_ / p;  // relative to the configuration file
        return p.lexically_normal();
    }

    void read_general(const section& s, general_section& g) {
        po::variables_map vm;
        auto lines = store_options(s, general_options(), vm);
        if (vm.count("state-dir")) {
            if (auto p = path_value(vm, lines, "state-dir", s.header)) g.state_dir = *p;
        }
        if (vm.count("log-level")) g.level = vm["log-level"].as<log_level>();
    }

    void read_store(const section& s, configuration& cfg) {
        store_names_.insert(s.name);
        auto type = std::find_if(s.entries.begin(), s.entries.end(),
                                 [](const entry& e) { return e.key == "type"; });
        if (type != s.entries.end() && type->broken) return;  // reported as a bad line
        if (type == s.entries.end()) {
            report(s.line, "missing required key \"type\" in [" + s.header + "] (imap or maildir)");
            return;
        }
        const std::string t = detail::to_lower(type->value);
        if (t == "imap") {
            read_imap(s, cfg);
        } else if (t == "maildir") {
            read_maildir(s, cfg);
        } else {
            std::string msg = "bad value \"" + type->value + "\" for \"type\" in [" + s.header +
                              "]: expected imap or maildir";
            if (auto guess = detail::closest(t, std::vector<std::string>{"imap", "maildir"}))
                msg += " (did you mean \"" + *guess + "\"?)";
            report(type->line, msg);
        }
    }

    void read_imap(const section& s, configuration& cfg) {
        po::variables_map vm;
        auto lines = store_options(s, imap_options(), vm, option_names(maildir_options()));
        const auto has = [&](const char* k) { return vm.count(k) > 0; };
        const auto str = [&](const char* k) { return vm[k].as<std::string>(); };
        const std::string where = " in [" + s.header + "]";
        imap_store st;
        st.name = s.name;
        st.line = s.line;

        if (has("tunnel")) {
            st.tunnel = str("tunnel");
            for (const char* k : {"host", "port"})
                if (has(k))
                    report(lines[k], "\"" + std::string(k) +
                                         "\" and \"tunnel\" exclude each other" + where +
                                         " (the tunnel command makes the connection)");
        } else if (has("host")) {
            st.host = unquote(str("host"));
        } else if (!lines.count("host")) {
            report(s.line, "missing required key \"host\" (or \"tunnel\")" + where);
        }

        // A tunnel (ssh, a local imapd) is the secure channel itself, so no TLS by default.
        st.tls = has("tls") ? vm["tls"].as<tls_mode>()
                            : (st.tunnel.empty() ? tls_mode::implicit : tls_mode::none);
        st.allow_plaintext = has("allow-plaintext") && vm["allow-plaintext"].as<flag>().value;
        if (st.tls == tls_mode::none && st.tunnel.empty() && !st.allow_plaintext &&
            lines.count("tls"))
            report(lines["tls"], "tls = none sends the password in clear text" + where +
                                     "; add \"allow-plaintext = yes\" if that is really meant");
        st.port = has("port") ? vm["port"].as<port_number>().value
                              : (st.tls == tls_mode::implicit ? 993 : 143);

        if (has("user")) st.user = unquote(str("user"));
        if (has("auth")) st.auth = vm["auth"].as<auth_method>();
        const bool oauth = st.auth == auth_method::xoauth2 || st.auth == auth_method::oauthbearer;

        // The secret: exactly one source, of the kind the auth method takes.
        unsigned first_line = 0;
        std::string first_key;
        for (const auto& e : s.entries) {
            using k = secret_source::kind;
            k kind = k::none;
            if (e.key == "password-command") kind = k::password_command;
            if (e.key == "password-file") kind = k::password_file;
            if (e.key == "token-command") kind = k::token_command;
            if (kind == k::none || !has(e.key.c_str()) || lines[e.key] != e.line) continue;
            if (first_line) {
                report(e.line, "two secret sources" + where + ": \"" + e.key + "\" and \"" +
                                   first_key + "\" (line " + std::to_string(first_line) +
                                   "); keep one");
                continue;
            }
            first_line = e.line;
            first_key = e.key;
            st.secret.from = kind;
            st.secret.line = e.line;
            if (kind == k::password_file) {
                if (auto p = path_value(vm, lines, e.key, s.header)) st.secret.value = p->string();
            } else {
                st.secret.value = e.value;
            }
            if (kind == k::token_command && !oauth)
                report(
                    e.line,
                    "\"token-command\" needs \"auth = xoauth2\" or \"auth = oauthbearer\"" + where);
            if (kind != k::token_command && oauth)
                report(e.line, "auth = " + std::string(to_string(st.auth)) +
                                   " takes an access token from \"token-command\", not \"" + e.key +
                                   "\"" + where);
        }
        if (st.user.empty() && st.tunnel.empty() && !lines.count("user"))
            report(s.line, "missing required key \"user\"" + where);
        if (!st.user.empty() && st.secret.from == secret_source::kind::none && !first_line &&
            !lines.count("password-command") && !lines.count("password-file") &&
            !lines.count("token-command"))
            report(lines.count("user") ? lines["user"] : s.line,
                   "no password source for \"" + st.user + "\"" + where +
                       ": set password-command, password-file or (with auth = xoauth2) "
                       "token-command");
        if (st.user.empty() && first_line)
            report(first_line, "\"" + first_key + "\" without \"user\"" + where);

        if (has("ca-file")) {
            if (auto p = path_value(vm, lines, "ca-file", s.header)) st.ca_file = *p;
        }
        if (has("fingerprint")) {
            const std::string raw = unquote(str("fingerprint"));
            std::string hex;
            bool ok =
                raw.size() > 7 && detail::iequals(std::string_view(raw).substr(0, 7), "sha256:");
            for (std::size_t i = 7; ok && i < raw.size(); ++i) {
                if (raw[i] == ':') continue;
                if (!std::isxdigit(static_cast<unsigned char>(raw[i]))) ok = false;
                hex += static_cast<char>(std::tolower(static_cast<unsigned char>(raw[i])));
            }
            if (!ok || hex.size() != 64)
                report(lines["fingerprint"],
                       "bad value for \"fingerprint\"" + where +
                           ": expected sha256: and 64 hex digits (colons allowed), as printed by "
                           "tandem check-config --connect");
            else
                st.fingerprint = hex;
        }
        if (has("tls-verify") && !vm["tls-verify"].as<flag>().value)
            report(lines["tls-verify"],
                   "certificate verification cannot be turned off with \"tls-verify\"" + where +
                       "; pin the certificate with \"fingerprint\", or if you really must, set "
                       "\"tls-insecure-skip-verify = yes-i-know\"");
        if (has("tls-insecure-skip-verify")) {
            if (str("tls-insecure-skip-verify") != "yes-i-know")
                report(lines["tls-insecure-skip-verify"],
                       "\"tls-insecure-skip-verify\" takes exactly \"yes-i-know\"" + where);
            else if (has("tls-verify") && vm["tls-verify"].as<flag>().value)
                report(lines["tls-insecure-skip-verify"],
                       "\"tls-insecure-skip-verify\" contradicts \"tls-verify = yes\"" + where);
            else
                st.tls_verify = false;
        }
        if (has("connections")) {
            const auto n = vm["connections"].as<count>().value;
            if (n < 1 || n > 64)
                report(lines["connections"], "\"connections\" must be from 1 to 64" + where);
            else
                st.connections = static_cast<unsigned>(n);
        }
        if (has("compress")) st.compress = vm["compress"].as<compress_mode>();
        if (has("disable-capabilities")) {
            std::istringstream words(str("disable-capabilities"));
            std::string w;
            while (words >> w) {
                for (char& c : w)
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                const bool atom = std::all_of(w.begin(), w.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '=' || c == '-' ||
                           c == '+' || c == '.' || c == '_';
                });
                if (!atom) {
                    report(lines["disable-capabilities"],
                           "bad capability name \"" + w + "\" in \"disable-capabilities\"" + where);
                    break;
                }
                st.disabled_capabilities.push_back(w);
            }
        }
        if (has("timeout")) {
            st.timeout = vm["timeout"].as<duration_value>().value;
            if (st.timeout.count() == 0)
                report(lines["timeout"], "\"timeout\" must be more than 0" + where);
        }
        cfg.stores.push_back(std::move(st));
    }

    void read_maildir(const section& s, configuration& cfg) {
        po::variables_map vm;
        auto lines = store_options(s, maildir_options(), vm, option_names(imap_options()));
        maildir_store st;
        st.name = s.name;
        st.line = s.line;
        if (vm.count("path")) {
            if (auto p = path_value(vm, lines, "path", s.header)) st.path = *p;
        } else if (!lines.count("path")) {
            report(s.line, "missing required key \"path\" in [" + s.header + "]");
        }
        if (vm.count("layout")) st.layout = vm["layout"].as<maildir_layout>();
        if (vm.count("fsync")) st.fsync = vm["fsync"].as<flag>().value;
        cfg.stores.push_back(std::move(st));
    }

    void read_channel(const section& s, configuration& cfg) {
        po::variables_map vm;
        auto lines = store_options(s, channel_options(), vm);
        const std::string where = " in [" + s.header + "]";
        channel ch;
        ch.name = s.name;
        ch.line = s.line;
        for (const char* side : {"a", "b"}) {
            if (vm.count(side)) {
                (side[0] == 'a' ? ch.a : ch.b) = vm[side].as<std::string>();
            } else if (!lines.count(side)) {
                report(s.line, "missing required key \"" + std::string(side) + "\"" + where +
                                   " (the store of side " + side + ")");
            }
        }
        if (!ch.a.empty() && ch.a == ch.b)
            report(lines["b"], "sides a and b are the same store \"" + ch.a + "\"" + where);
        ch.mailboxes = vm.count("mailboxes") ? vm["mailboxes"].as<mailbox_patterns>()
                                             : *mailbox_patterns::parse("*");
        if (vm.count("direction")) ch.direction = vm["direction"].as<direction>();
        if (vm.count("create")) ch.create = vm["create"].as<sides>();
        if (vm.count("remove")) ch.remove = vm["remove"].as<sides>();
        if (vm.count("expunge")) ch.expunge = vm["expunge"].as<sides>();
        if (vm.count("max-delete")) ch.max_delete = vm["max-delete"].as<delete_limit>();
        if (vm.count("max-size")) {
            ch.max_size = vm["max-size"].as<size_value>().value;
            if (*ch.max_size == 0)
                report(lines["max-size"],
                       "\"max-size\" must be more than 0 (leave it out for no limit)" + where);
        }
        if (vm.count("post-sync-command"))
            ch.post_sync_command = vm["post-sync-command"].as<std::string>();
        side_lines_[s.name] = {lines.count("a") ? lines["a"] : s.line,
                               lines.count("b") ? lines["b"] : s.line};
        cfg.channels.push_back(std::move(ch));
    }

    void check_references(const configuration& cfg) {
        for (const auto& ch : cfg.channels) {
            const auto [line_a, line_b] = side_lines_[ch.name];
            for (const auto& [name, line] : {std::pair{ch.a, line_a}, std::pair{ch.b, line_b}}) {
                if (name.empty() || store_names_.count(name)) continue;
                std::string msg = "channel \"" + ch.name + "\" names store \"" + name +
                                  "\", which is not defined";
                if (auto guess = detail::closest(name, store_names_))
                    msg += " (did you mean \"" + *guess + "\"?)";
                else
                    msg += " (add a [store." + name + "] section)";
                report(line, msg);
            }
        }
    }

    std::string file_;
    std::filesystem::path base_;
    const environment& env_;
    std::vector<diagnostic> diagnostics_;
    std::set<std::string> store_names_;  // every [store.NAME], even one with mistakes
    std::map<std::string, std::pair<unsigned, unsigned>> side_lines_;
};

}  // namespace

std::vector<std::string> imap_store::tunnel_argv() const {
    return {"/bin/sh", "-c", tunnel};
}

const std::string& store_name(const store& s) {
    return std::visit([](const auto& st) -> const std::string& { return st.name; }, s);
}

const store* configuration::find_store(std::string_view name) const {
    for (const auto& s : stores)
        if (store_name(s) == name) return &s;
    return nullptr;
}

const channel* configuration::find_channel(std::string_view name) const {
    for (const auto& c : channels)
        if (c.name == name) return &c;
    return nullptr;
}

result<configuration> parse(std::string_view text, const std::filesystem::path& file,
                            const environment& env) {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::absolute(file, ec).parent_path();
    if (ec) base = std::filesystem::current_path(ec);
    return loader(file.string(), base, env).run(text);
}

result<configuration> load(const std::filesystem::path& file, const environment& env) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        const int err = errno;
        return error(
            diagnostic{file.string(), 0,
                       std::string("cannot read the configuration file: ") + std::strerror(err)});
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return error(diagnostic{file.string(), 0, "cannot read the configuration file"});
    return parse(text.str(), file, env);
}

}  // namespace tandem::config
