#include "netfilter/craft.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "netfilter/packet.hpp"
#include "packet_builder.hpp"

namespace finwave::nf {
namespace {

using test::PacketBuilder;
namespace ext = test::ipv6_ext;
using namespace tcp_flag;

using Bytes = std::vector<std::uint8_t>;

// The checks below recompute checksums with this reference, written from RFC 1071 without
// craft.cpp's helpers, so that a bug there cannot hide itself.
std::uint32_t reference_sum(const std::uint8_t* data, std::size_t size) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < size; ++i) {
    sum += (i % 2 == 0) ? std::uint64_t{data[i]} << 8 : std::uint64_t{data[i]};
  }
  while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint32_t>(sum);
}

/// True when the IPv4 header checksum of `packet` verifies (its one's-complement sum is 0xFFFF).
bool ipv4_header_checksum_ok(const Bytes& packet) {
  const std::size_t header_len = std::size_t{packet[0] & 0x0Fu} * 4;
  return reference_sum(packet.data(), header_len) == 0xFFFF;
}

/// True when the TCP checksum of `packet` verifies against a pseudo-header built here from the
/// packet's own IP header (RFC 793; RFC 8200 section 8.1 for IPv6).
bool tcp_checksum_ok(const Bytes& packet, std::size_t tcp_offset) {
  const bool v4 = (packet[0] >> 4) == 4;
  const std::size_t tcp_len = packet.size() - tcp_offset;
  Bytes pseudo;
  if (v4) {
    pseudo.insert(pseudo.end(), packet.begin() + 12, packet.begin() + 20);
  } else {
    pseudo.insert(pseudo.end(), packet.begin() + 8, packet.begin() + 40);
  }
  pseudo.push_back(static_cast<std::uint8_t>(tcp_len >> 24));
  pseudo.push_back(static_cast<std::uint8_t>(tcp_len >> 16));
  pseudo.push_back(static_cast<std::uint8_t>(tcp_len >> 8));
  pseudo.push_back(static_cast<std::uint8_t>(tcp_len));
  pseudo.insert(pseudo.end(), {0, 0, 0, 6});
  pseudo.insert(pseudo.end(), packet.begin() + static_cast<std::ptrdiff_t>(tcp_offset),
                packet.end());
  return reference_sum(pseudo.data(), pseudo.size()) == 0xFFFF;
}

TcpSegment parsed(const Bytes& packet) {
  TcpSegment segment;
  REQUIRE(parse_tcp_segment(packet, segment) == ParseError::kNone);
  return segment;
}

/// build_rst into a buffer of exactly kRstMaxBytes, trimmed to what was written.
Bytes rst_for(const Bytes& original) {
  Bytes out(kRstMaxBytes, 0xEE);
  const std::size_t written = build_rst(original, parsed(original), out);
  out.resize(written);
  return out;
}

std::uint16_t load16(const Bytes& bytes, std::size_t at) {
  return static_cast<std::uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}

void zero_checksums(Bytes& packet, const TcpSegment& segment) {
  if (segment.src.family == 4) {
    packet[10] = 0;
    packet[11] = 0;
  }
  packet[segment.ip_header_len + 16U] = 0;
  packet[segment.ip_header_len + 17U] = 0;
}

/// What the kernel leaves in the TCP checksum field of a CHECKSUM_PARTIAL packet: the folded
/// (not complemented) pseudo-header sum, for the NIC to finish.
void partial_checksum(Bytes& packet, const TcpSegment& segment) {
  zero_checksums(packet, segment);
  const std::size_t address_len = segment.src.family == 4 ? 4 : 16;
  const std::size_t tcp_len = packet.size() - segment.ip_header_len;
  Bytes pseudo(segment.src.bytes.begin(),
               segment.src.bytes.begin() + static_cast<std::ptrdiff_t>(address_len));
  pseudo.insert(pseudo.end(), segment.dst.bytes.begin(),
                segment.dst.bytes.begin() + static_cast<std::ptrdiff_t>(address_len));
  pseudo.insert(pseudo.end(), {0, 6, static_cast<std::uint8_t>(tcp_len >> 8),
                               static_cast<std::uint8_t>(tcp_len & 0xFF)});
  const std::uint32_t sum = reference_sum(pseudo.data(), pseudo.size());
  packet[segment.ip_header_len + 16U] = static_cast<std::uint8_t>(sum >> 8);
  packet[segment.ip_header_len + 17U] = static_cast<std::uint8_t>(sum & 0xFF);
}

}  // namespace

