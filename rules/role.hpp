#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "rules/vocabulary.hpp"

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

/// "client" or "server": the side's one name (rules/vocabulary.hpp).
constexpr std::string_view to_string(Side side) noexcept {
  switch (side) {
    case Side::kClient:
      return "client";
    case Side::kServer:
      return "server";
  }
  return "";
}
using SideNames = Vocabulary<Side, Side::kServer>;

/// The other end.
constexpr Side peer_of(Side side) noexcept {
  return side == Side::kClient ? Side::kServer : Side::kClient;
}

/// Number of distinct roles a segment can have (kAny excluded).
inline constexpr int kSegmentRoleCount = static_cast<int>(Role::kAny);

/// The role's stable lower_snake_case name, used in rule files, JSON and logs ("final_ack"):
/// the one table of role names (rules/vocabulary.hpp); "" for a value that is no role.
constexpr std::string_view to_string(Role role) noexcept {
  switch (role) {
    case Role::kSyn:
      return "syn";
    case Role::kSynAck:
      return "syn_ack";
    case Role::kFin1:
      return "fin1";
    case Role::kAck1:
      return "ack1";
    case Role::kFin2:
      return "fin2";
    case Role::kFinalAck:
      return "final_ack";
    case Role::kDataAfterFin:
      return "data_after_fin";
    case Role::kRst:
      return "rst";
    case Role::kAck:
      return "ack";
    case Role::kAny:
      return "any";
  }
  return "";
}

/// Parsing ("fin1" -> Role::kFin1) and the list of names ("syn, syn_ack, ...").
using RoleNames = Vocabulary<Role, Role::kAny>;

}  // namespace finwave::rules
