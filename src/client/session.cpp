// SPDX-License-Identifier: MIT
// The session engine: an outbound queue of command segments (stopping at synchronizing
// literals until the server's `+`), an inbound loop that feeds the parser and routes each
// response: tagged ones to their command, untagged ones to the oldest command in flight
// that claims them, the rest to the unsolicited queue.
#include "tandem/client/session.hpp"

#include "tandem/imap/utf7.hpp"
#include "tandem/util/base64.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <set>
#include <utility>

namespace tandem::client {

namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::toupper(static_cast<unsigned char>(x)) ==
                      std::toupper(static_cast<unsigned char>(y));
           });
}

// The value of `key` in `* ID ("key" "value" ...)` (RFC 2971 3.3), empty when absent or NIL.
std::string id_field(const imap::generic_data& id, std::string_view key) {
    if (id.args.empty() || id.args[0].type != imap::value::kind::list) return {};
    const auto& items = id.args[0].items;
    for (std::size_t i = 0; i + 1 < items.size(); i += 2)
        if (iequals(items[i].text, key) && items[i + 1].type == imap::value::kind::string)
            return items[i + 1].text;
    return {};
}

// COPYUID and MULTIAPPEND APPENDUID pair UIDs element by element in the order the server
// wrote them (RFC 4315 3), which a sorted uid_set loses; so the raw text is read here.
std::vector<mail::uid> expand_in_order(std::string_view set) {
    std::vector<mail::uid> out;
    while (!set.empty()) {
        auto comma = set.find(',');
        std::string_view item = set.substr(0, comma);
        set = comma == std::string_view::npos ? std::string_view() : set.substr(comma + 1);
        auto colon = item.find(':');
        auto number = [](std::string_view t) -> mail::uid {
            std::uint64_t v = 0;
            for (char c : t) {
                if (c < '0' || c > '9') return 0;
                v = v * 10 + static_cast<unsigned>(c - '0');
                if (v > 0xffffffffULL) return 0;
            }
            return static_cast<mail::uid>(v);
        };
        mail::uid a = number(item.substr(0, colon));
        mail::uid b = colon == std::string_view::npos ? a : number(item.substr(colon + 1));
        if (a == 0 || b == 0) return {};
        if (a > b) std::swap(a, b);  // RFC 4315 3: 12:10 is 10:12
        if (b - a > 10'000'000) return {};
        for (mail::uid u = a;; ++u) {
            out.push_back(u);
            if (u == b) break;
        }
    }
    return out;
}

// "uidvalidity set [set]" of APPENDUID / COPYUID.
std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        auto sp = s.find(' ');
        if (sp != 0) out.push_back(s.substr(0, sp));
        if (sp == std::string_view::npos) break;
        s.remove_prefix(sp + 1);
    }
    return out;
}

std::optional<copy_result> parse_copyuid(const imap::response_code& code) {
    auto w = words(code.raw);
    if (w.size() != 3) return std::nullopt;
    copy_result r;
    r.uidvalidity = static_cast<mail::uidvalidity>(code.number);
    auto from = expand_in_order(w[1]);
    auto to = expand_in_order(w[2]);
    if (from.size() != to.size()) return std::nullopt;
    for (std::size_t i = 0; i < from.size(); ++i) r.mapping.emplace_back(from[i], to[i]);
    return r;
}

constexpr std::size_t max_set_bytes = 8000;  // RFC 7162 4: keep command lines short
constexpr std::size_t literal_chunk = 64 * 1024;
// Output queued before waiting for the socket to take it. The queue and the buffer on the
// wire each grow to about twice this: at 1 MB, they held 1.8 MB at the peak of copying 100
// new messages (c5000 S4: 13 MB of peak RSS in all; 8.5 MB at 128 KB, S1 as fast).
constexpr std::size_t max_queued_output = 128 * 1024;
// MULTIAPPEND: messages per APPEND command. Dovecot handles one huge command slower (1000
// messages measured 1.5-3x slower than 50-500 on loopback); several smaller ones go in one
// flight with LITERAL+ and the server commits each as it ends.
constexpr std::size_t append_chunk_messages = 250;
constexpr std::uint64_t append_chunk_bytes = 8 * 1024 * 1024;

}  // namespace

std::string completion::describe() const {
    std::string s;
    if (code) {
        s = "[" + code->name;
        if (!code->raw.empty()) s += " " + code->raw;
        s += "] ";
    }
    s += text;
    return s;
}

bool compress_pays(bool loopback, std::optional<std::chrono::microseconds> round_trip,
                   const measured_rates& measured) {
    if (loopback) return false;
    if (round_trip && *round_trip < std::chrono::milliseconds(1)) return false;
    if (measured.plain && measured.compressed) return measured.compressed > measured.plain;
    return measured.plain != 0 && measured.compressed == 0;
}

bool list_entry::has_attribute(std::string_view a) const {
    return std::any_of(attributes.begin(), attributes.end(),
                       [&](const std::string& x) { return iequals(x, a); });
}

struct pending {
    std::string tag;
    untagged_handler handler;
    std::function<void(const imap::continuation_request&)> on_continuation;
    imap::sink_provider bodies;
    std::function<bool(mail::uid)> accepts_uid;
    // Runs at the tagged response, before anything after it is dispatched.
    std::function<void(const imap::status_response&)> on_tagged;
    bool done = false;
    completion result;
};

struct out_item {
    std::string tag;
    std::string text;
    std::optional<imap::literal_data> literal;
    bool needs_continuation = false;
    bool text_sent = false;
};

struct session::impl {
    endpoint ep;
    std::unique_ptr<net::connection> conn;
    imap::parser parser;
    std::vector<std::string> offered;  // as the server says, upper case
    std::vector<std::string> caps;     // offered minus disabled
    std::set<std::string> enabled;
    imap::wire_options wire;
    std::uint64_t next_tag = 1;
    std::deque<std::shared_ptr<pending>> inflight;
    // A LIST sent by list_ahead() whose answer list() has not taken yet.
    struct listing {
        std::string pattern;
        std::string tag;
        std::vector<list_entry> entries;
        std::map<std::string, imap::status_data> statuses;
    };
    std::shared_ptr<listing> ahead;
    std::map<std::string, std::shared_ptr<pending>> finished;
    std::deque<out_item> outq;
    bool granted = false;  // a `+` arrived for the literal at the front of outq
    error_code broken;
    std::string logout_tag;  // logout_ahead()'s, until logout() reads its answer