TEST_SUITE("netfilter") {
  TEST_CASE("craft: build_rst keeps seq and acks like the original over IPv4") {
    // A final FIN with data, timestamps and IP options: the RST carries none of them.
    Bytes original = PacketBuilder::ipv4()
                         .ports(5000, 41234)
                         .seq(0xfffffff0)
                         .ack(0x12345678)
                         .flags(kFin | kAck | kPsh)
                         .window(501)
                         .ip_options(4)
                         .nop()
                         .nop()
                         .timestamps(7, 8)
                         .payload(33)
                         .build();
    original[1] = 0x2e;  // DSCP/ECN.
    original[8] = 63;    // TTL after one hop.
    original[4] = 0xbe;  // IP id.
    original[5] = 0xef;
    const TcpSegment in = parsed(original);

    const Bytes rst = rst_for(original);
    REQUIRE(rst.size() == 40);
    const TcpSegment out = parsed(rst);
    CHECK(out.src == in.src);
    CHECK(out.dst == in.dst);
    CHECK(out.src_port == 5000);
    CHECK(out.dst_port == 41234);
    CHECK(out.seq == 0xfffffff0U);
    CHECK(out.ack == 0x12345678U);
    CHECK(out.flags == (kRst | kAck));
    CHECK(out.payload_len == 0U);
    CHECK(out.ip_header_len == 20);
    CHECK(out.tcp_header_len == 20);
    CHECK(!out.options.has_timestamps);

    CHECK(rst[0] == 0x45);
    CHECK(rst[1] == 0x2e);
    CHECK(load16(rst, 2) == 40);
    CHECK(load16(rst, 4) == 0xbeef);
    CHECK(load16(rst, 6) == 0x4000);  // DF, no fragment offset.
    CHECK(rst[8] == 63);
    CHECK(rst[9] == 6);
    CHECK(ipv4_header_checksum_ok(rst));
    CHECK(tcp_checksum_ok(rst, 20));
  }

  TEST_CASE("craft: build_rst without ACK on the original sends a bare RST with ack 0") {
    const Bytes original =
        PacketBuilder::ipv4().flags(kFin).seq(99).ack(0xdeadbeef).payload(0).build();
    const Bytes rst = rst_for(original);
    REQUIRE(rst.size() == 40);
    const TcpSegment out = parsed(rst);
    CHECK(out.flags == kRst);
    CHECK(out.seq == 99U);
    CHECK(out.ack == 0U);
    CHECK(ipv4_header_checksum_ok(rst));
    CHECK(tcp_checksum_ok(rst, 20));
  }

  TEST_CASE("craft: build_rst keeps seq and acks like the original over IPv6") {
    Bytes original = PacketBuilder::ipv6()
                         .src("2001:db8:2::2")
                         .dst("2001:db8:1::2")
                         .ports(5000, 50123)
                         .seq(1)
                         .ack(0x80000000)
                         .flags(kFin | kAck)
                         .timestamps(1, 2)
                         .nop()
                         .nop()
                         .payload(7)
                         .build();
    original[0] = 0x6a;  // Traffic class and flow label straddle the first four bytes.
    original[1] = 0xb1;
    original[2] = 0x23;
    original[3] = 0x45;
    original[7] = 17;  // Hop limit.
    const TcpSegment in = parsed(original);

    const Bytes rst = rst_for(original);
    REQUIRE(rst.size() == 60);
    const TcpSegment out = parsed(rst);
    CHECK(out.src == in.src);
    CHECK(out.dst == in.dst);
    CHECK(out.src_port == 5000);
    CHECK(out.dst_port == 50123);
    CHECK(out.seq == 1U);
    CHECK(out.ack == 0x80000000U);
    CHECK(out.flags == (kRst | kAck));
    CHECK(out.payload_len == 0U);
    CHECK(out.ip_header_len == 40);
    CHECK(out.tcp_header_len == 20);

    CHECK(rst[0] == 0x6a);
    CHECK(rst[1] == 0xb1);
    CHECK(rst[2] == 0x23);
    CHECK(rst[3] == 0x45);
    CHECK(load16(rst, 4) == 20);  // Payload length: the bare TCP header.
    CHECK(rst[6] == 6);
    CHECK(rst[7] == 17);
    CHECK(tcp_checksum_ok(rst, 40));
  }

  TEST_CASE("craft: build_rst leaves out IPv6 extension headers") {
    const Bytes original = PacketBuilder::ipv6()
                               .extension(ext::kHopByHop, 8)
                               .extension(ext::kDestOptions, 16)
                               .flags(kFin | kAck)
                               .seq(4242)
                               .ack(2424)
                               .build();
    REQUIRE(parsed(original).ip_header_len == 64);
    const Bytes rst = rst_for(original);
    REQUIRE(rst.size() == 60);
    CHECK(rst[6] == 6);  // TCP follows the fixed header directly.
    const TcpSegment out = parsed(rst);
    CHECK(out.ip_header_len == 40);
    CHECK(out.seq == 4242U);
    CHECK(out.ack == 2424U);
    CHECK(out.flags == (kRst | kAck));
    CHECK(tcp_checksum_ok(rst, 40));
  }

  TEST_CASE("craft: build_rst refuses an output buffer too small for the RST") {
    struct Case {
      const char* name;
      Bytes original;
      std::size_t out_size;
      std::size_t expected;
    };
    const Case cases[] = {
        {"IPv4 into 0 bytes", PacketBuilder::ipv4().build(), 0, 0},
        {"IPv4 into 39 bytes", PacketBuilder::ipv4().build(), 39, 0},
        {"IPv4 into exactly 40 bytes", PacketBuilder::ipv4().build(), 40, 40},
        {"IPv6 into 40 bytes", PacketBuilder::ipv6().build(), 40, 0},
        {"IPv6 into 59 bytes", PacketBuilder::ipv6().build(), 59, 0},
        {"IPv6 into exactly 60 bytes", PacketBuilder::ipv6().build(), 60, 60},
        {"IPv4 into a larger buffer", PacketBuilder::ipv4().build(), 1500, 40},
    };
    for (const Case& c : cases) {
      CAPTURE(c.name);
      const TcpSegment segment = parsed(c.original);
      Bytes out(c.out_size, 0xEE);
      CHECK(build_rst(c.original, segment, out) == c.expected);
      if (c.expected == 0) {
        // Nothing half-written.
        for (const std::uint8_t byte : out) CHECK(byte == 0xEE);
      }
    }
  }

  TEST_CASE("craft: build_rst refuses an original shorter than its IP header") {
    const Bytes v4 = PacketBuilder::ipv4().build();
    const Bytes v6 = PacketBuilder::ipv6().build();
    const TcpSegment s4 = parsed(v4);
    const TcpSegment s6 = parsed(v6);
    Bytes out(kRstMaxBytes);
    CHECK(build_rst(std::span(v4.data(), 19), s4, out) == 0);
    CHECK(build_rst(std::span(v6.data(), 39), s6, out) == 0);
    CHECK(build_rst({}, s4, out) == 0);
  }

  TEST_CASE("craft: finalize_checksums fills zeroed IPv4 checksums") {
    for (const std::size_t payload : {0, 1, 100, 1447}) {
      CAPTURE(payload);
      const Bytes good = PacketBuilder::ipv4()
                             .flags(kFin | kAck)
                             .ip_options(8)
                             .timestamps(3, 4)
                             .nop()
                             .nop()
                             .payload(payload)
                             .build();
      const TcpSegment segment = parsed(good);
      Bytes packet = good;
      zero_checksums(packet, segment);
      REQUIRE(packet != good);
      REQUIRE(finalize_checksums(packet, segment));
      CHECK(packet == good);
      CHECK(ipv4_header_checksum_ok(packet));
      CHECK(tcp_checksum_ok(packet, segment.ip_header_len));
    }
  }

  TEST_CASE("craft: finalize_checksums finishes a partial TCP checksum as the NIC would") {
    // CHECKSUM_PARTIAL: the field holds the pseudo-header sum only.
    for (const bool v6 : {false, true}) {
      CAPTURE(v6);
      auto builder = v6 ? PacketBuilder::ipv6() : PacketBuilder::ipv4();
      const Bytes good = builder.flags(kFin | kAck | kPsh).payload(999).build();
      const TcpSegment segment = parsed(good);
      Bytes packet = good;
      partial_checksum(packet, segment);
      REQUIRE(packet != good);
      REQUIRE(finalize_checksums(packet, segment));
      CHECK(packet == good);
    }
  }

  TEST_CASE("craft: finalize_checksums over IPv6 skips extension headers and leaves them alone") {
    const Bytes good = PacketBuilder::ipv6()
                           .extension(ext::kHopByHop, 8)
                           .extension(ext::kDestOptions, 24)
                           .flags(kFin | kAck)
                           .payload(51)
                           .build();
    const TcpSegment segment = parsed(good);
    REQUIRE(segment.ip_header_len == 72);
    Bytes packet = good;
    zero_checksums(packet, segment);
    REQUIRE(finalize_checksums(packet, segment));
    CHECK(packet == good);
    CHECK(tcp_checksum_ok(packet, 72));

    partial_checksum(packet, segment);
    REQUIRE(finalize_checksums(packet, segment));
    CHECK(packet == good);
  }

  TEST_CASE("craft: finalize_checksums replaces a wrong checksum and ignores trailing bytes") {
    const Bytes good = PacketBuilder::ipv4().flags(kFin | kAck).payload(10).build();
    const TcpSegment segment = parsed(good);
    Bytes packet = good;
    packet[10] ^= 0x55;
    packet[segment.ip_header_len + 16U] ^= 0xAA;
    packet.insert(packet.end(), {0xde, 0xad});  // Link-layer padding past the IP length.
    REQUIRE(finalize_checksums(packet, segment));
    CHECK(Bytes(packet.begin(), packet.end() - 2) == good);
    CHECK(packet[packet.size() - 2] == 0xde);
  }

  TEST_CASE("craft: finalize_checksums over a 64 KiB GSO packet") {
    for (const bool v6 : {false, true}) {
      CAPTURE(v6);
      auto builder = v6 ? PacketBuilder::ipv6() : PacketBuilder::ipv4();
      const Bytes good = builder.flags(kFin | kAck).payload(v6 ? 65515 : 65495).build();
      const TcpSegment segment = parsed(good);
      Bytes packet = good;
      partial_checksum(packet, segment);
      REQUIRE(finalize_checksums(packet, segment));
      CHECK(packet == good);
    }
  }

  TEST_CASE("craft: finalize_checksums refuses a packet its segment does not describe") {
    struct Case {
      const char* name;
      std::size_t cut;               // Bytes taken off the end of the packet.
      std::uint32_t extra_payload;   // Added to the segment's payload length.
      std::uint16_t tcp_header_len;  // 0: keep the parsed one.
    };
    const Case cases[] = {
        {"packet one byte short", 1, 0, 0},
        {"packet without its payload", 100, 0, 0},
        {"segment claims more payload", 0, 1, 0},
        {"data offset below 20 bytes", 0, 0, 16},
    };
    for (const bool v6 : {false, true}) {
      for (const Case& c : cases) {
        CAPTURE(v6);
        CAPTURE(c.name);
        auto builder = v6 ? PacketBuilder::ipv6() : PacketBuilder::ipv4();
        const Bytes good = builder.flags(kFin | kAck).payload(100).build();
        TcpSegment segment = parsed(good);
        segment.payload_len += c.extra_payload;
        if (c.tcp_header_len != 0) segment.tcp_header_len = c.tcp_header_len;
        Bytes packet(good.begin(), good.end() - static_cast<std::ptrdiff_t>(c.cut));
        zero_checksums(packet, parsed(good));
        const Bytes before = packet;
        CHECK(!finalize_checksums(packet, segment));
        CHECK(packet == before);  // Untouched when refused.
      }
    }
  }

  TEST_CASE("craft: checksum_add and checksum_fold give the RFC 1071 example") {
    // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is 2ddf0, folded ddf2.
    const Bytes words = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    CHECK(checksum_add(0, words) == 0x2ddf0U);
    CHECK(checksum_fold(0x2ddf0) == static_cast<std::uint16_t>(~0xddf2 & 0xffff));
    // An odd byte counts as the high half of a word padded with zero.
    const Bytes odd = {0x12, 0x34, 0x56};
    CHECK(checksum_add(0, odd) == 0x1234U + 0x5600U);
    CHECK(checksum_fold(0) == 0xffff);
    CHECK(checksum_fold(0xffff) == 0);
    // A long run of 0xff bytes must not overflow the 32-bit accumulator.
    const Bytes ones(200000, 0xff);
    CHECK(checksum_fold(checksum_add(0, ones)) == 0);
  }
}

}  // namespace finwave::nf
