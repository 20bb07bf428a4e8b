// SPDX-License-Identifier: MIT
#include "tandem/util/log.hpp"

namespace tandem::log {

std::string_view name(level l) {
    switch (l) {
        case level::error:
            return "error";
        case level::warning:
            return "warning";
        case level::info:
            return "info";
        case level::debug:
            return "debug";
        case level::trace:
            return "trace";
    }
    return "?";
}

}  // namespace tandem::log
