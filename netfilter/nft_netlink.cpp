#include "netfilter/nft_netlink.hpp"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace finwave::nf {

MnlSocket open_nft_socket() noexcept {
  MnlSocket socket(mnl_socket_open(NETLINK_NETFILTER));
  if (!socket || mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) return nullptr;
  const timeval timeout{1, 0};
  if (setsockopt(mnl_socket_get_fd(socket.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof timeout) != 0) {
    return nullptr;
  }
  return socket;
}

nlmsghdr* put_nft_request(char* buffer, std::uint16_t type, std::uint16_t flags) noexcept {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer);
  nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = 1;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = NFPROTO_INET;
  header->version = NFNETLINK_V0;
  header->res_id = 0;
  return nlh;
}

}  // namespace finwave::nf
