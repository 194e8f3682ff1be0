#include "netfilter/mnl_socket.hpp"

#include <libmnl/libmnl.h>
#include <sys/socket.h>

#include <cerrno>

namespace finwave::nf {

void MnlSocketCloser::operator()(mnl_socket* socket) const noexcept { mnl_socket_close(socket); }

long receive_datagram(int fd, std::span<std::uint8_t> buffer, std::uint64_t& overruns) noexcept {
  for (;;) {
    const ssize_t received = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (received >= 0) return static_cast<long>(received);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno != ENOBUFS) return -errno;
    ++overruns;
  }
}

}  // namespace finwave::nf
