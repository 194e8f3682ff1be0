// Rules that live for a while: `add` with a ttl (seconds) or a max_hits (decisions over every
// connection). The engine enforces max_hits exactly on the data path, through the budget the
// rule's copies share; this control-thread look removes used-up and expired rules from the
// rule set and says so, as if a client had removed them.
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/daemon/daemon.hpp"

namespace finwave::proxy {

void Daemon::on_rule_lifetimes(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Daemon*>(timer->data);
  if (self != nullptr) self->end_rule_lifetimes();
}

void Daemon::track_rule_lifetime(const std::string& name, const ControlRequest& request,
                                 const std::shared_ptr<std::atomic<std::int64_t>>& budget) {
  RuleLifetime lifetime;
  if (request.ttl_ms) lifetime.expires_us = now_us() + *request.ttl_ms * 1000;
  lifetime.hit_budget = budget;
  rule_lifetimes_[name] = lifetime;
  if (!rule_lifetime_timer_) {
    const int error = rule_lifetime_timer_.init(uv_timer_init, &loop_, this);
    if (error != 0) {
      throw ControlError(
          ControlErrorCode::kInternal,
          std::string("cannot create the rule lifetime timer: ") + uv_strerror(error));
    }
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(rule_lifetime_timer_.get())) == 0) {
    uv_timer_start(rule_lifetime_timer_.get(), &Daemon::on_rule_lifetimes, kRuleLifetimeCheckMs,
                   kRuleLifetimeCheckMs);
  }
}

void Daemon::forget_rule_lifetime(const std::string& name) noexcept {
  rule_lifetimes_.erase(name);
  if (rule_lifetimes_.empty() && rule_lifetime_timer_) uv_timer_stop(rule_lifetime_timer_.get());
}

void Daemon::forget_rule_lifetimes() noexcept {
  rule_lifetimes_.clear();
  if (rule_lifetime_timer_) uv_timer_stop(rule_lifetime_timer_.get());
}

void Daemon::end_rule_lifetimes() noexcept {
  try {
    const std::uint64_t now = now_us();
    // Collected first: removing changes the map.
    std::vector<std::pair<std::string, std::string_view>> ended;
    for (const auto& [name, lifetime] : rule_lifetimes_) {
      if (lifetime.hit_budget && lifetime.hit_budget->load(std::memory_order_relaxed) <= 0) {
        ended.emplace_back(name, "max_hits");
      } else if (lifetime.expires_us && now >= *lifetime.expires_us) {
        ended.emplace_back(name, "ttl");
      }
    }
    for (const auto& end : ended) {
      // Named copies: clang 14 cannot capture a structured binding in the lambda below.
      const std::string& name = end.first;
      const std::string_view why = end.second;
      change_rules([&](rules::Engine& engine) { engine.remove(name); });
      control_added_.erase(name);
      forget_rule_lifetime(name);
      log(std::string(why) + ": removed rule '" + name + "'" +
          (why == "ttl" ? " (its ttl is up)" : " (it has decided max_hits segments)"));
      if (control_) {
        control_->publish_rule_change("remove", name, std::string(why), rule_statuses().size());
      }
    }
  } catch (const std::exception& error) {
    // Only a bug (the rule is ours and there) or out of memory; the look tries again.
    log(std::string("cannot end a rule's lifetime: ") + error.what());
  }
}

void Daemon::add_lifetime_json(const std::string& name, nlohmann::json& rule) const {
  const auto found = rule_lifetimes_.find(name);
  if (found == rule_lifetimes_.end()) return;
  const RuleLifetime& lifetime = found->second;
  if (lifetime.expires_us) {
    const std::uint64_t now = now_us();
    const std::uint64_t left = *lifetime.expires_us > now ? *lifetime.expires_us - now : 0;
    rule["expires_in_s"] = static_cast<double>(left) / 1e6;
  }
  if (lifetime.hit_budget) {
    rule["hits_left"] = std::max<std::int64_t>(0, lifetime.hit_budget->load());
  }
}

}  // namespace finwave::proxy