    // The kernel's, or the one the endpoint says to assume (session::round_trip()).
    std::optional<std::chrono::microseconds> round_trip() const {
        if (ep.assumed_round_trip) return ep.assumed_round_trip;
        return conn ? conn->round_trip() : std::nullopt;
    }
    completion last_error;
    std::deque<unsolicited> unsol;
    std::uint64_t untagged_count = 0;
    std::string selected;
    std::string server_software;  // ID "name"
    std::string closing;  // QRESYNC: the mailbox that stays selected until [CLOSED]
    std::optional<imap::status_response> greeting;
    std::optional<std::string> bye;
    // Dispatch stops after this tag completes: STARTTLS and COMPRESS change the bytes that
    // follow, which must not be parsed as before (response injection, RFC 4978 3).
    std::string barrier;
    bool barrier_hit = false;
    std::string after_barrier;  // bytes that came after the barrier's line, unparsed

    explicit impl(endpoint e) : ep(std::move(e)) { install_sink_provider(); }

    void trace(trace_direction d, std::string_view line) const {
        if (ep.trace) ep.trace(d, line);
    }

    void install_sink_provider() {
        parser.set_sink_provider(
            [this](const imap::body_context& ctx) -> std::unique_ptr<imap::body_sink> {
                for (auto& p : inflight) {
                    if (!p->bodies) continue;
                    if (ctx.uid && p->accepts_uid && !p->accepts_uid(*ctx.uid)) continue;
                    return p->bodies(ctx);
                }
                return nullptr;
            },
            ep.body_sink_min_size);
    }

    void set_capabilities(std::vector<std::string> list) {
        offered.clear();
        caps.clear();
        for (auto& c : list) {
            std::string u = upper(c);
            offered.push_back(u);
            bool masked =
                std::any_of(ep.disabled_capabilities.begin(), ep.disabled_capabilities.end(),
                            [&](const std::string& d) { return iequals(d, u); });
            if (!masked) caps.push_back(u);
        }
        wire.literals = has("LITERAL+")                         ? imap::literal_mode::plus
                        : (has("LITERAL-") || has("IMAP4REV2")) ? imap::literal_mode::minus
                                                                : imap::literal_mode::synchronizing;
        wire.binary = has("BINARY");
    }

    bool has(std::string_view c) const {
        return std::any_of(caps.begin(), caps.end(),
                           [&](const std::string& x) { return iequals(x, c); });
    }

    error_code fail(error_code ec) {
        if (!broken) {
            broken = ec;
            if (ec == errc::connection_closed && bye) broken = errc::server_bye;
            trace(trace_direction::info, "session broken: " + broken.message());
        }
        return broken;
    }

    // ---- outbound

    result<std::string> send(const imap::command& cmd, untagged_handler handler,
                             std::function<void(const imap::continuation_request&)> on_cont = {},
                             imap::sink_provider bodies = {},
                             std::function<bool(mail::uid)> accepts = {}) {
        if (broken) return broken;
        std::string tag = "T" + std::to_string(next_tag++);
        std::string detail;
        auto segs = cmd.serialize(tag, wire, &detail);
        if (!segs) {
            trace(trace_direction::info, "cannot send " + cmd.name() + ": " + detail);
            return segs.error();
        }
        trace(trace_direction::client, cmd.redacted(tag, wire));
        auto p = std::make_shared<pending>();
        p->tag = tag;
        p->handler = std::move(handler);
        p->on_continuation = std::move(on_cont);
        p->bodies = std::move(bodies);
        p->accepts_uid = std::move(accepts);
        inflight.push_back(p);
        for (auto& s : *segs)
            outq.push_back({tag, std::move(s.text), std::move(s.literal), s.needs_continuation});
        return tag;
    }

