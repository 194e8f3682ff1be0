#include "netfilter/teardown_set.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nfnetlink.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <optional>

#include "netfilter/ipset_entries.hpp"

namespace finwave::nf {
namespace {

constexpr std::uint16_t kListType = (NFNL_SUBSYS_IPSET << 8) | IPSET_CMD_LIST;

/// A kernel-shaped reply to a header-only IPSET_CMD_LIST: the set's name and type, then its
/// data nest holding `elements` (when given) among other header attributes. Returns its length.
std::size_t list_reply(std::array<char, 1024>& buffer, std::optional<std::uint32_t> elements,
                       std::uint16_t type = kListType) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
  nlh->nlmsg_type = type;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = AF_INET;
  mnl_attr_put_u8(nlh, IPSET_ATTR_PROTOCOL, IPSET_PROTOCOL);
  mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, "finwave-q0-v4");
  mnl_attr_put_strz(nlh, IPSET_ATTR_TYPENAME, "hash:ip,port,ip");
  nlattr* data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA);
  mnl_attr_put_u32(nlh, IPSET_ATTR_MAXELEM | NLA_F_NET_BYTEORDER, htonl(kTeardownSetMaxEntries));
  if (elements) mnl_attr_put_u32(nlh, IPSET_ATTR_ELEMENTS | NLA_F_NET_BYTEORDER, htonl(*elements));
  mnl_attr_put_u32(nlh, IPSET_ATTR_REFERENCES | NLA_F_NET_BYTEORDER, htonl(2));
  mnl_attr_nest_end(nlh, data);
  return nlh->nlmsg_len;
}

TEST_SUITE("netfilter") {
  TEST_CASE("teardown_set: names carry the queue and the family") {
    CHECK(teardown_set_name(0, 4) == "finwave-q0-v4");
    CHECK(teardown_set_name(65535, 6) == "finwave-q65535-v6");
  }

  TEST_CASE("ipset_entries: the count comes from the data nest of the list reply") {
    std::array<char, 1024> buffer{};
    std::size_t length = list_reply(buffer, 1001);
    CHECK(parse_ipset_list_reply(buffer.data(), length) == 1001U);
    length = list_reply(buffer, 0);
    CHECK(parse_ipset_list_reply(buffer.data(), length) == 0U);
    length = list_reply(buffer, 0xffffffffU);
    CHECK(parse_ipset_list_reply(buffer.data(), length) == 0xffffffffU);
  }

  TEST_CASE("ipset_entries: a reply without a count, an error or a truncated reply gives nothing") {
    std::array<char, 1024> buffer{};
    std::size_t length = list_reply(buffer, std::nullopt);
    CHECK_FALSE(parse_ipset_list_reply(buffer.data(), length).has_value());

    // Another message type (not a list reply) is not read.
    length = list_reply(buffer, 5, (NFNL_SUBSYS_IPSET << 8) | IPSET_CMD_HEADER);
    CHECK_FALSE(parse_ipset_list_reply(buffer.data(), length).has_value());

    // The kernel's answer for a set that does not exist.
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
    nlh->nlmsg_type = NLMSG_ERROR;
    auto* error = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nlmsgerr)));
    error->error = -ENOENT;
    CHECK_FALSE(parse_ipset_list_reply(buffer.data(), nlh->nlmsg_len).has_value());

    // Cut short: the message claims more than was received.
    length = list_reply(buffer, 7);
    CHECK_FALSE(parse_ipset_list_reply(buffer.data(), length - 4).has_value());
    CHECK_FALSE(parse_ipset_list_reply(buffer.data(), 0).has_value());
  }

  TEST_CASE("ipset_entries: no set by that name (or a name ipset cannot have) gives nothing") {
    // Without CAP_NET_ADMIN the kernel refuses; with it, the set does not exist. Either way.
    CHECK_FALSE(ipset_entries("finwave-test-no-such-set").has_value());
    CHECK_FALSE(ipset_entries("").has_value());
    CHECK_FALSE(ipset_entries(std::string(IPSET_MAXNAMELEN, 'x')).has_value());
  }
}

}  // namespace
}  // namespace finwave::nf
