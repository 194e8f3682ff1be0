#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace finwave::nf {

/// What a finished child process left behind.
struct SubprocessResult {
  /// Exit code when the child exited; 128 + signal number when a signal killed it (as a shell
  /// reports it).
  int exit_status = -1;
  bool timed_out = false;  ///< The child outlived its timeout and was killed with SIGKILL.
  std::string out;         ///< Everything the child wrote to stdout.
  std::string err;         ///< Everything the child wrote to stderr.

  bool ok() const noexcept { return exit_status == 0 && !timed_out; }
};

/// Full path of the executable `name` found in $PATH, then in /usr/sbin and /sbin (which a
/// root shell entered with plain `su` may lack); nullopt when there is none. `name` containing
/// a slash is returned as is when it is executable.
std::optional<std::string> find_executable(std::string_view name);

/// Like find_executable(), but throws std::runtime_error naming the Debian `package` that
/// provides the tool when it is missing.
std::string require_executable(std::string_view name, std::string_view package);

/// Runs `argv[0]` (a path: no $PATH search, no shell) with `argv`, feeds it `input` on stdin,
/// closes stdin and collects stdout and stderr until it exits. The child inherits the calling
/// thread's namespaces and the environment, with every signal unblocked and at its default.
/// After `timeout` the child is killed. Control plane only: blocks the calling thread, throws
/// std::system_error when pipes or fork fail and std::invalid_argument for an empty argv.
/// An executable that cannot be run shows up as exit status 127 with the reason on `err`.
SubprocessResult run_subprocess(const std::vector<std::string>& argv, std::string_view input = {},
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace finwave::nf