    result<void> pump_out() {
        while (!outq.empty()) {
            auto& it = outq.front();
            if (!it.text_sent) {
                conn->write(it.text);
                it.text_sent = true;
            }
            if (it.literal) {
                if (it.needs_continuation) {
                    if (!granted) return conn->flush();  // the `{n}` line must reach the server
                    granted = false;
                }
                if (const std::string* m = it.literal->memory()) {
                    // In memory already: handed to the connection as it is, no copy first.
                    if (m->size() < it.literal->size()) return errc::invalid_argument;
                    std::string_view left(m->data(), static_cast<std::size_t>(it.literal->size()));
                    while (!left.empty()) {
                        auto take = std::min(left.size(), literal_chunk);
                        conn->write(left.substr(0, take));
                        left.remove_prefix(take);
                        if (conn->pending_output() > max_queued_output) {
                            if (auto f = conn->flush(); !f) return f.error();
                        }
                    }
                    outq.pop_front();
                    continue;
                }
                auto src = it.literal->open();
                if (!src) return src.error();
                std::string buf(literal_chunk, '\0');
                std::uint64_t left = it.literal->size();
                while (left > 0) {
                    auto n = (*src)->read(std::span<char>(buf.data(), buf.size()));
                    if (!n) return n.error();
                    if (*n == 0) return errc::invalid_argument;  // the source ended early
                    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(*n, left));
                    conn->write(std::string_view(buf.data(), take));
                    left -= take;
                    if (conn->pending_output() > max_queued_output) {
                        if (auto f = conn->flush(); !f) return f.error();
                    }
                }
            }
            outq.pop_front();
        }
        return {};
    }

    void purge_output(const std::string& tag) {
        bool front_was_waiting = !outq.empty() && outq.front().tag == tag;
        std::erase_if(outq, [&](const out_item& i) { return i.tag == tag; });
        if (front_was_waiting) granted = false;
    }

    // ---- inbound

    void trace_in(std::string_view data) const {
        if (!ep.trace) return;
        int lines = 0;
        while (!data.empty()) {
            auto nl = data.find('\n');
            std::string_view line = data.substr(0, nl);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (++lines > 50) {
                ep.trace(trace_direction::server,
                         "... (" + std::to_string(data.size()) + " more bytes)");
                return;
            }
            if (line.size() > 300)
                ep.trace(trace_direction::server, std::string(line.substr(0, 300)) + "...");
            else
                ep.trace(trace_direction::server, line);
            if (nl == std::string_view::npos) break;
            data.remove_prefix(nl + 1);
        }
    }

    result<void> dispatch() {
        while (!barrier_hit) {
            auto r = parser.next();
            if (!r) {
                trace(trace_direction::info, "parse error: " + parser.last_error_detail());
                return fail(r.error());
            }
            if (!*r) break;
            if (auto h = handle(**r); !h) return h;
        }
        return {};
    }

    // Feeds bytes; with a barrier set, one line at a time so that nothing after the
    // barrier's tagged line is parsed: those bytes go to after_barrier.
    result<void> feed(std::string_view data) {
        if (barrier.empty()) {
            parser.feed(data);
            return dispatch();
        }
        if (barrier_hit) {
            after_barrier.append(data);
            return {};
        }
        while (!data.empty() && !barrier_hit) {
            auto nl = data.find('\n');
            std::size_t n = nl == std::string_view::npos ? data.size() : nl + 1;
            parser.feed(data.substr(0, n));
            data.remove_prefix(n);
            if (auto r = dispatch(); !r) return r;
        }
        after_barrier.append(data);
        return {};
    }

    void clear_barrier() {
        barrier.clear();
        barrier_hit = false;
        after_barrier.clear();
    }

    result<void> pump_once(std::optional<std::chrono::milliseconds> timeout = {}) {
        if (broken) return broken;
        if (auto r = pump_out(); !r) return fail(r.error());
        auto data = timeout ? conn->read(*timeout) : conn->read();
        if (!data) {
            if (timeout && data.error() == errc::timeout) return data.error();
            return fail(data.error());
        }
        trace_in(*data);
        return feed(*data);
    }

    std::shared_ptr<pending> find_inflight(const std::string& tag) {
        for (auto& p : inflight)
            if (p->tag == tag) return p;
        return nullptr;
    }

    result<void> handle(imap::response& r) {
        if (!greeting) {
            auto* s = std::get_if<imap::status_response>(&r);
            if (!s || s->tagged()) return fail(errc::protocol_error);
            greeting = *s;
            if (s->code && s->code->type == imap::response_code::kind::capability)
                set_capabilities(s->code->atoms);
            return {};
        }
        if (auto* s = std::get_if<imap::status_response>(&r)) {
            if (s->code && s->code->type == imap::response_code::kind::capability)
                set_capabilities(s->code->atoms);
            if (s->tagged()) return complete(*s);
            ++untagged_count;
            if (s->cond == imap::condition::bye) {
                bye = s->text;
                last_error = {s->cond, s->code, s->text};
                return {};
            }
            if (s->code && s->code->type == imap::response_code::kind::alert)
                trace(trace_direction::info, "server alert: " + s->text);
            offer(r);
            return {};
        }
        if (auto* c = std::get_if<imap::continuation_request>(&r)) {
            if (!outq.empty() && outq.front().text_sent && outq.front().literal &&
                outq.front().needs_continuation) {
                granted = true;
                return {};
            }
            for (auto& p : inflight) {
                if (p->on_continuation) {
                    p->on_continuation(*c);
                    return {};
                }
            }
            trace(trace_direction::info, "unexpected continuation request ignored");
            return {};
        }
        ++untagged_count;
        if (auto* c = std::get_if<imap::capability_data>(&r)) {
            set_capabilities(c->capabilities);
            offer(r);
            return {};
        }
        if (auto* e = std::get_if<imap::enabled_data>(&r)) {
            for (auto& c : e->capabilities) enabled.insert(upper(c));
            return {};
        }
        if (offer(r)) return {};
        if (std::holds_alternative<imap::fetch_data>(r) ||
            std::holds_alternative<imap::vanished_data>(r) ||
            std::holds_alternative<imap::expunge_data>(r) ||
            std::holds_alternative<imap::exists_data>(r)) {
            unsol.push_back({closing.empty() ? selected : closing, std::move(r)});
        }
        return {};
    }

    bool offer(imap::response& r) {
        // Copy: a handler may not add commands, but be safe against reentrancy anyway.
        auto list = inflight;
        for (auto& p : list)
            if (p->handler && p->handler(r)) return true;
        return false;
    }

    result<void> complete(const imap::status_response& s) {
        auto p = find_inflight(s.tag);
        if (!p) {
            trace(trace_direction::info, "tagged response for an unknown tag " + s.tag);
            return fail(errc::protocol_error);
        }
        p->done = true;
        p->result = {s.cond, s.code, s.text};
        if (p->on_tagged) p->on_tagged(s);
        // What the callbacks hold goes now, not when (if ever) the tag is waited for.
        p->handler = nullptr;
        p->on_continuation = nullptr;
        p->bodies = nullptr;
        p->accepts_uid = nullptr;
        p->on_tagged = nullptr;
        std::erase(inflight, p);
        purge_output(s.tag);
        finished[s.tag] = p;
        if (s.cond != imap::condition::ok) last_error = p->result;
        if (!barrier.empty() && s.tag == barrier) barrier_hit = true;
        return {};
    }

    result<completion> wait(const std::string& tag) {
        while (true) {
            if (auto it = finished.find(tag); it != finished.end()) {
                completion c = it->second->result;
                finished.erase(it);
                if (c.status == imap::condition::no) return error_code(errc::command_failed);
                if (c.status == imap::condition::bad) return error_code(errc::command_rejected);
                return c;
            }
            if (!find_inflight(tag)) return broken ? broken : error_code(errc::invalid_argument);
            if (auto r = pump_once(); !r) return r.error();
        }
    }

    result<completion> run(const imap::command& cmd, untagged_handler handler = nullptr) {
        auto tag = send(cmd, std::move(handler));
        if (!tag) return tag.error();
        return wait(*tag);
    }

    result<std::string> wire_name(std::string_view name) const {
        if (enabled.count("UTF8=ACCEPT")) return std::string(name);
        return imap::utf7_encode(name);
    }

    // ---- opening

    result<void> read_greeting() {
        while (!greeting) {
            auto r = pump_once();
            if (!r) return r.error();
        }
        return {};
    }

    result<void> capability() {
        auto c = run(imap::cmd::capability());
        if (!c) return c.error();
        return {};
    }

    result<void> starttls(net::failure* why) {
        if (!has("STARTTLS")) {
            last_error = {imap::condition::no, std::nullopt, "the server does not offer STARTTLS"};
            return errc::starttls_unavailable;
        }
        auto tag = send(imap::cmd::starttls(), nullptr);
        if (!tag) return tag.error();
        barrier = *tag;
        auto c = wait(*tag);
        clear_barrier();
        if (!c)
            return c.error() == errc::command_failed || c.error() == errc::command_rejected
                       ? error_code(errc::starttls_unavailable)
                       : c.error();
        // Whatever followed the OK in plain text is dropped with the old parser.
        parser = imap::parser();
        install_sink_provider();
        if (auto r = conn->start_tls(why); !r) return fail(r.error());
        // RFC 9051 6.2.1: capabilities learnt before TLS are void.
        set_capabilities({});
        return capability();
    }

    result<void> authenticate() {
        auto mech = ep.auth;
        if (mech == auth_mechanism::automatic)
            mech = has("AUTH=PLAIN") ? auth_mechanism::plain : auth_mechanism::login;
        bool sasl_ir = has("SASL-IR");
        std::string response;  // raw SASL initial response
        const char* name = nullptr;
        switch (mech) {
            case auth_mechanism::automatic:
            case auth_mechanism::login:
                if (has("LOGINDISABLED")) {
                    last_error = {imap::condition::no, std::nullopt,
                                  "the server refuses LOGIN (LOGINDISABLED)"};
                    return errc::missing_capability;
                }
                break;
            case auth_mechanism::plain:
                name = "PLAIN";
                response = imap::cmd::sasl_plain(ep.user, ep.secret);
                break;
            case auth_mechanism::xoauth2:
                name = "XOAUTH2";
                response = imap::cmd::sasl_xoauth2(ep.user, ep.secret);
                break;
            case auth_mechanism::oauthbearer:
                name = "OAUTHBEARER";
                response = imap::cmd::sasl_oauthbearer(ep.user, ep.secret, ep.host, ep.port);
                break;
        }
        if (name && !has(std::string("AUTH=") + name)) {
            last_error = {imap::condition::no, std::nullopt,
                          std::string("the server does not offer AUTH=") + name};
            return errc::missing_capability;
        }
        result<std::string> tag = std::string();
        if (!name) {
            tag = send(imap::cmd::login(ep.user, ep.secret), nullptr);
        } else {
            bool sent_initial = sasl_ir;
            auto on_cont = [this, sent_initial, response,
                            mech](const imap::continuation_request&) mutable {
                if (!sent_initial) {
                    sent_initial = true;
                    conn->write(util::base64_encode(response) + "\r\n");
                    trace(trace_direction::client, "(SASL response)");
                    return;
                }
                // A challenge after the response carries the server's error (XOAUTH2's JSON,
                // RFC 7628 3.2.3): answer so that the tagged NO follows.
                std::string reply = mech == auth_mechanism::oauthbearer ? "AQ==\r\n"
                                    : mech == auth_mechanism::xoauth2   ? "\r\n"
                                                                        : "*\r\n";
                conn->write(reply);
                trace(trace_direction::client, "(SASL error acknowledgement)");
            };
            imap::command cmd = sasl_ir ? imap::cmd::authenticate(name, response)
                                        : imap::cmd::authenticate(name, std::nullopt);
            tag = send(cmd, nullptr, on_cont);
        }
        if (!tag) return tag.error();
        // Capabilities change with authentication (RFC 9051 6.2.2): forget the old ones so
        // that the tagged OK's code, or a CAPABILITY, supplies the new set.
        auto before = offered;
        set_capabilities({});
        auto c = wait(*tag);
        if (!c) {
            set_capabilities(before);
            if (c.error() == errc::command_failed || c.error() == errc::command_rejected)
                return errc::authentication_failed;
            return c.error();
        }
        if (caps.empty() && offered.empty()) return capability();
        return {};
    }

    result<void> after_login() {
        std::vector<std::string> enable;
        if (has("QRESYNC"))
            enable.push_back("QRESYNC");
        else if (has("CONDSTORE"))
            enable.push_back("CONDSTORE");
        if (has("UTF8=ACCEPT")) enable.push_back("UTF8=ACCEPT");
        std::vector<std::string> tags;
        if (!enable.empty() && has("ENABLE")) {
            auto t = send(imap::cmd::enable(enable), nullptr);
            if (!t) return t.error();
            tags.push_back(*t);
        }
        if (!ep.id.empty() && has("ID")) {
            auto t = send(imap::cmd::id(ep.id), [this](imap::response& r) {
                auto* g = std::get_if<imap::generic_data>(&r);
                if (!g || g->name != "ID") return false;
                server_software = id_field(*g, "name");
                return true;
            });
            if (!t) return t.error();
            tags.push_back(*t);
        }
        bool want_compress =
            ep.compress == compress_mode::yes ||
            (ep.compress == compress_mode::automatic &&
             compress_pays(!ep.assumed_round_trip && conn->loopback(), round_trip(), ep.measured));
        std::string compress_tag;
        if (want_compress && has("COMPRESS=DEFLATE")) {
            // RFC 4978 3: the last command of the flight; nothing may follow until its OK.
            auto t = send(imap::cmd::compress_deflate(), nullptr);
            if (!t) return t.error();
            compress_tag = *t;
            barrier = *t;
        }
        for (auto& t : tags) {
            auto c = wait(t);
            if (!c && c.error() != errc::command_failed && c.error() != errc::command_rejected)
                return c.error();
        }
        if (!compress_tag.empty()) {
            // The barrier stops parsing at the OK line: the rest is compressed.
            auto c = wait(compress_tag);
            std::string rest = std::move(after_barrier);
            clear_barrier();
            if (c) {
                if (auto r = conn->start_compress(rest); !r) return fail(r.error());
                trace(trace_direction::info, "COMPRESS=DEFLATE active");
            } else if (c.error() != errc::command_failed && c.error() != errc::command_rejected) {
                return c.error();
            }
            // Bytes after the OK went to start_compress; the parser saw none of them.
            if (!rest.empty() && !c) return fail(errc::protocol_error);
        }
        if (enabled.count("UTF8=ACCEPT")) wire.utf8_accept = true;
        return {};
    }
};

