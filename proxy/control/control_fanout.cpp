// Events: each outcome, rule change and rule hit, to every subscriber (and wait) that
// asked for it.
#include <string>
#include <utility>

#include "proxy/control/control_server_entry.hpp"

namespace finwave::proxy {

void ControlServer::publish_outcome(Outcome&& outcome) noexcept {
  ControlServerEntry entry(*this);
  const std::uint64_t seq = next_seq_++;
  counters_.outcomes = seq;
  try {
    // Formatted once, only if someone wants it.
    std::optional<nlohmann::json> event;
    std::shared_ptr<const std::string> line;
    for (auto& [id, client] : clients_) {
      if (client->dead) continue;
      for (auto it = client->waits.begin(); it != client->waits.end();) {
        if (!it->filter.matches(outcome)) {
          ++it;
          continue;
        }
        if (!event) event = outcome_event_json(seq, outcome);
        it->matched.push_back(*event);
        if (it->matched.size() < it->wanted) {
          ++it;
          continue;
        }
        send(*client, format_control_reply(
                          it->id, {{"outcomes", std::move(it->matched)}, {"last_seq", seq}}));
        it = client->waits.erase(it);
        --counters_.waits;
      }
      const Subscription* subscription = client->subscription.get();
      if (subscription != nullptr && (subscription->events & kEventOutcome) != 0 &&
          subscription->filter.matches(outcome)) {
        if (!event) event = outcome_event_json(seq, outcome);
        if (!line) line = shared_line(dump_line(*event));
        send_event(*client, line);
      }
      maybe_finish(*client);
    }
    ring_.push_back(RingEntry{seq, std::move(outcome)});
    while (ring_.size() > config_.history) ring_.pop_front();
  } catch (const std::exception& error) {
    log(std::string("cannot publish an outcome: ") + error.what());
  }
}

void ControlServer::publish_rule_change(const std::string& change, const std::string& rule,
                                        const std::string& by, std::size_t rule_count) noexcept {
  ControlServerEntry entry(*this);
  rule_change_seq_ = last_outcome_seq();
  try {
    std::shared_ptr<const std::string> line;
    for (auto& [id, client] : clients_) {
      const Subscription* subscription = client->subscription.get();
      if (client->dead || subscription == nullptr ||
          (subscription->events & kEventRuleChange) == 0) {
        continue;
      }
      if (!subscription->filter.rule.empty() && !rule.empty() &&
          subscription->filter.rule != rule) {
        continue;
      }
      if (!line) {
        nlohmann::json event = {{"event", to_string(EventKind::kRuleChange)},
                                {"change", change},
                                {"by", by},
                                {"rules", rule_count},
                                {"seq", rule_change_seq_}};
        if (!rule.empty()) event["rule"] = rule;
        line = shared_line(dump_line(event));
      }
      send_event(*client, line);
    }
  } catch (const std::exception& error) {
    log(std::string("cannot publish a rule change: ") + error.what());
  }
}

void ControlServer::on_rule_hit(const RuleHit& hit) noexcept {
  ControlServerEntry entry(*this);
  try {
    std::shared_ptr<const std::string> line;
    for (auto& [id, client] : clients_) {
      const Subscription* subscription = client->subscription.get();
      if (client->dead || subscription == nullptr || (subscription->events & kEventRuleHit) == 0) {
        continue;
      }
      if (!subscription->filter.rule.empty() && subscription->filter.rule != hit.rule) continue;
      if (!subscription->filter.matches_flow(hit.flow_id, hit.facts.client, hit.facts.server)) {
        continue;
      }
      if (!line) {
        const nlohmann::json event = {
            {"event", to_string(EventKind::kRuleHit)},
            {"rule", std::string(hit.rule)},
            {"role", std::string(rules::to_string(hit.facts.role))},
            {"from", std::string(rules::to_string(hit.facts.from))},
            {"retx", hit.facts.retx},
            {"verdict", std::string(to_string(hit.verdict))},
            {"flow_id", hit.flow_id},
            {"flow",
             {{"client", to_string(hit.facts.client)}, {"server", to_string(hit.facts.server)}}},
            {"last_seq", last_outcome_seq()}};
        line = shared_line(dump_line(event));
      }
      send_event(*client, line);
    }
  } catch (...) {
    // Data plane: an event that cannot be built is not worth a log line per packet.
  }
}

void ControlServer::update_rule_hit_interest() noexcept {
  const bool wanted = std::any_of(clients_.begin(), clients_.end(), [](const auto& item) {
    const Client& client = *item.second;
    return !client.dead && client.subscription != nullptr &&
           (client.subscription->events & kEventRuleHit) != 0;
  });
  if (wanted == rule_hit_interest_) return;
  rule_hit_interest_ = wanted;
  handler_.on_rule_hit_interest(wanted);
}

}  // namespace finwave::proxy
