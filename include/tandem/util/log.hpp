// SPDX-License-Identifier: MIT
// A logger passed to whoever needs it (never global): levels and one sink. Secrets never
// reach it: the IMAP layer redacts at the command serializer.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace tandem::log {

enum class level { error = 0, warning, info, debug, trace };

std::string_view name(level l);

class logger {
  public:
    using sink_fn = std::function<void(level, std::string_view)>;

    logger() = default;  // discards everything
    logger(level threshold, sink_fn sink) : threshold_(threshold), sink_(std::move(sink)) {}

    bool enabled(level l) const { return sink_ && l <= threshold_; }
    void write(level l, std::string_view text) const {
        if (enabled(l)) sink_(l, text);
    }
    void error(std::string_view text) const { write(level::error, text); }
    void warning(std::string_view text) const { write(level::warning, text); }
    void info(std::string_view text) const { write(level::info, text); }
    void debug(std::string_view text) const { write(level::debug, text); }
    void trace(std::string_view text) const { write(level::trace, text); }

  private:
    level threshold_ = level::info;
    sink_fn sink_;
};

}  // namespace tandem::log
