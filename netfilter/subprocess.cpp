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
#include <utility>

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

// The two ends of one of the child's standard streams (or of the exec status pipe).
struct Channel {
  UniqueFd parent;
  UniqueFd child;
};

// stdin, stdout, stderr, and the exec status pipe: EOF on it means exec succeeded, an int on
// it is exec's errno.
struct ChildPipes {
  Channel in, out, err, status;

  void close_child_ends() noexcept {
    in.child.reset();
    out.child.reset();
    err.child.reset();
    status.child.reset();
  }
};

// A pipe the child writes and the parent reads.
Channel make_pipe() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) < 0) {
    throw_errno("pipe2");
  }
  return {UniqueFd(ends[0]), UniqueFd(ends[1])};
}

ChildPipes open_child_pipes() {
  ChildPipes pipes;
  // stdin is a socket so that writing to a child that stopped reading gives EPIPE through
  // MSG_NOSIGNAL instead of a SIGPIPE that would kill the whole daemon.
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
    throw_errno("socketpair");
  }
  pipes.in = {UniqueFd(pair[0]), UniqueFd(pair[1])};
  pipes.out = make_pipe();
  pipes.err = make_pipe();
  pipes.status = make_pipe();
  return pipes;
}

// 0 once exec succeeded (the status pipe, close-on-exec, reads EOF), else exec's errno.
int read_exec_error(UniqueFd& status) {
  int exec_error = 0;
  ssize_t got;
  do {
    got = ::read(status.get(), &exec_error, sizeof exec_error);
  } while (got < 0 && errno == EINTR);
  status.reset();
  return got == static_cast<ssize_t>(sizeof exec_error) ? exec_error : 0;
}

// Sends what is left of `input` that the socket takes now; closes the child's stdin when all
// is written or the child stopped reading.
void pump_input(UniqueFd& in, std::string_view input, std::size_t& written) {
  const ssize_t sent =
      ::send(in.get(), input.data() + written, input.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent > 0) {
    written += static_cast<std::size_t>(sent);
  }
  // A child that exits without reading all of its input is its own business; it will say so
  // on stderr or in its exit status.
  if (written == input.size() || (sent < 0 && errno != EAGAIN && errno != EINTR)) {
    in.reset();
  }
}

// Appends what `fd` has to `sink`; closes it at EOF or on an error.
void drain_output(UniqueFd& fd, std::string& sink) {
  std::array<char, 4096> buffer;
  const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
  if (n > 0) {
    sink.append(buffer.data(), static_cast<std::size_t>(n));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    fd.reset();
  }
}

// Feeds the child its input and collects its output until both outputs close or `timeout`
// passes (then the child is killed and result.timed_out set).
void exchange(pid_t pid, ChildPipes& pipes, std::string_view input,
              std::chrono::milliseconds timeout, SubprocessResult& result) {
  set_nonblocking(pipes.in.parent.get());
  set_nonblocking(pipes.out.parent.get());
  set_nonblocking(pipes.err.parent.get());
  if (input.empty()) {
    pipes.in.parent.reset();
  }
  std::size_t written = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pipes.out.parent || pipes.err.parent) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      return;
    }
    std::array<pollfd, 3> fds = {
        pollfd{pipes.in.parent.get(), POLLOUT, 0},
        pollfd{pipes.out.parent.get(), POLLIN, 0},
        pollfd{pipes.err.parent.get(), POLLIN, 0},
    };
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int saved = errno;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      errno = saved;
      throw_errno("poll");
    }
    if (fds[0].revents != 0) pump_input(pipes.in.parent, input, written);
    if (fds[1].revents != 0) drain_output(pipes.out.parent, result.out);
    if (fds[2].revents != 0) drain_output(pipes.err.parent, result.err);
  }
}

// The child's exit status, 128 + the signal's number if a signal ended it (-1: neither).
int wait_exit_status(pid_t pid) {
  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited < 0) {
    throw_errno("waitpid");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
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

  ChildPipes pipes = open_child_pipes();
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw_errno("fork");
  }
  if (pid == 0) {
    exec_child(c_argv.data(), pipes.in.child.get(), pipes.out.child.get(), pipes.err.child.get(),
               pipes.status.child.get());
  }
  pipes.close_child_ends();

  SubprocessResult result;
  if (const int exec_error = read_exec_error(pipes.status.parent); exec_error != 0) {
    result.err = "cannot execute " + argv[0] + ": " + std::strerror(exec_error);
  } else {
    exchange(pid, pipes, input, timeout, result);
  }
  pipes.in.parent.reset();
  pipes.out.parent.reset();
  pipes.err.parent.reset();
  result.exit_status = wait_exit_status(pid);
  return result;
}

}  // namespace finwave::nf
