// SPDX-License-Identifier: MIT
#include "cli/stores.hpp"

#include "tandem/store/imap_store.hpp"
#include "tandem/store/maildir_store.hpp"

namespace tandem::cli {
namespace {

client::auth_mechanism to_client(config::auth_method m) {
    switch (m) {
        case config::auth_method::automatic:
            return client::auth_mechanism::automatic;
        case config::auth_method::login:
            return client::auth_mechanism::login;
        case config::auth_method::plain:
            return client::auth_mechanism::plain;
        case config::auth_method::xoauth2:
            return client::auth_mechanism::xoauth2;
        case config::auth_method::oauthbearer:
            return client::auth_mechanism::oauthbearer;
    }
    return client::auth_mechanism::automatic;
}

}  // namespace

boost::system::result<client::endpoint, store_failure> make_endpoint(const config::imap_store& s,
                                                                     const log::logger& log) {
    client::endpoint ep;
    ep.host = s.host;
    ep.port = s.port;
    ep.tls = s.tls == config::tls_mode::implicit   ? net::tls_mode::implicit
             : s.tls == config::tls_mode::starttls ? net::tls_mode::starttls
                                                   : net::tls_mode::none;
    if (!s.tunnel.empty()) ep.tunnel = s.tunnel_argv();
    ep.ca_file = s.ca_file.string();
    ep.fingerprint = s.fingerprint;
    ep.tls_verify = s.tls_verify;
    ep.user = s.user;
    ep.auth = to_client(s.auth);
    ep.connect_timeout = s.timeout;
    ep.read_timeout = s.timeout;
    ep.compress = s.compress == config::compress_mode::yes  ? client::compress_mode::yes
                  : s.compress == config::compress_mode::no ? client::compress_mode::no
                                                            : client::compress_mode::automatic;
    ep.disabled_capabilities = s.disabled_capabilities;
    if (log.enabled(log::level::trace)) {
        std::string prefix = "[" + s.name + "] ";
        ep.trace = [&log, prefix](client::trace_direction d, std::string_view line) {
            const char* arrow = d == client::trace_direction::client   ? "C: "
                                : d == client::trace_direction::server ? "S: "
                                                                       : "   ";
            log.trace(prefix + arrow + std::string(line));
        };
    }
    if (s.secret.from != config::secret_source::kind::none) {
        auto secret = config::obtain_secret(s);
        if (!secret)
            return store_failure{make_error_code(errc::config_error), secret.error().message()};
        ep.secret = std::move(*secret);
    }
    return ep;
}

boost::system::result<std::unique_ptr<store::store>, store_failure> open_store(
    const config::store& cfg, journal::journal& journal, const log::logger& log) {
    if (const auto* m = std::get_if<config::maildir_store>(&cfg)) {
        store::maildir_store_options o{journal, m->path};
        o.layout = m->layout == config::maildir_layout::maildirpp ? maildir::layout_kind::maildirpp
                                                                  : maildir::layout_kind::verbatim;
        o.fsync = m->fsync;
        o.logger = log;
        return std::unique_ptr<store::store>(std::make_unique<store::maildir_store>(std::move(o)));
    }
    const auto& s = std::get<config::imap_store>(cfg);
    auto ep = make_endpoint(s, log);
    if (!ep) return ep.error();
    std::string text;
    auto st = store::imap_store::connect(*ep, log, &text);
    if (!st) {
        return store_failure{
            st.error(), "store " + s.name + ": " + (text.empty() ? st.error().message() : text)};
    }
    return std::unique_ptr<store::store>(std::move(*st));
}

}  // namespace tandem::cli
