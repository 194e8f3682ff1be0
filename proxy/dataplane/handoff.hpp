#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "proxy/loop/uv_handle.hpp"
#include "proxy/tracker/outcome.hpp"
#include "proxy/tracker/sinks.hpp"
#include "rules/segment_facts.hpp"

namespace finwave::proxy {

/// What the Handoff carried, and what it could not, for `stats`.
struct HandoffCounters {
  std::uint64_t outcomes = 0;           ///< Outcomes carried to the control thread.
  std::uint64_t rule_hits = 0;          ///< Rule hits carried.
  std::uint64_t rule_hits_dropped = 0;  ///< Past kMaxPendingRuleHits, or out of memory.
  std::uint64_t outcomes_lost = 0;      ///< Out of memory.
  std::uint64_t wakeups = 0;            ///< Times the control loop was woken to deliver.
};

/// Carries what queue workers on threads of their own produce to the control thread, which
/// alone prints outcomes and talks to the ControlServer. Workers post (it is their OutcomeSink
/// and RuleHitSink); a uv_async_t wakes the control loop, which hands everything, in the order
/// it was posted, to the control thread's own sinks: rule hits first, then outcomes (a flow's
/// hits always come before its outcome, which waits at least its settle window).
class Handoff final : public OutcomeSink, public RuleHitSink {
 public:
  /// Rule hits waiting for the control thread at most; more are dropped and counted (the
  /// control server drops events for slow subscribers anyway; this bounds memory when the
  /// control loop is stalled and a rule matches every segment).
  static constexpr std::size_t kMaxPendingRuleHits = 65536;

  /// `outcomes` receives them on `loop`'s thread. Throws std::runtime_error if the async handle
  /// cannot be created.
  Handoff(uv_loop_t* loop, OutcomeSink& outcomes);
  Handoff(const Handoff&) = delete;
  Handoff& operator=(const Handoff&) = delete;
  ~Handoff() = default;

  /// Any thread: takes the outcomes (leaving `outcomes` empty) and wakes the control loop.
  void on_outcomes(std::vector<Outcome>& outcomes) noexcept override;
  /// Any thread: copies the hit (its views end with this call) and wakes the control loop.
  void on_rule_hit(const RuleHit& hit) noexcept override;

  /// Control thread: who hears of the rule hits delivered from now on; nullptr drops them.
  void set_rule_hit_sink(RuleHitSink* sink) noexcept { rule_hit_sink_ = sink; }
  /// Control thread: delivers everything posted so far, now.
  void deliver() noexcept;
  /// Control thread: closes the async handle. Every worker must have stopped posting.
  void close() noexcept { wake_.close(); }

  /// Control thread: a copy of the counters.
  HandoffCounters counters() const;

 private:
  // A RuleHit whose views would die with the worker's call, as owned values.
  struct PostedRuleHit {
    std::string rule;
    rules::SegmentFacts facts;
    std::uint64_t flow_id = 0;
    Verdict verdict = Verdict::kAccept;
  };

  static void on_wake(uv_async_t* handle) noexcept;
  void wake() noexcept;

  OutcomeSink& outcomes_sink_;
  RuleHitSink* rule_hit_sink_ = nullptr;  // control thread only
  UvHandle<uv_async_t> wake_;
  uv_async_t* wake_handle_ = nullptr;  // wake_'s handle, for workers: read-only after set-up

  mutable std::mutex mutex_;
  std::vector<Outcome> outcomes_;         // guarded by mutex_
  std::vector<PostedRuleHit> rule_hits_;  // guarded by mutex_
  HandoffCounters counters_;              // guarded by mutex_
  // The control thread's side of the swap, reused between deliveries.
  std::vector<Outcome> delivering_outcomes_;
  std::vector<PostedRuleHit> delivering_rule_hits_;
};

}  // namespace finwave::proxy
