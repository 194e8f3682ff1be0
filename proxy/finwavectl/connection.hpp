#pragma once

#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "netfilter/unique_fd.hpp"

namespace finwave::proxy::ctl {

/// finwavectl's exit statuses (also in `finwavectl --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitTimeout = 1;        ///< `wait` timed out.
inline constexpr int kExitUsage = 2;          ///< Usage or protocol error (the daemon said no).
inline constexpr int kExitUnreachable = 3;    ///< No daemon at the socket, or it went away.
inline constexpr int kExitInterrupted = 130;  ///< Ctrl-C during a command.

/// A SIGINT handler that only notes the signal (installed without SA_RESTART, so a blocking
/// read returns); interrupted() tells, clear_interrupt() forgets.
void note_interrupt(int signum) noexcept;
bool interrupted() noexcept;
void clear_interrupt() noexcept;

/// A failure that ends the command with `exit_code`; what() is the message for stderr.
struct CtlError : std::runtime_error {
  CtlError(int code, const std::string& message) : std::runtime_error(message), exit_code(code) {}
  int exit_code;
};

/// One connection to the control socket, blocking, for one finwavectl command (or one shell
/// line). Requests are numbered; replies are matched by id, event lines are handed to the
/// caller of next_line().
class Connection {
 public:
  /// Connects to `path`; throws CtlError(kExitUnreachable) with a message that says why
  /// (no daemon, permission, not a socket).
  static Connection open(const std::string& path);

  Connection(Connection&& other) noexcept = default;
  Connection& operator=(Connection&& other) noexcept = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() = default;

  /// Sends `request` (an object; "id" is set here) and returns the reply. Throws CtlError:
  /// kExitUnreachable if the daemon closes the connection or stays silent for `timeout_ms`.
  /// Events that arrive meanwhile are kept for next_line().
  nlohmann::json call(nlohmann::json request, std::uint64_t timeout_ms = 10000);

  /// Sends one raw line as it is (finwavectl raw).
  void send_line(const std::string& line);

  /// The next line from the daemon, waiting at most `timeout_ms` (nullopt: no line yet, or
  /// interrupted by a signal); throws CtlError(kExitUnreachable) when the daemon closed.
  std::optional<std::string> next_line(std::uint64_t timeout_ms);

 private:
  explicit Connection(nf::UniqueFd fd) noexcept : fd_(std::move(fd)) {}
  std::optional<std::string> take_line();
  std::optional<std::string> read_line(std::uint64_t timeout_ms);  // Not from the stash.

  nf::UniqueFd fd_;
  std::uint64_t next_id_ = 1;
  std::string buffer_;
  std::deque<std::string> stashed_;  // Event lines that arrived while waiting for a reply.
};

}  // namespace finwave::proxy::ctl
