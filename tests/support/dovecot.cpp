// SPDX-License-Identifier: MIT
#include "support/dovecot.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace tandem::test {

namespace fs = std::filesystem;

namespace {

constexpr const char* dovecot_binary = "/usr/sbin/dovecot";
constexpr const char* imap_binary = "/usr/lib/dovecot/imap";
constexpr const char* mail_user_name = "tandemtest";

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& path, std::string_view text, fs::perms perms = fs::perms(0644)) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("dovecot fixture: cannot write " + path.string());
    fs::permissions(path, perms);
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
    }
    return lines;
}

std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

struct account {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

std::optional<account> lookup_user(const char* name) {
    passwd pw{};
    passwd* found = nullptr;
    char buf[4096];
    if (::getpwnam_r(name, &pw, buf, sizeof buf, &found) != 0 || !found) return std::nullopt;
    return account{found->pw_name, found->pw_uid, found->pw_gid};
}

// As root the mail processes need an unprivileged user of their own: Dovecot refuses to
// run mail processes as root, and imap refuses to run as root on a socket.
account mail_account() {
    if (::geteuid() != 0) {
        passwd pw{};
        passwd* found = nullptr;
        char buf[4096];
        if (::getpwuid_r(::geteuid(), &pw, buf, sizeof buf, &found) != 0 || !found)
            throw std::runtime_error("dovecot fixture: the current user has no passwd entry");
        return account{found->pw_name, found->pw_uid, found->pw_gid};
    }
    if (auto a = lookup_user(mail_user_name)) return *a;
    // Test programs may run in parallel (ctest -j): one useradd at a time.
    int lock = ::open("/tmp/tandem-test-useradd.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock >= 0) ::flock(lock, LOCK_EX);
    if (!lookup_user(mail_user_name)) {
        auto r = run_process({"useradd", "--system", "--no-create-home", "--home-dir",
                              "/nonexistent", "--shell", "/usr/sbin/nologin", mail_user_name});
        if (!r.ok()) throw std::runtime_error("dovecot fixture: useradd failed: " + r.output);
    }
    if (lock >= 0) ::close(lock);
    if (auto a = lookup_user(mail_user_name)) return *a;
    throw std::runtime_error("dovecot fixture: user tandemtest missing after useradd");
}

// A port that nothing listens on now. Two fixtures in one process never get the same one;
// another process may still take it before Dovecot binds it, so the start retries.
std::uint16_t free_port() {
    static std::mutex mutex;
    static std::set<std::uint16_t> given;
    std::lock_guard lock(mutex);
    for (int attempt = 0; attempt < 100; ++attempt) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw std::runtime_error("socket failed");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
        ::close(fd);
        if (!ok) continue;
        std::uint16_t port = ntohs(addr.sin_port);
        if (given.insert(port).second) return port;
    }
    throw std::runtime_error("dovecot fixture: no free port");
}

// True once a connection to the port receives an IMAP greeting: then the login process,
// and the log and anvil processes that it needs, are up.
bool port_greets(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (ok) {
        timeval tv{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[5] = {};
        ok = ::recv(fd, buf, 4, MSG_WAITALL) == 4 && std::string_view(buf, 4) == "* OK";
    }
    ::close(fd);
    return ok;
}

void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_process(argv);
    if (!r.ok())
        throw std::runtime_error("dovecot fixture: openssl " + args.at(0) + " failed: " + r.output);
}

// P-256 keys: RSA key generation would cost a good part of the start-up budget.
void make_ca(const fs::path& dir, const std::string& name, const std::string& cn) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "3650", "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout",
             (dir / (name + ".key")).string(), "-out", (dir / (name + ".pem")).string()});
}

