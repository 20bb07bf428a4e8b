// SPDX-License-Identifier: MIT
#include "cli/output.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <utility>
#include <variant>

namespace tandem::cli {

using mail::side;

std::string human_bytes(std::uint64_t bytes) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(1);
    if (bytes >= (1ull << 30))
        o << static_cast<double>(bytes) / (1ull << 30) << " GB";
    else if (bytes >= (1ull << 20))
        o << static_cast<double>(bytes) / (1ull << 20) << " MB";
    else if (bytes >= (1ull << 10))
        o << static_cast<double>(bytes) / (1ull << 10) << " KB";
    else
        o << std::setprecision(0) << static_cast<double>(bytes) << " B";
    return o.str();
}

sync::progress_fn output::progress_callback() {
    if (!terminal_) return {};
    return [this](const sync::progress& p) {
        auto now = std::chrono::steady_clock::now();
        if (p.messages_done != p.messages_total && now - last_ < std::chrono::milliseconds(200))
            return;
        last_ = now;
        double elapsed = std::chrono::duration<double>(now - started_).count();
        double rate = elapsed > 0 ? static_cast<double>(p.bytes_done) / elapsed : 0;
        // A first sync into an empty mailbox lists no sizes (bytes_total 0, or short): the
        // time left then goes by the messages.
        const bool sizes_known = p.bytes_total >= p.bytes_done && p.bytes_total > 0;
        double eta = 0;
        if (sizes_known && rate > 0)
            eta = static_cast<double>(p.bytes_total - p.bytes_done) / rate;
        else if (p.messages_done > 0)
            eta = elapsed * static_cast<double>(p.messages_total - p.messages_done) /
                  static_cast<double>(p.messages_done);
        std::ostringstream o;
        o << '\r' << p.mailbox << ": " << p.messages_done << "/" << p.messages_total
          << " messages, " << human_bytes(p.bytes_done);
        if (sizes_known) o << "/" << human_bytes(p.bytes_total);
        o << ", " << human_bytes(static_cast<std::uint64_t>(rate)) << "/s, ETA "
          << static_cast<int>(eta) << " s\x1b[K";
        std::string s = o.str();
        std::fwrite(s.data(), 1, s.size(), stderr);
        line_open_ = true;
    };
}

void output::finish_progress() {
    if (line_open_) std::fputs("\r\x1b[K", stderr);
    line_open_ = false;
}

namespace {

std::string direction_line(const sync::counts& c, side to) {
    std::ostringstream o;
    o << "copied " << c.copied[to] << " (" << human_bytes(c.bytes[to]) << "), flags "
      << c.flagged[to] << ", moved " << c.moved[to] << ", expunged " << c.expunged[to];
    if (c.created[to]) o << ", created " << c.created[to] << " mailboxes";
    if (c.removed[to]) o << ", removed " << c.removed[to] << " mailboxes";
    return o.str();
}

boost::json::object counts_json(const sync::counts& c, side to) {
    return {{"copied", c.copied[to]},  {"bytes", c.bytes[to]},       {"flags", c.flagged[to]},
            {"moved", c.moved[to]},    {"expunged", c.expunged[to]}, {"created", c.created[to]},
            {"removed", c.removed[to]}};
}

}  // namespace

void output::summary(const sync::channel_report& r, bool dry_run) const {
    std::ostringstream o;
    if (r.failed) {
        o << r.channel << ": failed: " << r.error << '\n';
    } else {
        o << r.channel << ": " << std::fixed << std::setprecision(2) << r.seconds << " s"
          << (dry_run ? " (dry run)" : "") << '\n';
        o << "  a -> b: " << direction_line(r.total, side::b) << '\n';
        o << "  b -> a: " << direction_line(r.total, side::a) << '\n';
        for (const auto& m : r.mailboxes) {
            if (m.failed) o << "  " << m.mailbox << ": FAILED: " << m.error << '\n';
            if (m.guarded)
                o << "  " << m.mailbox
                  << ": stopped by the mass-removal guard (run with --force to pass)\n";
            for (const auto& n : m.notices) o << "  " << m.mailbox << ": " << n << '\n';
            for (const auto& p : m.planned) o << "  would " << p << '\n';
        }
    }
    std::cerr << o.str();
}

