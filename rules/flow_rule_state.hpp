#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace finwave::rules {

/// The rule engine's memory of one connection: how many of this connection's segments each
/// counted rule has matched so far (for `nth`, `first`, `after` limits). The tracker owns one per
/// flow and hands it to the engine with every segment; only the engine reads or writes it.
/// Kept small on purpose: it lives in every tracked flow (a flow costs at most 1 KiB in all;
/// FlowTable::flow_record_bytes() tells).
struct FlowRuleState {
  /// Rules that carry a per-connection counter get one slot each; a rule set needing more is
  /// rejected when loaded.
  static constexpr std::size_t kMaxCountedRules = 16;

  /// Generation of the rule set the counts belong to; a reload starts every flow's counts anew.
  std::uint32_t generation = 0;
  std::array<std::uint16_t, kMaxCountedRules> matches{};
};

}  // namespace finwave::rules
