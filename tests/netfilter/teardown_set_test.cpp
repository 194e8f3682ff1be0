#include "netfilter/teardown_set.hpp"

#include <doctest/doctest.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>

#include "netfilter/nft_counter.hpp"
#include "netfilter/set_elements.hpp"

namespace finwave::nf {
namespace {

constexpr std::uint16_t kNewSetElement = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;

/// Appends to `buffer` at `length` a kernel-shaped NEWSETELEM message of a dump: the table and
/// set names, then `elements` list elements, each a key and an expiration. Returns the new
/// length.
std::size_t put_elements(std::array<char, 8192>& buffer, std::size_t length, int elements,
                         std::uint16_t type = kNewSetElement) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data() + length);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_MULTI;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = NFPROTO_INET;
  mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, "finwave-q0");
  mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, "teardown4");
  nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
  for (int i = 0; i < elements; ++i) {
    nlattr* element = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
    nlattr* key = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
    const std::array<std::uint32_t, 3> value = {0x7f000001, static_cast<std::uint32_t>(i),
                                                0x7f000001};
    mnl_attr_put(nlh, NFTA_DATA_VALUE, sizeof value, value.data());
    mnl_attr_nest_end(nlh, key);
    mnl_attr_put_u64(nlh, NFTA_SET_ELEM_EXPIRATION, 179000);
    mnl_attr_nest_end(nlh, element);
  }
  mnl_attr_nest_end(nlh, list);
  return length + nlh->nlmsg_len;
}

/// Writes at the start of `buffer` a kernel-shaped NEWOBJ reply for a named counter holding
/// `packets` (when given). Returns its length.
std::size_t counter_reply(std::array<char, 8192>& buffer, std::optional<std::uint64_t> packets,
                          std::uint16_t type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
  nlh->nlmsg_type = type;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = NFPROTO_INET;
  mnl_attr_put_strz(nlh, NFTA_OBJ_TABLE, "finwave-q0");
  mnl_attr_put_strz(nlh, NFTA_OBJ_NAME, "refused4");
  mnl_attr_put_u32(nlh, NFTA_OBJ_TYPE, htobe32(NFT_OBJECT_COUNTER));
  nlattr* data = mnl_attr_nest_start(nlh, NFTA_OBJ_DATA);
  mnl_attr_put_u64(nlh, NFTA_COUNTER_BYTES, htobe64(4096));
  if (packets) mnl_attr_put_u64(nlh, NFTA_COUNTER_PACKETS, htobe64(*packets));
  mnl_attr_nest_end(nlh, data);
  return nlh->nlmsg_len;
}

std::size_t put_done(std::array<char, 8192>& buffer, std::size_t length) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data() + length);
  nlh->nlmsg_type = NLMSG_DONE;
  nlh->nlmsg_flags = NLM_F_MULTI;
  mnl_nlmsg_put_extra_header(nlh, sizeof(int));
  return length + nlh->nlmsg_len;
}

