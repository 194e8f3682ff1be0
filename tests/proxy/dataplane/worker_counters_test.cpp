// Tests of proxy/worker_counters.cpp: how the views of several queue workers add up to one
// daemon (counters, the kernel's queue counters, rule hits, flow ids).

#include "proxy/dataplane/worker_counters.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

namespace finwave::proxy {
namespace {

WorkerCounters sample(std::uint64_t base) {
  WorkerCounters c;
  c.queue.queued = base + 1;
  c.queue.accepted = base + 2;
  c.queue.dropped = base + 3;
  c.queue.held = base + 4;
  c.queue.batches = base + 5;
  c.queue.verdict_errors = base + 6;
  c.queue.enobufs = base + 7;
  c.queue.malformed_messages = base + 8;
  for (std::size_t i = 0; i < c.dataplane.parse_errors.size(); ++i) {
    c.dataplane.parse_errors[i] = base + 10 + i;
  }
  c.dataplane.segments = base + 30;
  c.dataplane.rule_hits = base + 31;
  c.dataplane.dropped = base + 32;
  c.dataplane.delayed = base + 33;
  c.dataplane.duplicated = base + 34;
  c.dataplane.copies_sent = base + 35;
  c.dataplane.copy_errors = base + 36;
  c.dataplane.resets = base + 37;
  c.dataplane.reset_errors = base + 38;
  c.dataplane.held_overflow = base + 39;
  c.dataplane.released = base + 40;
  c.dataplane.released_early = base + 41;
  c.flows.flows_tracked = base + 50;
  c.flows.flows_created = base + 51;
  c.flows.outcomes_emitted = base + 52;
  c.flows.evicted_idle = base + 53;
  c.flows.evicted_full = base + 54;
  c.flows.refused_full = base + 55;
  c.flows.superseded = base + 56;
  c.flows.segments = base + 57;
  c.flows.unknown_flow_acks = base + 58;
  c.flows.unknown_flow_rsts = base + 59;
  c.flows.bogus_segments = base + 60;
  c.flows.outcomes_lost = base + 61;
  return c;
}

rules::RuleStatus rule(const std::string& name, std::uint64_t hits) {
  return rules::RuleStatus{name, true, "drop final_ack", hits};
}

}  // namespace

TEST_SUITE("worker_counters") {
  TEST_CASE("worker_counters: adding to zero gives the same counters") {
    WorkerCounters total;
    add(total, sample(0));
    const WorkerCounters one = sample(0);
    CHECK(total.queue.queued == one.queue.queued);
    CHECK(total.queue.malformed_messages == one.queue.malformed_messages);
    CHECK(total.dataplane.parse_errors == one.dataplane.parse_errors);
    CHECK(total.dataplane.released_early == one.dataplane.released_early);
    CHECK(total.flows.outcomes_lost == one.flows.outcomes_lost);
  }

  TEST_CASE("worker_counters: every counter of two workers is summed") {
    WorkerCounters total = sample(0);
    add(total, sample(1000));
    // Field by field: sample(b) puts b + k in the k-th field, so the sum is 1000 + 2k.
    CHECK(total.queue.queued == 1000 + 2 * 1);
    CHECK(total.queue.accepted == 1000 + 2 * 2);
    CHECK(total.queue.dropped == 1000 + 2 * 3);
    CHECK(total.queue.held == 1000 + 2 * 4);
    CHECK(total.queue.batches == 1000 + 2 * 5);
    CHECK(total.queue.verdict_errors == 1000 + 2 * 6);
    CHECK(total.queue.enobufs == 1000 + 2 * 7);
    CHECK(total.queue.malformed_messages == 1000 + 2 * 8);
    for (std::size_t i = 0; i < total.dataplane.parse_errors.size(); ++i) {
      CHECK(total.dataplane.parse_errors[i] == 1000 + 2 * (10 + i));
    }
    CHECK(total.dataplane.segments == 1000 + 2 * 30);
    CHECK(total.dataplane.rule_hits == 1000 + 2 * 31);
    CHECK(total.dataplane.dropped == 1000 + 2 * 32);
    CHECK(total.dataplane.delayed == 1000 + 2 * 33);
    CHECK(total.dataplane.duplicated == 1000 + 2 * 34);
    CHECK(total.dataplane.copies_sent == 1000 + 2 * 35);
    CHECK(total.dataplane.copy_errors == 1000 + 2 * 36);
    CHECK(total.dataplane.resets == 1000 + 2 * 37);
    CHECK(total.dataplane.reset_errors == 1000 + 2 * 38);
    CHECK(total.dataplane.held_overflow == 1000 + 2 * 39);
    CHECK(total.dataplane.released == 1000 + 2 * 40);
    CHECK(total.dataplane.released_early == 1000 + 2 * 41);
    CHECK(total.flows.flows_tracked == 1000 + 2 * 50);
    CHECK(total.flows.flows_created == 1000 + 2 * 51);
    CHECK(total.flows.outcomes_emitted == 1000 + 2 * 52);
    CHECK(total.flows.evicted_idle == 1000 + 2 * 53);
    CHECK(total.flows.evicted_full == 1000 + 2 * 54);
    CHECK(total.flows.refused_full == 1000 + 2 * 55);
    CHECK(total.flows.superseded == 1000 + 2 * 56);
    CHECK(total.flows.segments == 1000 + 2 * 57);
    CHECK(total.flows.unknown_flow_acks == 1000 + 2 * 58);
    CHECK(total.flows.unknown_flow_rsts == 1000 + 2 * 59);
    CHECK(total.flows.bogus_segments == 1000 + 2 * 60);
    CHECK(total.flows.outcomes_lost == 1000 + 2 * 61);
  }

  TEST_CASE("worker_counters: kernel queue counters are summed, the identity is the first's") {
    nf::KernelQueueStats total{
        /*queue_num=*/4,    /*peer_port_id=*/111, /*queue_total=*/2,
        /*copy_mode=*/2,    /*copy_range=*/128,   /*queue_dropped=*/1,
        /*user_dropped=*/0, /*id_sequence=*/500};
    const nf::KernelQueueStats more{5, 222, 3, 2, 65535, 4, 7, 1500};
    add(total, more);
    CHECK(total.queue_num == 4);
    CHECK(total.peer_port_id == 111);
    CHECK(total.copy_range == 128);
    CHECK(total.queue_total == 5);
    CHECK(total.queue_dropped == 5);
    CHECK(total.user_dropped == 7);
    CHECK(total.id_sequence == 2000);
  }

  TEST_CASE("worker_counters: rule hits are summed rule by rule") {
    std::vector<rules::RuleStatus> total{rule("lose-final-ack", 3), rule("delay-fin2", 0)};
    add_rule_hits(total, {rule("lose-final-ack", 4), rule("delay-fin2", 9)});
    add_rule_hits(total, {rule("lose-final-ack", 1), rule("delay-fin2", 1)});
    REQUIRE(total.size() == 2);
    CHECK(total[0].hits == 8);
    CHECK(total[1].hits == 10);
    CHECK(total[0].summary == "drop final_ack");
  }

  TEST_CASE("worker_counters: a rule list that differs does not move hits to another rule") {
    std::vector<rules::RuleStatus> total{rule("a", 1), rule("b", 2)};
    add_rule_hits(total, {rule("b", 50), rule("a", 60), rule("c", 70)});
    CHECK(total[0].hits == 1);
    CHECK(total[1].hits == 2);
    add_rule_hits(total, {rule("a", 5)});
    CHECK(total[0].hits == 6);
    CHECK(total[1].hits == 2);
    CHECK(total.size() == 2);
  }

  TEST_CASE("worker_counters: one worker's flow ids are the table's own") {
    for (std::uint64_t id : {0ULL, 1ULL, 2ULL, 77ULL, 1ULL << 40}) {
      CHECK(daemon_flow_id(id, 0, 1) == id);
      CHECK(worker_of_flow(id, 1) == 0);
    }
  }

  TEST_CASE("worker_counters: flow ids of several workers are unique and name their worker") {
    constexpr std::size_t kWorkers = 3;
    std::set<std::uint64_t> seen;
    for (std::size_t worker = 0; worker < kWorkers; ++worker) {
      for (std::uint64_t local = 1; local <= 100; ++local) {
        const std::uint64_t id = daemon_flow_id(local, worker, kWorkers);
        CHECK(id >= 1);
        CHECK(seen.insert(id).second);
        CHECK(worker_of_flow(id, kWorkers) == worker);
      }
    }
    // Interleaved: the first flow of each worker gets 1, 2, 3.
    CHECK(daemon_flow_id(1, 0, kWorkers) == 1);
    CHECK(daemon_flow_id(1, 2, kWorkers) == 3);
    CHECK(daemon_flow_id(2, 0, kWorkers) == 4);
    // 0 means untracked everywhere.
    CHECK(daemon_flow_id(0, 2, kWorkers) == 0);
  }
}

}  // namespace finwave::proxy
