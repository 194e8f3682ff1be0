#include "proxy/finwavectl/connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <utility>

namespace finwave::proxy::ctl {
namespace {

std::uint64_t monotonic_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

Connection Connection::open(const std::string& path) {
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    throw CtlError(kExitUsage, "invalid control socket path '" + path + "'");
  }
  nf::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw CtlError(kExitUnreachable, std::string("socket: ") + std::strerror(errno));
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    std::string why;
    switch (error) {
      case ENOENT:
        why = "no such socket: is finwave running (with this --control path)?";
        break;
      case ECONNREFUSED:
        why = "connection refused: the socket file is there but no finwave listens on it";
        break;
      case EACCES:
      case EPERM:
        why =
            "permission denied: the control socket is for root (or the group given to "
            "finwave --control-group)";
        break;
      default:
        why = std::strerror(error);
    }
    throw CtlError(kExitUnreachable, "cannot reach finwave at " + path + ": " + why);
  }
  return Connection(std::move(fd));
}

void Connection::send_line(const std::string& line) {
  std::string data = line;
  data += '\n';
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd_.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CtlError(kExitUnreachable,
                     std::string("lost the connection to finwave: ") + std::strerror(errno));
    }
    sent += static_cast<std::size_t>(n);
  }
}

std::optional<std::string> Connection::take_line() {
  const auto newline = buffer_.find('\n');
  if (newline == std::string::npos) return std::nullopt;
  std::string line = buffer_.substr(0, newline);
  buffer_.erase(0, newline + 1);
  return line;
}

std::optional<std::string> Connection::next_line(std::uint64_t timeout_ms) {
  if (!stashed_.empty()) {
    std::string line = std::move(stashed_.front());
    stashed_.pop_front();
    return line;
  }
  return read_line(timeout_ms);
}

std::optional<std::string> Connection::read_line(std::uint64_t timeout_ms) {
  const std::uint64_t deadline = monotonic_ms() + timeout_ms;
  for (;;) {
    if (auto line = take_line()) return line;
    const std::uint64_t now = monotonic_ms();
    if (now >= deadline) return std::nullopt;
    pollfd pfd{fd_.get(), POLLIN, 0};
    const std::uint64_t left = deadline - now;
    const int ready = ::poll(&pfd, 1, left > 60000 ? 60000 : static_cast<int>(left));
    if (ready < 0) {
      if (errno == EINTR) return std::nullopt;  // The caller checks interrupted().
      throw CtlError(kExitUnreachable, std::string("poll: ") + std::strerror(errno));
    }
    if (ready == 0) continue;
    char chunk[65536];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0) {
      if (errno == EINTR) return std::nullopt;
      throw CtlError(kExitUnreachable,
                     std::string("lost the connection to finwave: ") + std::strerror(errno));
    }
    if (n == 0) throw CtlError(kExitUnreachable, "finwave closed the control connection");
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

nlohmann::json Connection::call(nlohmann::json request, std::uint64_t timeout_ms) {
  const std::uint64_t id = next_id_++;
  request["id"] = id;
  send_line(request.dump());
  const std::uint64_t deadline = monotonic_ms() + timeout_ms;
  for (;;) {
    if (interrupted()) throw CtlError(kExitInterrupted, "interrupted");
    const std::uint64_t now = monotonic_ms();
    if (now >= deadline) {
      throw CtlError(kExitUnreachable, "no reply from finwave within " +
                                           std::to_string((timeout_ms + 999) / 1000) + " s");
    }
    std::optional<std::string> line = read_line(deadline - now);
    if (!line) continue;
    nlohmann::json reply;
    try {
      reply = nlohmann::json::parse(*line);
    } catch (const nlohmann::json::parse_error&) {
      throw CtlError(kExitUsage, "finwave sent a line that is not JSON: " + line->substr(0, 200));
    }
    // A reply has "ok"; an event has "event". A reply with a null id is an error the daemon
    // could not tie to a request (too_many_clients).
    if (reply.is_object() && reply.contains("ok")) {
      const nlohmann::json reply_id = reply.value("id", nlohmann::json());
      if (reply_id == id || reply_id.is_null()) return reply;
    }
    stashed_.push_back(std::move(*line));
  }
}

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
}  // namespace

void note_interrupt(int /*signum*/) noexcept { g_interrupted = 1; }
bool interrupted() noexcept { return g_interrupted != 0; }
void clear_interrupt() noexcept { g_interrupted = 0; }

}  // namespace finwave::proxy::ctl
