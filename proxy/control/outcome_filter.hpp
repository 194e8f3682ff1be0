#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/tracker/outcome.hpp"

namespace finwave::proxy {

/// Which outcomes an `outcomes`, `wait` or `subscribe` wants. Empty fields match everything; all
/// given fields must match.
struct OutcomeFilter {
  std::string rule;    ///< A rule that acted on the flow (in the outcome's `actions`).
  std::string result;  ///< clean | reset | timeout.
  std::string kind;    ///< four_way | three_way | simultaneous | reset | incomplete.
  std::string closer;  ///< client | server | both | none.
  /// A flow: its id ("17"), an endpoint of it ("198.18.1.2:40000", "[2001:db8:1::2]:40000")
  /// or an address of either side ("198.18.2.2", "2001:db8:2::2").
  std::string flow;

  /// Sets `flow` after checking it names a flow id, an endpoint or an address; false (and the
  /// flow filter unchanged) when it does not.
  bool set_flow(std::string_view text);
  bool empty() const noexcept;
  bool matches(const Outcome& outcome) const;
  /// True when the flow filter is empty or names this flow (same rules as for outcomes).
  bool matches_flow(std::uint64_t flow_id, const rules::Endpoint& client,
                    const rules::Endpoint& server) const;
  /// The given fields as a JSON object (for echoing in replies and in finwavectl messages).
  nlohmann::json to_json() const;

 private:
  std::optional<std::uint64_t> flow_id_;
  rules::Endpoint flow_address_;
  std::uint16_t flow_port_ = 0;  // 0: any port of that address.
};

}  // namespace finwave::proxy
