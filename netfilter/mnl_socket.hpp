#pragma once

#include <memory>

// libmnl's socket type, declared so that public headers (queue.hpp) can own one without
// including libmnl: only netfilter's sources include <libmnl/libmnl.h>.
struct mnl_socket;

namespace finwave::nf {

/// Closes a libmnl socket (mnl_socket_close()); the one deleter of netlink sockets in finwave.
struct MnlSocketCloser {
  void operator()(mnl_socket* socket) const noexcept;
};

/// An owned libmnl netlink socket: NFQUEUE's (queue.hpp), nftables' (nft_netlink.hpp).
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketCloser>;

}  // namespace finwave::nf
