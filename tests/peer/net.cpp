#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace finwave::peer {

std::optional<Endpoint> parse_endpoint(const std::string& address, std::uint16_t port) {
  Endpoint ep;
  std::string text = address;
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.storage);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    ep.length = sizeof(sockaddr_in);
    return ep;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.storage);
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    ep.length = sizeof(sockaddr_in6);
    return ep;
  }
  return std::nullopt;
}

Endpoint any_endpoint(int family, std::uint16_t port) {
  return *parse_endpoint(family == AF_INET6 ? "::" : "0.0.0.0", port);
}

std::string format_endpoint(const sockaddr* addr, socklen_t length) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (addr->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "";
}

std::string local_of(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  auto* addr = reinterpret_cast<sockaddr*>(&storage);
  if (::getsockname(fd, addr, &length) != 0) {
    return "";
  }
  return format_endpoint(addr, length);
}

std::string remote_of(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  auto* addr = reinterpret_cast<sockaddr*>(&storage);
  if (::getpeername(fd, addr, &length) != 0) {
    return "";
  }
  return format_endpoint(addr, length);
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() { close(); }

int Fd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

int Fd::close() {
  if (fd_ < 0) {
    return 0;
  }
  // Linux releases the descriptor even when close(2) fails, EINTR included: never retry.
  const int rc = ::close(fd_);
  fd_ = -1;
  return rc == 0 ? 0 : errno;
}

int wait_ready(int fd, short events, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  pollfd pfd{fd, events, 0};
  for (;;) {
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      wait_ms = left > 0 ? static_cast<int>(left) : 0;
    }
    const int rc = ::poll(&pfd, 1, wait_ms);
    if (rc > 0) {
      return 0;  // POLLERR/POLLHUP included: the next call reports them.
    }
    if (rc == 0) {
      return ETIMEDOUT;
    }
    if (errno != EINTR) {
      return errno;
    }
  }
}

int connect_with_timeout(int fd, const Endpoint& remote, int timeout_ms) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return errno;
  }
  if (::connect(fd, remote.addr(), remote.length) == 0) {
    return 0;
  }
  // EINTR on a non-blocking connect means it goes on in the background, like EINPROGRESS.
  if (errno != EINPROGRESS && errno != EINTR) {
    return errno;
  }
  if (const int rc = wait_ready(fd, POLLOUT, timeout_ms); rc != 0) {
    return rc;
  }
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
    return errno;
  }
  return error;
}

}  // namespace finwave::peer
