#pragma once

#include <cstdint>
#include <span>

#include "netfilter/packet.hpp"

namespace finwave::nf {

/// Sends finished IP packets (header included) from raw sockets, IPv4 and IPv6, for duplicated
/// segments. Every packet carries the skb mark `mark` (SO_MARK), which the capture chains exclude,
/// so a copy is never queued back to finwave. Move-only; loop thread only.
class Injector {
 public:
  Injector() = default;
  /// Opens one raw socket per family. Throws std::system_error (needs CAP_NET_RAW and, for
  /// SO_MARK, CAP_NET_ADMIN).
  static Injector open(std::uint32_t mark);

  Injector(Injector&& other) noexcept;
  Injector& operator=(Injector&& other) noexcept;
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;
  ~Injector();

  /// Sends `packet`, described by `segment`, to its destination address as it is: checksums
  /// must already be valid (see finalize_checksums). Returns 0 or a negative errno (EMSGSIZE
  /// for a GSO super-segment larger than the route's MTU).
  int send(std::span<const std::uint8_t> packet, const TcpSegment& segment) noexcept;

 private:
  int v4_ = -1;
  int v6_ = -1;
};

}  // namespace finwave::nf
