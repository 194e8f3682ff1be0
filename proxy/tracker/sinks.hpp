#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "proxy/tracker/outcome.hpp"
#include "proxy/tracker/teardown.hpp"
#include "rules/segment_facts.hpp"

// What the tracker and the data path hand on, and to whom: the interfaces the data path, the
// handoff between threads and the control server implement, kept here so that none of them
// needs another's headers to hear of outcomes and rule hits.

namespace finwave::proxy {

/// Told about the outcomes a worker's flow table produced. Called on the worker's thread; takes
/// them and leaves the vector empty.
class OutcomeSink {
 public:
  virtual void on_outcomes(std::vector<Outcome>& outcomes) noexcept = 0;

 protected:
  ~OutcomeSink() = default;
};

/// One segment a rule decided, as the control plane's rule_hit events report it. Every view and
/// reference is valid only during RuleHitSink::on_rule_hit().
struct RuleHit {
  std::string_view rule;               ///< The deciding rule's name.
  const rules::SegmentFacts& facts;    ///< Role, retx, sender, client and server.
  std::uint64_t flow_id = 0;           ///< The tracker's flow id (0: untracked).
  Verdict verdict = Verdict::kAccept;  ///< What was carried out (kAccept for a pass rule).
};

/// Told about every segment a rule decided. Set only while someone subscribed to rule hits, so
/// that without a subscriber the data path pays one null check. Called on the loop thread from
/// inside the packet callback: must not throw, and must not call back into the data path.
class RuleHitSink {
 public:
  virtual void on_rule_hit(const RuleHit& hit) noexcept = 0;

 protected:
  ~RuleHitSink() = default;
};

}  // namespace finwave::proxy