std::string to_json(const std::vector<sync::channel_report>& reports, int exit_code) {
    boost::json::array channels;
    for (const auto& r : reports) {
        boost::json::array boxes;
        for (const auto& m : r.mailboxes) {
            if (!m.collected && !m.failed) continue;
            boost::json::array notices;
            for (const auto& n : m.notices) notices.emplace_back(n);
            boost::json::array planned;
            for (const auto& p : m.planned) planned.emplace_back(p);
            boxes.emplace_back(boost::json::object{{"mailbox", m.mailbox},
                                                   {"ok", !m.failed},
                                                   {"guarded", m.guarded},
                                                   {"error", m.error},
                                                   {"to_a", counts_json(m.done, side::a)},
                                                   {"to_b", counts_json(m.done, side::b)},
                                                   {"notices", notices},
                                                   {"planned", planned}});
        }
        channels.emplace_back(boost::json::object{{"channel", r.channel},
                                                  {"ok", !r.any_failed()},
                                                  {"error", r.error},
                                                  {"seconds", r.seconds},
                                                  {"to_a", counts_json(r.total, side::a)},
                                                  {"to_b", counts_json(r.total, side::b)},
                                                  {"mailboxes", boxes}});
    }
    boost::json::object top{{"exit_code", exit_code}, {"channels", channels}};
    return boost::json::serialize(top);
}

namespace {

std::string local_time(std::int64_t when) {
    std::time_t tt = when;
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&tt));
    return buf;
}

// What compress = auto has measured of the channel's IMAP stores (cli::remember_link): a
// line each, or JSON objects.
void print_links(const config::configuration& cfg, const config::channel& ch,
                 journal::journal& journal, const journal::lmdb::txn& t, bool json,
                 boost::json::array& out) {
    for (const auto& name : {ch.a, ch.b}) {
        const auto* st = cfg.find_store(name);
        if (!st || !std::holds_alternative<config::imap_store>(*st)) continue;
        auto h = journal.find_link(t, name);
        if (!h || *h == journal::link_history{}) continue;
        auto sample_json = [](const journal::link_sample& x) -> boost::json::value {
            if (!x.when) return nullptr;
            return boost::json::object{{"bytes_per_second", x.bytes_per_second}, {"when", x.when}};
        };
        if (json) {
            out.emplace_back(boost::json::object{{"store", name},
                                                 {"plain", sample_json(h->plain)},
                                                 {"compressed", sample_json(h->compressed)}});
            continue;
        }
        std::cout << "  store " << name << ": bodies came at";
        const char* sep = " ";
        for (const auto& [x, how] :
             {std::pair{h->plain, "without COMPRESS"}, std::pair{h->compressed, "with COMPRESS"}}) {
            if (!x.when) continue;
            std::cout << sep << x.bytes_per_second / 1000 << " kB/s " << how << " ("
                      << local_time(x.when) << ")";
            sep = ", ";
        }
        std::cout << '\n';
    }
}

}  // namespace

bool print_status(const config::configuration& cfg, journal::journal& journal,
                  const std::vector<std::string>& wanted, bool json) {
    auto t = journal.begin_read();
    if (!t) {
        std::cerr << "tandem: error: reading the journal: " << t.error().message() << '\n';
        return false;
    }
    auto intents = journal.intents(*t);
    boost::json::array out;
    bool ok = true;
    for (const auto& ch : cfg.channels) {
        if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), ch.name) == wanted.end())
            continue;
        auto pairs = journal.list_pairs(*t, ch.name);
        if (!pairs) {
            std::cerr << "tandem: error: reading the journal: " << pairs.error().message() << '\n';
            ok = false;
            continue;
        }
        std::size_t pending = 0;
        if (intents)
            for (const auto& i : *intents) pending += i.channel == ch.name;
        if (!json) {
            std::cout << ch.name << " (" << ch.a << " <-> " << ch.b << "): " << pairs->size()
                      << " mailboxes";
            if (pending)
                std::cout << ", " << pending
                          << " unfinished operations (resolved by the next sync)";
            std::cout << '\n';
        }
        boost::json::array boxes;
        for (const auto& p : *pairs) {
            auto count = journal.count_records(*t, p.state.id);
            std::string when = p.state.last_sync ? local_time(p.state.last_sync) : "never";
            std::string state = p.state.status == journal::pair_status::ok        ? "ok"
                                : p.state.status == journal::pair_status::pending ? "pending"
                                                                                  : "error";
            if (json) {
                boxes.emplace_back(boost::json::object{{"mailbox", p.mailbox},
                                                       {"last_sync", p.state.last_sync},
                                                       {"messages", count ? *count : 0},
                                                       {"state", state},
                                                       {"error", p.state.error}});
            } else {
                std::cout << "  " << p.mailbox << ": " << (count ? *count : 0)
                          << " messages paired, last synced " << when;
                if (state != "ok")
                    std::cout << ", " << state
                              << (p.state.error.empty() ? "" : ": " + p.state.error);
                std::cout << '\n';
            }
        }
        boost::json::array links;
        print_links(cfg, ch, journal, *t, json, links);
        if (json)
            out.emplace_back(boost::json::object{{"channel", ch.name},
                                                 {"pending", pending},
                                                 {"mailboxes", boxes},
                                                 {"links", links}});
    }
    if (json) std::cout << boost::json::serialize(out) << '\n';
    return ok;
}

}  // namespace tandem::cli
