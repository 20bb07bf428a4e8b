// SPDX-License-Identifier: MIT
// libFuzzer target for modified UTF-7: arbitrary bytes through both directions. Whatever decodes
// is canonical, so it must encode back to the same bytes; whatever encodes must decode back to
// the same UTF-8. Neither direction may crash on any input.
#include "tandem/imap/utf7.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    std::string detail;
    if (auto utf8 = tandem::imap::utf7_decode(in, &detail)) {
        auto back = tandem::imap::utf7_encode(*utf8);
        if (!back || *back != in) std::abort();
    } else if (detail.empty()) {
        std::abort();  // every rejection says why
    }

    if (auto wire = tandem::imap::utf7_encode(in)) {
        for (char c : *wire)
            if (c < 0x20 || c > 0x7e) std::abort();  // the wire form is printable ASCII
        auto again = tandem::imap::utf7_decode(*wire);
        if (!again || *again != in) std::abort();
    }
    return 0;
}
