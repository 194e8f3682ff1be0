#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "rules/role.hpp"

namespace finwave::rules {

/// One end of a connection as the rule engine sees it. A small type of its own so that rules/
/// needs nothing from netfilter/ or proxy/.
struct Endpoint {
  std::uint8_t family = 4;  ///< 4 or 6.
  /// Network byte order; an IPv4 address fills the first 4 bytes, the rest are zero.
  std::array<std::uint8_t, 16> address{};
  std::uint16_t port = 0;  ///< Host byte order.
};

/// Everything the engine may match a captured segment on. Filled by the tracker (proxy/) for
/// each queued segment; plain data, cheap to copy, no ownership.
struct SegmentFacts {
  Role role = Role::kAck;  ///< The part the segment plays (never Role::kAny).
  bool retx = false;       ///< Same sequence number seen before from this side.
  Side from = Side::kClient;
  /// The side that sent the connection's first FIN; std::nullopt before any FIN. On a
  /// simultaneous close the tracker names the side whose FIN it saw first.
  std::optional<Side> active_closer;
  Endpoint client;
  Endpoint server;
};

}  // namespace finwave::rules
