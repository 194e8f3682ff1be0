#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "netfilter/queue.hpp"
#include "netfilter/queue_stats.hpp"
#include "proxy/dataplane/dataplane_counters.hpp"
#include "proxy/tracker/flow_table.hpp"
#include "rules/engine.hpp"

namespace finwave::proxy {

/// What one queue worker counted: its queue's verdicts, its data path's actions and its flow
/// table. A copy, taken under the worker's lock, so the control thread can add them up.
struct WorkerCounters {
  nf::QueueCounters queue;
  DataplaneCounters dataplane;
  TrackerCounters flows;
};

// With --queues N the daemon is N workers that each see some of the connections. These put
// their separate views back together into the one daemon the control plane and the exit stats
// describe. Pure functions.

/// Adds every counter of `more` to `total` (flows_tracked and queue.held too: both are "now"
/// figures of disjoint sets of connections and packets, so the sum is the daemon's "now").
void add(WorkerCounters& total, const WorkerCounters& more) noexcept;

/// Adds the kernel's counters of another queue to `total`: packets waiting, dropped, and queued
/// so far (id_sequence, the last id, counts the packets queued since the queue was bound).
/// queue_num, peer_port_id, copy_mode and copy_range stay `total`'s.
void add(nf::KernelQueueStats& total, const nf::KernelQueueStats& more) noexcept;

/// Adds the hit counts of another worker's engine to `total`, rule by rule. Every worker's
/// engine holds the same rules in the same order (the daemon applies each change to all), so
/// rules are matched by position; a rule whose name differs there (never expected) is left as
/// it is rather than credited with another rule's hits.
void add_rule_hits(std::vector<rules::RuleStatus>& total,
                   const std::vector<rules::RuleStatus>& more) noexcept;

/// The daemon-wide id of flow `local_id` (1, 2, ... in its worker's FlowTable) of worker `index`
/// out of `count`: ids interleave, so they stay small and unique, and with one worker they are
/// the table's own.
constexpr std::uint64_t daemon_flow_id(std::uint64_t local_id, std::size_t index,
                                       std::size_t count) noexcept {
  return local_id == 0 ? 0 : (local_id - 1) * count + index + 1;
}

/// The index of the worker whose flow table holds daemon-wide flow `flow_id` (the inverse of
/// daemon_flow_id()).
constexpr std::size_t worker_of_flow(std::uint64_t flow_id, std::size_t count) noexcept {
  return flow_id == 0 || count == 0 ? 0 : static_cast<std::size_t>((flow_id - 1) % count);
}

}  // namespace finwave::proxy