void make_certificates(const fs::path& ssl) {
    make_ca(ssl, "ca", "tandem test CA");
    make_ca(ssl, "other-ca", "tandem unrelated CA");
    openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", "/CN=localhost", "-keyout", (ssl / "server.key").string(), "-out",
             (ssl / "server.csr").string()});
    write_file(ssl / "server.ext",
               "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
               "basicConstraints = critical, CA:FALSE\n"
               "keyUsage = critical, digitalSignature, keyEncipherment\n"
               "extendedKeyUsage = serverAuth\n");
    openssl({"x509", "-req", "-in", (ssl / "server.csr").string(), "-CA", (ssl / "ca.pem").string(),
             "-CAkey", (ssl / "ca.key").string(), "-set_serial", "2", "-days", "3650", "-extfile",
             (ssl / "server.ext").string(), "-out", (ssl / "server.pem").string()});
    fs::permissions(ssl / "server.key", fs::perms(0600));

    auto r = run_process({"openssl", "x509", "-in", (ssl / "server.pem").string(), "-noout",
                          "-fingerprint", "-sha256"});
    // "sha256 Fingerprint=AB:CD:..."
    auto eq = r.output.find('=');
    if (!r.ok() || eq == std::string::npos)
        throw std::runtime_error("dovecot fixture: fingerprint: " + r.output);
    std::string hex;
    for (char c : r.output.substr(eq + 1))
        if (std::isxdigit(static_cast<unsigned char>(c)))
            hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (hex.size() != 64) throw std::runtime_error("dovecot fixture: bad fingerprint: " + r.output);
    write_file(ssl / "server.sha256", hex);
    // Dovecot 2.3 wants ssl_dh; the RFC 7919 group costs nothing, unlike `openssl dhparam`.
    openssl({"genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out",
             (ssl / "dh.pem").string()});
}

constexpr const char* certificate_files[] = {"ca.pem",     "other-ca.pem",  "server.pem",
                                             "server.key", "server.sha256", "dh.pem"};

bool usable_certificates(const fs::path& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
        (st.st_mode & 077) != 0)
        return false;
    std::error_code ec;
    for (const char* f : certificate_files)
        if (fs::file_size(dir / f, ec) == 0 || ec) return false;
    return true;
}

// The certificates and keys cost several openssl runs: made once per user and kept in
// $TMPDIR/tandem-test-certs-<euid>-v1 (0700, owned by that user, else not trusted), shared by
// every fixture and test program. Made in a directory of its own, then renamed into place,
// so that test programs running in parallel never see half of it.
const fs::path& shared_certificates() {
    static std::mutex mutex;
    static std::map<uid_t, fs::path> made;
    std::lock_guard lock(mutex);
    if (auto it = made.find(::geteuid()); it != made.end()) return it->second;
    const char* tmp = std::getenv("TMPDIR");
    const fs::path base = tmp && *tmp ? tmp : "/tmp";
    const fs::path dir = base / ("tandem-test-certs-" + std::to_string(::geteuid()) + "-v1");
    if (!usable_certificates(dir)) {
        std::string pattern = (base / "tandem-test-certs.XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("dovecot fixture: mkdtemp failed");
        make_certificates(pattern);
        std::error_code ec;
        if (fs::exists(dir, ec) && !usable_certificates(dir)) fs::remove_all(dir, ec);
        fs::rename(pattern, dir, ec);  // fails when another program was faster: use its set
        fs::remove_all(pattern, ec);
        if (!usable_certificates(dir))
            throw std::runtime_error("dovecot fixture: no usable certificates in " + dir.string());
    }
    return made.emplace(::geteuid(), dir).first->second;
}

// The processes of this instance but its master, with their titles: Dovecot titles its
// children "dovecot-<instance_name>/<service>".
std::vector<std::pair<pid_t, std::string>> instance_processes(const std::string& instance,
                                                              pid_t master) {
    std::vector<std::pair<pid_t, std::string>> found;
    DIR* proc = ::opendir("/proc");
    if (!proc) return found;
    while (dirent* e = ::readdir(proc)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end || pid == master) continue;
        std::string cmdline = read_proc_file(static_cast<pid_t>(pid), "cmdline");
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        while (!cmdline.empty() && cmdline.back() == ' ') cmdline.pop_back();
        if (cmdline.find(instance + "/") != std::string::npos)
            found.emplace_back(static_cast<pid_t>(pid), std::move(cmdline));
    }
    ::closedir(proc);
    return found;
}

std::atomic<unsigned> instance_counter{0};

}  // namespace

struct dovecot::impl {
    temp_dir dir{"tandem-dovecot"};
    account mail;
    std::string instance;
    std::unique_ptr<child_process> master;
    std::vector<std::string> capabilities;
    std::string capability_line;  // the base config, before imap_capability