session::session(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
session::~session() = default;

result<std::unique_ptr<session>> session::connect(const endpoint& ep, connect_failure* why) {
    net::transport_config cfg;
    cfg.host = ep.host;
    cfg.port = ep.port;
    cfg.tls = ep.tls;
    cfg.tunnel = ep.tunnel;
    cfg.ca_file = ep.ca_file;
    cfg.fingerprint = ep.fingerprint;
    cfg.verify = ep.tls_verify;
    cfg.connect_timeout = ep.connect_timeout;
    cfg.read_timeout = ep.read_timeout;
    auto p = std::make_unique<impl>(ep);
    net::failure transport;
    auto report = [&](std::string step, error_code ec, std::string message = {}) {
        if (message.empty())
            message = step + " failed: " +
                      (p->last_error.text.empty() ? ec.message() : p->last_error.describe());
        p->trace(trace_direction::info, message);
        if (why) {
            why->step = std::move(step);
            why->message = std::move(message);
            why->transport = transport;
            why->server = p->last_error;
        }
        return ec;
    };
    p->trace(trace_direction::info, ep.tunnel.empty()
                                        ? "connecting to " + ep.host + ":" + std::to_string(ep.port)
                                        : "starting tunnel " + ep.tunnel.front());
    auto conn = net::connection::open(cfg, &transport);
    if (!conn) return report(net::to_string(transport.step), conn.error(), transport.message);
    p->conn = std::move(*conn);
    if (auto r = p->read_greeting(); !r) return report("greeting", r.error());
    const auto& g = *p->greeting;
    if (g.cond == imap::condition::bye) {
        p->last_error = {g.cond, g.code, g.text};
        return report("greeting", errc::server_bye);
    }
    bool preauth = g.cond == imap::condition::preauth;
    bool plain_tcp = ep.tunnel.empty() && ep.tls == net::tls_mode::starttls;
    if (preauth && plain_tcp) {
        // RFC 9051 7.1.4: a PREAUTH in clear text leaves no chance for STARTTLS.
        p->last_error = {g.cond, g.code, "PREAUTH greeting before STARTTLS: " + g.text};
        return report("STARTTLS", errc::starttls_unavailable);
    }
    if (p->offered.empty()) {
        if (auto r = p->capability(); !r) return report("greeting", r.error());
    }
    if (plain_tcp) {
        if (auto r = p->starttls(&transport); !r) {
            if (transport.step != net::step::none)
                return report(net::to_string(transport.step), r.error(), transport.message);
            return report("STARTTLS", r.error());
        }
    }
    if (!preauth) {
        if (auto r = p->authenticate(); !r)
            return report(
                "authentication", r.error(),
                "authentication as " + ep.user + " failed: " +
                    (p->last_error.text.empty() ? r.error().message() : p->last_error.describe()));
    }
    if (auto r = p->after_login(); !r) return report("setup", r.error());
    return std::unique_ptr<session>(new session(std::move(p)));
}

bool session::has(std::string_view c) const {
    return impl_->has(c);
}
const std::vector<std::string>& session::capabilities() const {
    return impl_->caps;
}
bool session::qresync_enabled() const {
    return impl_->enabled.count("QRESYNC") > 0;
}
bool session::condstore_enabled() const {
    return qresync_enabled() || impl_->enabled.count("CONDSTORE") > 0;
}
bool session::utf8_enabled() const {
    return impl_->enabled.count("UTF8=ACCEPT") > 0;
}
std::optional<std::chrono::microseconds> session::round_trip() const {
    return impl_->round_trip();
}
bool session::compressed() const {
    return impl_->conn->compressed();
}
bool session::encrypted() const {
    return impl_->conn->encrypted();
}
net::connection::counters session::traffic() const {
    return impl_->conn->traffic();
}
const std::string& session::selected() const {
    return impl_->selected;
}
const std::string& session::server_software() const {
    return impl_->server_software;
}
const completion& session::last_error() const {
    return impl_->last_error;
}

std::deque<unsolicited> session::take_unsolicited() {
    std::deque<unsolicited> out;
    out.swap(impl_->unsol);
    return out;
}

result<std::string> session::send(const imap::command& cmd, untagged_handler handler) {
    return impl_->send(cmd, std::move(handler));
}

result<completion> session::wait(const std::string& tag) {
    return impl_->wait(tag);
}

result<void> session::flush() {
    auto& p = *impl_;
    if (p.broken) return p.broken;
    if (auto r = p.pump_out(); !r) return p.fail(r.error());
    if (auto r = p.conn->flush(); !r) return p.fail(r.error());
    return {};
}

result<std::string> session::wire_name(std::string_view name) const {
    return impl_->wire_name(name);
}

result<void> session::list_ahead(std::string_view pattern) {
    auto& p = *impl_;
    imap::cmd::list_options opts;
    if (p.has("LIST-STATUS")) {
        opts.status_items = {"MESSAGES", "UIDNEXT", "UIDVALIDITY"};
        if (p.has("CONDSTORE") || p.has("QRESYNC")) opts.status_items.push_back("HIGHESTMODSEQ");
    }
    if (p.has("SPECIAL-USE") && (p.has("LIST-EXTENDED") || p.has("LIST-STATUS")))
        opts.return_special_use = true;
    // The answer lands in a listing of its own, held here until list() takes it.
    auto listing = std::make_shared<impl::listing>();
    listing->pattern = pattern;
    const bool utf8 = p.enabled.count("UTF8=ACCEPT") != 0;
    auto tag = p.send(imap::cmd::list("", pattern, opts), [listing, utf8](imap::response& r) {
        if (auto* l = std::get_if<imap::list_data>(&r); l && !l->lsub) {
            list_entry e;
            e.raw_name = l->mailbox;
            e.delimiter = l->delimiter;
            e.attributes = l->attributes;
            if (utf8) {
                e.name = l->mailbox;
            } else if (auto d = imap::utf7_decode(l->mailbox)) {
                e.name = std::move(*d);
            } else {
                e.name = l->mailbox;
                e.name_decoded = false;
            }
            listing->entries.push_back(std::move(e));
            return true;
        }
        if (auto* s = std::get_if<imap::status_data>(&r)) {
            listing->statuses[s->mailbox] = *s;
            return true;
        }
        return false;
    });
    if (!tag) return tag.error();
    listing->tag = *tag;
    p.ahead = std::move(listing);
    return flush();
}

result<std::vector<list_entry>> session::list(std::string_view pattern) {
    auto& p = *impl_;
    if (!p.ahead || p.ahead->pattern != pattern)
        if (auto r = list_ahead(pattern); !r) return r.error();
    auto listing = std::exchange(p.ahead, nullptr);
    auto c = p.wait(listing->tag);
    if (!c) return c.error();
    for (auto& e : listing->entries)
        if (auto it = listing->statuses.find(e.raw_name); it != listing->statuses.end())
            e.status = it->second;
    return std::move(listing->entries);
}

result<imap::status_data> session::status(std::string_view mailbox,
                                          const std::vector<std::string>& items) {
    auto& p = *impl_;
    auto name = p.wire_name(mailbox);
    if (!name) return name.error();
    std::vector<std::string> wanted;
    for (auto& i : items) {
        if (iequals(i, "HIGHESTMODSEQ") && !p.has("CONDSTORE") && !p.has("QRESYNC")) continue;
        wanted.push_back(i);
    }
    std::optional<imap::status_data> got;
    auto c = p.run(imap::cmd::status(*name, wanted), [&](imap::response& r) {
        auto* s = std::get_if<imap::status_data>(&r);
        if (!s || got) return false;
        got = *s;
        return true;
    });
    if (!c) return c.error();
    if (!got) return errc::protocol_error;
    return *got;
}

// What a SELECT sent and not yet waited for gathers (session::select_send): its handlers own
// it, so that it outlives the caller's frame.
struct select_state {
    select_result res;
    completion answer;  // the SELECT's own, whatever its followers answer
    std::function<void(imap::fetch_data&&)> on_changed;
    std::function<void(const select_result&)> on_selected;
};

result<select_flight> session::select_send(std::string_view mailbox,
                                           const select_options& options) {
    auto& p = *impl_;
    auto name = p.wire_name(mailbox);
    if (!name) return name.error();
    auto st = std::make_shared<select_state>();
    st->on_changed = options.on_changed;
    st->on_selected = options.on_selected;
    imap::cmd::select_options so;
    if (options.qresync && session::qresync_enabled()) {
        so.qresync =
            imap::cmd::qresync_params{options.qresync->uidvalidity, options.qresync->modseq,
                                      options.qresync->known_uids.to_string()};
        st->res.qresync = true;
    } else if (options.condstore && (p.has("CONDSTORE") || session::qresync_enabled())) {
        so.condstore = true;
    }
    imap::command cmd =
        options.read_only ? imap::cmd::examine(*name, so) : imap::cmd::select(*name, so);
    // RFC 7162 3.2.11: with QRESYNC, data before [CLOSED] still concerns the old mailbox.
    bool wait_closed = session::qresync_enabled() && !p.selected.empty();
    if (wait_closed) p.closing = p.selected;
    p.selected = std::string(mailbox);
    auto handler = [&p, st](imap::response& r) {
        auto& res = st->res;
        if (auto* s = std::get_if<imap::status_response>(&r)) {
            if (!s->code) return false;
            using k = imap::response_code::kind;
            switch (s->code->type) {
                case k::closed:
                    p.closing.clear();
                    return true;
                case k::uidvalidity:
                    res.uidvalidity = static_cast<mail::uidvalidity>(s->code->number);
                    return true;
                case k::uidnext:
                    res.uidnext = static_cast<mail::uid>(s->code->number);
                    return true;
                case k::highestmodseq:
                    res.highestmodseq = s->code->number;
                    return true;
                case k::nomodseq:
                    res.nomodseq = true;
                    return true;
                case k::permanentflags:
                    res.permanent_flags = s->code->atoms;
                    return true;
                case k::unseen:
                    return true;
                default:
                    return false;
            }
        }
        if (!p.closing.empty()) return false;
        if (auto* f = std::get_if<imap::flags_data>(&r)) {
            res.flags = f->flags;
            return true;
        }
        if (auto* e = std::get_if<imap::exists_data>(&r)) {
            res.exists = e->count;
            return true;
        }
        if (std::holds_alternative<imap::recent_data>(r)) return true;
        if (auto* v = std::get_if<imap::vanished_data>(&r); v && v->earlier && res.qresync) {
            res.vanished |= v->uids;
            return true;
        }
        if (auto* f = std::get_if<imap::fetch_data>(&r); f && res.qresync && f->uid) {
            if (st->on_changed)
                st->on_changed(std::move(*f));
            else
                res.changed.push_back(std::move(*f));
            return true;
        }
        return false;
    };
    auto tag = p.send(cmd, handler);
    if (!tag) {
        p.closing.clear();
        p.selected.clear();
        return tag.error();
    }
    if (auto pend = p.find_inflight(*tag)) {
        pend->on_tagged = [&p, st](const imap::status_response& s) {
            st->answer = {s.cond, s.code, s.text};
            p.closing.clear();  // no [CLOSED] after the tagged answer
            if (s.cond != imap::condition::ok || !st->on_selected) return;
            if (s.code && s.code->type == imap::response_code::kind::highestmodseq)
                st->res.highestmodseq = s.code->number;
            st->on_selected(st->res);
        };
    }
    select_flight flight{*tag, st};
    for (auto& [command, h] : options.pipelined) {
        auto t = p.send(command, h);
        if (!t) {
            // Not queued: the SELECT still is; its answer and those queued come all the same.
            (void)select_wait(flight);
            return t.error();
        }
        st->res.pipelined.push_back(*t);
    }
    if (auto r = flush(); !r) return r.error();
    return flight;
}

result<select_result> session::select_wait(select_flight& flight) {
    auto& p = *impl_;
    auto st = std::move(flight.state);
    if (!st) return error_code(errc::invalid_argument);
    auto& res = st->res;
    auto c = p.wait(flight.tag);
    p.closing.clear();
    if (!c) {
        p.selected.clear();  // RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected
        // The commands behind it fail without a mailbox; their answers are read here, and
        // last_error() stays the SELECT's.
        for (auto& q : res.pipelined)
            if (auto r = p.wait(q); !r && p.broken) break;
        if (!p.broken && c.error() != errc::server_bye) p.last_error = st->answer;
        return c.error();
    }
    res.done = *c;
    if (c->code) {
        using k = imap::response_code::kind;
        if (c->code->type == k::read_only) res.read_only = true;
        if (c->code->type == k::highestmodseq) res.highestmodseq = c->code->number;
    }
    if (res.nomodseq) res.highestmodseq = 0;
    return std::move(res);
}

result<select_result> session::select(std::string_view mailbox, const select_options& options) {
    auto flight = select_send(mailbox, options);
    if (!flight) return flight.error();
    return select_wait(*flight);
}

result<fetch_result> session::uid_fetch(const imap::uid_set& uids,
                                        const std::vector<std::string>& items,
                                        const message_callback& on_message,
                                        const fetch_options& options, imap::sink_provider bodies) {
    auto flight = uid_fetch_send(uids, items, on_message, options, std::move(bodies));
    if (!flight) return flight.error();
    return uid_fetch_wait(*flight);
}

result<fetch_flight> session::uid_fetch_send(const imap::uid_set& uids,
                                             const std::vector<std::string>& items,
                                             message_callback on_message,
                                             const fetch_options& options,
                                             imap::sink_provider bodies) {
    auto& p = *impl_;
    if (options.changed_since && !p.has("CONDSTORE") && !session::qresync_enabled())
        return errc::missing_capability;
    if (options.vanished && (!session::qresync_enabled() || !options.changed_since))
        return errc::missing_capability;
    std::vector<std::string> all = items;
    if (std::none_of(all.begin(), all.end(),
                     [](const std::string& i) { return iequals(i, "UID"); }))
        all.insert(all.begin(), "UID");
    std::optional<imap::cmd::changed_since> since;
    if (options.changed_since)
        since = imap::cmd::changed_since{*options.changed_since, options.vanished};
    // The answers outlive this call: the handlers keep what they need, until the commands
    // complete (the flight holds the result alone: `on_message` may own the flight).
    struct answers {
        imap::uid_set uids;
        message_callback on_message;
        bool vanished = false;
        std::shared_ptr<fetch_result> res = std::make_shared<fetch_result>();
    };
    auto a = std::make_shared<answers>(answers{uids, std::move(on_message), options.vanished});
    auto handler = [a](imap::response& r) {
        auto& res = *a->res;
        if (auto* f = std::get_if<imap::fetch_data>(&r)) {
            if (!f->uid || !a->uids.contains(*f->uid)) return false;
            if (f->modseq) res.max_modseq = std::max(res.max_modseq, *f->modseq);
            ++res.messages;
            if (a->on_message) a->on_message(std::move(*f));
            return true;
        }
        if (auto* v = std::get_if<imap::vanished_data>(&r); v && v->earlier && a->vanished) {
            res.vanished |= v->uids;
            return true;
        }
        return false;
    };
    auto accepts = [a](mail::uid u) { return a->uids.contains(u); };
    fetch_flight flight;
    flight.result = a->res;
    for (auto& piece : uids.split(max_set_bytes)) {
        auto t = p.send(imap::cmd::uid_fetch(piece, all, since), handler, {}, bodies, accepts);
        if (!t) return t.error();
        flight.tags.push_back(*t);
    }
    return flight;
}

result<fetch_result> session::uid_fetch_wait(fetch_flight& flight) {
    auto& p = *impl_;
    auto& res = *flight.result;
    std::optional<error_code> first_error;
    for (auto& t : flight.tags) {
        auto c = p.wait(t);
        if (!c) {
            if (!first_error) first_error = c.error();
            if (p.broken) return p.broken;
            continue;
        }
        res.done = *c;
        if (c->code && c->code->type == imap::response_code::kind::highestmodseq)
            res.max_modseq = std::max<mail::modseq>(res.max_modseq, c->code->number);
    }
    flight.tags.clear();
    if (first_error) return *first_error;
    return res;
}

result<imap::uid_set> session::uid_search(std::string_view criteria) {
    auto& p = *impl_;
    bool esearch = p.has("ESEARCH");
    imap::uid_set out;
    auto tag = std::make_shared<std::string>();
    auto t = p.send(imap::cmd::uid_search(
                        {imap::argument::raw(std::string(criteria))},
                        esearch ? std::vector<std::string>{"ALL"} : std::vector<std::string>{}),
                    [&out, tag](imap::response& r) {
                        if (auto* s = std::get_if<imap::search_data>(&r)) {
                            for (auto n : s->numbers) out.insert(n);
                            return true;
                        }
                        if (auto* e = std::get_if<imap::esearch_data>(&r)) {
                            if (e->tag && *e->tag != *tag) return false;
                            if (e->all) out |= *e->all;
                            return true;
                        }
                        return false;
                    });
    if (!t) return t.error();
    *tag = *t;
    auto c = p.wait(*t);
    if (!c) return c.error();
    return out;
}

result<store_result> session::uid_store(const imap::uid_set& uids, imap::cmd::store_mode mode,
                                        const mail::flag_set& flags,
                                        std::optional<mail::modseq> unchanged_since) {
    auto& p = *impl_;
    if (unchanged_since && !p.has("CONDSTORE") && !session::qresync_enabled())
        return errc::missing_capability;
    store_result res;
    auto handler = [&](imap::response& r) {
        auto* f = std::get_if<imap::fetch_data>(&r);
        if (!f || !f->uid || !uids.contains(*f->uid)) return false;
        res.fetched.push_back(std::move(*f));
        return true;
    };
    std::vector<std::string> tags;
    for (auto& piece : uids.split(max_set_bytes)) {
        auto t = p.send(imap::cmd::uid_store(piece, mode, flags, true, unchanged_since), handler);
        if (!t) return t.error();
        tags.push_back(*t);
    }
    std::optional<error_code> first_error;
    for (auto& t : tags) {
        auto c = p.wait(t);
        const completion& done = c ? *c : p.last_error;
        if (done.code && done.code->type == imap::response_code::kind::modified)
            res.modified |= done.code->uids;
        if (!c && !(done.code && done.code->type == imap::response_code::kind::modified)) {
            if (!first_error) first_error = c.error();
            if (p.broken) return p.broken;
            continue;
        }
        res.done = done;
    }
    if (first_error) return *first_error;
    return res;
}

result<append_result> session::append(std::string_view mailbox,
                                      const std::vector<append_item>& items) {
    append_flight flight;
    if (auto r = append_send(mailbox, items, flight); !r) return r.error();
    return append_wait(flight);
}

result<void> session::append_send(std::string_view mailbox, const std::vector<append_item>& items,
                                  append_flight& flight) {
    auto& p = *impl_;
    auto name = p.wire_name(mailbox);
    if (!name) return name.error();
    if (items.empty()) return {};
    auto to_message = [](const append_item& i) {
        return imap::cmd::append_message{i.flags, i.internal_date, i.content, false};
    };
    const bool multi = items.size() > 1 && p.has("MULTIAPPEND");
    for (std::size_t next = 0; next < items.size();) {
        std::vector<imap::cmd::append_message> msgs;
        std::uint64_t bytes = 0;
        while (next < items.size() &&
               (msgs.empty() || (multi && msgs.size() < append_chunk_messages &&
                                 bytes + items[next].content.size() <= append_chunk_bytes))) {
            bytes += items[next].content.size();
            msgs.push_back(to_message(items[next++]));
        }
        auto cmd = imap::cmd::append(*name, msgs);
        if (!cmd) return cmd.error();
        auto t = p.send(*cmd, nullptr);
        if (!t) return t.error();
        flight.tags.push_back(*t);
        flight.counts.push_back(msgs.size());
    }
    return flush();
}

result<append_result> session::append_wait(append_flight& flight) {
    auto& p = *impl_;
    append_result res;
    std::optional<error_code> first_error;
    for (std::size_t k = 0; k < flight.tags.size(); ++k) {
        const auto& t = flight.tags[k];
        auto c = p.wait(t);
        if (!c) {
            if (!first_error) first_error = c.error();
            if (p.broken) {
                flight = {};
                return p.broken;
            }
            res.uids.insert(res.uids.end(), flight.counts[k], 0);
            continue;
        }
        std::vector<mail::uid> got;
        if (c->code && c->code->type == imap::response_code::kind::appenduid) {
            res.uidvalidity = static_cast<mail::uidvalidity>(c->code->number);
            auto w = words(c->code->raw);
            if (w.size() == 2) got = expand_in_order(w[1]);
        }
        got.resize(flight.counts[k], 0);
        res.uids.insert(res.uids.end(), got.begin(), got.end());
    }
    flight = {};
    if (first_error) return *first_error;
    return res;
}

namespace {

untagged_handler copyuid_collector(copy_result& res) {
    return [&res](imap::response& r) {
        auto* s = std::get_if<imap::status_response>(&r);
        if (!s || !s->code || s->code->type != imap::response_code::kind::copyuid) return false;
        if (auto c = parse_copyuid(*s->code)) {
            res.uidvalidity = c->uidvalidity;
            res.mapping.insert(res.mapping.end(), c->mapping.begin(), c->mapping.end());
        }
        return true;
    };
}

void take_copyuid(const completion& c, copy_result& res) {
    if (c.code && c.code->type == imap::response_code::kind::copyuid) {
        if (auto r = parse_copyuid(*c.code)) {
            res.uidvalidity = r->uidvalidity;
            res.mapping.insert(res.mapping.end(), r->mapping.begin(), r->mapping.end());
        }
    }
}

}  // namespace

result<copy_result> session::uid_copy(const imap::uid_set& uids, std::string_view destination) {
    auto& p = *impl_;
    auto name = p.wire_name(destination);
    if (!name) return name.error();
    copy_result res;
    auto c = p.run(imap::cmd::uid_copy(uids.to_string(), *name), copyuid_collector(res));
    if (!c) return c.error();
    take_copyuid(*c, res);
    return res;
}

result<copy_result> session::uid_move(const imap::uid_set& uids, std::string_view destination) {
    auto& p = *impl_;
    auto name = p.wire_name(destination);
    if (!name) return name.error();
    if (p.has("MOVE")) {
        copy_result res;
        // RFC 6851 4.3: COPYUID comes in an untagged OK before the expunges, or tagged.
        auto c = p.run(imap::cmd::uid_move(uids.to_string(), *name), copyuid_collector(res));
        if (!c) return c.error();
        take_copyuid(*c, res);
        return res;
    }
    if (!p.has("UIDPLUS")) {
        // A plain EXPUNGE would also remove other clients' \Deleted messages.
        p.last_error = {imap::condition::no, std::nullopt,
                        "the server has neither MOVE nor UIDPLUS: cannot expunge only the "
                        "moved messages"};
        return errc::missing_capability;
    }
    auto copied = uid_copy(uids, destination);
    if (!copied) return copied.error();  // nothing deleted when the copy failed
    mail::flag_set deleted;
    deleted.set(mail::system_flag::deleted);
    auto store =
        p.send(imap::cmd::uid_store(uids.to_string(), imap::cmd::store_mode::add, deleted, true),
               [&uids](imap::response& r) {
                   auto* f = std::get_if<imap::fetch_data>(&r);
                   return f && f->uid && uids.contains(*f->uid);
               });
    if (!store) return store.error();
    auto expunge = p.send(imap::cmd::uid_expunge(uids.to_string()), nullptr);
    if (!expunge) return expunge.error();
    auto s = p.wait(*store);
    auto e = p.wait(*expunge);
    if (!s) return s.error();
    if (!e) return e.error();
    return copied;
}

result<completion> session::uid_expunge(const imap::uid_set& uids) {
    auto& p = *impl_;
    if (!p.has("UIDPLUS")) return errc::missing_capability;
    return p.run(imap::cmd::uid_expunge(uids.to_string()));
}

result<completion> session::create(std::string_view mailbox) {
    auto name = impl_->wire_name(mailbox);
    if (!name) return name.error();
    return impl_->run(imap::cmd::create(*name));
}

result<completion> session::delete_mailbox(std::string_view mailbox) {
    auto name = impl_->wire_name(mailbox);
    if (!name) return name.error();
    return impl_->run(imap::cmd::delete_mailbox(*name));
}

result<completion> session::rename(std::string_view from, std::string_view to) {
    auto a = impl_->wire_name(from);
    if (!a) return a.error();
    auto b = impl_->wire_name(to);
    if (!b) return b.error();
    return impl_->run(imap::cmd::rename(*a, *b));
}

result<completion> session::noop() {
    return impl_->run(imap::cmd::noop());
}

result<completion> session::unselect() {
    auto& p = *impl_;
    if (!p.has("UNSELECT") && !p.has("IMAP4REV2")) return errc::missing_capability;
    auto c = p.run(imap::cmd::unselect());
    // RFC 3691 2: no mailbox is selected after the OK (and after a NO, none was).
    if (c || c.error() == errc::command_failed) p.selected.clear();
    return c;
}

result<bool> session::idle(std::chrono::milliseconds timeout) {
    auto& p = *impl_;
    auto fail_bool = [](error_code ec) { return result<bool>(boost::system::in_place_error, ec); };
    if (!p.has("IDLE")) return errc::missing_capability;
    bool idling = false;
    auto tag = p.send(imap::cmd::idle(), nullptr,
                      [&idling](const imap::continuation_request&) { idling = true; });
    if (!tag) return fail_bool(tag.error());
    while (!idling) {
        if (p.finished.count(*tag)) return fail_bool(p.wait(*tag).error());
        if (auto r = p.pump_once(); !r) return fail_bool(r.error());
    }
    auto start = std::chrono::steady_clock::now();
    std::uint64_t seen = p.untagged_count;
    while (p.untagged_count == seen && !p.finished.count(*tag)) {
        auto left = timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - start);
        if (left <= std::chrono::milliseconds(0)) break;
        auto r = p.pump_once(left);
        if (!r && r.error() == errc::timeout) break;
        if (!r) return fail_bool(r.error());
    }
    bool got = p.untagged_count != seen;
    if (!p.finished.count(*tag)) {
        p.conn->write(imap::cmd::idle_done);
        p.trace(trace_direction::client, "DONE");
    }
    auto c = p.wait(*tag);
    if (!c) return fail_bool(c.error());
    return got;
}

