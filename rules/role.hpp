#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace finwave::rules {

/// The part a captured segment plays in a connection's handshake or teardown.
/// The vocabulary is the README's ("Rules", roles): the tracker (proxy/tracker/) names segments
/// with it and rules match on it, which is why it lives here, in the library both can see.
enum class Role : std::uint8_t {
  kSyn,           ///< Client's SYN.
  kSynAck,        ///< Server's SYN-ACK.
  kFin1,          ///< First FIN of the connection (the active closer's).
  kAck1,          ///< Passive side's ACK of fin1 (absent when it rides on fin2).
  kFin2,          ///< Passive closer's FIN.
  kFinalAck,      ///< Active closer's ACK of fin2: a pure ACK, the fourth wave.
  kDataAfterFin,  ///< Half-close data the passive side sends between the 2nd and 3rd wave.
  kRst,           ///< A reset, in whatever stage it comes.
  kAck,           ///< Any other ACK seen during teardown (duplicate ACKs, window updates).
  kAny,           ///< Rules only: matches every role.
};

/// Which end of a connection sent a segment. The client is the side that sent the SYN; for a
/// connection first seen at its FIN, the tracker names the sides by port: the lower port is the
/// server, and on equal ports the lower address (proxy/tracker/flow_table.hpp, FlowTable).
enum class Side : std::uint8_t { kClient, kServer };

/// "client" or "server".
std::string_view to_string(Side side) noexcept;

/// The other end.
constexpr Side peer_of(Side side) noexcept {
  return side == Side::kClient ? Side::kServer : Side::kClient;
}

/// Number of distinct roles a segment can have (kAny excluded).
inline constexpr int kSegmentRoleCount = static_cast<int>(Role::kAny);

/// The stable lower_snake_case name used in rule files, JSON and logs ("final_ack").
std::string_view to_string(Role role) noexcept;

/// Inverse of to_string(); std::nullopt for an unknown name.
std::optional<Role> role_from_string(std::string_view name) noexcept;

/// The accepted names joined for error messages: "syn, syn_ack, fin1, ...".
std::string_view role_names() noexcept;

}  // namespace finwave::rules
