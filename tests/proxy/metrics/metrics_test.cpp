// Tests of the metrics' pure parts (proxy/metrics/): the outcome tally and the text the
// endpoint serves. The endpoint itself is tested for real in tests/lab/metrics_test.sh.

#include <doctest/doctest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/metrics/metric_families.hpp"
#include "proxy/metrics/metrics_snapshot.hpp"

using finwave::proxy::ActionRecord;
using finwave::proxy::Closer;
using finwave::proxy::kTeardownBucketsS;
using finwave::proxy::metrics_text;
using finwave::proxy::MetricsSnapshot;
using finwave::proxy::Outcome;
using finwave::proxy::OutcomeTally;
using finwave::proxy::TeardownKind;
using finwave::proxy::TeardownResult;
using finwave::proxy::Verdict;
namespace rules = finwave::rules;

namespace {

Outcome outcome(TeardownKind kind, TeardownResult result, Closer closer, std::int64_t teardown_us) {
  Outcome o;
  o.kind = kind;
  o.result = result;
  o.closer = closer;
  o.teardown_us = teardown_us;
  return o;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const std::string& l : lines(text)) {
    if (l == line) return true;
  }
  return false;
}

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("metrics: outcomes are counted by kind, result and closer") {
    OutcomeTally tally;
    tally.add(outcome(TeardownKind::kFourWay, TeardownResult::kClean, Closer::kClient, 1000));
    tally.add(outcome(TeardownKind::kFourWay, TeardownResult::kClean, Closer::kClient, 2000));
    tally.add(outcome(TeardownKind::kReset, TeardownResult::kReset, Closer::kNone, 0));
    CHECK(tally.outcomes(TeardownKind::kFourWay, TeardownResult::kClean, Closer::kClient) == 2);
    CHECK(tally.outcomes(TeardownKind::kReset, TeardownResult::kReset, Closer::kNone) == 1);
    CHECK(tally.outcomes(TeardownKind::kFourWay, TeardownResult::kClean, Closer::kServer) == 0);
    // The RST before any FIN has no teardown duration.
    CHECK(tally.teardown_count() == 2);
    CHECK(tally.teardown_sum_s() == doctest::Approx(0.003));
  }

  TEST_CASE("metrics: FIN retransmissions are summed by side") {
    OutcomeTally tally;
    Outcome o = outcome(TeardownKind::kFourWay, TeardownResult::kClean, Closer::kClient, 500);
    o.fin_retransmits_client = 2;
    o.fin_retransmits_server = 5;
    tally.add(o);
    tally.add(o);
    CHECK(tally.fin_retransmits()[static_cast<std::size_t>(rules::Side::kClient)] == 4);
    CHECK(tally.fin_retransmits()[static_cast<std::size_t>(rules::Side::kServer)] == 10);
  }

  TEST_CASE("metrics: a duration on a bucket's bound is in that bucket (le)") {
    OutcomeTally tally;
    // 1 ms exactly, just above, 0.25 s, and beyond the last bound.
    for (const std::int64_t us : {std::int64_t{1000}, std::int64_t{1001}, std::int64_t{250000},
                                  std::int64_t{301'000'000}}) {
      tally.add(outcome(TeardownKind::kFourWay, TeardownResult::kTimeout, Closer::kServer, us));
    }
    const auto& buckets = tally.teardown_buckets();
    CHECK(buckets[0] == 1);                         // le 0.001
    CHECK(buckets[1] == 1);                         // le 0.005
    CHECK(buckets[4] == 1);                         // le 0.25
    CHECK(buckets[kTeardownBucketsS.size()] == 1);  // +Inf only
    std::uint64_t total = 0;
    for (const auto count : buckets) total += count;
    CHECK(total == 4);
  }

  TEST_CASE(
      "metrics: rule actions are summed by rule, role and action, with a bounded series count") {
    OutcomeTally tally;
    Outcome o = outcome(TeardownKind::kThreeWay, TeardownResult::kClean, Closer::kClient, 200000);
    o.actions = {ActionRecord{"lose", rules::Role::kFinalAck, Verdict::kDrop, 1},
                 ActionRecord{"slow", rules::Role::kFin2, Verdict::kDelay, 2}};
    tally.add(o);
    tally.add(o);
    using Key = OutcomeTally::RuleAction;
    CHECK(tally.rule_actions().at(Key{"lose", rules::Role::kFinalAck, Verdict::kDrop}) == 2);
    CHECK(tally.rule_actions().at(Key{"slow", rules::Role::kFin2, Verdict::kDelay}) == 4);

    OutcomeTally many;
    for (std::size_t i = 0; i < OutcomeTally::kMaxRuleSeries + 10; ++i) {
      Outcome each = o;
      each.actions = {
          ActionRecord{"rule-" + std::to_string(i), rules::Role::kFin1, Verdict::kDrop, 1}};
      many.add(each);
    }
    CHECK(many.rule_actions().size() == OutcomeTally::kMaxRuleSeries + 1);
    CHECK(many.rule_actions().at(
              Key{OutcomeTally::kOtherRules, rules::Role::kFin1, Verdict::kDrop}) == 10);
    // A rule already counted keeps its own series.
    Outcome again = o;
    again.actions = {ActionRecord{"rule-0", rules::Role::kFin1, Verdict::kDrop, 3}};
    many.add(again);
    CHECK(many.rule_actions().at(Key{"rule-0", rules::Role::kFin1, Verdict::kDrop}) == 4);
  }

  TEST_CASE("metrics: the text names every family finwave_ and has the figures of the snapshot") {
    MetricsSnapshot s;
    s.version = "9.8.7";
    s.start_time_s = 1800000000;
    s.segments_queued = 21;
    s.segments_logged = 40;
    s.log_lost = 6;
    s.verdicts_accept = 18;
    s.verdicts_drop = 3;
    s.dropped = 3;
    s.held_now = 2;
    s.kernel_queue_full_drops = 4;
    s.kernel_socket_full_drops = 5;
    s.teardown_set_elements = {7, std::nullopt};
    s.teardown_set_refused = {0, 0};
    s.control_clients = 1;
    s.rules_enabled = 2;
    Outcome o = outcome(TeardownKind::kThreeWay, TeardownResult::kClean, Closer::kClient, 203000);
    o.fin_retransmits_server = 1;
    o.actions = {ActionRecord{"lose-first", rules::Role::kFinalAck, Verdict::kDrop, 1}};
    s.outcomes.add(o);

    const std::string text = metrics_text(s);
    CAPTURE(text);
    for (const char* line : {
             "finwave_build_info{version=\"9.8.7\"} 1",
             "finwave_start_time_seconds 1800000000",
             "finwave_outcomes_total{closer=\"client\",kind=\"three_way\",result=\"clean\"} 1",
             "finwave_fin_retransmissions_total{side=\"client\"} 0",
             "finwave_fin_retransmissions_total{side=\"server\"} 1",
             "finwave_teardown_duration_seconds_count 1",
             "finwave_teardown_duration_seconds_bucket{le=\"0.1\"} 0",
             "finwave_teardown_duration_seconds_bucket{le=\"0.25\"} 1",
             "finwave_teardown_duration_seconds_bucket{le=\"+Inf\"} 1",
             "finwave_rule_actions_total{action=\"drop\",role=\"final_ack\",rule=\"lose-first\"} 1",
             "finwave_segments_total{path=\"queued\"} 21",
             "finwave_segments_total{path=\"logged\"} 40",
             "finwave_log_lost_total 6",
             "finwave_verdicts_total{verdict=\"accept\"} 18",
             "finwave_verdicts_total{verdict=\"drop\"} 3",
             "finwave_actions_total{action=\"drop\"} 3",
             "finwave_held_segments 2",
             "finwave_kernel_queue_drops_total{reason=\"queue_full\"} 4",
             "finwave_kernel_queue_drops_total{reason=\"socket_full\"} 5",
             "finwave_teardown_set_elements{family=\"ipv4\"} 7",
             "finwave_control_clients 1",
             "finwave_rules{state=\"enabled\"} 2",
             "# TYPE finwave_outcomes_total counter",
             "# TYPE finwave_teardown_duration_seconds histogram",
             "# TYPE finwave_held_segments gauge",
         }) {
      CAPTURE(line);
      CHECK(has_line(text, line));
    }
    // A figure that could not be read is left out, not reported as 0.
    CHECK_FALSE(has_line(text, "finwave_teardown_set_elements{family=\"ipv6\"} 0"));
    std::set<std::string> families;
    for (const std::string& line : lines(text)) {
      if (line.rfind("# TYPE ", 0) != 0) continue;
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      CHECK(name.rfind("finwave_", 0) == 0);
      CHECK(families.insert(name).second);
    }
    CHECK(families.size() == 23);
  }

  TEST_CASE("metrics: a control-less daemon reports no control clients, and no outcome series") {
    MetricsSnapshot s;
    const std::string text = metrics_text(s);
    CHECK(text.find("\nfinwave_control_clients ") == std::string::npos);
    CHECK(text.find("\nfinwave_outcomes_total{") == std::string::npos);
    CHECK(text.find("# TYPE finwave_outcomes_total counter") != std::string::npos);
  }
}
