#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>

#include "proxy/tracker/outcome.hpp"
#include "proxy/tracker/teardown.hpp"
#include "rules/role.hpp"

namespace finwave::proxy {

/// Upper bounds, in seconds, of the teardown duration histogram's buckets (the time from the
/// first FIN to the flow's last segment). A clean close takes a round trip or two: well under a
/// millisecond between namespaces, tens of milliseconds across a WAN. A lost final ACK costs the
/// passive side's FIN retransmissions (about 0.2 s, then doubling each time). A teardown that
/// never resolves ends at --linger, 120 s by default.
inline constexpr std::array<double, 14> kTeardownBucketsS = {
    0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300};

/// What the reported outcomes said, counted as each one is reported (control thread). Every
/// label set is bounded: the vocabularies' names, and at most kMaxRuleSeries rule series.
class OutcomeTally {
 public:
  /// Most (rule, role, action) series kept. Rules come and go over the control socket, each
  /// with a name of its own; past this many series, actions are counted under kOtherRules so
  /// that a long-running daemon's scrape stays small.
  static constexpr std::size_t kMaxRuleSeries = 256;
  /// The rule label past kMaxRuleSeries. Rule names cannot contain parentheses or spaces.
  static constexpr const char* kOtherRules = "(other rules)";

  static constexpr std::size_t kKinds = TeardownKindNames::kSize;
  static constexpr std::size_t kResults = TeardownResultNames::kSize;
  static constexpr std::size_t kClosers = CloserNames::kSize;

  /// Counts one outcome; allocates only for a rule series not seen before.
  void add(const Outcome& outcome);

  std::uint64_t outcomes(TeardownKind kind, TeardownResult result, Closer closer) const noexcept {
    return outcomes_[index(kind, result, closer)];
  }
  /// FIN retransmissions the tracker saw, by the side that sent them (rules::Side).
  const std::array<std::uint64_t, 2>& fin_retransmits() const noexcept { return fin_retransmits_; }

  /// The teardown duration histogram, of outcomes whose connection sent a FIN. Per bucket, not
  /// cumulative: teardown_buckets()[i] counts durations in (bound i-1, bound i]; the last one
  /// counts those above every bound.
  const std::array<std::uint64_t, kTeardownBucketsS.size() + 1>& teardown_buckets() const noexcept {
    return teardown_buckets_;
  }
  double teardown_sum_s() const noexcept { return teardown_sum_s_; }
  std::uint64_t teardown_count() const noexcept { return teardown_count_; }

  /// Segments a rule acted on, by rule, the segment's role and the verdict, from the outcomes'
  /// action records (so a flow's actions are counted when its outcome is reported).
  struct RuleAction {
    std::string rule;
    rules::Role role = rules::Role::kAny;
    Verdict action = Verdict::kAccept;
    bool operator<(const RuleAction& other) const noexcept {
      return std::tie(rule, role, action) < std::tie(other.rule, other.role, other.action);
    }
  };
  const std::map<RuleAction, std::uint64_t>& rule_actions() const noexcept { return rule_actions_; }

 private:
  static constexpr std::size_t index(TeardownKind kind, TeardownResult result,
                                     Closer closer) noexcept {
    return (static_cast<std::size_t>(kind) * kResults + static_cast<std::size_t>(result)) *
               kClosers +
           static_cast<std::size_t>(closer);
  }

  std::array<std::uint64_t, kKinds * kResults * kClosers> outcomes_{};
  std::array<std::uint64_t, 2> fin_retransmits_{};
  std::array<std::uint64_t, kTeardownBucketsS.size() + 1> teardown_buckets_{};
  double teardown_sum_s_ = 0;
  std::uint64_t teardown_count_ = 0;
  std::map<RuleAction, std::uint64_t> rule_actions_;
};

/// Everything `GET /metrics` and `finwavectl metrics` report, as one plain copy: the daemon
/// fills one (control thread) from what its queue workers last published and from its own
/// counters, and the metrics endpoint's thread renders it. Nothing in it points into the
/// daemon. Absent optionals are figures finwave could not read (they are left out, not 0).
struct MetricsSnapshot {
  std::string version;
  double start_time_s = 0;  ///< Unix time the daemon started.

  // The data path, summed over the queues.
  std::uint64_t segments_queued = 0;
  std::uint64_t segments_logged = 0;
  std::uint64_t log_lost = 0;  ///< Copies the log path lost (sequence gaps).
  std::uint64_t verdicts_accept = 0;
  std::uint64_t verdicts_drop = 0;
  std::uint64_t verdict_errors = 0;
  std::uint64_t held_now = 0;
  std::uint64_t held_overflows = 0;
  std::uint64_t dropped = 0;     ///< By a drop rule.
  std::uint64_t delayed = 0;     ///< Held by a delay rule.
  std::uint64_t duplicated = 0;  ///< Segments a duplicate rule sent copies of.
  std::uint64_t resets = 0;      ///< Segments a reset rule turned into an RST.
  std::uint64_t copy_errors = 0;
  std::uint64_t reset_errors = 0;
  std::uint64_t parse_errors = 0;  ///< Queued segments that were no parseable TCP segment.
  std::uint64_t flows_tracked = 0;
  std::uint64_t outcomes_lost = 0;

  // The kernel.
  std::optional<std::uint64_t> kernel_queue_full_drops;   ///< The queue was full.
  std::optional<std::uint64_t> kernel_socket_full_drops;  ///< finwave's socket buffer was.
  std::optional<std::uint64_t> passed_unqueued;           ///< Fail-open passes (capture watch).
  std::array<std::optional<std::uint64_t>, 2> teardown_set_elements;  ///< IPv4, IPv6.
  std::array<std::optional<std::uint64_t>, 2> teardown_set_refused;   ///< IPv4, IPv6.

  // The control plane.
  std::optional<std::uint64_t> control_clients;  ///< Absent with --control none.
  std::uint64_t rules_enabled = 0;
  std::uint64_t rules_disabled = 0;

  OutcomeTally outcomes;
};

}  // namespace finwave::proxy
