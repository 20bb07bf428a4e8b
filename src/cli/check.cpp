// SPDX-License-Identifier: MIT
// `tandem check-config --connect`: each step of reaching each store, and what the server
// offers that matters to sync speed. The answer to "why can't I connect, why is it slow".
#include "cli/output.hpp"
#include "cli/stores.hpp"

#include "tandem/client/session.hpp"
#include "tandem/net/connection.hpp"

#include <filesystem>
#include <iostream>

namespace tandem::cli {
namespace {

struct capability_note {
    const char* name;
    const char* without;
};

constexpr capability_note speed_capabilities[] = {
    {"QRESYNC",
     "a changed mailbox is diffed with CHANGEDSINCE plus a UID listing, or a full FLAGS scan"},
    {"CONDSTORE",
     "flag changes are invisible to STATUS: every mailbox is scanned (UID FETCH 1:* FLAGS) on "
     "every run"},
    {"LIST-STATUS", "one STATUS per mailbox (pipelined) instead of one LIST for all"},
    {"UIDPLUS",
     "new UIDs are found again by searching for the Message-ID; UID EXPUNGE is impossible"},
    {"MOVE", "moves become COPY + STORE \\Deleted + UID EXPUNGE"},
    {"LITERAL+", "each uploaded message waits one round trip for the server's go-ahead"},
    {"COMPRESS=DEFLATE", "no compression (it only pays on slow links)"},
};

bool check_imap(const config::imap_store& s, const log::logger& log) {
    std::cout << "store " << s.name << " (imap):\n";
    auto ep = make_endpoint(s, log);
    if (!ep) {
        std::cout << "  secret: FAILED: " << ep.error().message << '\n';
        return false;
    }
    if (s.secret.from != config::secret_source::kind::none) std::cout << "  secret: ok\n";
    if (ep->tunnel.empty()) {
        net::transport_config tc;
        tc.host = ep->host;
        tc.port = ep->port;
        tc.tls = ep->tls;
        tc.ca_file = ep->ca_file;
        tc.fingerprint = ep->fingerprint;
        tc.verify = ep->tls_verify;
        tc.connect_timeout = ep->connect_timeout;
        tc.read_timeout = ep->read_timeout;
        net::failure why;
        auto conn = net::connection::open(tc, &why);
        if (!conn) {
            std::cout << "  " << net::to_string(why.step) << ": FAILED: " << why.message << '\n';
            return false;
        }
        std::cout << "  resolve, connect: ok (" << (*conn)->peer() << ")\n";
        if (ep->tls == net::tls_mode::implicit)
            std::cout << "  TLS handshake and certificate: ok\n";
        (*conn)->close();
    }
    auto session = client::session::connect(*ep);
    if (!session) {
        std::cout << "  login: FAILED: " << session.error().message() << '\n';
        return false;
    }
    std::cout << "  " << (ep->tunnel.empty() ? "login" : "tunnel") << ": ok"
              << ((*session)->encrypted() ? ", encrypted" : "")
              << ((*session)->compressed() ? ", compressed" : "") << '\n';
    for (const auto& c : speed_capabilities) {
        bool has = (*session)->has(c.name);
        std::cout << "  " << c.name << ": " << (has ? "yes" : "no");
        if (!has) std::cout << " -- " << c.without;
        std::cout << '\n';
    }
    (void)(*session)->logout();
    return true;
}

bool check_maildir(const config::maildir_store& s) {
    std::cout << "store " << s.name << " (maildir): ";
    std::error_code ec;
    if (!std::filesystem::exists(s.path, ec)) {
        std::cout << s.path.string()
                  << " does not exist yet (it will be created by the first sync)\n";
        return true;
    }
    if (!std::filesystem::is_directory(s.path, ec)) {
        std::cout << "FAILED: " << s.path.string() << " is not a directory\n";
        return false;
    }
    std::cout << s.path.string() << ": ok\n";
    return true;
}

}  // namespace

bool check_connections(const config::configuration& cfg, const log::logger& log) {
    bool ok = true;
    for (const auto& s : cfg.stores) {
        if (const auto* imap = std::get_if<config::imap_store>(&s))
            ok = check_imap(*imap, log) && ok;
        else
            ok = check_maildir(std::get<config::maildir_store>(s)) && ok;
    }
    return ok;
}

}  // namespace tandem::cli
