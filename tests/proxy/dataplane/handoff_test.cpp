// Tests of Handoff (proxy/dataplane/handoff.hpp) on a real libuv loop: what workers post from
// their own threads reaches the control thread's sinks in the order posted, rule hits before
// outcomes, with the rule-hit cap and the counters as documented.

#include "proxy/dataplane/handoff.hpp"

#include <doctest/doctest.h>
#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace finwave::proxy {
namespace {

// The control thread's sinks: record what arrives, and in which order the two kinds came.
struct RecordingSinks final : OutcomeSink, RuleHitSink {
  std::vector<std::uint64_t> outcome_ids;
  std::vector<std::string> rule_names;
  std::vector<std::uint64_t> rule_flow_ids;
  std::vector<char> arrivals;  // 'h' for a rule hit, 'o' for an outcome

  void on_outcomes(std::vector<Outcome>& outcomes) noexcept override {
    for (const Outcome& outcome : outcomes) {
      outcome_ids.push_back(outcome.id);
      arrivals.push_back('o');
    }
    outcomes.clear();
  }
  void on_rule_hit(const RuleHit& hit) noexcept override {
    rule_names.emplace_back(hit.rule);
    rule_flow_ids.push_back(hit.flow_id);
    arrivals.push_back('h');
  }
};

// One loop per test, closed (and checked closed) at the end.
struct Loop {
  uv_loop_t loop{};
  Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);  // lets the closed async handle finish closing
    CHECK(uv_loop_close(&loop) == 0);
  }
};

std::vector<Outcome> outcomes_with_ids(std::uint64_t first, std::size_t count) {
  std::vector<Outcome> outcomes(count);
  for (std::size_t i = 0; i < count; ++i) outcomes[i].id = first + i;
  return outcomes;
}

void post_rule_hit(Handoff& handoff, const std::string& rule, std::uint64_t flow_id) {
  const rules::SegmentFacts facts;
  handoff.on_rule_hit(RuleHit{rule, facts, flow_id, Verdict::kDrop});
}

// Runs the loop until `done` holds, with a deadline, so a lost wake-up fails instead of hanging.
template <typename Done>
bool run_until(uv_loop_t& loop, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    uv_run(&loop, UV_RUN_NOWAIT);
    std::this_thread::yield();
  }
  return true;
}

