// Tests of proxy/worker_counters.cpp: how the views of several queue workers add up to one
// daemon (counters, the kernel's queue counters, rule hits, flow ids).

#include "proxy/dataplane/worker_counters.hpp"

#include <doctest/doctest.h>

#include <array>
#include <bit>
#include <set>
#include <string>
#include <vector>

namespace finwave::proxy {
namespace {

// Each struct is nothing but std::uint64_t counters (worker_counters.cpp asserts it), so the
// tests see them as words: word k of a struct gets base + k, without naming a single field, and
// a counter added later is covered without touching this file.
template <class Counters>
using Words = std::array<std::uint64_t, sizeof(Counters) / sizeof(std::uint64_t)>;

template <class Counters>
void fill(Counters& counters, std::uint64_t base) {
  Words<Counters> words{};
  for (std::size_t k = 0; k < words.size(); ++k) words[k] = base + k;
  counters = std::bit_cast<Counters>(words);
}

template <class Counters>
std::vector<std::uint64_t> words_of(const Counters& counters) {
  const auto words = std::bit_cast<Words<Counters>>(counters);
  return {words.begin(), words.end()};
}

WorkerCounters sample(std::uint64_t base) {
  WorkerCounters c;
  fill(c.queue, base);
  fill(c.dataplane, base + 100);
  fill(c.flows, base + 200);
  fill(c.log, base + 300);
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
    CHECK(words_of(total.queue) == words_of(one.queue));
    CHECK(words_of(total.dataplane) == words_of(one.dataplane));
    CHECK(words_of(total.flows) == words_of(one.flows));
    CHECK(words_of(total.log) == words_of(one.log));
  }

  TEST_CASE("worker_counters: every counter of two workers is summed") {
    WorkerCounters total = sample(0);
    add(total, sample(1000));
    // Word k of each struct held k and 1000 + k (plus the struct's offset): the sum is
    // 1000 + 2k (+ twice the offset) in every word, every field and parse reason included.
    const auto expect_sums = [](const std::vector<std::uint64_t>& words, std::uint64_t offset) {
      for (std::size_t k = 0; k < words.size(); ++k) {
        CAPTURE(k);
        CHECK(words[k] == 1000 + 2 * (offset + k));
      }
    };
    expect_sums(words_of(total.queue), 0);
    expect_sums(words_of(total.dataplane), 100);
    expect_sums(words_of(total.flows), 200);
    expect_sums(words_of(total.log), 300);
  }

  TEST_CASE("worker_counters: stats reports each counter once, under its stable name") {
    // The keys of `stats` are a contract with scripts: this pins them.
    std::vector<std::string> reported;
    std::set<std::uint64_t> values;
    for_each_reported_counter(
        sample(0), [&](std::string_view group, std::string_view key, std::uint64_t value) {
          reported.push_back(std::string(group) + "." + std::string(key));
          values.insert(value);
        });
    const std::vector<std::string> expected = {"queue.queued",
                                               "queue.accepted",
                                               "queue.dropped",
                                               "queue.held",
                                               "queue.batches",
                                               "queue.verdict_errors",
                                               "queue.enobufs",
                                               ".segments",
                                               ".logged",
                                               "log.order_inversions",
                                               "log.losses",
                                               "actions.rule_hits",
                                               "actions.dropped",
                                               "actions.delayed",
                                               "actions.duplicated",
                                               "actions.copies_sent",
                                               "actions.copy_errors",
                                               "actions.resets",
                                               "actions.reset_errors",
                                               "actions.held_overflow",
                                               "actions.released",
                                               "actions.released_early",
                                               "flows.tracked",
                                               "flows.created",
                                               "flows.outcomes",
                                               "flows.evicted_idle",
                                               "flows.evicted_full",
                                               "flows.refused_full",
                                               "flows.superseded",
                                               "flows.unknown_flow_acks",
                                               "flows.unknown_flow_rsts",
                                               "flows.bogus_segments",
                                               "flows.outcomes_lost",
                                               "log.received",
                                               "log.lost",
                                               "log.enobufs",
                                               "log.malformed",
                                               "log.config_errors"};
    CHECK(reported == expected);
    // Every value came from a different field.
    CHECK(values.size() == reported.size());
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
