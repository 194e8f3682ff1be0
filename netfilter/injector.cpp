#include "netfilter/injector.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace finwave::nf {
namespace {

int open_raw(int family, std::uint32_t mark) {
  // IPPROTO_RAW implies "header included" for both families on Linux: the packet goes out
  // with the addresses finwave copied from the original, whoever owns them.
  const int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(),
                            family == AF_INET ? "raw IPv4 socket" : "raw IPv6 socket");
  }
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    const int error = errno;
    close(fd);
    throw std::system_error(error, std::generic_category(), "SO_MARK on the raw socket");
  }
  return fd;
}

}  // namespace

Injector Injector::open(std::uint32_t mark) {
  Injector injector;
  injector.v4_ = open_raw(AF_INET, mark);
  injector.v6_ = open_raw(AF_INET6, mark);
  return injector;
}

Injector::Injector(Injector&& other) noexcept
    : v4_(std::exchange(other.v4_, -1)), v6_(std::exchange(other.v6_, -1)) {}

Injector& Injector::operator=(Injector&& other) noexcept {
  if (this != &other) {
    this->~Injector();
    v4_ = std::exchange(other.v4_, -1);
    v6_ = std::exchange(other.v6_, -1);
  }
  return *this;
}

Injector::~Injector() {
  if (v4_ >= 0) close(v4_);
  if (v6_ >= 0) close(v6_);
  v4_ = v6_ = -1;
}

int Injector::send(std::span<const std::uint8_t> packet, const TcpSegment& segment) noexcept {
  ssize_t sent = -1;
  if (segment.dst.family == 4) {
    if (v4_ < 0) return -EBADF;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, segment.dst.bytes.data(), 4);
    sent =
        sendto(v4_, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  } else {
    if (v6_ < 0) return -EBADF;
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    std::memcpy(&to.sin6_addr, segment.dst.bytes.data(), 16);
    sent =
        sendto(v6_, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  return sent < 0 ? -errno : 0;
}

}  // namespace finwave::nf