    fs::path conf() const { return dir / "dovecot.conf"; }
    fs::path log() const { return dir.path() / "log" / "dovecot.log"; }
    fs::path tunnel_log() const { return dir.path() / "log" / "tunnel.log"; }

    std::vector<std::string> imap_argv(std::vector<std::string> imap_args) const {
        std::vector<std::string> argv;
        if (::geteuid() == 0)
            argv = {"setpriv", "--reuid=" + std::to_string(mail.uid),
                    "--regid=" + std::to_string(mail.gid), "--clear-groups"};
        argv.push_back(imap_binary);
        argv.insert(argv.end(), imap_args.begin(), imap_args.end());
        return argv;
    }
};

namespace {

std::string build_config(const dovecot_options& o, const std::string& instance, const fs::path& dir,
                         const account& mail, std::uint16_t imap_port, std::uint16_t imaps_port,
                         const fs::path& dh, const std::string& capability) {
    const std::string d = dir.string();
    const bool root = ::geteuid() == 0;
    std::ostringstream c;
    c << "# Generated by the tandem test fixture (tests/support/dovecot.cpp).\n"
      << "instance_name = " << instance << "\n"
      << "base_dir = " << d << "/run\n"
      << "state_dir = " << d << "/state\n"
      << "protocols = imap\n"
      << "listen = 127.0.0.1\n"
      << "shutdown_clients = yes\n"
      << "log_path = " << d << "/log/dovecot.log\n"
      << "info_log_path = " << d << "/log/dovecot.log\n"
      << "debug_log_path = " << d << "/log/dovecot.log\n"
      << "log_timestamp = \"%Y-%m-%d %H:%M:%S \"\n"
      // in = client to server, out = server to client (uncompressed protocol bytes).
      << "imap_logout_format = in=%i out=%o body_count=%{fetch_body_count} "
         "body_bytes=%{fetch_body_bytes} "
         "expunged=%{expunged}\n"
      << "ssl = yes\n"
      << "ssl_cert = <" << d << "/ssl/server.pem\n"
      << "ssl_key = <" << d << "/ssl/server.key\n"
      << "ssl_dh = <" << dh.string() << "\n"
      << "disable_plaintext_auth = no\n"
      << "auth_mechanisms = plain login\n"
      // A wrong password answers at once, and does not slow the next login down.
      << "auth_failure_delay = 0\n"
      << "passdb {\n  driver = passwd-file\n  args = " << d << "/passwd\n}\n"
      << "userdb {\n  driver = passwd-file\n  args = " << d << "/passwd\n}\n"
      << "first_valid_uid = " << mail.uid << "\n"
      << "first_valid_gid = " << mail.gid << "\n"
      << "mail_location = maildir:~/Maildir\n"
      << "mail_fsync = never\n"
      << "mail_max_userip_connections = 1000\n";
    if (!root) {
        c << "default_login_user = " << mail.name << "\n"
          << "default_internal_user = " << mail.name << "\n";
        // Some listeners (stats-writer, dict) belong to this group: it must be one of ours.
        if (group* g = ::getgrgid(mail.gid)) c << "default_internal_group = " << g->gr_name << "\n";
    } else {
        // Debian's dovecot-core creates these; a bare install may lack them.
        if (!lookup_user("dovenull")) c << "default_login_user = " << mail.name << "\n";
        if (!lookup_user("dovecot")) c << "default_internal_user = " << mail.name << "\n";
    }
    c << "namespace inbox {\n  inbox = yes\n  separator = " << o.separator
      << "\n  prefix = " << o.prefix << "\n";
    if (o.special_use) {
        for (const char* box : {"Sent", "Drafts", "Trash", "Junk", "Archive"})
            c << "  mailbox " << box << " {\n    special_use = \\" << box
              << "\n    auto = subscribe\n  }\n";
    }
    c << "}\n";
    if (o.mail_log) {
        c << "mail_plugins = $mail_plugins notify mail_log\n"
          << "plugin {\n"
          << "  mail_log_events = save copy expunge flag_change mailbox_create mailbox_delete "
             "mailbox_rename\n"
          << "  mail_log_fields = uid box msgid size flags\n"
          << "}\n";
    }
    const bool compress = o.compress && std::find_if(o.hidden_capabilities.begin(),
                                                     o.hidden_capabilities.end(), [](auto& h) {
                                                         return upper(h) == "COMPRESS=DEFLATE";
                                                     }) == o.hidden_capabilities.end();
    c << "protocol imap {\n";
    if (compress) c << "  mail_plugins = $mail_plugins imap_zlib\n";
    if (!capability.empty()) c << "  imap_capability = " << capability << "\n";
    c << "}\n";
    c << "service imap-login {\n"
      << "  inet_listener imap {\n    address = 127.0.0.1\n    port = " << imap_port << "\n  }\n"
      << "  inet_listener imaps {\n    address = 127.0.0.1\n    port = " << imaps_port
      << "\n    ssl = yes\n  }\n";
    if (!root) c << "  chroot =\n";
    c << "}\n";
    if (!root) c << "service auth-worker {\n  user = $default_internal_user\n}\n";
    // No penalty for failed logins from 127.0.0.1: it would slow down the next tests.
    c << "service anvil {\n"
      << (root ? "" : "  chroot =\n")
      << "  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
      // The tunnel's imap process, running as the mail user, reports stats here.
      << "service stats {\n  unix_listener stats-writer {\n    mode = 0666\n  }\n}\n"
      << "service doveadm {\n  inet_listener {\n    port = 0\n  }\n}\n";
    for (const auto& line : o.extra_config) c << line << "\n";
    return c.str();
}

}  // namespace

