// SPDX-License-Identifier: MIT
#include "tls_p.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#ifndef TANDEM_TLS_MODULE_INSTALLED
#define TANDEM_TLS_MODULE_INSTALLED "/usr/local/lib/tandem/tandem-tls.so"
#endif

namespace tandem::net {

namespace {

constexpr const char* module_name = "tandem-tls.so";

// Where the module may be, in order: the environment's choice; lib/tandem/ beside the
// program's directory (a build tree: build/src/tandem and the tests in build/tests/ find
// build/lib/tandem/; an installation: PREFIX/bin/tandem finds PREFIX/lib/tandem/); the
// directory the build installs it in (a program copied elsewhere).
std::vector<std::string> candidates() {
    if (const char* forced = std::getenv("TANDEM_TLS_MODULE"); forced && *forced) return {forced};
    std::vector<std::string> out;
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec)
        out.push_back((self.parent_path().parent_path() / "lib" / "tandem" / module_name).string());
    if (out.empty() || out.front() != TANDEM_TLS_MODULE_INSTALLED)
        out.push_back(TANDEM_TLS_MODULE_INSTALLED);
    return out;
}

struct loaded_module {
    const tandem_tls_api* api = nullptr;
    std::string error;  // why api is null
};

loaded_module load() {
    loaded_module m;
    std::string tried;
    for (const auto& path : candidates()) {
        if (!tried.empty()) tried += ", ";
        tried += path;
        if (::access(path.c_str(), F_OK) != 0) continue;
        // RTLD_NODELETE: the module stays for the process's life; OpenSSL's own exit
        // handlers are registered from it.
        void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (!handle) {
            const char* why = ::dlerror();
            m.error = "cannot load TLS module " + path + ": " + (why ? why : "unknown error");
            return m;
        }
        auto entry = reinterpret_cast<tandem_tls_module_fn>(::dlsym(handle, "tandem_tls_module"));
        const tandem_tls_api* api = entry ? entry() : nullptr;
        if (!api || api->abi != TANDEM_TLS_ABI) {
            m.error = "TLS module " + path + " is not the one this tandem was built with";
            return m;
        }
        m.api = api;
        return m;
    }
    m.error = "TLS needs tandem's module " + std::string(module_name) +
              ", which is not installed (looked for " + tried + ")";
    return m;
}

const loaded_module& module() {
    static const loaded_module m = load();
    return m;
}

}  // namespace

std::unique_ptr<tls_engine> tls_engine::create(const tandem_tls_settings& settings,
                                               std::string& message) {
    const auto& m = module();
    if (!m.api) {
        message = m.error;
        return nullptr;
    }
    tandem_tls* tls = m.api->create(&settings);
    if (!tls) {
        message = "cannot start TLS: out of memory";
        return nullptr;
    }
    return std::unique_ptr<tls_engine>(new tls_engine(m.api, tls));
}

tls_engine::~tls_engine() {
    api_->destroy(tls_);
}

int tls_engine::read(std::string& plain) {
    for (;;) {
        const std::size_t before = plain.size();
        // A TLS record holds at most 16 KB of plain text.
        plain.resize(before + 16 * 1024);
        std::size_t got = 0;
        const int status = api_->read(tls_, plain.data() + before, 16 * 1024, &got);
        plain.resize(before + got);
        if (status != TANDEM_TLS_OK) return status;
    }
}

void tls_engine::take_output(std::string& wire) {
    while (std::size_t n = api_->output_size(tls_)) {
        const std::size_t before = wire.size();
        wire.resize(before + n);
        const std::size_t taken = api_->take_output(tls_, wire.data() + before, n);
        wire.resize(before + taken);
        if (taken == 0) return;
    }
}

}  // namespace tandem::net
