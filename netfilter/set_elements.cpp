#include "netfilter/set_elements.hpp"

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <memory>

namespace finwave::nf {
namespace {

constexpr std::uint16_t kNewSetElement = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
constexpr std::uint16_t kGetSetElement = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
// The kernel's names are at most 256 bytes with the terminator (NFT_NAME_MAXLEN).
constexpr std::size_t kNameMax = 255;
// The kernel sizes a dump's reads to the reader's largest read, up to 32 KiB.
constexpr std::size_t kDumpReadSize = 32768;

struct SocketCloser {
  void operator()(mnl_socket* socket) const noexcept { mnl_socket_close(socket); }
};

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
  if (table.empty() || set.empty() || table.size() > kNameMax || set.size() > kNameMax) {
    return std::nullopt;
  }
  const std::unique_ptr<mnl_socket, SocketCloser> socket(mnl_socket_open(NETLINK_NETFILTER));
  if (!socket || mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) return std::nullopt;
  // A kernel that never answers must not hang the control loop.
  const timeval timeout{1, 0};
  if (setsockopt(mnl_socket_get_fd(socket.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof timeout) != 0) {
    return std::nullopt;
  }

  std::array<char, 1024> request{};
  nlmsghdr* nlh = mnl_nlmsg_put_header(request.data());
  nlh->nlmsg_type = kGetSetElement;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 1;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = NFPROTO_INET;
  header->version = NFNETLINK_V0;
  header->res_id = 0;
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
