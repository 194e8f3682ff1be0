// Fuzzes nf::parse_log_message() (netfilter/log_group.cpp) with whatever might come out of an
// nfnetlink_log socket: the input is one netlink message, header first. Each parse gets a heap
// buffer of exactly the input's bytes, so ASan catches a read past it. The parser walks the
// attributes itself (for speed); libmnl's mnl_attr_parse() is the reference it must agree with:
// the same message refused or accepted, the same payload, sequence number, mark and stamp.
// One difference is meant: libmnl walks up to the message's length rounded up to 4 bytes, so an
// attribute may run into the padding after nlmsg_len; finwave's walk ends at nlmsg_len (the
// kernel writes no such attribute, and a message's last one could then lie past the datagram).

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "fuzz_check.hpp"
#include "netfilter/log_group.hpp"

namespace {

using finwave::nf::LoggedPacket;
using finwave::nf::parse_log_message;

using Attributes = std::array<const nlattr*, NFULA_MAX + 1>;

struct Found {
  Attributes attributes{};
  const std::uint8_t* end = nullptr;  // nlmsg_len's end
};

int keep(const nlattr* attribute, void* data) {
  auto* found = static_cast<Found*>(data);
  // Past nlmsg_len, in the padding: where finwave's walk ends (see above).
  if (reinterpret_cast<const std::uint8_t*>(attribute) + attribute->nla_len > found->end) {
    return MNL_CB_STOP;
  }
  if (mnl_attr_type_valid(attribute, NFULA_MAX) < 0) return MNL_CB_OK;
  found->attributes[mnl_attr_get_type(attribute)] = attribute;
  return MNL_CB_OK;
}

// What the message holds, found by libmnl: the attribute of each type (the last one wins).
std::optional<Attributes> reference(const nlmsghdr* nlh, std::size_t length) {
  if (length < sizeof(nlmsghdr) || nlh->nlmsg_len > length ||
      nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg)) ||
      nlh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) {
    return std::nullopt;
  }
  Found found;
  found.end = reinterpret_cast<const std::uint8_t*>(nlh) + nlh->nlmsg_len;
  mnl_attr_parse(nlh, sizeof(nfgenmsg), keep, &found);
  return found.attributes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto buffer = std::make_unique<std::uint8_t[]>(size == 0 ? 1 : size);
  if (size != 0) std::memcpy(buffer.get(), data, size);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.get());

  // libmnl may read the padding after an unaligned nlmsg_len: its copy has room for it. Its
  // attributes are compared with finwave's by offset.
  const std::size_t padded = MNL_ALIGN(size) + 4;
  const auto reference_buffer = std::make_unique<std::uint8_t[]>(padded);
  std::memset(reference_buffer.get(), 0, padded);
  if (size != 0) std::memcpy(reference_buffer.get(), data, size);
  const auto offset = [&](const void* in_reference) {
    return static_cast<const std::uint8_t*>(in_reference) - reference_buffer.get();
  };

  const std::optional<LoggedPacket> packet = parse_log_message(buffer.get(), size);
  const std::optional<Attributes> found =
      reference(reinterpret_cast<const nlmsghdr*>(reference_buffer.get()), size);
  const bool whole =
      found && (*found)[NFULA_PACKET_HDR] != nullptr && (*found)[NFULA_PAYLOAD] != nullptr &&
      mnl_attr_get_payload_len((*found)[NFULA_PACKET_HDR]) >= sizeof(nfulnl_msg_packet_hdr);
  FUZZ_CHECK(packet.has_value() == whole, "accepted exactly when libmnl finds header and payload");
  if (!packet) return 0;

  // The payload lies within the message, and is the one libmnl finds.
  const auto* begin = buffer.get();
  const auto* end = begin + nlh->nlmsg_len;
  FUZZ_CHECK(packet->payload.data() >= begin && packet->payload.data() <= end &&
                 packet->payload.size() <= static_cast<std::size_t>(end - packet->payload.data()),
             "the payload lies within the message");
  const nlattr* payload = (*found)[NFULA_PAYLOAD];
  FUZZ_CHECK(packet->payload.data() - begin == offset(mnl_attr_get_payload(payload)) &&
                 packet->payload.size() == mnl_attr_get_payload_len(payload),
             "the payload is libmnl's");
  FUZZ_CHECK(packet->original_len == packet->payload.size(), "the length is the copy's");

  const nlattr* seq = (*found)[NFULA_SEQ];
  const bool has_seq = seq != nullptr && mnl_attr_get_payload_len(seq) >= sizeof(std::uint32_t);
  FUZZ_CHECK(packet->seq.has_value() == has_seq, "a sequence number exactly when one is there");
  if (has_seq) FUZZ_CHECK(*packet->seq == ntohl(mnl_attr_get_u32(seq)), "libmnl's number");

  const nlattr* mark = (*found)[NFULA_MARK];
  const bool has_mark = mark != nullptr && mnl_attr_get_payload_len(mark) >= sizeof(std::uint32_t);
  FUZZ_CHECK(packet->mark == (has_mark ? ntohl(mnl_attr_get_u32(mark)) : 0), "libmnl's mark");

  const nlattr* stamp = (*found)[NFULA_TIMESTAMP];
  std::uint64_t stamp_us = 0;
  if (stamp != nullptr && mnl_attr_get_payload_len(stamp) >= sizeof(nfulnl_msg_packet_timestamp)) {
    nfulnl_msg_packet_timestamp value{};
    std::memcpy(&value, mnl_attr_get_payload(stamp), sizeof value);
    stamp_us = be64toh(value.sec) * 1'000'000 + be64toh(value.usec);
  }
  FUZZ_CHECK(packet->arrival_realtime_us == stamp_us, "libmnl's stamp");
  return 0;
}
