#include "netfilter/arrival_stamps.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace finwave::nf {

ArrivalStamps::ArrivalStamps() noexcept {
  // Any address family but AF_UNIX counts; the socket is never bound, so it receives nothing.
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd) fd.reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd) return;
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0) fd_ = std::move(fd);
}

ArrivalStamps::~ArrivalStamps() = default;

}  // namespace finwave::nf
