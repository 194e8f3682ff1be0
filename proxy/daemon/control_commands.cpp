// The control commands the daemon answers itself (control thread; they may throw
// ControlError, which the control server sends back as the reply).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "proxy/daemon/daemon.hpp"
#include "proxy/dataplane/worker_counters.hpp"
#include "proxy/metrics/metric_families.hpp"
#include "rules/config_error.hpp"
#include "rules/rule.hpp"
#include "rules/rule_loader.hpp"
#include "rules/suggest.hpp"

namespace finwave::proxy {

void Daemon::on_rule_hit_interest(bool wanted) noexcept {
  RuleHitSink* sink = wanted && control_ ? &*control_ : nullptr;
  // Worker 0 shares this thread and tells the control server itself; the others go through
  // the Handoff, which tells it here.
  if (handoff_) handoff_->set_rule_hit_sink(sink);
  for (auto& worker : workers_) {
    worker->set_rule_hit_sink(worker->index() == 0 || sink == nullptr ? sink : &*handoff_);
  }
}

nlohmann::json Daemon::on_control_command(const ControlRequest& request,
                                          const std::string& client) {
  switch (request.command) {
    case ControlCommand::kStatus:
      return status_json();
    case ControlCommand::kRules:
      return rules_json();
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
    case ControlCommand::kAdd:
    case ControlCommand::kRemove:
      return change_rule(request, client);
    case ControlCommand::kReload:
      if (options_.rules_path.empty()) {
        throw ControlError(ControlErrorCode::kNoRuleFile,
                           "finwave was started without --rules: there is no file to reload");
      }
      try {
        reload_rules("control", "control (" + client + ")");
      } catch (const rules::ConfigError& error) {
        log("control (" + client + "): reload failed, keeping the current rules: " + error.what());
        throw ControlError(ControlErrorCode::kReloadFailed,
                           std::string(error.what()) + " (the current rules are kept)");
      }
      return {{"source", options_.rules_path},
              {"rules", rule_statuses().size()},
              {"outcome_seq", control_ ? control_->last_outcome_seq() : 0}};
    case ControlCommand::kReset:
      return reset_rules(client);
    case ControlCommand::kFlows:
      return flows_json(request);
    case ControlCommand::kStats:
      return stats_json(true);
    case ControlCommand::kMetrics:
      return {{"content_type", kMetricsContentType}, {"text", metrics_text(metrics_snapshot())}};
    default:
      break;
  }
  throw ControlError(ControlErrorCode::kInternal,
                     "command " + std::string(to_string(request.command)) + " reached the daemon");
}

nlohmann::json Daemon::status_json() const {
  char started[32] = "";
  std::tm utc{};
  if (gmtime_r(&started_at_, &utc) != nullptr) {
    std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &utc);
  }
  std::size_t enabled = 0;
  const std::vector<rules::RuleStatus> statuses = rule_statuses();
  for (const auto& rule : statuses) enabled += rule.enabled ? 1 : 0;
  WorkerCounters total;
  for (const auto& worker : workers_) add(total, worker->counters());
  const TrackerCounters& t = total.flows;
  nlohmann::json status = {
      {"version", FINWAVE_VERSION},
      {"pid", getpid()},
      {"mode", options_.mode == nf::CaptureMode::kRouter ? "router" : "local"},
      {"queue", options_.queue_num},
      {"queue_count", options_.queue_count},
      {"ports", options_.ports},
      {"addresses", options_.addresses},
      {"started", started},
      {"uptime_s", static_cast<double>(now_us() - started_us_) / 1e6},
      {"rules_file",
       options_.rules_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(options_.rules_path)},
      {"rules", statuses.size()},
      {"rules_enabled", enabled},
      {"settle_s", options_.settle_s},
      {"linger_s", options_.linger_s},
      {"flows", {{"tracked", t.flows_tracked}, {"outcomes", t.outcomes_emitted}}},
      {"capture", capture_watch_state_.intact ? "installed" : "lost"},
      {"classes", classes_json()},
  };
  if (!workers_.empty()) {
    status["segments"] = total.dataplane.segments;
    status["logged"] = total.dataplane.logged;
    status["rule_hits"] = total.dataplane.rule_hits;
    status["queue_counters"] = {{"queued", total.queue.queued},
                                {"dropped", total.queue.dropped},
                                {"held", total.queue.held}};
  }
  if (control_) {
    const ControlCounters& c = control_->counters();
    status["control"] = {{"path", control_->path()},
                         {"clients", c.clients},
                         {"subscribers", c.subscribers},
                         {"waits", c.waits}};
    status["last_outcome_seq"] = control_->last_outcome_seq();
    status["rule_change_seq"] = control_->rule_change_seq();
  }
  return status;
}

