// SPDX-License-Identifier: MIT
#include "cli/stores.hpp"

#include "tandem/store/imap_store.hpp"
#include "tandem/store/maildir_store.hpp"

#include <charconv>
#include <cstdlib>
#include <ctime>

namespace tandem::cli {
namespace {

// A measurement of the link older than this is tried again (compress = auto).
constexpr std::int64_t link_sample_life = std::int64_t{30} * 24 * 3600;
// Fewer bytes of bodies than this in one run say more about round trips than about the link.
constexpr std::uint64_t link_sample_min_bytes = std::uint64_t{4} << 20;

std::int64_t now_seconds() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

client::measured_rates recent_rates(journal::journal& journal, const std::string& store) {
    client::measured_rates m;
    auto t = journal.begin_read();
    if (!t) return m;
    auto h = journal.find_link(*t, store);
    if (!h) return m;
    const auto now = now_seconds();
    auto recent = [&](const journal::link_sample& s) {
        return s.when + link_sample_life > now && s.when <= now + 3600 ? s.bytes_per_second : 0;
    };
    m.plain = recent(h->plain);
    m.compressed = recent(h->compressed);
    return m;
}

// For the benchmark's far server, a delaying proxy on 127.0.0.1 (contrib/bench); a tunnel's
// store (the benchmark's second, local account) is not behind it.
std::optional<std::chrono::microseconds> assumed_round_trip() {
    const char* v = std::getenv("TANDEM_ROUND_TRIP_MS");
    if (!v) return std::nullopt;
    std::uint32_t ms = 0;
    const std::string_view text(v);
    if (std::from_chars(text.data(), text.data() + text.size(), ms).ec != std::errc())
        return std::nullopt;
    return std::chrono::milliseconds(ms);
}

// For tests: INBOX is selected before the listing from this many messages on
// (imap_store_options::select_inbox_first), so that small mailboxes take that way too.
store::imap_store_options imap_options() {
    store::imap_store_options o;
    if (const char* v = std::getenv("TANDEM_SELECT_INBOX_FIRST")) {
        std::uint32_t n = 0;
        const std::string_view text(v);
        if (std::from_chars(text.data(), text.data() + text.size(), n).ec == std::errc())
            o.select_inbox_first = n;
    }
    return o;
}

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
    if (s.tunnel.empty()) ep.assumed_round_trip = assumed_round_trip();
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
    ep->measured = recent_rates(journal, s.name);
    std::string text;
    auto st = store::imap_store::connect(*ep, log, &text, imap_options());
    if (!st) {
        return store_failure{
            st.error(), "store " + s.name + ": " + (text.empty() ? st.error().message() : text)};
    }
    return std::unique_ptr<store::store>(std::move(*st));
}

void remember_link(journal::journal& journal, const config::store& cfg, const store::store& st,
                   const log::logger& log) {
    const auto* s = std::get_if<config::imap_store>(&cfg);
    const auto* imap = dynamic_cast<const store::imap_store*>(&st);
    if (!s || !imap) return;
    const auto m = imap->measured_fetches();
    if (m.mixed || m.bytes < link_sample_min_bytes || m.time.count() <= 0) return;
    const double seconds = std::chrono::duration<double>(m.time).count();
    const journal::link_sample sample{static_cast<std::uint64_t>(m.bytes / seconds), now_seconds()};
    auto w = journal.write([&](journal::lmdb::write_txn& t) -> result<void> {
        auto h = journal.find_link(t, s->name);
        if (!h) return h.error();
        (m.compressed ? h->compressed : h->plain) = sample;
        return journal.put_link(t, s->name, *h);
    });
    if (!w) {
        log.warning("store " + s->name +
                    ": cannot keep the measured fetch rate in the journal: " + w.error().message());
        return;
    }
    log.debug("store " + s->name + ": bodies came at " +
              std::to_string(sample.bytes_per_second / 1000) + " kB/s" +
              (m.compressed ? " with COMPRESS=DEFLATE" : " without COMPRESS"));
}

}  // namespace tandem::cli
