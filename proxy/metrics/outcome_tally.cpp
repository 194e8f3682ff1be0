#include <algorithm>
#include <cstddef>

#include "proxy/metrics/metrics_snapshot.hpp"

namespace finwave::proxy {

void OutcomeTally::add(const Outcome& outcome) {
  ++outcomes_[index(outcome.kind, outcome.result, outcome.closer)];
  fin_retransmits_[static_cast<std::size_t>(rules::Side::kClient)] +=
      outcome.fin_retransmits_client;
  fin_retransmits_[static_cast<std::size_t>(rules::Side::kServer)] +=
      outcome.fin_retransmits_server;
  // An RST before any FIN is no teardown with a duration (its teardown_us is 0).
  if (outcome.closer != Closer::kNone) {
    const double seconds =
        static_cast<double>(std::max<std::int64_t>(0, outcome.teardown_us)) / 1e6;
    const auto bound =
        std::lower_bound(kTeardownBucketsS.begin(), kTeardownBucketsS.end(), seconds);
    ++teardown_buckets_[static_cast<std::size_t>(bound - kTeardownBucketsS.begin())];
    teardown_sum_s_ += seconds;
    ++teardown_count_;
  }
  for (const ActionRecord& record : outcome.actions) {
    RuleAction key{record.rule, record.role, record.action};
    auto found = rule_actions_.find(key);
    if (found == rule_actions_.end() && rule_actions_.size() >= kMaxRuleSeries) {
      key.rule = kOtherRules;
      found = rule_actions_.find(key);
    }
    if (found == rule_actions_.end()) found = rule_actions_.emplace(std::move(key), 0).first;
    found->second += record.count;
  }
}

}  // namespace finwave::proxy
