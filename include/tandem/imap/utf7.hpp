// SPDX-License-Identifier: MIT
// Modified UTF-7 mailbox names (RFC 3501 section 5.1.3): the wire form of a name for a server
// that has not enabled UTF8=ACCEPT. Printable ASCII but `&` stands for itself, `&` is `&-`, and
// everything else is UTF-16 in modified base64 (`,` for `/`, no padding) between `&` and `-`.
#pragma once

#include "tandem/util/error.hpp"

#include <string>
#include <string_view>

namespace tandem::imap {

// UTF-8 to modified UTF-7. Fails with errc::invalid_mailbox_name on invalid UTF-8 (overlong
// forms, surrogates, code points above U+10FFFF, truncated sequences); `detail`, when given,
// receives a sentence that says what and where.
result<std::string> utf7_encode(std::string_view utf8, std::string* detail = nullptr);

// Modified UTF-7 to UTF-8. Only the one canonical spelling of each name is accepted, as
// Dovecot does, so that encode(decode(x)) == x and two spellings never name two mailboxes:
// errc::invalid_mailbox_name for an unterminated `&`, a character outside the modified base64
// alphabet, a byte that is not printable ASCII, printable ASCII inside a shift (`&AGE-` for `a`),
// non-zero or superfluous trailing bits, a lone or reversed surrogate, a run too short for one
// UTF-16 unit, and two shifts back to back (`&U,BTFw-&ZeVnLIqe-`, section 5.1.3).
result<std::string> utf7_decode(std::string_view mutf7, std::string* detail = nullptr);

}  // namespace tandem::imap
