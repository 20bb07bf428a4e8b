// SPDX-License-Identifier: MIT
// A child process for the tests: Dovecot, the preauth tunnel, the openssl command line.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace tandem::test {

// Where a standard stream of the child goes.
enum class child_stream {
    inherit,  // the test's own
    pipe,     // a pipe that the test reads or writes
    null,     // /dev/null
    file,     // appended to child_options::stderr_file (stderr only)
    stdout_,  // stderr only: the same as stdout
};

struct child_options {
    child_stream in = child_stream::null;
    child_stream out = child_stream::pipe;
    child_stream err = child_stream::stdout_;
    std::filesystem::path stderr_file;
    // Sent to the child by the kernel when the thread that started it ends
    // (PR_SET_PDEATHSIG), so that a test that crashes leaves nothing behind. Linux keys this to
    // the creating *thread*: start long-lived children from the test's main thread.
    int death_signal = 9;  // SIGKILL
};

// A started child process. The destructor kills it (SIGTERM, then SIGKILL after a grace
// period) and reaps it, so no zombie or orphan outlives the object.
class child_process {
  public:
    // Throws std::runtime_error when the program cannot be started (argv[0] is looked up in PATH).
    child_process(const std::vector<std::string>& argv, const child_options& options = {});
    ~child_process();
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    pid_t pid() const { return pid_; }

    // Writes everything to the child's stdin; false when the pipe is closed.
    bool write(std::string_view data);
    void close_stdin();
    // Reads what is available from the child's stdout, waiting up to `timeout` for at least one
    // byte. nullopt on end of file; an empty string on timeout.
    std::optional<std::string> read_some(std::chrono::milliseconds timeout);
    // Reads stdout until end of file or `timeout` in total.
    std::string read_all(std::chrono::milliseconds timeout);

    // The exit status as from waitpid (WIFEXITED...) once the child has ended within `timeout`.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    // SIGTERM, up to `grace` for the child to end, then SIGKILL; returns the waitpid status.
    int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
    bool running();

  private:
    pid_t pid_ = -1;
    int in_ = -1;
    int out_ = -1;
    std::optional<int> status_;
};

struct run_result {
    int status = -1;     // as from waitpid
    std::string output;  // stdout and stderr together
    bool ok() const;     // exited with 0
};

// Runs a program to its end with `input` on stdin; kills it after `timeout`.
run_result run_process(const std::vector<std::string>& argv, std::string_view input = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Quotes one word for /bin/sh.
std::string shell_quote(std::string_view word);

// The contents of /proc/<pid>/<name>; empty when the process has gone. A process that ends
// while it is read makes read(2) fail with ESRCH, which an std::ifstream turns into an exception.
std::string read_proc_file(pid_t pid, const char* name);

}  // namespace tandem::test