nlohmann::json Daemon::rule_entry(std::size_t position, const rules::RuleStatus& rule) const {
  nlohmann::json entry = {{"position", position},
                          {"name", rule.name},
                          {"enabled", rule.enabled},
                          {"summary", rule.summary},
                          {"hits", rule.hits},
                          {"origin", control_added_.count(rule.name) != 0 ? "control" : "file"}};
  add_lifetime_json(rule.name, entry);
  return entry;
}

nlohmann::json Daemon::rules_json() const {
  nlohmann::json list = nlohmann::json::array();
  std::size_t position = 0;
  for (const rules::RuleStatus& rule : rule_statuses())
    list.push_back(rule_entry(++position, rule));
  return {{"rules", std::move(list)},
          {"source", options_.rules_path.empty() ? nlohmann::json(nullptr)
                                                 : nlohmann::json(options_.rules_path)},
          {"generation", workers_.empty() ? 0 : workers_.front()->rule_generation()},
          {"classes", classes_json()}};
}

nlohmann::json Daemon::rule_json(const std::string& name) const {
  std::size_t position = 0;
  for (const rules::RuleStatus& rule : rule_statuses()) {
    ++position;
    if (rule.name == name) return rule_entry(position, rule);
  }
  return nullptr;
}

void Daemon::require_rule(const std::string& name) const {
  const std::vector<rules::RuleStatus> statuses = rule_statuses();
  std::vector<std::string_view> names;
  for (const auto& rule : statuses) {
    if (rule.name == name) return;
    names.push_back(rule.name);
  }
  std::string message = "no rule named '" + name + "'";
  if (const auto guess = rules::closest_match(name, names)) {
    message += "; did you mean '" + std::string(*guess) + "'?";
  } else if (names.empty()) {
    message += " (there are no rules)";
  }
  throw ControlError(ControlErrorCode::kUnknownRule, message);
}

nlohmann::json Daemon::change_rule(const ControlRequest& request, const std::string& client) {
  const std::string by = "control (" + client + ")";
  std::string name;
  bool changed = true;
  switch (request.command) {
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
      std::tie(name, changed) = set_rule_enabled(request, by);
      break;
    case ControlCommand::kAdd:
      name = add_rule(request, by);
      break;
    case ControlCommand::kRemove:
      name = remove_rule(request, by);
      break;
    default:
      throw ControlError(ControlErrorCode::kInternal, "not a rule change");
  }
  const std::string change(to_string(request.command));
  if (changed && control_) {
    control_->publish_rule_change(change, name, "control", rule_statuses().size());
  }
  nlohmann::json reply = {{"change", change},
                          {"changed", changed},
                          {"rules", rule_statuses().size()},
                          {"outcome_seq", control_ ? control_->last_outcome_seq() : 0}};
  reply["rule"] =
      request.command == ControlCommand::kRemove ? nlohmann::json(name) : rule_json(name);
  return reply;
}

std::pair<std::string, bool> Daemon::set_rule_enabled(const ControlRequest& request,
                                                      const std::string& by) {
  const std::string& name = request.name;
  require_rule(name);
  const bool enable = request.command == ControlCommand::kEnable;
  // A no-op must not restart every flow's rule counts (each change is a new generation).
  const bool changed = rule_json(name).at("enabled").get<bool>() != enable;
  if (changed) {
    change_rules([&](rules::Engine& engine) { engine.set_enabled(name, enable); });
  }
  log(by + ": " + (enable ? "enable" : "disable") + (changed ? "d" : "d (already)") + " rule '" +
      name + "'");
  return {name, changed};
}

