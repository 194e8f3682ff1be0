#include "rules/engine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "rules/config_error.hpp"
#include "rules/suggest.hpp"

namespace finwave::rules {
namespace {

constexpr std::uint16_t kCountCeiling = 0xFFFF;  // Means "65535 or more" (Rule::kMaxCount).

bool sender_matches(Sender wanted, const SegmentFacts& facts) noexcept {
  switch (wanted) {
    case Sender::kEither:
      return true;
    case Sender::kClient:
      return facts.from == Side::kClient;
    case Sender::kServer:
      return facts.from == Side::kServer;
    case Sender::kActiveCloser:
      return facts.active_closer.has_value() && facts.from == *facts.active_closer;
    case Sender::kPassiveCloser:
      return facts.active_closer.has_value() && facts.from != *facts.active_closer;
  }
  return false;
}

bool port_listed(const std::vector<std::uint16_t>& ports, std::uint16_t port) noexcept {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

bool address_listed(const std::vector<Cidr>& cidrs, const Endpoint& endpoint) noexcept {
  return std::any_of(cidrs.begin(), cidrs.end(),
                     [&](const Cidr& cidr) { return cidr.contains(endpoint); });
}

// The rule's match keys only; counters and probability come after.
bool matches(const Rule& rule, const SegmentFacts& facts) noexcept {
  if (rule.role != Role::kAny && rule.role != facts.role) {
    return false;
  }
  if (rule.retx.has_value() && *rule.retx != facts.retx) {
    return false;
  }
  if (!sender_matches(rule.from, facts)) {
    return false;
  }
  if (!rule.ports.empty() && !port_listed(rule.ports, facts.client.port) &&
      !port_listed(rule.ports, facts.server.port)) {
    return false;
  }
  if (!rule.client_ports.empty() && !port_listed(rule.client_ports, facts.client.port)) {
    return false;
  }
  if (!rule.server_ports.empty() && !port_listed(rule.server_ports, facts.server.port)) {
    return false;
  }
  if (!rule.addresses.empty() && !address_listed(rule.addresses, facts.client) &&
      !address_listed(rule.addresses, facts.server)) {
    return false;
  }
  if (!rule.client_addresses.empty() && !address_listed(rule.client_addresses, facts.client)) {
    return false;
  }
  if (!rule.server_addresses.empty() && !address_listed(rule.server_addresses, facts.server)) {
    return false;
  }
  return true;
}

// `seen` is how many matching segments of the connection the rule has counted, this one included.
bool counter_allows(const Rule& rule, std::uint32_t seen) noexcept {
  switch (rule.counter) {
    case Counter::kNone:
      return true;
    case Counter::kNth:
      return seen == rule.count;
    case Counter::kFirst:
      return seen <= rule.count;
    case Counter::kAfter:
      return seen > rule.count;
  }
  return false;
}

std::uint32_t to_microseconds(double ms) noexcept {
  const double us = std::round(ms * 1000.0);
  if (!(us > 0.0)) {
    return 0;
  }
  if (us >= static_cast<double>(std::numeric_limits<std::uint32_t>::max())) {
    return std::numeric_limits<std::uint32_t>::max();
  }
  return static_cast<std::uint32_t>(us);
}

Decision decision_for(const Rule& rule, int index, Rng& rng) noexcept {
  Decision decision;
  decision.action = rule.action;
  decision.rule_index = index;
  decision.rule_name = rule.name;
  if (rule.action == Action::kDelay) {
    double ms = rule.delay_ms;
    if (rule.jitter_ms > 0.0) {
      ms += (2.0 * rng.uniform01() - 1.0) * rule.jitter_ms;
    }
    decision.delay_us = to_microseconds(ms);
  }
  if (rule.action == Action::kDelay || rule.action == Action::kDuplicate) {
    decision.copies = rule.copies;
    decision.spacing_us = to_microseconds(rule.spacing_ms);
  }
  return decision;
}

std::string quote(std::string_view text) { return "'" + std::string(text) + "'"; }

}  // namespace

Engine::Engine() : Engine(RuleSet{}) {}

Engine::Engine(RuleSet rules) {
  check(rules);
  const std::size_t count = rules.rules.size();
  install(std::make_shared<const RuleSet>(std::move(rules)), std::vector<std::uint64_t>(count));
}

Decision Engine::decide(const SegmentFacts& facts, FlowRuleState& flow, Rng& rng) noexcept {
  if (flow.generation != generation_) {
    flow.matches.fill(0);
    flow.generation = generation_;
  }
  Decision decision;
  bool decided = false;
  const std::vector<Rule>& rules = rules_->rules;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    // Once decided, later rules matter only for their counts.
    if (decided && i >= counted_end_) {
      break;
    }
    const Rule& rule = rules[i];
    if (!rule.enabled || !matches(rule, facts)) {
      continue;
    }
    std::uint32_t seen = 0;
    if (slot_[i] != kNoSlot) {
      std::uint16_t& count = flow.matches[slot_[i]];
      if (count < kCountCeiling) {
        ++count;
      }
      seen = count;
    }
    if (decided || !counter_allows(rule, seen)) {
      continue;
    }
    if (rule.probability < 1.0 && !(rng.uniform01() < rule.probability)) {
      continue;
    }
    // A used-up budget makes the rule as good as gone, on every queue at once; it goes below
    // 0 by the number of segments that found it used up, which is harmless in 64 bits.
    if (rule.hit_budget && rule.hit_budget->fetch_sub(1, std::memory_order_relaxed) <= 0) {
      continue;
    }
    decision = decision_for(rule, static_cast<int>(i), rng);
    ++hits_[i];
    decided = true;
  }
  return decision;
}

void Engine::replace(RuleSet rules) {
  check(rules);
  const std::size_t count = rules.rules.size();
  install(std::make_shared<const RuleSet>(std::move(rules)), std::vector<std::uint64_t>(count));
}

void Engine::set_enabled(std::string_view name, bool enabled) {
  const std::size_t index = index_of(name);
  if (rules_->rules[index].enabled == enabled) {
    return;
  }
  auto changed = std::make_shared<RuleSet>(*rules_);
  changed->rules[index].enabled = enabled;
  install(std::move(changed), hits_);
}

void Engine::add(Rule rule, Placement where) {
  for (const Rule& existing : rules_->rules) {
    if (existing.name == rule.name) {
      throw ConfigError("a rule named " + quote(rule.name) +
                        " already exists; remove it first "
                        "or choose another name");
    }
  }
  auto changed = std::make_shared<RuleSet>(*rules_);
  std::vector<std::uint64_t> hits = hits_;
  if (where == Placement::kFirst) {
    changed->rules.insert(changed->rules.begin(), std::move(rule));
    hits.insert(hits.begin(), 0);
  } else {
    changed->rules.push_back(std::move(rule));
    hits.push_back(0);
  }
  check(*changed);
  install(std::move(changed), std::move(hits));
}

void Engine::remove(std::string_view name) {
  const std::size_t index = index_of(name);
  auto changed = std::make_shared<RuleSet>(*rules_);
  changed->rules.erase(changed->rules.begin() + static_cast<std::ptrdiff_t>(index));
  std::vector<std::uint64_t> hits = hits_;
  hits.erase(hits.begin() + static_cast<std::ptrdiff_t>(index));
  install(std::move(changed), std::move(hits));
}

std::vector<RuleStatus> Engine::rules() const {
  std::vector<RuleStatus> statuses;
  statuses.reserve(rules_->rules.size());
  for (std::size_t i = 0; i < rules_->rules.size(); ++i) {
    const Rule& rule = rules_->rules[i];
    statuses.push_back(RuleStatus{rule.name, rule.enabled, describe(rule), hits_[i]});
  }
  return statuses;
}

void Engine::install(std::shared_ptr<const RuleSet> rules, std::vector<std::uint64_t> hits) {
  std::vector<std::uint8_t> slots(rules->rules.size(), kNoSlot);
  std::size_t counted_end = 0;
  std::uint8_t next_slot = 0;
  for (std::size_t i = 0; i < rules->rules.size(); ++i) {
    const Rule& rule = rules->rules[i];
    if (!rule.counted()) {
      continue;
    }
    slots[i] = next_slot++;
    if (rule.enabled) {
      counted_end = i + 1;
    }
  }
  rules_ = std::move(rules);
  slot_ = std::move(slots);
  hits_ = std::move(hits);
  counted_end_ = counted_end;
  // 0 is what a fresh FlowRuleState holds; skipping it keeps "differs from ours" meaningful.
  if (++generation_ == 0) {
    generation_ = 1;
  }
}

void Engine::check(const RuleSet& rules) {
  std::size_t counted = 0;
  for (std::size_t i = 0; i < rules.rules.size(); ++i) {
    const Rule& rule = rules.rules[i];
    if (rule.name.empty()) {
      throw ConfigError("rule #" + std::to_string(i + 1) + " has no name");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (rules.rules[j].name == rule.name) {
        throw ConfigError("duplicate rule name " + quote(rule.name) + "; names must be unique");
      }
    }
    if (rule.counted()) {
      ++counted;
    }
  }
  if (counted > FlowRuleState::kMaxCountedRules) {
    throw ConfigError("too many counted rules: at most " +
                      std::to_string(FlowRuleState::kMaxCountedRules) +
                      " rules of a rule set may use nth, first or after (disabled ones included)");
  }
}

std::size_t Engine::index_of(std::string_view name) const {
  std::vector<std::string_view> names;
  for (std::size_t i = 0; i < rules_->rules.size(); ++i) {
    if (rules_->rules[i].name == name) {
      return i;
    }
    names.emplace_back(rules_->rules[i].name);
  }
  std::string message = "no rule named " + quote(name);
  if (names.empty()) {
    message += " (there are no rules)";
  } else if (auto match = closest_match(name, names)) {
    message += "; did you mean " + quote(*match) + "?";
  } else {
    message += "; rules: ";
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i > 0) {
        message += ", ";
      }
      message += names[i];
    }
  }
  throw ConfigError(message);
}

}  // namespace finwave::rules
