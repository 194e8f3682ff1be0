// Fuzzes nf::parse_tcp_segment() (netfilter/packet.cpp) with whatever NFQUEUE might hand over:
// the input is the packet from its IP header on. Each input is parsed whole, as the kernel's
// copy cut it short (NFQA_CAP_LEN) and as a BIG TCP GSO packet whose wire length is above
// 64 KiB. ASan catches any read outside the buffer: every parse gets a buffer of exactly the
// bytes it may read.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "fuzz_check.hpp"
#include "netfilter/packet.hpp"

namespace {

using finwave::nf::parse_tcp_segment;
using finwave::nf::ParseError;
using finwave::nf::TcpSegment;

std::uint16_t load16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

bool same(const TcpSegment& a, const TcpSegment& b) {
  return a.src == b.src && a.dst == b.dst && a.src_port == b.src_port && a.dst_port == b.dst_port &&
         a.seq == b.seq && a.ack == b.ack && a.flags == b.flags && a.window == b.window &&
         a.payload_len == b.payload_len && a.ip_header_len == b.ip_header_len &&
         a.tcp_header_len == b.tcp_header_len && a.options.mss == b.options.mss &&
         a.options.window_scale == b.options.window_scale &&
         a.options.sack_permitted == b.options.sack_permitted &&
         a.options.has_timestamps == b.options.has_timestamps &&
         a.options.ts_value == b.options.ts_value && a.options.ts_echo == b.options.ts_echo &&
         a.options.sack_blocks == b.options.sack_blocks;
}

/// Parses the first `size` bytes of `data` from a heap buffer of exactly that size, so that ASan
/// sees a read past the end, and checks what holds for any result.
ParseError parse_exact(const std::uint8_t* data, std::size_t size, std::size_t wire_len,
                       TcpSegment& out) {
  const std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[std::max<std::size_t>(size, 1)]);
  std::memcpy(copy.get(), data, size);
  const ParseError error = parse_tcp_segment(std::span(copy.get(), size), out, wire_len);
  FUZZ_CHECK(std::strcmp(to_string(error), "unknown") != 0, "a parse error without a name");
  FUZZ_CHECK((error == ParseError::kEmpty) == (size == 0), "kEmpty exactly for zero bytes");
  if (error != ParseError::kNone) return error;

  const unsigned version = data[0] >> 4;
  const std::size_t headers = std::size_t{out.ip_header_len} + out.tcp_header_len;
  const std::size_t wire = std::max(wire_len, size);
  FUZZ_CHECK(out.src.family == version && out.dst.family == version, "family is the version");
  FUZZ_CHECK(version == 4 ? out.ip_header_len >= 20 && out.ip_header_len <= 60
                          : out.ip_header_len >= 40 && out.ip_header_len % 4 == 0,
             "IP header length in range (IPv6: 8-byte extension headers, 4-byte AH)");
  FUZZ_CHECK(out.tcp_header_len >= 20 && out.tcp_header_len <= 60 && out.tcp_header_len % 4 == 0,
             "TCP header length is a data offset of 5 to 15 words");
  FUZZ_CHECK(headers <= size, "the headers lie within the bytes handed over");
  FUZZ_CHECK(headers + out.payload_len <= wire, "the datagram lies within its wire length");
  FUZZ_CHECK(out.options.window_scale <= 14, "window scale capped at 14 (RFC 7323)");
  FUZZ_CHECK(out.options.sack_blocks <= 4, "at most 4 SACK blocks fit in 40 option bytes");

  // The IP length field decides where the datagram ends, unless it is 0 on a BIG TCP packet.
  const std::size_t ip_length =
      version == 4 ? load16(data + 2) : std::size_t{40} + load16(data + 4);
  const bool big_tcp = version == 4 ? ip_length == 0 : ip_length == 40;
  if (!big_tcp) {
    FUZZ_CHECK(headers + out.payload_len == ip_length, "payload length from the IP header");
  } else {
    FUZZ_CHECK(wire > 0xFFFF && headers + out.payload_len == wire,
               "a zero IP length counts only for BIG TCP, whose length is the wire length");
  }
  return error;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  TcpSegment whole;
  const ParseError error = parse_exact(data, size, 0, whole);

  // A wire length not above the buffer size means "whole": the same result.
  TcpSegment again;
  FUZZ_CHECK(parse_exact(data, size, size, again) == error, "wire_len == size is the default");
  if (error == ParseError::kNone) {
    FUZZ_CHECK(same(whole, again), "the same segment for wire_len == size");

    // NFQUEUE's copy range cut the packet anywhere after its headers: the same segment, lengths
    // from the IP header. Cut inside the headers: an error, never a segment.
    const std::size_t headers = std::size_t{whole.ip_header_len} + whole.tcp_header_len;
    for (const std::size_t cut : {headers, (headers + size) / 2}) {
      TcpSegment cut_short;
      FUZZ_CHECK(parse_exact(data, cut, size, cut_short) == ParseError::kNone,
                 "a copy cut after the headers parses");
      FUZZ_CHECK(same(whole, cut_short), "a copy cut after the headers gives the same segment");
    }
    if (headers > 0) {
      TcpSegment truncated;
      const ParseError cut_error = parse_exact(data, headers - 1, size, truncated);
      FUZZ_CHECK(cut_error == ParseError::kTruncatedIp || cut_error == ParseError::kTruncatedTcp,
                 "a copy cut inside the headers is truncated");
    }
  }

  // The same bytes as the head of a GSO packet whose wire length is above 64 KiB (BIG TCP when
  // its IP length is 0, an ordinary cut copy otherwise).
  for (const std::size_t wire_len : {std::size_t{0x10000} + size, std::size_t{0x40000}}) {
    TcpSegment gso;
    parse_exact(data, size, wire_len, gso);
  }
  return 0;
}