TEST_SUITE("handoff") {
  TEST_CASE("handoff: what a worker thread posts arrives on the loop, in order, hits first") {
    Loop loop;
    RecordingSinks sinks;
    Handoff handoff(&loop.loop, sinks);
    handoff.set_rule_hit_sink(&sinks);

    constexpr std::size_t kRounds = 200;
    std::thread worker([&handoff] {
      for (std::size_t round = 0; round < kRounds; ++round) {
        post_rule_hit(handoff, "r" + std::to_string(round), round + 1);
        std::vector<Outcome> outcomes = outcomes_with_ids(round + 1, 1);
        handoff.on_outcomes(outcomes);
        CHECK(outcomes.empty());  // taken, as OutcomeSink promises
      }
    });
    const bool delivered =
        run_until(loop.loop, [&sinks] { return sinks.outcome_ids.size() == kRounds; });
    worker.join();
    REQUIRE(delivered);

    std::vector<std::uint64_t> expected_ids(kRounds);
    for (std::size_t i = 0; i < kRounds; ++i) expected_ids[i] = i + 1;
    CHECK(sinks.outcome_ids == expected_ids);
    CHECK(sinks.rule_flow_ids == expected_ids);
    CHECK(sinks.rule_names.front() == "r0");  // copied: the poster's string is long gone
    CHECK(sinks.rule_names.back() == "r" + std::to_string(kRounds - 1));
    // A flow's hit is posted before its outcome, so it never arrives after it.
    std::size_t hits_so_far = 0;
    std::size_t outcomes_so_far = 0;
    for (const char arrival : sinks.arrivals) {
      (arrival == 'h' ? hits_so_far : outcomes_so_far) += 1;
      CHECK(hits_so_far >= outcomes_so_far);
    }

    const HandoffCounters counters = handoff.counters();
    CHECK(counters.outcomes == kRounds);
    CHECK(counters.rule_hits == kRounds);
    CHECK(counters.rule_hits_dropped == 0);
    CHECK(counters.outcomes_lost == 0);
    CHECK(counters.wakeups >= 1);
    CHECK(counters.wakeups <= 2 * kRounds);
    handoff.close();
  }

  TEST_CASE("handoff: one delivery hands on rule hits before outcomes, whatever the order") {
    Loop loop;
    RecordingSinks sinks;
    Handoff handoff(&loop.loop, sinks);
    handoff.set_rule_hit_sink(&sinks);

    std::vector<Outcome> outcomes = outcomes_with_ids(7, 2);
    handoff.on_outcomes(outcomes);
    post_rule_hit(handoff, "late", 9);
    handoff.deliver();
    CHECK(sinks.arrivals == std::vector<char>{'h', 'o', 'o'});
    CHECK(sinks.outcome_ids == std::vector<std::uint64_t>{7, 8});

    handoff.deliver();  // nothing new: nothing delivered twice
    CHECK(sinks.arrivals.size() == 3);
    CHECK(handoff.counters().wakeups == 2);
    handoff.close();
  }

  TEST_CASE("handoff: rule hits past the cap are dropped and counted, outcomes never") {
    Loop loop;
    RecordingSinks sinks;
    Handoff handoff(&loop.loop, sinks);
    handoff.set_rule_hit_sink(&sinks);

    constexpr std::size_t kOver = 5;
    for (std::size_t i = 0; i < Handoff::kMaxPendingRuleHits + kOver; ++i) {
      post_rule_hit(handoff, "every", i);
    }
    std::vector<Outcome> outcomes = outcomes_with_ids(1, 3);
    handoff.on_outcomes(outcomes);

    HandoffCounters counters = handoff.counters();
    CHECK(counters.rule_hits == Handoff::kMaxPendingRuleHits);
    CHECK(counters.rule_hits_dropped == kOver);
    CHECK(counters.outcomes == 3);

    handoff.deliver();
    CHECK(sinks.rule_names.size() == Handoff::kMaxPendingRuleHits);
    CHECK(sinks.rule_flow_ids.back() == Handoff::kMaxPendingRuleHits - 1);  // the first ones kept
    CHECK(sinks.outcome_ids.size() == 3);

    // Delivered hits make room again.
    post_rule_hit(handoff, "after", 1);
    counters = handoff.counters();
    CHECK(counters.rule_hits == Handoff::kMaxPendingRuleHits + 1);
    CHECK(counters.rule_hits_dropped == kOver);
    handoff.close();
  }

  TEST_CASE("handoff: without a rule-hit sink hits are dropped at delivery, outcomes still go") {
    Loop loop;
    RecordingSinks sinks;
    Handoff handoff(&loop.loop, sinks);  // no set_rule_hit_sink: nobody subscribed

    post_rule_hit(handoff, "unheard", 1);
    std::vector<Outcome> outcomes = outcomes_with_ids(4, 1);
    handoff.on_outcomes(outcomes);
    handoff.deliver();
    CHECK(sinks.rule_names.empty());
    CHECK(sinks.outcome_ids == std::vector<std::uint64_t>{4});

    // A sink set later hears only what is posted from then on.
    handoff.set_rule_hit_sink(&sinks);
    handoff.deliver();
    CHECK(sinks.rule_names.empty());
    post_rule_hit(handoff, "heard", 2);
    handoff.deliver();
    CHECK(sinks.rule_names == std::vector<std::string>{"heard"});
    handoff.close();
  }

  TEST_CASE("handoff: posting nothing wakes nobody") {
    Loop loop;
    RecordingSinks sinks;
    Handoff handoff(&loop.loop, sinks);
    std::vector<Outcome> none;
    handoff.on_outcomes(none);
    uv_run(&loop.loop, UV_RUN_NOWAIT);
    CHECK(handoff.counters().wakeups == 0);
    CHECK(handoff.counters().outcomes == 0);
    handoff.close();
  }
}

}  // namespace
}  // namespace finwave::proxy
