#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rules/flow_rule_state.hpp"
#include "rules/rng.hpp"
#include "rules/rule.hpp"
#include "rules/segment_facts.hpp"

namespace finwave::rules {

/// What to do with one captured segment. Plain data, no allocation, no ownership.
///
/// - kPass: accept now (no rule matched when rule_index < 0, or a `pass` rule did).
/// - kDrop: drop.
/// - kDelay: hold the verdict for delay_us, then accept; if copies > 0, then send `copies` copies
///   from the raw socket, the first spacing_us after the release and each next spacing_us later.
///   delay_us may be 0 when jitter reaches the whole delay: release on the next loop turn.
/// - kDuplicate: accept now and send `copies` (>= 1) copies, spaced as for kDelay.
/// - kReset: replace the segment by an RST.
struct Decision {
  Action action = Action::kPass;
  std::uint32_t delay_us = 0;    ///< kDelay only.
  std::uint16_t copies = 0;      ///< kDuplicate (>= 1), or kDelay followed by duplication.
  std::uint32_t spacing_us = 0;  ///< Gap before each copy.
  int rule_index = -1;           ///< Position of the deciding rule; -1 when no rule matched.
  /// Name of the deciding rule; empty when none. Points into the engine's current rule set:
  /// valid until the next replace/add/remove/set_enabled. Copy it to keep it longer.
  std::string_view rule_name;

  bool matched() const noexcept { return rule_index >= 0; }
};

/// One line of a `rules` status listing.
struct RuleStatus {
  std::string name;
  bool enabled = true;
  std::string summary;     ///< describe(rule).
  std::uint64_t hits = 0;  ///< Segments this rule has decided since it was loaded.
};

/// The pure decision engine: rule set + segment facts + per-flow counts + rng -> Decision.
///
/// Owned and used by the loop thread only (no locks). Semantics, also in rules/README.md:
/// - Rules are tried in order; disabled rules are skipped. The first enabled rule that matches
///   the segment AND whose counter AND probability say yes decides it ("first match wins").
/// - A rule that matches but whose counter or probability says "not this one" does not decide:
///   the segment falls through to the rules after it (and, if none decides, passes).
/// - A counted rule (nth/first/after) counts every segment of the connection that matches its
///   match keys while it is enabled, whether or not an earlier rule decided that segment: `nth = 2`
///   on final_ack means the connection's second final_ack, whatever happened to the first.
/// - The probability is drawn (one rng draw) only when the rule is reached and its counter says
///   yes; a delay with jitter draws once more. The same seed and segments give the same decisions.
/// - Every change of the rule set (replace, add, remove, set_enabled) starts a new generation:
///   each flow's counts restart from zero at its next segment.
class Engine {
 public:
  /// Where add() puts a new rule.
  enum class Placement : std::uint8_t { kFirst, kLast };

  /// An engine with no rules: every segment passes.
  Engine();
  /// Takes `rules` as the initial set. Throws ConfigError like replace().
  explicit Engine(RuleSet rules);

  /// Decides one segment and counts it in `flow`. Data plane: never throws, never allocates.
  Decision decide(const SegmentFacts& facts, FlowRuleState& flow, Rng& rng) noexcept;

  /// Installs a whole new rule set at once (reload): a new generation, hit counts restart.
  /// Throws ConfigError (and keeps the current set) for duplicate or empty names or more than
  /// FlowRuleState::kMaxCountedRules counted rules; the loader already rejects those with
  /// positions, so this only fires for rule sets built in code.
  void replace(RuleSet rules);

  /// Enables or disables the rule called `name`. Throws ConfigError for an unknown name.
  void set_enabled(std::string_view name, bool enabled);

  /// Adds a rule (typically from parse_single_rule) first or last. Throws ConfigError if the
  /// name is taken or the rule needs a counter slot and all are in use.
  void add(Rule rule, Placement where = Placement::kLast);

  /// Removes the rule called `name`. Throws ConfigError for an unknown name.
  void remove(std::string_view name);

  /// The rules in priority order with their state and hit counts, for status listings.
  std::vector<RuleStatus> rules() const;

  /// The current rule set, shared: callers may keep the snapshot past later changes.
  std::shared_ptr<const RuleSet> rule_set() const noexcept { return rules_; }

  /// Incremented by every change; a FlowRuleState with another value is reset at its next use.
  std::uint32_t generation() const noexcept { return generation_; }

 private:
  // Installs `rules` (already checked) with `hits` (one per rule), starting a new generation.
  void install(std::shared_ptr<const RuleSet> rules, std::vector<std::uint64_t> hits);
  // Throws ConfigError if `rules` breaks a set-level invariant.
  static void check(const RuleSet& rules);
  std::size_t index_of(std::string_view name) const;

  static constexpr std::uint8_t kNoSlot = 0xFF;

  std::shared_ptr<const RuleSet> rules_;
  std::vector<std::uint8_t> slot_;   // Per rule: its FlowRuleState slot, or kNoSlot.
  std::vector<std::uint64_t> hits_;  // Per rule: segments decided.
  std::size_t counted_end_ = 0;      // One past the last enabled counted rule.
  std::uint32_t generation_ = 1;     // Never 0, so a fresh FlowRuleState is always reset.
};

}  // namespace finwave::rules