std::string Daemon::add_rule(const ControlRequest& request, const std::string& by) {
  rules::Rule rule;
  try {
    rule = rules::parse_single_rule(request.rule_toml, "add");
  } catch (const rules::ConfigError& error) {
    // JSON rules were converted to TOML: positions in that text would only confuse.
    throw ControlError(ControlErrorCode::kInvalidRule,
                       request.rule_from_json ? error.message : std::string(error.what()));
  }
  if (request.max_hits) {
    rule.max_hits = *request.max_hits;
    rule.hit_budget =
        std::make_shared<std::atomic<std::int64_t>>(static_cast<std::int64_t>(*request.max_hits));
  }
  std::string name = rule.name;
  if (!rule_json(name).is_null()) {
    throw ControlError(ControlErrorCode::kRuleExists,
                       "a rule named '" + name + "' exists already; remove it first");
  }
  const std::string summary = rules::describe(rule);
  try {
    const auto where =
        request.add_first ? rules::Engine::Placement::kFirst : rules::Engine::Placement::kLast;
    change_rules([&](rules::Engine& engine) { engine.add(rule, where); });
  } catch (const rules::ConfigError& error) {
    throw ControlError(ControlErrorCode::kInvalidRule, error.message);
  }
  control_added_.insert(name);
  std::string lifetime;
  if (request.ttl_ms || request.max_hits) {
    track_rule_lifetime(name, request, rule.hit_budget);
    if (request.ttl_ms) lifetime += ", ttl " + std::to_string(*request.ttl_ms) + " ms";
  }
  log(by + ": added rule '" + name + "' " + (request.add_first ? "first" : "last") + ": " +
      summary + lifetime);
  return name;
}

std::string Daemon::remove_rule(const ControlRequest& request, const std::string& by) {
  const std::string& name = request.name;
  require_rule(name);
  change_rules([&](rules::Engine& engine) { engine.remove(name); });
  control_added_.erase(name);
  forget_rule_lifetime(name);
  log(by + ": removed rule '" + name + "'");
  return name;
}

nlohmann::json Daemon::reset_rules(const std::string& client) {
  // What differs from the file as loaded, in priority order: the rules to remove (added over
  // the socket) and the file's rules to put back (removed, or enabled or disabled since).
  const std::vector<rules::RuleStatus> before = rule_statuses();
  nlohmann::json removed = nlohmann::json::array();
  for (const rules::RuleStatus& rule : before) {
    if (control_added_.count(rule.name) != 0) removed.push_back(rule.name);
  }
  nlohmann::json restored = nlohmann::json::array();
  for (const rules::Rule& rule : loaded_rules_.rules) {
    const auto now = std::find_if(before.begin(), before.end(), [&](const rules::RuleStatus& s) {
      return s.name == rule.name && control_added_.count(s.name) == 0;
    });
    if (now == before.end() || now->enabled != rule.enabled) restored.push_back(rule.name);
  }
  // The loaded set passed the engine's checks when it was installed, so this cannot throw.
  change_rules([&](rules::Engine& engine) { engine.replace(loaded_rules_); });
  control_added_.clear();
  forget_rule_lifetimes();
  const std::size_t count = loaded_rules_.rules.size();
  log("control (" + client + "): reset to the " + std::to_string(count) +
      " rule(s) as loaded; removed " + std::to_string(removed.size()) + " added, restored " +
      std::to_string(restored.size()));
  if (control_) control_->publish_rule_change("reset", "", "control", count);
  return {{"change", "reset"},
          {"rules", count},
          {"removed", std::move(removed)},
          {"restored", std::move(restored)},
          {"outcome_seq", control_ ? control_->last_outcome_seq() : 0}};
}

nlohmann::json Daemon::flows_json(const ControlRequest& request) const {
  constexpr std::uint64_t kDefaultFlowLimit = 1000;
  const std::uint64_t limit = request.limit.value_or(kDefaultFlowLimit);
  const std::uint64_t now = now_us();
  std::vector<FlowSummary> flows;
  for (const auto& worker : workers_) worker->append_flows(flows);
  std::sort(flows.begin(), flows.end(),
            [](const FlowSummary& a, const FlowSummary& b) { return a.id < b.id; });
  nlohmann::json list = nlohmann::json::array();
  auto ms = [](std::uint64_t from, std::uint64_t to) {
    return to > from ? static_cast<double>(to - from) / 1000.0 : 0.0;
  };
  for (const FlowSummary& flow : flows) {
    if (list.size() >= limit) break;
    nlohmann::json entry = {{"id", flow.id},
                            {"client", to_string(flow.client)},
                            {"server", to_string(flow.server)},
                            {"sides_known", flow.sides_known},
                            {"stage", std::string(flow.stage)},
                            {"closer", std::string(to_string(flow.closer))},
                            {"segments", flow.segments},
                            {"age_ms", ms(flow.first_seen_us, now)},
                            {"idle_ms", ms(flow.last_segment_us, now)}};
    if (workers_.size() > 1) {
      entry["queue"] = options_.queue_num + worker_of_flow(flow.id, workers_.size());
    }
    list.push_back(std::move(entry));
  }
  return {{"flows", std::move(list)}, {"count", flows.size()}, {"truncated", flows.size() > limit}};
}

}  // namespace finwave::proxy
