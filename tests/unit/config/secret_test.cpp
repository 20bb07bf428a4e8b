// SPDX-License-Identifier: MIT
#include "support/temp_dir.hpp"
#include "tandem/config/config.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

namespace tandem::config {
namespace {

imap_store store_with(secret_source::kind kind, std::string value) {
    imap_store s;
    s.name = "work";
    s.user = "me";
    s.secret.from = kind;
    s.secret.value = std::move(value);
    return s;
}

TEST(password_command, first_line_without_its_newline) {
    auto s = store_with(secret_source::kind::password_command, "printf 'hunter2\\nsecond line\\n'");
    EXPECT_EQ(obtain_secret(s).value(), "hunter2");
    auto crlf = store_with(secret_source::kind::password_command, "printf 'pw\\r\\n'");
    EXPECT_EQ(obtain_secret(crlf).value(), "pw");
    // The shell runs it: pipes, quotes and variables work.
    auto shell = store_with(secret_source::kind::password_command, "echo 'a b' | tr a-z A-Z");
    EXPECT_EQ(obtain_secret(shell).value(), "A B");
}

TEST(password_command, failure_names_store_status_and_stderr_never_stdout) {
    auto s = store_with(secret_source::kind::password_command,
                        "echo hunter2; echo 'gpg: decryption failed' >&2; exit 3");
    auto r = obtain_secret(s);
    ASSERT_FALSE(r);
    const std::string m = r.error().message();
    EXPECT_NE(m.find("store \"work\""), std::string::npos) << m;
    EXPECT_NE(m.find("password-command"), std::string::npos) << m;
    EXPECT_NE(m.find("exit status 3"), std::string::npos) << m;
    EXPECT_NE(m.find("gpg: decryption failed"), std::string::npos) << m;
    EXPECT_EQ(m.find("hunter2"), std::string::npos) << m;
}

TEST(password_command, empty_output_and_signals_are_errors) {
    auto empty = obtain_secret(store_with(secret_source::kind::password_command, "true"));
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error().message().find("printed nothing"), std::string::npos);
    auto killed = obtain_secret(store_with(secret_source::kind::password_command, "kill -9 $$"));
    ASSERT_FALSE(killed);
    EXPECT_NE(killed.error().message().find("signal 9"), std::string::npos);
    auto missing =
        obtain_secret(store_with(secret_source::kind::password_command, "/nonexistent/pass"));
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("exit status 127"), std::string::npos);
}

TEST(password_command, large_output_on_both_pipes_does_not_hang) {
    auto s = store_with(secret_source::kind::token_command,
                        "head -c 300000 /dev/zero | tr '\\0' x >&2; head -c 300000 /dev/zero "
                        "| tr '\\0' y; echo");
    auto r = obtain_secret(s);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->size(), 300000u);
}

TEST(password_file, mode_0600_accepted_0644_refused) {
    test::temp_dir dir;
    const auto file = dir / "secret";
    std::ofstream(file) << "hunter2\nignored\n";
    auto s = store_with(secret_source::kind::password_file, file.string());

    ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
    auto refused = obtain_secret(s);
    ASSERT_FALSE(refused);
    const std::string m = refused.error().message();
    EXPECT_NE(m.find("store \"work\""), std::string::npos) << m;
    EXPECT_NE(m.find("mode 0644"), std::string::npos) << m;
    EXPECT_NE(m.find("chmod 600 " + file.string()), std::string::npos) << m;
    EXPECT_EQ(m.find("hunter2"), std::string::npos) << m;

    ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
    EXPECT_FALSE(obtain_secret(s));

    ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
    EXPECT_EQ(obtain_secret(s).value(), "hunter2");
    ASSERT_EQ(::chmod(file.c_str(), 0400), 0);
    EXPECT_EQ(obtain_secret(s).value(), "hunter2");
}

TEST(password_file, missing_or_empty) {
    test::temp_dir dir;
    auto missing =
        obtain_secret(store_with(secret_source::kind::password_file, (dir / "nope").string()));
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("No such file"), std::string::npos);
    const auto file = dir / "empty";
    std::ofstream(file) << "\n";
    ::chmod(file.c_str(), 0600);
    EXPECT_FALSE(obtain_secret(store_with(secret_source::kind::password_file, file.string())));
    EXPECT_FALSE(
        obtain_secret(store_with(secret_source::kind::password_file, dir.path().string())));
}

TEST(obtain_secret, no_source) {
    imap_store s;
    s.name = "pre";
    auto r = obtain_secret(s);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("\"pre\""), std::string::npos);
}

}  // namespace
}  // namespace tandem::config
