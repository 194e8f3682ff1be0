#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace finwave::nf {

/// An IPv4 or IPv6 address. IPv4 uses the first 4 bytes of `bytes`; the rest are zero, so two
/// addresses compare equal exactly when family and bytes do.
struct IpAddress {
  std::uint8_t family = 0;  ///< 4 or 6; 0 for "unset".
  std::array<std::uint8_t, 16> bytes{};

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

/// Textual form: "198.18.1.2" or "2001:db8:1::2" (RFC 5952, as inet_ntop writes it).
std::string to_string(const IpAddress& address);

/// TCP header flag bits as they stand in byte 13 of the header.
namespace tcp_flag {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kEce = 0x40;
inline constexpr std::uint8_t kCwr = 0x80;
}  // namespace tcp_flag

/// "F.", "S", "R.", "P.", ".": tcpdump's compact notation, letters in tcpdump's order
/// (F S R P U E W, then "." for ACK); "none" when no flag is set. For timelines and logs.
std::string flags_to_string(std::uint8_t flags);

/// The inverse of flags_to_string(): letters in any order, "none" for no flag. nullopt for an
/// empty text or a letter that is not one of F S R P U E W and ".".
std::optional<std::uint8_t> flags_from_string(std::string_view text);

/// TCP options finwave cares about; absent ones stay at their defaults.
struct TcpOptions {
  std::uint16_t mss = 0;          ///< 0 when absent.
  std::int8_t window_scale = -1;  ///< -1 when absent; values above 14 read as 14 (RFC 7323).
  bool sack_permitted = false;
  bool has_timestamps = false;
  std::uint32_t ts_value = 0;
  std::uint32_t ts_echo = 0;
  std::uint8_t sack_blocks = 0;  ///< Number of SACK blocks carried.
};

/// A parsed view of one IPv4/IPv6 + TCP packet as NFQUEUE delivers it (starting at the IP
/// header). Plain values only: it does not point into the packet buffer.
struct TcpSegment {
  IpAddress src;
  IpAddress dst;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;  ///< tcp_flag bits.
  std::uint16_t window = 0;
  std::uint32_t payload_len = 0;     ///< TCP payload bytes (may exceed the MTU with F_GSO).
  std::uint16_t ip_header_len = 0;   ///< IPv4 header, or IPv6 header plus extension headers.
  std::uint16_t tcp_header_len = 0;  ///< Data offset in bytes, options included.
  TcpOptions options;

  bool has(std::uint8_t flag) const noexcept { return (flags & flag) != 0; }
  /// Sequence space the segment occupies: payload plus one each for SYN and FIN.
  std::uint32_t seq_len() const noexcept {
    return payload_len + (has(tcp_flag::kSyn) ? 1U : 0U) + (has(tcp_flag::kFin) ? 1U : 0U);
  }
};

/// Why a packet could not be parsed as a TCP segment. Such packets are accepted untouched and
/// counted; none of these is a bug in finwave.
enum class ParseError : std::uint8_t {
  kNone = 0,
  kEmpty,              ///< Zero bytes.
  kBadIpVersion,       ///< Version nibble is neither 4 nor 6.
  kTruncatedIp,        ///< Shorter than the IP header (or its extension headers) says.
  kBadIpHeaderLength,  ///< IPv4 IHL < 5, or total length shorter than the header.
  kFragment,           ///< An IPv4 fragment or an IPv6 Fragment header: not reassembled.
  kNotTcp,             ///< Transport protocol is not TCP (after extension headers).
  kTruncatedTcp,       ///< Shorter than the TCP header or its data offset.
  kBadTcpDataOffset,   ///< Data offset < 5 words.
  kBadTcpOptions,      ///< An option's length runs past the header or is < 2.
};

/// Stable snake_case name of a parse error ("truncated_tcp"), used in counters and logs.
const char* to_string(ParseError error) noexcept;

/// Parses `packet` (IP header first, as NFQUEUE hands it over). On success fills `out` and returns
/// ParseError::kNone; otherwise `out` is unspecified. Never reads outside `packet`, never throws,
/// never allocates. The IP length bounds the datagram (trailing bytes are ignored), except for
/// BIG TCP GSO packets above 64 KiB whose IP length field is 0: there the buffer size counts.
/// TCP options with a known kind but the wrong length are skipped, as Linux does; only options
/// that break the option area's structure are kBadTcpOptions.
///
/// `wire_len` is the packet's length on the wire when NFQUEUE's copy range cut `packet` short
/// (NFQA_CAP_LEN; the kernel caps the copy at 65531 bytes, less than a 64 KiB loopback GSO
/// packet): lengths then come from the IP header, and only the headers must be present. 0 (or
/// anything not above packet.size()) means `packet` is whole.
ParseError parse_tcp_segment(std::span<const std::uint8_t> packet, TcpSegment& out,
                             std::size_t wire_len = 0) noexcept;

}  // namespace finwave::nf
