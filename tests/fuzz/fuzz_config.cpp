// SPDX-License-Identifier: MIT
// libFuzzer target for the tandem.conf reader: any bytes give either a configuration or
// diagnostics whose lines lie within the text; never a crash, a hang or a thrown exception.
// Only parsing: no secret is fetched, no command run.
#include "tandem/config/config.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

std::optional<std::string> fixed_env(std::string_view name) {
    if (name == "HOME") return "/home/fuzz";
    if (name == "MAIL") return "/var/mail/fuzz";
    return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tandem::config;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto lines = static_cast<unsigned>(std::count(text.begin(), text.end(), '\n')) + 1;

    auto r = parse(text, "fuzz.conf", fixed_env);
    if (r) {
        for (const auto& ch : r->channels) {
            if (!r->find_store(ch.a) || !r->find_store(ch.b)) std::abort();
            for (const char* name : {"INBOX", "inbox/Sub", "Junk", "My Folder", "a/b/c"})
                (void)ch.mailboxes.matches(name);
        }
    } else {
        if (r.error().diagnostics.empty()) std::abort();
        for (const auto& d : r.error().diagnostics)
            if (d.line == 0 || d.line > lines || d.text.empty()) std::abort();
    }

    // The value syntaxes on their own, on the first line of the input.
    const std::string_view first = text.substr(0, text.find('\n'));
    (void)parse_size(first);
    (void)parse_duration(first);
    (void)parse_bool(first);
    if (auto l = parse_delete_limit(first)) (void)l->allows(size, size * 2);
    (void)expand_path(first, fixed_env);
    if (auto p = mailbox_patterns::parse(first)) {
        const std::string_view rest = text.substr(std::min(first.size() + 1, text.size()));
        (void)p->matches(rest.substr(0, 256));
    }
    return 0;
}
