#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "netfilter/log_group.hpp"
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
  nf::LogCounters log;  ///< The log path's socket (all 0 without one).
};

/// One counter of a counters struct and where `stats` reports it: the key of its JSON object
/// (`group`: "queue", "actions", "flows", or "" for the top level) and its name there. A counter
/// with an empty `key` is summed but not reported.
template <class Counters>
struct CounterField {
  std::uint64_t Counters::*field;
  std::string_view group;
  std::string_view key;
};

/// The one list of each struct's counters: add() sums them and the daemon's `stats` reports
/// them from these tables. The static_asserts in worker_counters.cpp fail the build when a
/// struct gains a counter that is not listed here.
inline constexpr std::array kQueueCounterFields = {
    CounterField<nf::QueueCounters>{&nf::QueueCounters::queued, "queue", "queued"},
    CounterField<nf::QueueCounters>{&nf::QueueCounters::accepted, "queue", "accepted"},
    CounterField<nf::QueueCounters>{&nf::QueueCounters::dropped, "queue", "dropped"},
    CounterField<nf::QueueCounters>{&nf::QueueCounters::held, "queue", "held"},
    CounterField<nf::QueueCounters>{&nf::QueueCounters::batches, "queue", "batches"},
    CounterField<nf::QueueCounters>{&nf::QueueCounters::verdict_errors, "queue", "verdict_errors"},
    CounterField<nf::QueueCounters>{&nf::QueueCounters::enobufs, "queue", "enobufs"},
    CounterField<nf::QueueCounters>{&nf::QueueCounters::malformed_messages, "", ""},
};

inline constexpr std::array kLogCounterFields = {
    CounterField<nf::LogCounters>{&nf::LogCounters::received, "log", "received"},
    CounterField<nf::LogCounters>{&nf::LogCounters::lost, "log", "lost"},
    CounterField<nf::LogCounters>{&nf::LogCounters::enobufs, "log", "enobufs"},
    CounterField<nf::LogCounters>{&nf::LogCounters::malformed_messages, "log", "malformed"},
    CounterField<nf::LogCounters>{&nf::LogCounters::config_errors, "log", "config_errors"},
};

/// DataplaneCounters::parse_errors is reported by nf::ParseError name, apart from these.
inline constexpr std::array kDataplaneCounterFields = {
    CounterField<DataplaneCounters>{&DataplaneCounters::segments, "", "segments"},
    CounterField<DataplaneCounters>{&DataplaneCounters::logged, "", "logged"},
    CounterField<DataplaneCounters>{&DataplaneCounters::order_inversions, "log",
                                    "order_inversions"},
    CounterField<DataplaneCounters>{&DataplaneCounters::log_losses, "log", "losses"},
    CounterField<DataplaneCounters>{&DataplaneCounters::rule_hits, "actions", "rule_hits"},
    CounterField<DataplaneCounters>{&DataplaneCounters::dropped, "actions", "dropped"},
    CounterField<DataplaneCounters>{&DataplaneCounters::delayed, "actions", "delayed"},
    CounterField<DataplaneCounters>{&DataplaneCounters::duplicated, "actions", "duplicated"},
    CounterField<DataplaneCounters>{&DataplaneCounters::copies_sent, "actions", "copies_sent"},
    CounterField<DataplaneCounters>{&DataplaneCounters::copy_errors, "actions", "copy_errors"},
    CounterField<DataplaneCounters>{&DataplaneCounters::resets, "actions", "resets"},
    CounterField<DataplaneCounters>{&DataplaneCounters::reset_errors, "actions", "reset_errors"},
    CounterField<DataplaneCounters>{&DataplaneCounters::held_overflow, "actions", "held_overflow"},
    CounterField<DataplaneCounters>{&DataplaneCounters::released, "actions", "released"},
    CounterField<DataplaneCounters>{&DataplaneCounters::released_early, "actions",
                                    "released_early"},
};

inline constexpr std::array kTrackerCounterFields = {
    CounterField<TrackerCounters>{&TrackerCounters::flows_tracked, "flows", "tracked"},
    CounterField<TrackerCounters>{&TrackerCounters::flows_created, "flows", "created"},
    CounterField<TrackerCounters>{&TrackerCounters::outcomes_emitted, "flows", "outcomes"},
    CounterField<TrackerCounters>{&TrackerCounters::evicted_idle, "flows", "evicted_idle"},
    CounterField<TrackerCounters>{&TrackerCounters::evicted_full, "flows", "evicted_full"},
    CounterField<TrackerCounters>{&TrackerCounters::refused_full, "flows", "refused_full"},
    CounterField<TrackerCounters>{&TrackerCounters::superseded, "flows", "superseded"},
    // Every segment is counted by the data path's `segments` too; stats reports that one.
    CounterField<TrackerCounters>{&TrackerCounters::segments, "", ""},
    CounterField<TrackerCounters>{&TrackerCounters::unknown_flow_acks, "flows",
                                  "unknown_flow_acks"},
    CounterField<TrackerCounters>{&TrackerCounters::unknown_flow_rsts, "flows",
                                  "unknown_flow_rsts"},
    CounterField<TrackerCounters>{&TrackerCounters::bogus_segments, "flows", "bogus_segments"},
    CounterField<TrackerCounters>{&TrackerCounters::outcomes_lost, "flows", "outcomes_lost"},
};

/// Calls `report(group, key, value)` for every reported counter of `counters`, in table order.
template <class Report>
void for_each_reported_counter(const WorkerCounters& counters, Report&& report) {
  const auto each = [&](const auto& fields, const auto& values) {
    for (const auto& field : fields) {
      if (!field.key.empty()) report(field.group, field.key, values.*field.field);
    }
  };
  each(kQueueCounterFields, counters.queue);
  each(kDataplaneCounterFields, counters.dataplane);
  each(kTrackerCounterFields, counters.flows);
  each(kLogCounterFields, counters.log);
}

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
