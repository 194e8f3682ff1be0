#include "netfilter/ipset_entries.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <memory>

namespace finwave::nf {
namespace {

constexpr std::uint16_t kListType = (NFNL_SUBSYS_IPSET << 8) | IPSET_CMD_LIST;

struct SocketCloser {
  void operator()(mnl_socket* socket) const noexcept { mnl_socket_close(socket); }
};

// Finds IPSET_ATTR_ELEMENTS among the attributes nested in IPSET_ATTR_DATA.
int find_elements(const nlattr* attribute, void* data) {
  auto* entries = static_cast<std::optional<std::uint64_t>*>(data);
  if (mnl_attr_get_type(attribute) == IPSET_ATTR_ELEMENTS &&
      mnl_attr_validate(attribute, MNL_TYPE_U32) >= 0) {
    *entries = ntohl(mnl_attr_get_u32(attribute));
  }
  return MNL_CB_OK;
}

int find_data(const nlattr* attribute, void* data) {
  if (mnl_attr_get_type(attribute) == IPSET_ATTR_DATA &&
      mnl_attr_validate(attribute, MNL_TYPE_NESTED) >= 0) {
    mnl_attr_parse_nested(attribute, find_elements, data);
  }
  return MNL_CB_OK;
}

}  // namespace

std::optional<std::uint64_t> parse_ipset_list_reply(const void* reply,
                                                    std::size_t length) noexcept {
  std::optional<std::uint64_t> entries;
  int remaining = static_cast<int>(std::min<std::size_t>(length, 1U << 30));
  for (const auto* nlh = static_cast<const nlmsghdr*>(reply); mnl_nlmsg_ok(nlh, remaining);
       nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) break;
    if (nlh->nlmsg_type != kListType || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) {
      continue;
    }
    mnl_attr_parse(nlh, sizeof(nfgenmsg), find_data, &entries);
    break;
  }
  return entries;
}

std::optional<std::uint64_t> ipset_entries(const std::string& name) noexcept {
  if (name.empty() || name.size() >= IPSET_MAXNAMELEN) return std::nullopt;
  const std::unique_ptr<mnl_socket, SocketCloser> socket(mnl_socket_open(NETLINK_NETFILTER));
  if (!socket || mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) return std::nullopt;
  // A kernel that never answers must not hang the control loop.
  const timeval timeout{1, 0};
  if (setsockopt(mnl_socket_get_fd(socket.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof timeout) != 0) {
    return std::nullopt;
  }

  std::array<char, 512> request{};
  nlmsghdr* nlh = mnl_nlmsg_put_header(request.data());
  nlh->nlmsg_type = kListType;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 1;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = AF_INET;
  header->version = NFNETLINK_V0;
  header->res_id = 0;
  mnl_attr_put_u8(nlh, IPSET_ATTR_PROTOCOL, IPSET_PROTOCOL);
  mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, name.c_str());
  // The header alone: a full listing would carry every entry.
  mnl_attr_put_u32(nlh, IPSET_ATTR_FLAGS, htonl(IPSET_FLAG_LIST_HEADER));
  if (mnl_socket_sendto(socket.get(), nlh, nlh->nlmsg_len) < 0) return std::nullopt;

  // The header reply is one small message, then NLMSG_DONE (perhaps in a second read).
  std::array<char, 8192> reply{};
  const ssize_t received = mnl_socket_recvfrom(socket.get(), reply.data(), reply.size());
  if (received <= 0) return std::nullopt;
  return parse_ipset_list_reply(reply.data(), static_cast<std::size_t>(received));
}

}  // namespace finwave::nf
