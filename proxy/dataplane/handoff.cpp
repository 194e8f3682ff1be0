#include "proxy/dataplane/handoff.hpp"

#include <stdexcept>
#include <utility>

namespace finwave::proxy {

Handoff::Handoff(uv_loop_t* loop, OutcomeSink& outcomes) : outcomes_sink_(outcomes) {
  if (const int error = wake_.init(uv_async_init, loop, this, &Handoff::on_wake); error != 0) {
    throw std::runtime_error(std::string("cannot create the queue workers' wake-up: ") +
                             uv_strerror(error));
  }
  wake_handle_ = wake_.get();
}

void Handoff::on_outcomes(std::vector<Outcome>& outcomes) noexcept {
  if (outcomes.empty()) return;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    try {
      outcomes_.reserve(outcomes_.size() + outcomes.size());
      for (Outcome& outcome : outcomes) outcomes_.push_back(std::move(outcome));
      counters_.outcomes += outcomes.size();
    } catch (...) {
      counters_.outcomes_lost += outcomes.size();
    }
  }
  outcomes.clear();
  wake();
}

void Handoff::on_rule_hit(const RuleHit& hit) noexcept {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (rule_hits_.size() >= kMaxPendingRuleHits) {
      ++counters_.rule_hits_dropped;
      return;
    }
    try {
      rule_hits_.push_back(
          PostedRuleHit{std::string(hit.rule), hit.facts, hit.flow_id, hit.verdict});
      ++counters_.rule_hits;
    } catch (...) {
      ++counters_.rule_hits_dropped;
      return;
    }
  }
  wake();
}

void Handoff::wake() noexcept {
  // libuv folds the wake-ups that come before the loop gets round to them into one.
  if (wake_handle_ != nullptr) uv_async_send(wake_handle_);
}

void Handoff::on_wake(uv_async_t* handle) noexcept {
  auto* self = static_cast<Handoff*>(handle->data);
  if (self == nullptr) return;
  self->deliver();
}

void Handoff::deliver() noexcept {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.wakeups;
    // Swapped, not copied: the workers go on posting into the vectors the last delivery
    // emptied, and the lock is held only for the swap.
    delivering_outcomes_.swap(outcomes_);
    delivering_rule_hits_.swap(rule_hits_);
  }
  for (const PostedRuleHit& posted : delivering_rule_hits_) {
    if (rule_hit_sink_ == nullptr) break;
    rule_hit_sink_->on_rule_hit(RuleHit{posted.rule, posted.facts, posted.flow_id, posted.verdict});
  }
  delivering_rule_hits_.clear();
  if (!delivering_outcomes_.empty()) outcomes_sink_.on_outcomes(delivering_outcomes_);
  delivering_outcomes_.clear();
}

HandoffCounters Handoff::counters() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return counters_;
}

}  // namespace finwave::proxy
