#include "netfilter/arrival_stamps.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace finwave::nf {

ArrivalStamps::ArrivalStamps() noexcept {
  // Any address family but AF_UNIX counts; the socket is never bound, so it receives nothing.
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd_ < 0) fd_ = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd_ < 0) return;
  const int on = 1;
  if (::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

ArrivalStamps::~ArrivalStamps() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace finwave::nf