result<completion> session::logout(std::chrono::milliseconds answer_wait) {
    auto& p = *impl_;
    struct closer {
        impl& p;
        ~closer() {
            p.conn->close();
            if (!p.broken) p.broken = errc::connection_closed;
        }
    } on_exit{p};
    if (auto r = logout_ahead(); !r) return r.error();
    const std::string tag = std::exchange(p.logout_tag, std::string());
    // Dovecot ends the session as "Logged out" even when the client closed right after
    // the command, unread answers and all (a RST): checked on 2.3.19.
    if (answer_wait <= std::chrono::milliseconds(0))
        return completion{imap::condition::ok, {}, "not waited for"};
    const auto end = std::chrono::steady_clock::now() + answer_wait;
    while (!p.finished.count(tag)) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left <= std::chrono::milliseconds(0)) return errc::timeout;
        if (auto r = p.pump_once(left); !r) {
            // RFC 9051 6.1.3: the server closes after its BYE and the tagged OK; a close
            // right after the BYE is as good.
            if (p.bye && (r.error() == errc::server_bye || r.error() == errc::connection_closed))
                return completion{imap::condition::ok, {}, "BYE"};
            return r.error();
        }
    }
    auto c = p.wait(tag);
    if (!c && c.error() == errc::server_bye) return completion{imap::condition::ok, {}, "BYE"};
    return c;
}

result<void> session::logout_ahead() {
    auto& p = *impl_;
    if (!p.logout_tag.empty()) return {};
    auto tag = p.send(imap::cmd::logout(), nullptr);
    if (!tag) return tag.error();
    p.logout_tag = *tag;
    return flush();
}

bool session::usable() const {
    return !impl_->broken && impl_->conn;
}

}  // namespace tandem::client
