// SPDX-License-Identifier: MIT
// A temporary directory removed with everything in it when the object goes away.
#pragma once

#include <filesystem>
#include <string_view>

namespace tandem::test {

class temp_dir {
public:
    explicit temp_dir(std::string_view prefix = "tandem-test");
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
    // Keep the directory after the test (for a look at a failure).
    void keep() { keep_ = true; }

private:
    std::filesystem::path path_;
    bool keep_ = false;
};

}  // namespace tandem::test
