#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "netfilter/packet.hpp"

namespace finwave::nf {

/// Largest packet build_rst() writes: an IPv6 header and a bare TCP header.
inline constexpr std::size_t kRstMaxBytes = 40 + 20;

/// Writes into `out` the RST that replaces `segment` on the wire: same addresses, ports and
/// sequence number, RST (plus ACK and the same acknowledgement number when the original carried
/// an ACK), no payload, no options, the original's TTL / hop limit, valid IP and TCP checksums.
/// An IPv6 original's extension headers are left out. `original` is the packet `segment` was
/// parsed from. Returns the number of bytes written, or 0 if `out` is too small.
std::size_t build_rst(std::span<const std::uint8_t> original, const TcpSegment& segment,
                      std::span<std::uint8_t> out) noexcept;

/// Fills in the IPv4 header checksum and the TCP checksum of a parsed packet in place. NFQUEUE
/// with F_GSO may hand over packets whose TCP checksum holds only the pseudo-header sum (the NIC
/// was to finish it), so a copy sent again from a raw socket needs this first.
/// Returns false if the packet is not the one `segment` describes (lengths disagree).
bool finalize_checksums(std::span<std::uint8_t> packet, const TcpSegment& segment) noexcept;

/// The Internet checksum's one's-complement sum of `bytes` added to `sum` (not yet folded).
std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::uint8_t> bytes) noexcept;

/// Folds a sum to 16 bits and complements it: the value to store in a checksum field (host order).
std::uint16_t checksum_fold(std::uint32_t sum) noexcept;

}  // namespace finwave::nf
