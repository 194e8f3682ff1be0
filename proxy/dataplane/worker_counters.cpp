#include "proxy/dataplane/worker_counters.hpp"

namespace finwave::proxy {
namespace {

// add() names every field: a counter added to one of these structs must be added there too.
constexpr std::size_t kWords = sizeof(std::uint64_t);
static_assert(sizeof(nf::QueueCounters) == 8 * kWords,
              "a new QueueCounters field: sum it in add()");
static_assert(sizeof(DataplaneCounters) == (16 + 12) * kWords,
              "a new DataplaneCounters field: sum it in add()");
static_assert(sizeof(TrackerCounters) == 12 * kWords,
              "a new TrackerCounters field: sum it in add()");

}  // namespace

void add(WorkerCounters& total, const WorkerCounters& more) noexcept {
  nf::QueueCounters& q = total.queue;
  q.queued += more.queue.queued;
  q.accepted += more.queue.accepted;
  q.dropped += more.queue.dropped;
  q.held += more.queue.held;
  q.batches += more.queue.batches;
  q.verdict_errors += more.queue.verdict_errors;
  q.enobufs += more.queue.enobufs;
  q.malformed_messages += more.queue.malformed_messages;

  DataplaneCounters& d = total.dataplane;
  for (std::size_t i = 0; i < d.parse_errors.size(); ++i) {
    d.parse_errors[i] += more.dataplane.parse_errors[i];
  }
  d.segments += more.dataplane.segments;
  d.rule_hits += more.dataplane.rule_hits;
  d.dropped += more.dataplane.dropped;
  d.delayed += more.dataplane.delayed;
  d.duplicated += more.dataplane.duplicated;
  d.copies_sent += more.dataplane.copies_sent;
  d.copy_errors += more.dataplane.copy_errors;
  d.resets += more.dataplane.resets;
  d.reset_errors += more.dataplane.reset_errors;
  d.held_overflow += more.dataplane.held_overflow;
  d.released += more.dataplane.released;
  d.released_early += more.dataplane.released_early;

  TrackerCounters& t = total.flows;
  t.flows_tracked += more.flows.flows_tracked;
  t.flows_created += more.flows.flows_created;
  t.outcomes_emitted += more.flows.outcomes_emitted;
  t.evicted_idle += more.flows.evicted_idle;
  t.evicted_full += more.flows.evicted_full;
  t.refused_full += more.flows.refused_full;
  t.superseded += more.flows.superseded;
  t.segments += more.flows.segments;
  t.unknown_flow_acks += more.flows.unknown_flow_acks;
  t.unknown_flow_rsts += more.flows.unknown_flow_rsts;
  t.bogus_segments += more.flows.bogus_segments;
  t.outcomes_lost += more.flows.outcomes_lost;
}

void add(nf::KernelQueueStats& total, const nf::KernelQueueStats& more) noexcept {
  total.queue_total += more.queue_total;
  total.queue_dropped += more.queue_dropped;
  total.user_dropped += more.user_dropped;
  total.id_sequence += more.id_sequence;
}

void add_rule_hits(std::vector<rules::RuleStatus>& total,
                   const std::vector<rules::RuleStatus>& more) noexcept {
  for (std::size_t i = 0; i < total.size() && i < more.size(); ++i) {
    if (total[i].name == more[i].name) total[i].hits += more[i].hits;
  }
}

}  // namespace finwave::proxy
