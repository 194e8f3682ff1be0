#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

namespace finwave::peer {

/// A numeric IPv4 or IPv6 socket address.
struct Endpoint {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

/// Parses a numeric address ("198.18.2.2", "2001:db8:2::2", "[2001:db8:2::2]"); the family
/// follows from the address. Returns nullopt for anything else (no name resolution).
std::optional<Endpoint> parse_endpoint(const std::string& address, std::uint16_t port);

/// The wildcard address of a family, for binding to a port only.
Endpoint any_endpoint(int family, std::uint16_t port);

/// "198.18.1.2:40000" or "[2001:db8:1::2]:40000".
std::string format_endpoint(const sockaddr* addr, socklen_t length);

/// The socket's local or peer address formatted, or "" when it cannot be read.
std::string local_of(int fd);
std::string remote_of(int fd);

/// Owns a file descriptor; closes it on destruction. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();
  /// Closes now; returns 0 or the errno of close(2).
  int close();

 private:
  int fd_ = -1;
};

/// Waits until fd is ready for `events` (poll(2) flags). timeout_ms < 0 waits forever.
/// Restarts on EINTR with the remaining time. Returns 0, ETIMEDOUT, or poll's errno.
int wait_ready(int fd, short events, int timeout_ms);

/// connect(2) with a timeout: non-blocking connect, wait, SO_ERROR; the socket is left
/// non-blocking. Returns 0 or the errno (ETIMEDOUT when timeout_ms passes).
int connect_with_timeout(int fd, const Endpoint& remote, int timeout_ms);

}  // namespace finwave::peer
