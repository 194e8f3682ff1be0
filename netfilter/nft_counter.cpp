#include "netfilter/nft_counter.hpp"

#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <array>

#include "netfilter/nft_netlink.hpp"

namespace finwave::nf {
namespace {

constexpr std::uint16_t kNewObject = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ;

int find_packets(const nlattr* attribute, void* data) {
  if (mnl_attr_get_type(attribute) == NFTA_COUNTER_PACKETS &&
      mnl_attr_validate(attribute, MNL_TYPE_U64) >= 0) {
    *static_cast<std::optional<std::uint64_t>*>(data) = be64toh(mnl_attr_get_u64(attribute));
  }
  return MNL_CB_OK;
}

int find_data(const nlattr* attribute, void* data) {
  if (mnl_attr_get_type(attribute) == NFTA_OBJ_DATA &&
      mnl_attr_validate(attribute, MNL_TYPE_NESTED) >= 0) {
    mnl_attr_parse_nested(attribute, find_packets, data);
  }
  return MNL_CB_OK;
}

}  // namespace

std::optional<std::uint64_t> parse_counter_reply(const void* reply, std::size_t length) noexcept {
  std::optional<std::uint64_t> packets;
  int remaining = static_cast<int>(std::min<std::size_t>(length, 1U << 30));
  for (const auto* nlh = static_cast<const nlmsghdr*>(reply); mnl_nlmsg_ok(nlh, remaining);
       nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) break;
    if (nlh->nlmsg_type != kNewObject || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) {
      continue;
    }
    mnl_attr_parse(nlh, sizeof(nfgenmsg), find_data, &packets);
    break;
  }
  return packets;
}

std::optional<std::uint64_t> nft_counter_packets(const std::string& table,
                                                 const std::string& name) noexcept {
  if (!valid_nft_name(table) || !valid_nft_name(name)) return std::nullopt;
  const MnlSocket socket = open_nft_socket();
  if (!socket) return std::nullopt;
  std::array<char, 1024> request{};
  nlmsghdr* nlh = put_nft_request(request.data(), NFT_MSG_GETOBJ, 0);
  mnl_attr_put_strz(nlh, NFTA_OBJ_TABLE, table.c_str());
  mnl_attr_put_strz(nlh, NFTA_OBJ_NAME, name.c_str());
  mnl_attr_put_u32(nlh, NFTA_OBJ_TYPE, htobe32(NFT_OBJECT_COUNTER));
  if (mnl_socket_sendto(socket.get(), nlh, nlh->nlmsg_len) < 0) return std::nullopt;

  // One message: the object, or the error.
  std::array<char, 8192> reply{};
  const ssize_t received = mnl_socket_recvfrom(socket.get(), reply.data(), reply.size());
  if (received <= 0) return std::nullopt;
  return parse_counter_reply(reply.data(), static_cast<std::size_t>(received));
}

}  // namespace finwave::nf
