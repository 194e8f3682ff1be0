#include "netfilter/mnl_socket.hpp"

#include <libmnl/libmnl.h>

namespace finwave::nf {

void MnlSocketCloser::operator()(mnl_socket* socket) const noexcept { mnl_socket_close(socket); }

}  // namespace finwave::nf