dovecot::dovecot(dovecot_options options)
    : options_(std::move(options)), impl_(std::make_unique<impl>()) {
    auto& m = *impl_;
    m.mail = mail_account();
    m.instance = "tandem-" + std::to_string(::getpid()) + "-" + std::to_string(instance_counter++);
    const fs::path d = m.dir.path();
    // Dovecot's unprivileged processes must reach the configuration, the sockets and the mail.
    fs::permissions(d, fs::perms(0755));
    for (const char* sub : {"run", "state", "log", "ssl", "mail"}) fs::create_directories(d / sub);
    fs::permissions(d / "ssl", fs::perms(0700));
    // The tunnel's shell opens its log before it drops to the mail user.
    write_file(m.tunnel_log(), "");
    if (::geteuid() == 0 && ::chown((d / "mail").c_str(), m.mail.uid, m.mail.gid) != 0)
        throw std::runtime_error("dovecot fixture: chown failed");

    std::string passwd;
    for (const auto& u : options_.users) {
        if (u.name.empty() || u.name.find_first_of(":/\n ") != std::string::npos)
            throw std::invalid_argument("dovecot fixture: bad user name '" + u.name + "'");
        fs::path home = d / "mail" / u.name;
        fs::create_directories(home);
        if (::geteuid() == 0 && ::chown(home.c_str(), m.mail.uid, m.mail.gid) != 0)
            throw std::runtime_error("dovecot fixture: chown failed");
        passwd += u.name + ":{PLAIN}" + u.password + ":" + std::to_string(m.mail.uid) + ":" +
                  std::to_string(m.mail.gid) + "::" + home.string() + "::\n";
    }
    // Read by the auth process, which runs as the internal user: test passwords only.
    write_file(d / "passwd", passwd);

    const fs::path& certs = shared_certificates();
    for (const char* f : certificate_files)
        fs::copy_file(certs / f, d / "ssl" / f, fs::copy_options::overwrite_existing);
    cert_sha256_ = read_file(d / "ssl" / "server.sha256");
    // Debian ships a dh.pem with dovecot-core; a trimmed install may lack it.
    const fs::path shipped_dh = "/usr/share/dovecot/dh.pem";
    std::error_code ec;
    const fs::path dh =
        fs::file_size(shipped_dh, ec) > 0 && !ec ? shipped_dh : d / "ssl" / "dh.pem";

    std::string capability;
    if (!options_.hidden_capabilities.empty()) {
        // imap_capability replaces the whole list, so ask this very configuration for its
        // default list first: a standalone imap without -u needs no running master.
        write_file(m.conf(), build_config(options_, m.instance, d, m.mail, 0, 0, dh, ""));
        fs::create_directories(d / "probe");
        if (::geteuid() == 0 && ::chown((d / "probe").c_str(), m.mail.uid, m.mail.gid) != 0)
            throw std::runtime_error("dovecot fixture: chown failed");
        std::vector<std::string> argv{"env", "USER=probe", "HOME=" + (d / "probe").string()};
        auto imap = m.imap_argv({"-c", m.conf().string()});
        argv.insert(argv.end(), imap.begin(), imap.end());
        auto r = run_process(argv, "p LOGOUT\r\n", std::chrono::seconds(10));
        auto start = r.output.find("[CAPABILITY ");
        auto end = r.output.find(']', start);
        if (start == std::string::npos || end == std::string::npos)
            throw std::runtime_error("dovecot fixture: capability probe failed: " + r.output);
        std::istringstream words(r.output.substr(start + 12, end - start - 12));
        for (std::string w; words >> w;) {
            const std::string u = upper(w);
            bool hidden = std::any_of(options_.hidden_capabilities.begin(),
                                      options_.hidden_capabilities.end(),
                                      [&](const std::string& h) { return upper(h) == u; });
            if (!hidden) capability += (capability.empty() ? "" : " ") + w;
        }
    }

    std::string last_log;
    for (int attempt = 0; attempt < 5; ++attempt) {
        imap_port_ = free_port();
        imaps_port_ = free_port();
        write_file(m.conf(), build_config(options_, m.instance, d, m.mail, imap_port_, imaps_port_,
                                          dh, capability));
        child_options co;
        co.out = child_stream::null;
        co.err = child_stream::file;
        co.stderr_file = d / "log" / "master.stderr";
        // SIGTERM: a clean shutdown of Dovecot also stops its children.
        co.death_signal = SIGTERM;
        m.master = std::make_unique<child_process>(
            std::vector<std::string>{dovecot_binary, "-F", "-c", m.conf().string()}, co);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        bool up = false;
        while (std::chrono::steady_clock::now() < deadline && m.master->running()) {
            // Ready means master.pid (written after the signal handlers are set: a SIGTERM
            // before them kills the master alone and orphans its children) and a greeting (the
            // services are up: a SIGTERM while they start leaves the master waiting 5 s).
            if (fs::file_size(d / "run" / "master.pid", ec) > 0 && !ec && port_greets(imap_port_)) {
                up = true;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (up) return;
        m.master->stop();
        last_log = read_file(m.log()) + read_file(co.stderr_file);
        if (last_log.find("Address already in use") == std::string::npos) break;
    }
    for (auto& c : instance_processes(m.instance, -1)) ::kill(c.first, SIGKILL);
    throw std::runtime_error("dovecot fixture: Dovecot did not start:\n" + last_log);
}

dovecot::~dovecot() {
    if (!impl_ || !impl_->master) return;
    auto& master = *impl_->master;
    ::kill(master.pid(), SIGTERM);
    // The children end within milliseconds of the SIGTERM; the log process and the master
    // then linger for a second or more (waiting for late writers). Once the log process is the
    // last child, nothing is left to log: end both at once.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!master.wait(std::chrono::milliseconds(5)) &&
           std::chrono::steady_clock::now() < deadline) {
        auto children = instance_processes(impl_->instance, master.pid());
        if (std::all_of(children.begin(), children.end(),
                        [](auto& c) { return c.second.ends_with("/log"); })) {
            for (auto& c : children) ::kill(c.first, SIGKILL);
            ::kill(master.pid(), SIGKILL);
            break;
        }
    }
    master.stop(std::chrono::seconds(1));
    // Whatever is still there (a child stuck on its way out) is this instance's, found by its
    // title; Dovecot's children also end by themselves once the master is gone.
    for (auto& c : instance_processes(impl_->instance, master.pid())) ::kill(c.first, SIGKILL);
}

fs::path dovecot::ca_file() const {
    return impl_->dir.path() / "ssl" / "ca.pem";
}
fs::path dovecot::other_ca_file() const {
    return impl_->dir.path() / "ssl" / "other-ca.pem";
}
fs::path dovecot::server_cert_file() const {
    return impl_->dir.path() / "ssl" / "server.pem";
}

const std::string& dovecot::password(std::string_view user) const {
    for (const auto& u : options_.users)
        if (u.name == user) return u.password;
    throw std::invalid_argument("dovecot fixture: no user " + std::string(user));
}

const fs::path& dovecot::dir() const {
    return impl_->dir.path();
}
fs::path dovecot::config_file() const {
    return impl_->conf();
}
fs::path dovecot::log_file() const {
    return impl_->log();
}
fs::path dovecot::tunnel_log_file() const {
    return impl_->tunnel_log();
}
fs::path dovecot::maildir(std::string_view user) const {
    return impl_->dir.path() / "mail" / user / "Maildir";
}
pid_t dovecot::pid() const {
    return impl_->master ? impl_->master->pid() : -1;
}
const std::string& dovecot::instance_name() const {
    return impl_->instance;
}
void dovecot::keep() {
    impl_->dir.keep();
}

std::string dovecot::tunnel_command(std::string_view user) const {
    std::string cmd = "exec";
    for (const auto& a : impl_->imap_argv({"-c", impl_->conf().string(), "-u", std::string(user)}))
        cmd += " " + shell_quote(a);
    return cmd + " 2>>" + shell_quote(impl_->tunnel_log().string());
}

std::vector<std::string> dovecot::tunnel_argv(std::string_view user) const {
    return {"/bin/sh", "-c", tunnel_command(user)};
}

std::vector<std::string> dovecot::capabilities() const {
    if (!impl_->capabilities.empty()) return impl_->capabilities;
    if (options_.users.empty())
        throw std::logic_error("dovecot fixture: no user to ask for capabilities");
    auto r = run_process(tunnel_argv(options_.users.front().name), "c LOGOUT\r\n",
                         std::chrono::seconds(10));
    auto start = r.output.find("* PREAUTH [CAPABILITY ");
    auto end = r.output.find(']', start);
    if (start == std::string::npos || end == std::string::npos)
        throw std::runtime_error("dovecot fixture: no PREAUTH capability: " + r.output);
    std::istringstream words(r.output.substr(start + 22, end - start - 22));
    std::vector<std::string> caps;
    for (std::string w; words >> w;) caps.push_back(upper(w));
    impl_->capabilities = caps;
    return caps;
}

std::string dovecot::log_text() const {
    return read_file(log_file()) + read_file(tunnel_log_file());
}

std::vector<std::string> dovecot::log_events(std::string_view event, std::string_view user,
                                             std::string_view box) const {
    std::vector<std::string> found;
    // mail_log writes "save: box=..." but "copy from <source>: box=...".
    const std::string marker = ": Info: " + std::string(event);
    const std::string who = "imap(" + std::string(user) + ")";
    const std::string box_field = "box=" + std::string(box);
    for (const auto& line : split_lines(log_text())) {
        auto at = line.find(marker);
        if (at == std::string::npos) continue;
        auto after_event = line.compare(at + marker.size(), 2, ": ") == 0
                               ? line.find(": ", at + marker.size())
                           : line.compare(at + marker.size(), 6, " from ") == 0
                               ? line.find(": ", at + marker.size() + 6)
                               : std::string::npos;
        if (after_event == std::string::npos) continue;
        if (!user.empty() && line.find(who) == std::string::npos) continue;
        if (!box.empty()) {
            auto b = line.find(box_field, after_event);
            if (b == std::string::npos) continue;
            auto after = b + box_field.size();
            if (after != line.size() && line.compare(after, 1, ",") != 0) continue;
        }
        found.push_back(line);
    }
    return found;
}

std::vector<dovecot_session_bytes> dovecot::session_bytes() const {
    std::vector<dovecot_session_bytes> sessions;
    for (const auto& line : split_lines(log_text())) {
        auto imap = line.find("imap(");
        auto in = line.find(" in=");
        auto out = line.find(" out=");
        if (imap == std::string::npos || in == std::string::npos || out == std::string::npos ||
            out < in)
            continue;
        auto close = line.find(')', imap);
        dovecot_session_bytes s;
        s.user = line.substr(imap + 5, close - imap - 5);
        s.in = std::strtoull(line.c_str() + in + 4, nullptr, 10);
        s.out = std::strtoull(line.c_str() + out + 5, nullptr, 10);
        if (auto b = line.find(" body_count=", out); b != std::string::npos)
            s.body_count = std::strtoull(line.c_str() + b + 12, nullptr, 10);
        if (auto b = line.find(" body_bytes=", out); b != std::string::npos)
            s.body_bytes = std::strtoull(line.c_str() + b + 12, nullptr, 10);
        sessions.push_back(s);
    }
    return sessions;
}

}  // namespace tandem::test
