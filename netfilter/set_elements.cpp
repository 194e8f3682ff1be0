#include "netfilter/set_elements.hpp"

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <array>

#include "netfilter/nft_netlink.hpp"

namespace finwave::nf {
namespace {

constexpr std::uint16_t kNewSetElement = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
// The kernel sizes a dump's reads to the reader's largest read, up to 32 KiB.
constexpr std::size_t kDumpReadSize = 32768;

int count_element(const nlattr* attribute, void* data) {
  if (mnl_attr_get_type(attribute) == NFTA_LIST_ELEM) ++*static_cast<std::uint64_t*>(data);
  return MNL_CB_OK;
}

int find_elements(const nlattr* attribute, void* data) {
  if (mnl_attr_get_type(attribute) == NFTA_SET_ELEM_LIST_ELEMENTS &&
      mnl_attr_validate(attribute, MNL_TYPE_NESTED) >= 0) {
    mnl_attr_parse_nested(attribute, count_element, data);
  }
  return MNL_CB_OK;
}

}  // namespace

SetElementsChunk parse_set_elements_chunk(const void* chunk, std::size_t length) noexcept {
  SetElementsChunk result;
  int remaining = static_cast<int>(std::min<std::size_t>(length, 1U << 30));
  const auto* nlh = static_cast<const nlmsghdr*>(chunk);
  for (; mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (nlh->nlmsg_type == NLMSG_DONE) {
      result.done = true;
      return result;
    }
    if (nlh->nlmsg_type == NLMSG_ERROR) {
      result.failed = true;
      return result;
    }
    if (nlh->nlmsg_type != kNewSetElement || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) {
      continue;
    }
    mnl_attr_parse(nlh, sizeof(nfgenmsg), find_elements, &result.elements);
  }
  // Bytes left over that do not make a whole message: the read was cut short.
  if (remaining != 0) result.failed = true;
  return result;
}

std::optional<std::uint64_t> nft_set_elements(const std::string& table, const std::string& set,
                                              std::uint64_t limit) noexcept {
  if (!valid_nft_name(table) || !valid_nft_name(set)) return std::nullopt;
  const MnlSocket socket = open_nft_socket();
  if (!socket) return std::nullopt;
  std::array<char, 1024> request{};
  nlmsghdr* nlh = put_nft_request(request.data(), NFT_MSG_GETSETELEM, NLM_F_DUMP);
  mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table.c_str());
  mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set.c_str());
  if (mnl_socket_sendto(socket.get(), nlh, nlh->nlmsg_len) < 0) return std::nullopt;

  std::uint64_t elements = 0;
  // Per thread and not on the stack: 32 KiB is more than a loop thread's stack should spare.
  static thread_local std::array<char, kDumpReadSize> reply;
  for (;;) {
    const ssize_t received = mnl_socket_recvfrom(socket.get(), reply.data(), reply.size());
    if (received <= 0) return std::nullopt;
    const SetElementsChunk chunk =
        parse_set_elements_chunk(reply.data(), static_cast<std::size_t>(received));
    if (chunk.failed) return std::nullopt;
    elements += chunk.elements;
    // Closing the socket (on return) ends the dump in the kernel.
    if (elements > limit) return std::nullopt;
    if (chunk.done) return elements;
  }
}

}  // namespace finwave::nf