TEST_SUITE("netfilter") {
  TEST_CASE("teardown_set: names carry the family") {
    CHECK(teardown_set_name(4) == "teardown4");
    CHECK(teardown_set_name(6) == "teardown6");
    CHECK(refused_counter_name(4) == "refused4");
    CHECK(refused_counter_name(6) == "refused6");
  }

  TEST_CASE("set_elements: a dump's chunks are counted element by element until it is done") {
    std::array<char, 8192> buffer{};
    std::size_t length = put_elements(buffer, 0, 3);
    length = put_elements(buffer, length, 2);
    SetElementsChunk chunk = parse_set_elements_chunk(buffer.data(), length);
    CHECK(chunk.elements == 5);
    CHECK_FALSE(chunk.done);
    CHECK_FALSE(chunk.failed);

    // The last chunk: more elements, then the end of the dump.
    length = put_done(buffer, put_elements(buffer, 0, 7));
    chunk = parse_set_elements_chunk(buffer.data(), length);
    CHECK(chunk.elements == 7);
    CHECK(chunk.done);
    CHECK_FALSE(chunk.failed);

    // An empty set: the dump is only its end.
    chunk = parse_set_elements_chunk(buffer.data(), put_done(buffer, 0));
    CHECK(chunk.elements == 0);
    CHECK(chunk.done);
  }

  TEST_CASE("set_elements: an error, a truncated chunk or another message type counts nothing") {
    std::array<char, 8192> buffer{};
    // Another message type (a set, not its elements) is not counted.
    std::size_t length = put_elements(buffer, 0, 4, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSET);
    CHECK(parse_set_elements_chunk(buffer.data(), length).elements == 0);

    // The kernel's answer for a table or set that does not exist.
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
    nlh->nlmsg_type = NLMSG_ERROR;
    auto* error = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nlmsgerr)));
    error->error = -ENOENT;
    CHECK(parse_set_elements_chunk(buffer.data(), nlh->nlmsg_len).failed);

    // Cut short: the message claims more than was received.
    length = put_elements(buffer, 0, 2);
    CHECK(parse_set_elements_chunk(buffer.data(), length - 4).failed);
    CHECK_FALSE(parse_set_elements_chunk(buffer.data(), 0).done);
  }

  TEST_CASE(
      "set_elements: no table or set by that name (or a name nftables cannot have) gives nothing") {
    // Without CAP_NET_ADMIN the kernel refuses; with it, the table does not exist. Either way.
    CHECK_FALSE(nft_set_elements("finwave-test-no-such-table", "teardown4", 10).has_value());
    CHECK_FALSE(nft_set_elements("", "teardown4", 10).has_value());
    CHECK_FALSE(nft_set_elements("finwave-q0", "", 10).has_value());
    CHECK_FALSE(nft_set_elements(std::string(256, 'x'), "teardown4", 10).has_value());
    CHECK_FALSE(teardown_set_entries(4243, 4).has_value());
  }

  TEST_CASE("nft_counter: the packet count comes from the data nest of the object reply") {
    std::array<char, 8192> buffer{};
    CHECK(parse_counter_reply(buffer.data(), counter_reply(buffer, 7)) == 7U);
    CHECK(parse_counter_reply(buffer.data(), counter_reply(buffer, 0)) == 0U);
    CHECK(parse_counter_reply(buffer.data(), counter_reply(buffer, 0x1'0000'0001ULL)) ==
          0x1'0000'0001ULL);
  }

  TEST_CASE("nft_counter: an error, a reply without a count or a truncated reply gives nothing") {
    std::array<char, 8192> buffer{};
    CHECK_FALSE(
        parse_counter_reply(buffer.data(), counter_reply(buffer, std::nullopt)).has_value());
    // Another message type is not read.
    const std::size_t other =
        counter_reply(buffer, 5, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSET);
    CHECK_FALSE(parse_counter_reply(buffer.data(), other).has_value());
    // The kernel's answer for a counter that does not exist.
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
    nlh->nlmsg_type = NLMSG_ERROR;
    auto* error = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nlmsgerr)));
    error->error = -ENOENT;
    CHECK_FALSE(parse_counter_reply(buffer.data(), nlh->nlmsg_len).has_value());
    // Cut short.
    const std::size_t length = counter_reply(buffer, 3);
    CHECK_FALSE(parse_counter_reply(buffer.data(), length - 4).has_value());
    CHECK_FALSE(parse_counter_reply(buffer.data(), 0).has_value());
  }

  TEST_CASE("nft_counter: no table or counter by that name gives nothing") {
    CHECK_FALSE(nft_counter_packets("finwave-test-no-such-table", "refused4").has_value());
    CHECK_FALSE(nft_counter_packets("", "refused4").has_value());
    CHECK_FALSE(nft_counter_packets("finwave-q0", std::string(256, 'x')).has_value());
    CHECK_FALSE(teardown_set_refused(4243, 6).has_value());
  }
}

}  // namespace
}  // namespace finwave::nf
