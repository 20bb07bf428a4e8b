// SPDX-License-Identifier: MIT
// Base64 (RFC 4648 section 4, with padding) for SASL exchanges: AUTHENTICATE initial responses
// and server challenges. Small and dependency-free so that it can sit in widely included code.
#pragma once

#include "tandem/util/error.hpp"

#include <string>
#include <string_view>

namespace tandem::util {

std::string base64_encode(std::string_view bytes);

// Strict decoding: length a multiple of 4, `=` only as trailing padding, no whitespace, and the
// unused bits of the last group zero, so that each text has one decoding and one encoding.
// Errors: errc::invalid_argument.
result<std::string> base64_decode(std::string_view text);

}  // namespace tandem::util
