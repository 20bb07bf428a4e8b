// SPDX-License-Identifier: MIT
// Fetching a store's secret at run time. The secret itself never enters an error message:
// errors carry the store, the source, the exit status and the command's error output.
#include "values_p.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace tandem::config {

namespace {

class fd_guard {
  public:
    explicit fd_guard(int fd = -1) : fd_(fd) {}
    ~fd_guard() { reset(); }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_;
};

std::string first_line(std::string_view text) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return std::string(line);
}

// The command's error output as it goes into a message: a few lines, bounded.
std::string tidy_stderr(std::string_view text) {
    std::string out(detail::trim(text));
    constexpr std::size_t limit = 400;
    if (out.size() > limit) out = out.substr(0, limit) + "...";
    for (char& c : out)
        if (c == '\n')
            c = ' ';
        else if (static_cast<unsigned char>(c) < 0x20 && c != '\t')
            c = '?';
    return out;
}

std::string sys_error(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

result<std::string> run_secret_command(std::string_view store_name, std::string_view key,
                                       const std::string& command) {
    const std::string who = "store \"" + std::string(store_name) + "\": " + std::string(key);
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0)
        return detail::make_error(who + ": " + sys_error("pipe"));
    fd_guard out_read(out_pipe[0]), out_write(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0)
        return detail::make_error(who + ": " + sys_error("pipe"));
    fd_guard err_read(err_pipe[0]), err_write(err_pipe[1]);

    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
    std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
    char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
    pid_t pid = -1;
    const int spawned = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0)
        return detail::make_error(who + ": cannot run /bin/sh: " + std::strerror(spawned));
    out_write.reset();
    err_write.reset();

    // Both pipes at once, or a command that fills one while we block on the other hangs.
    std::string out, err;
    constexpr std::size_t keep = 1 << 20;
    pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
    std::string* sinks[2] = {&out, &err};
    int open = 2;
    while (open > 0) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                fds[i].fd = -1;
                --open;
                continue;
            }
            if (sinks[i]->size() < keep) sinks[i]->append(buf, static_cast<std::size_t>(n));
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return detail::make_error(who + ": " + sys_error("waitpid"));
    }
    if (WIFSIGNALED(status))
        return detail::make_error(who + " was killed by signal " +
                                  std::to_string(WTERMSIG(status)));
    if (WEXITSTATUS(status) != 0) {
        std::string msg = who + " failed with exit status " + std::to_string(WEXITSTATUS(status));
        if (const std::string e = tidy_stderr(err); !e.empty()) msg += ": " + e;
        return detail::make_error(msg);
    }
    std::string secret = first_line(out);
    if (secret.empty()) return detail::make_error(who + " printed nothing on its first line");
    return secret;
}

result<std::string> read_secret_file(std::string_view store_name,
                                     const std::filesystem::path& file) {
    const std::string who =
        "store \"" + std::string(store_name) + "\": password-file " + file.string();
    // fstat on the open file, not stat on the name: the mode checked is the one read.
    fd_guard fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return detail::make_error(who + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return detail::make_error(who + ": " + sys_error("fstat"));
    if (!S_ISREG(st.st_mode)) return detail::make_error(who + " is not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return detail::make_error(who + " has mode " + mode +
                                  ", so other users may read it; refusing to use it. Run: chmod "
                                  "600 " +
                                  file.string());
    }
    std::string text;
    char buf[4096];
    while (text.size() < (1 << 20)) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return detail::make_error(who + ": " + sys_error("read"));
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.find('\n') != std::string::npos) break;
    }
    std::string secret = first_line(text);
    if (secret.empty()) return detail::make_error(who + " is empty");
    return secret;
}

result<std::string> obtain_secret(const imap_store& store) {
    switch (store.secret.from) {
        case secret_source::kind::password_command:
            return run_secret_command(store.name, "password-command", store.secret.value);
        case secret_source::kind::token_command:
            return run_secret_command(store.name, "token-command", store.secret.value);
        case secret_source::kind::password_file:
            return read_secret_file(store.name, store.secret.value);
        case secret_source::kind::none:
            break;
    }
    return detail::make_error("store \"" + store.name + "\" has no password source");
}

}  // namespace tandem::config
