// Every example rule file loads, and says what its name and comments promise.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "rules/engine.hpp"
#include "rules/rule_loader.hpp"

namespace fr = finwave::rules;
using fr::Action;
using fr::Role;

namespace {

fr::RuleSet example(const std::string& file) {
  return fr::load_rules_file(std::string(FINWAVE_RULES_EXAMPLES_DIR) + "/" + file);
}

// By value: the rule set is usually a temporary.
fr::Rule only_rule(const fr::RuleSet& set) {
  REQUIRE(set.rules.size() == 1);
  return set.rules[0];
}

fr::SegmentFacts final_ack() {
  fr::SegmentFacts facts;
  facts.role = Role::kFinalAck;
  facts.from = fr::Side::kClient;
  facts.active_closer = fr::Side::kClient;
  return facts;
}

}  // namespace

TEST_SUITE("rules") {
  TEST_CASE("examples: every file in rules/examples loads") {
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(FINWAVE_RULES_EXAMPLES_DIR)) {
      if (entry.path().extension() != ".toml") {
        continue;
      }
      INFO(entry.path().string());
      CHECK_NOTHROW(fr::load_rules_file(entry.path().string()));
      ++files;
    }
    CHECK(files >= 9);
  }

  TEST_CASE("examples: lose-final-ack drops every final_ack") {
    const fr::Rule rule = only_rule(example("lose-final-ack.toml"));
    CHECK(rule.role == Role::kFinalAck);
    CHECK(rule.action == Action::kDrop);
    CHECK(rule.counter == fr::Counter::kNone);
    CHECK(rule.probability == 1.0);
  }

  TEST_CASE("examples: lose-first-final-ack drops only the first final_ack per connection") {
    fr::Engine engine(example("lose-first-final-ack.toml"));
    fr::FlowRuleState flow;
    fr::Rng rng(1);
    CHECK(engine.decide(final_ack(), flow, rng).action == Action::kDrop);
    CHECK(engine.decide(final_ack(), flow, rng).action == Action::kPass);
  }

  TEST_CASE("examples: lose-fin1-once drops the first transmission of fin1 only") {
    const fr::Rule rule = only_rule(example("lose-fin1-once.toml"));
    CHECK(rule.role == Role::kFin1);
    CHECK(rule.retx == false);
    CHECK(rule.action == Action::kDrop);
  }

  TEST_CASE("examples: delay-final-ack delays beyond the minimum RTO") {
    const fr::Rule rule = only_rule(example("delay-final-ack.toml"));
    CHECK(rule.role == Role::kFinalAck);
    CHECK(rule.action == Action::kDelay);
    CHECK(rule.delay_ms > 200);
  }

  TEST_CASE("examples: duplicate-fin2 and reset-fin2") {
    const fr::Rule duplicate = only_rule(example("duplicate-fin2.toml"));
    CHECK(duplicate.role == Role::kFin2);
    CHECK(duplicate.action == Action::kDuplicate);
    CHECK(duplicate.copies >= 1);
    const fr::Rule reset = only_rule(example("reset-fin2.toml"));
    CHECK(reset.role == Role::kFin2);
    CHECK(reset.action == Action::kReset);
  }

  TEST_CASE("examples: coin-flip drops final_ack with probability 0.5") {
    const fr::Rule rule = only_rule(example("coin-flip.toml"));
    CHECK(rule.role == Role::kFinalAck);
    CHECK(rule.probability == 0.5);
    CHECK(rule.action == Action::kDrop);
  }

  TEST_CASE("examples: demo delays fin1 by 50 ms and drops the first final_ack") {
    fr::Engine engine(example("demo.toml"));
    fr::FlowRuleState flow;
    fr::Rng rng(1);
    fr::SegmentFacts fin1 = final_ack();
    fin1.role = Role::kFin1;
    const fr::Decision delayed = engine.decide(fin1, flow, rng);
    CHECK(delayed.action == Action::kDelay);
    CHECK(delayed.delay_us == 50000);
    CHECK(engine.decide(final_ack(), flow, rng).action == Action::kDrop);
    CHECK(engine.decide(final_ack(), flow, rng).action == Action::kPass);
  }

  TEST_CASE("examples: none has no rules") { CHECK(example("none.toml").rules.empty()); }
}
