#include "netfilter/craft.hpp"

#include <algorithm>
#include <cstring>

namespace finwave::nf {
namespace {

constexpr std::uint8_t kProtocolTcp = 6;
constexpr std::size_t kIpv4HeaderLen = 20;
constexpr std::size_t kIpv6HeaderLen = 40;
constexpr std::size_t kTcpHeaderLen = 20;

void put16(std::uint8_t* at, std::uint16_t value) noexcept {
  at[0] = static_cast<std::uint8_t>(value >> 8);
  at[1] = static_cast<std::uint8_t>(value & 0xff);
}

void put32(std::uint8_t* at, std::uint32_t value) noexcept {
  put16(at, static_cast<std::uint16_t>(value >> 16));
  put16(at + 2, static_cast<std::uint16_t>(value & 0xffff));
}

// Sum of the TCP pseudo-header (RFC 793 / RFC 8200 section 8.1) for `tcp_length` bytes.
std::uint32_t pseudo_header_sum(const TcpSegment& segment, std::uint32_t tcp_length) noexcept {
  const std::size_t address_len = segment.src.family == 4 ? 4 : 16;
  std::uint32_t sum = checksum_add(0, {segment.src.bytes.data(), address_len});
  sum = checksum_add(sum, {segment.dst.bytes.data(), address_len});
  sum += kProtocolTcp;
  sum += tcp_length >> 16;
  sum += tcp_length & 0xffff;
  return sum;
}

void fill_tcp_checksum(std::span<std::uint8_t> tcp, const TcpSegment& segment) noexcept {
  tcp[16] = 0;
  tcp[17] = 0;
  const auto length = static_cast<std::uint32_t>(tcp.size());
  put16(&tcp[16], checksum_fold(checksum_add(pseudo_header_sum(segment, length), tcp)));
}

}  // namespace

std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::uint8_t> bytes) noexcept {
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) {
    sum += static_cast<std::uint32_t>(bytes[i] << 8 | bytes[i + 1]);
    // Fold early so that a 64 KiB GSO packet cannot overflow 32 bits.
    if (sum & 0x80000000U) sum = (sum & 0xffff) + (sum >> 16);
  }
  if (i < bytes.size()) sum += static_cast<std::uint32_t>(bytes[i] << 8);
  return sum;
}

std::uint16_t checksum_fold(std::uint32_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::size_t build_rst(std::span<const std::uint8_t> original, const TcpSegment& segment,
                      std::span<std::uint8_t> out) noexcept {
  const bool v4 = segment.src.family == 4;
  const std::size_t ip_len = v4 ? kIpv4HeaderLen : kIpv6HeaderLen;
  const std::size_t total = ip_len + kTcpHeaderLen;
  if (out.size() < total || original.size() < ip_len) return 0;
  std::uint8_t* p = out.data();
  std::memset(p, 0, total);
  if (v4) {
    p[0] = 0x45;
    p[1] = original[1];  // DSCP/ECN as the sender set them.
    put16(p + 2, static_cast<std::uint16_t>(total));
    std::memcpy(p + 4, original.data() + 4, 2);  // IP id.
    p[6] = 0x40;                                 // Don't fragment.
    p[8] = original[8];                          // TTL: as if the sender had sent it.
    p[9] = kProtocolTcp;
    std::memcpy(p + 12, segment.src.bytes.data(), 4);
    std::memcpy(p + 16, segment.dst.bytes.data(), 4);
    put16(p + 10, checksum_fold(checksum_add(0, {p, kIpv4HeaderLen})));
  } else {
    std::memcpy(p, original.data(), 4);  // Version, traffic class, flow label.
    put16(p + 4, static_cast<std::uint16_t>(kTcpHeaderLen));
    p[6] = kProtocolTcp;
    p[7] = original[7];  // Hop limit.
    std::memcpy(p + 8, segment.src.bytes.data(), 16);
    std::memcpy(p + 24, segment.dst.bytes.data(), 16);
  }
  std::uint8_t* tcp = p + ip_len;
  put16(tcp, segment.src_port);
  put16(tcp + 2, segment.dst_port);
  put32(tcp + 4, segment.seq);
  const bool with_ack = segment.has(tcp_flag::kAck);
  put32(tcp + 8, with_ack ? segment.ack : 0);
  tcp[12] = static_cast<std::uint8_t>((kTcpHeaderLen / 4) << 4);
  tcp[13] = static_cast<std::uint8_t>(tcp_flag::kRst | (with_ack ? tcp_flag::kAck : 0));
  fill_tcp_checksum({tcp, kTcpHeaderLen}, segment);
  return total;
}

bool finalize_checksums(std::span<std::uint8_t> packet, const TcpSegment& segment) noexcept {
  const std::size_t tcp_start = segment.ip_header_len;
  const std::size_t tcp_len = segment.tcp_header_len + std::size_t{segment.payload_len};
  if (packet.size() < tcp_start + tcp_len || segment.tcp_header_len < kTcpHeaderLen) return false;
  if (segment.src.family == 4) {
    packet[10] = 0;
    packet[11] = 0;
    put16(&packet[10], checksum_fold(checksum_add(0, packet.first(tcp_start))));
  }
  fill_tcp_checksum(packet.subspan(tcp_start, tcp_len), segment);
  return true;
}

}  // namespace finwave::nf
