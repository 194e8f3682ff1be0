#pragma once

#include <cstdint>
#include <memory>
#include <span>

// libmnl's socket type, declared so that public headers (queue.hpp) can own one without
// including libmnl: only netfilter's sources include <libmnl/libmnl.h>.
struct mnl_socket;

namespace finwave::nf {

/// Closes a libmnl socket (mnl_socket_close()); the one deleter of netlink sockets in finwave.
struct MnlSocketCloser {
  void operator()(mnl_socket* socket) const noexcept;
};

/// An owned libmnl netlink socket: NFQUEUE's (queue.hpp), nfnetlink_log's (log_group.hpp),
/// nftables' (nft_netlink.hpp).
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketCloser>;

/// One non-blocking read of a netlink socket into `buffer`: the bytes read, 0 when nothing is
/// waiting, or a negative errno. An overrun (ENOBUFS: the kernel dropped messages meant for us)
/// is counted in `overruns` and the read goes on with what is left; EINTR is retried.
long receive_datagram(int fd, std::span<std::uint8_t> buffer, std::uint64_t& overruns) noexcept;

}  // namespace finwave::nf
