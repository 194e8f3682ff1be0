#include "netfilter/packet.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <iterator>

namespace finwave::nf {
namespace {

constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoHopByHop = 0;
constexpr std::uint8_t kProtoRouting = 43;
constexpr std::uint8_t kProtoFragment = 44;
constexpr std::uint8_t kProtoAh = 51;
constexpr std::uint8_t kProtoDestOptions = 60;
constexpr std::uint8_t kProtoMobility = 135;
constexpr std::uint8_t kProtoHip = 139;
constexpr std::uint8_t kProtoShim6 = 140;

constexpr std::size_t kIpv4MinHeader = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kTcpMinHeader = 20;
constexpr std::size_t kMaxIpLength = 0xFFFF;

// RFC 7323 section 2.3: a shift count above 14 is used as 14. Linux does the same.
constexpr std::uint8_t kMaxWindowScale = 14;

enum TcpOptionKind : std::uint8_t {
  kOptEol = 0,
  kOptNop = 1,
  kOptMss = 2,
  kOptWindowScale = 3,
  kOptSackPermitted = 4,
  kOptSack = 5,
  kOptTimestamps = 8,
};

std::uint16_t load16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t load32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

/// Where the TCP header starts and where the IP datagram ends, as the IP layer says.
struct L3Result {
  ParseError error = ParseError::kNone;
  std::size_t tcp_offset = 0;
  std::size_t end = 0;
};

// `wire_len` is the packet's length before NFQUEUE's copy range cut it (>= packet.size()).
L3Result parse_ipv4(std::span<const std::uint8_t> packet, std::size_t wire_len,
                    TcpSegment& out) noexcept {
  const std::uint8_t* p = packet.data();
  if (packet.size() < kIpv4MinHeader) {
    return {ParseError::kTruncatedIp};
  }
  const std::size_t header_len = std::size_t{p[0] & 0x0Fu} * 4;
  if (header_len < kIpv4MinHeader) {
    return {ParseError::kBadIpHeaderLength};
  }
  std::size_t total_len = load16(p + 2);
  // BIG TCP (Linux >= 6.3) hands over IPv4 GSO packets above 64 KiB with a total length of 0;
  // the real length is the skb's, which is what NFQUEUE delivered.
  // The copy range may have cut such a packet: its length on the wire is what counts.
  if (total_len == 0 && wire_len > kMaxIpLength) {
    total_len = wire_len;
  }
  if (total_len < header_len) {
    return {ParseError::kBadIpHeaderLength};
  }
  if (packet.size() < header_len || wire_len < total_len) {
    return {ParseError::kTruncatedIp};
  }
  const std::uint16_t fragment = load16(p + 6);
  const bool more_fragments = (fragment & 0x2000u) != 0;
  const bool nonzero_offset = (fragment & 0x1FFFu) != 0;
  if (more_fragments || nonzero_offset) {
    return {ParseError::kFragment};
  }
  if (p[9] != kProtoTcp) {
    return {ParseError::kNotTcp};
  }
  out.src.family = 4;
  out.dst.family = 4;
  std::copy_n(p + 12, 4, out.src.bytes.begin());
  std::copy_n(p + 16, 4, out.dst.bytes.begin());
  out.ip_header_len = static_cast<std::uint16_t>(header_len);
  return {ParseError::kNone, header_len, total_len};
}

L3Result parse_ipv6(std::span<const std::uint8_t> packet, std::size_t wire_len,
                    TcpSegment& out) noexcept {
  const std::uint8_t* p = packet.data();
  if (packet.size() < kIpv6Header) {
    return {ParseError::kTruncatedIp};
  }
  std::size_t end = kIpv6Header + load16(p + 4);
  // BIG TCP for IPv6 leaves the payload length at 0 for GSO packets above 64 KiB (the kernel no
  // longer inserts a jumbo hop-by-hop option inside the stack).
  if (end == kIpv6Header && wire_len > kIpv6Header + kMaxIpLength) {
    end = wire_len;
  }
  if (wire_len < end) {
    return {ParseError::kTruncatedIp};
  }
  // Extension headers must lie within the bytes we have, whatever the wire length.
  const std::size_t readable = std::min(end, packet.size());

  std::uint8_t next = p[6];
  std::size_t offset = kIpv6Header;
  // Every extension header is at least 8 bytes long, so the walk ends within `end` steps.
  for (;;) {
    switch (next) {
      case kProtoTcp:
        break;
      case kProtoFragment:
        return {ParseError::kFragment};
      case kProtoHopByHop:
      case kProtoRouting:
      case kProtoDestOptions:
      case kProtoMobility:
      case kProtoHip:
      case kProtoShim6:
      case kProtoAh: {
        if (readable - offset < 2) {
          return {ParseError::kTruncatedIp};
        }
        // AH counts 4-byte words minus 2 (RFC 4302); the others count 8-byte units minus 1.
        const std::size_t length = next == kProtoAh ? (std::size_t{p[offset + 1]} + 2) * 4
                                                    : (std::size_t{p[offset + 1]} + 1) * 8;
        if (readable - offset < length) {
          return {ParseError::kTruncatedIp};
        }
        next = p[offset];
        offset += length;
        continue;
      }
      default:
        // No Next Header (59), ESP (50) and every upper layer other than TCP.
        return {ParseError::kNotTcp};
    }
    break;
  }
  if (offset > kMaxIpLength) {
    // Only possible with BIG TCP and absurd extension headers; ip_header_len cannot hold it.
    return {ParseError::kBadIpHeaderLength};
  }
  out.src.family = 6;
  out.dst.family = 6;
  std::copy_n(p + 8, 16, out.src.bytes.begin());
  std::copy_n(p + 24, 16, out.dst.bytes.begin());
  out.ip_header_len = static_cast<std::uint16_t>(offset);
  return {ParseError::kNone, offset, end};
}

/// Parses the options area [begin, end) of a TCP header. Structural damage (a length byte that
/// is missing, < 2 or runs past the header) is an error; a known option with the wrong length is
/// skipped, as Linux's tcp_parse_options() does.
ParseError parse_tcp_options(const std::uint8_t* begin, const std::uint8_t* end,
                             TcpOptions& options) noexcept {
  const std::uint8_t* p = begin;
  while (p < end) {
    const std::uint8_t kind = p[0];
    if (kind == kOptEol) {
      break;
    }
    if (kind == kOptNop) {
      ++p;
      continue;
    }
    if (end - p < 2) {
      return ParseError::kBadTcpOptions;
    }
    const std::uint8_t length = p[1];
    if (length < 2 || length > end - p) {
      return ParseError::kBadTcpOptions;
    }
    switch (kind) {
      case kOptMss:
        if (length == 4) {
          options.mss = load16(p + 2);
        }
        break;
      case kOptWindowScale:
        if (length == 3) {
          options.window_scale = static_cast<std::int8_t>(std::min(p[2], kMaxWindowScale));
        }
        break;
      case kOptSackPermitted:
        if (length == 2) {
          options.sack_permitted = true;
        }
        break;
      case kOptSack:
        if (length >= 10 && (length - 2) % 8 == 0) {
          options.sack_blocks = static_cast<std::uint8_t>((length - 2) / 8);
        }
        break;
      case kOptTimestamps:
        if (length == 10) {
          options.has_timestamps = true;
          options.ts_value = load32(p + 2);
          options.ts_echo = load32(p + 6);
        }
        break;
      default:
        break;
    }
    p += length;
  }
  return ParseError::kNone;
}

}  // namespace

std::string to_string(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  const int family = address.family == 4 ? AF_INET : address.family == 6 ? AF_INET6 : AF_UNSPEC;
  if (family == AF_UNSPEC ||
      inet_ntop(family, address.bytes.data(), text, sizeof text) == nullptr) {
    return "unset";
  }
  return text;
}

namespace {

// tcpdump's print-tcp.c order; it prints "none" when no flag is set.
struct FlagLetter {
  std::uint8_t bit;
  char letter;
};
constexpr FlagLetter kFlagLetters[] = {
    {tcp_flag::kFin, 'F'}, {tcp_flag::kSyn, 'S'}, {tcp_flag::kRst, 'R'}, {tcp_flag::kPsh, 'P'},
    {tcp_flag::kUrg, 'U'}, {tcp_flag::kEce, 'E'}, {tcp_flag::kCwr, 'W'}, {tcp_flag::kAck, '.'},
};

}  // namespace

std::string flags_to_string(std::uint8_t flags) {
  if (flags == 0) {
    return "none";
  }
  std::string text;
  for (const auto& entry : kFlagLetters) {
    if ((flags & entry.bit) != 0) {
      text += entry.letter;
    }
  }
  return text;
}

std::optional<std::uint8_t> flags_from_string(std::string_view text) {
  if (text == "none") {
    return std::uint8_t{0};
  }
  if (text.empty()) {
    return std::nullopt;
  }
  std::uint8_t flags = 0;
  for (const char letter : text) {
    const auto* entry = std::find_if(std::begin(kFlagLetters), std::end(kFlagLetters),
                                     [letter](const FlagLetter& e) { return e.letter == letter; });
    if (entry == std::end(kFlagLetters)) {
      return std::nullopt;
    }
    flags |= entry->bit;
  }
  return flags;
}

const char* to_string(ParseError error) noexcept {
  switch (error) {
    case ParseError::kNone:
      return "none";
    case ParseError::kEmpty:
      return "empty";
    case ParseError::kBadIpVersion:
      return "bad_ip_version";
    case ParseError::kTruncatedIp:
      return "truncated_ip";
    case ParseError::kBadIpHeaderLength:
      return "bad_ip_header_length";
    case ParseError::kFragment:
      return "fragment";
    case ParseError::kNotTcp:
      return "not_tcp";
    case ParseError::kTruncatedTcp:
      return "truncated_tcp";
    case ParseError::kBadTcpDataOffset:
      return "bad_tcp_data_offset";
    case ParseError::kBadTcpOptions:
      return "bad_tcp_options";
  }
  return "unknown";
}

ParseError parse_tcp_segment(std::span<const std::uint8_t> packet, TcpSegment& out,
                             std::size_t wire_len) noexcept {
  out = TcpSegment{};
  if (packet.empty()) {
    return ParseError::kEmpty;
  }
  wire_len = std::max(wire_len, packet.size());
  L3Result l3;
  switch (packet[0] >> 4) {
    case 4:
      l3 = parse_ipv4(packet, wire_len, out);
      break;
    case 6:
      l3 = parse_ipv6(packet, wire_len, out);
      break;
    default:
      return ParseError::kBadIpVersion;
  }
  if (l3.error != ParseError::kNone) {
    return l3.error;
  }

  // From here on only the IP datagram counts: bytes past `end` (link-layer padding) are ignored.
  const std::size_t available = l3.end - l3.tcp_offset;
  // A copy cut short by NFQUEUE's copy range may end inside the TCP header even though the
  // datagram (`available`) holds all of it: the data offset must not be read past the buffer.
  if (available < kTcpMinHeader || l3.tcp_offset + kTcpMinHeader > packet.size()) {
    return ParseError::kTruncatedTcp;
  }
  const std::uint8_t* tcp = packet.data() + l3.tcp_offset;
  const std::size_t header_len = std::size_t{static_cast<std::uint8_t>(tcp[12] >> 4)} * 4;
  if (header_len < kTcpMinHeader) {
    return ParseError::kBadTcpDataOffset;
  }
  // The header must be in the bytes we have; the payload may lie past the copy range.
  if (header_len > available || l3.tcp_offset + header_len > packet.size()) {
    return ParseError::kTruncatedTcp;
  }
  const ParseError options_error =
      parse_tcp_options(tcp + kTcpMinHeader, tcp + header_len, out.options);
  if (options_error != ParseError::kNone) {
    return options_error;
  }

  out.src_port = load16(tcp);
  out.dst_port = load16(tcp + 2);
  out.seq = load32(tcp + 4);
  out.ack = load32(tcp + 8);
  out.flags = tcp[13];
  out.window = load16(tcp + 14);
  out.tcp_header_len = static_cast<std::uint16_t>(header_len);
  out.payload_len = static_cast<std::uint32_t>(available - header_len);
  return ParseError::kNone;
}

}  // namespace finwave::nf
