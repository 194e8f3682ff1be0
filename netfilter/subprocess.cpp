#include "netfilter/subprocess.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "netfilter/unique_fd.hpp"

namespace finwave::nf {
namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    throw_errno("fcntl(O_NONBLOCK)");
  }
}

/// Child side between fork() and exec(): async-signal-safe calls only.
[[noreturn]] void exec_child(char* const* argv, int in_fd, int out_fd, int err_fd, int status_fd) {
  // Lift the three descriptors above 2 first, so that installing one as 0, 1 or 2 cannot
  // overwrite another (a daemon may run with 0-2 closed, and then pipes get those numbers).
  std::array<int, 3> fds = {in_fd, out_fd, err_fd};
  for (int& fd : fds) {
    fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  }
  int error = 0;
  for (int target = 0; target < 3 && error == 0; ++target) {
    if (fds[static_cast<std::size_t>(target)] < 0 ||
        ::dup2(fds[static_cast<std::size_t>(target)], target) < 0) {
      error = errno;
    }
  }
  if (error == 0) {
    // Nothing else of ours (the NFQUEUE netlink socket, the control socket) leaks into the
    // tool. Marking instead of closing keeps the status pipe open until exec itself.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    // Blocked or ignored signals survive exec; the tool should see a normal environment.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) {
      ::signal(sig, SIG_DFL);
    }
    ::execv(argv[0], argv);
    error = errno;
  }
  // The status pipe is close-on-exec: the parent reads EOF on success and our errno otherwise.
  ssize_t ignored = ::write(status_fd, &error, sizeof error);
  (void)ignored;
  ::_exit(127);
}

}  // namespace

std::optional<std::string> find_executable(std::string_view name) {
  if (name.empty()) {
    return std::nullopt;
  }
  const std::string wanted(name);
  if (wanted.find('/') != std::string::npos) {
    return is_executable_file(wanted) ? std::optional<std::string>(wanted) : std::nullopt;
  }
  std::string search;
  if (const char* path = std::getenv("PATH")) {
    search = path;
  }
  search += ":/usr/sbin:/sbin";
  std::size_t begin = 0;
  while (begin <= search.size()) {
    std::size_t end = search.find(':', begin);
    if (end == std::string::npos) {
      end = search.size();
    }
    // An empty PATH entry means the current directory; finwave runs as root, so skip it.
    if (end > begin) {
      std::string candidate = search.substr(begin, end - begin) + "/" + wanted;
      if (is_executable_file(candidate)) {
        return candidate;
      }
    }
    begin = end + 1;
  }
  return std::nullopt;
}

std::string require_executable(std::string_view name, std::string_view package) {
  if (auto path = find_executable(name)) {
    return *path;
  }
  throw std::runtime_error(std::string(name) +
                           " not found in PATH, /usr/sbin or /sbin (install the Debian package '" +
                           std::string(package) + "')");
}

SubprocessResult run_subprocess(const std::vector<std::string>& argv, std::string_view input,
                                std::chrono::milliseconds timeout) {
  if (argv.empty()) {
    throw std::invalid_argument("run_subprocess: empty argv");
  }
  std::vector<char*> c_argv;
  c_argv.reserve(argv.size() + 1);
  for (const std::string& arg : argv) {
    c_argv.push_back(const_cast<char*>(arg.c_str()));
  }
  c_argv.push_back(nullptr);

  // stdin is a socket so that writing to a child that stopped reading gives EPIPE through
  // MSG_NOSIGNAL instead of a SIGPIPE that would kill the whole daemon.
  int in_pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) < 0) {
    throw_errno("socketpair");
  }
  UniqueFd in_parent(in_pair[0]);
  UniqueFd in_child(in_pair[1]);
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) < 0) {
    throw_errno("pipe2");
  }
  UniqueFd out_parent(out_pipe[0]);
  UniqueFd out_child(out_pipe[1]);
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) < 0) {
    throw_errno("pipe2");
  }
  UniqueFd err_parent(err_pipe[0]);
  UniqueFd err_child(err_pipe[1]);
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) < 0) {
    throw_errno("pipe2");
  }
  UniqueFd status_parent(status_pipe[0]);
  UniqueFd status_child(status_pipe[1]);

  const pid_t pid = ::fork();
  if (pid < 0) {
    throw_errno("fork");
  }
  if (pid == 0) {
    exec_child(c_argv.data(), in_child.get(), out_child.get(), err_child.get(), status_child.get());
  }
  in_child.reset();
  out_child.reset();
  err_child.reset();
  status_child.reset();

  SubprocessResult result;
  int exec_error = 0;
  ssize_t got;
  do {
    got = ::read(status_parent.get(), &exec_error, sizeof exec_error);
  } while (got < 0 && errno == EINTR);
  status_parent.reset();
  if (got == static_cast<ssize_t>(sizeof exec_error)) {
    result.err = "cannot execute " + argv[0] + ": " + std::strerror(exec_error);
    in_parent.reset();
  } else {
    set_nonblocking(in_parent.get());
    set_nonblocking(out_parent.get());
    set_nonblocking(err_parent.get());
    if (input.empty()) {
      in_parent.reset();
    }
    std::size_t written = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out_parent.get() >= 0 || err_parent.get() >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        result.timed_out = true;
        ::kill(pid, SIGKILL);
        break;
      }
      std::array<pollfd, 3> fds = {
          pollfd{in_parent.get(), POLLOUT, 0},
          pollfd{out_parent.get(), POLLIN, 0},
          pollfd{err_parent.get(), POLLIN, 0},
      };
      const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
      if (ready < 0) {
        if (errno == EINTR) {
          continue;
        }
        const int saved = errno;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        errno = saved;
        throw_errno("poll");
      }
      if (fds[0].revents != 0) {
        const ssize_t sent = ::send(in_parent.get(), input.data() + written, input.size() - written,
                                    MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent > 0) {
          written += static_cast<std::size_t>(sent);
        }
        // A child that exits without reading all of its input is its own business; it will
        // say so on stderr or in its exit status.
        if (written == input.size() || (sent < 0 && errno != EAGAIN && errno != EINTR)) {
          in_parent.reset();
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) {
          continue;
        }
        UniqueFd& fd = i == 1 ? out_parent : err_parent;
        std::string& sink = i == 1 ? result.out : result.err;
        std::array<char, 4096> buffer;
        const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n > 0) {
          sink.append(buffer.data(), static_cast<std::size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          fd.reset();
        }
      }
    }
  }
  in_parent.reset();
  out_parent.reset();
  err_parent.reset();

  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited < 0) {
    throw_errno("waitpid");
  }
  if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_status = 128 + WTERMSIG(status);
  }
  return result;
}

}  // namespace finwave::nf
