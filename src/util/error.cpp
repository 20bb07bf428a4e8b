// SPDX-License-Identifier: MIT
#include "tandem/util/error.hpp"

namespace tandem {
namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "tandem"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::ok: return "success";
            case errc::protocol_error: return "the server sent a response that does not parse";
            case errc::line_too_long: return "response line too long";
            case errc::literal_too_large: return "literal too large";
            case errc::nesting_too_deep: return "lists nested too deeply";
            case errc::command_failed: return "command failed (NO)";
            case errc::command_rejected: return "command rejected (BAD)";
            case errc::server_bye: return "the server closed the session (BYE)";
            case errc::missing_capability: return "the server lacks a required capability";
            case errc::connection_closed: return "connection closed by the server";
            case errc::timeout: return "timed out";
            case errc::tls_failed: return "TLS handshake or certificate verification failed";
            case errc::starttls_unavailable: return "the server does not offer STARTTLS";
            case errc::authentication_failed: return "authentication failed";
            case errc::invalid_mailbox_name: return "invalid mailbox name";
            case errc::invalid_argument: return "invalid argument";
            case errc::not_found: return "not found";
            case errc::journal_version: return "journal written by another version of tandem";
            case errc::journal_locked: return "journal in use by another tandem process";
            case errc::storage_full: return "no space left on the local store";
            case errc::guard_tripped: return "mass-removal guard stopped the sync";
            case errc::uidvalidity_changed: return "mailbox recreated during the run";
            case errc::config_error: return "configuration error";
        }
        return "unknown tandem error";
    }
};

}  // namespace

const boost::system::error_category& tandem_category() noexcept {
    static const category instance;
    return instance;
}

}  // namespace tandem
