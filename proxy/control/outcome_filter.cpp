#include "proxy/control/outcome_filter.hpp"

#include <algorithm>
#include <charconv>

#include "proxy/tracker/teardown.hpp"

namespace finwave::proxy {
namespace {

bool same_address(const rules::Endpoint& a, const rules::Endpoint& b) {
  return a.family == b.family && a.address == b.address;
}

}  // namespace

bool OutcomeFilter::empty() const noexcept {
  return rule.empty() && result.empty() && kind.empty() && closer.empty() && flow.empty();
}

bool OutcomeFilter::set_flow(std::string_view text) {
  if (text.empty()) {
    flow_id_.reset();
    flow_port_ = 0;
    flow.clear();
    return true;
  }
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec == std::errc() && end == text.data() + text.size()) {
    flow_id_ = id;
    flow_port_ = 0;
    flow = std::string(text);
    return true;
  }
  // An address matches either side; an endpoint needs a connection's port, never 0.
  std::optional<rules::Endpoint> endpoint = address_from_string(text);
  if (!endpoint) {
    endpoint = endpoint_from_string(text);
    if (!endpoint || endpoint->port == 0) return false;
  }
  flow_id_.reset();
  flow_address_ = *endpoint;
  flow_port_ = endpoint->port;
  flow = std::string(text);
  return true;
}

bool OutcomeFilter::matches_flow(std::uint64_t flow_id, const rules::Endpoint& client,
                                 const rules::Endpoint& server) const {
  if (flow.empty()) {
    return true;
  }
  if (flow_id_) {
    return *flow_id_ == flow_id;
  }
  for (const rules::Endpoint* side : {&client, &server}) {
    if (same_address(*side, flow_address_) && (flow_port_ == 0 || side->port == flow_port_)) {
      return true;
    }
  }
  return false;
}

bool OutcomeFilter::matches(const Outcome& outcome) const {
  if (!result.empty() && to_string(outcome.result) != result) {
    return false;
  }
  if (!kind.empty() && to_string(outcome.kind) != kind) {
    return false;
  }
  if (!closer.empty() && to_string(outcome.closer) != closer) {
    return false;
  }
  if (!rule.empty() && std::none_of(outcome.actions.begin(), outcome.actions.end(),
                                    [&](const ActionRecord& a) { return a.rule == rule; })) {
    return false;
  }
  return matches_flow(outcome.id, outcome.client, outcome.server);
}

nlohmann::json OutcomeFilter::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  const std::pair<const char*, const std::string*> fields[] = {
      {"rule", &rule}, {"result", &result}, {"kind", &kind}, {"closer", &closer}, {"flow", &flow}};
  for (const auto& [key, value] : fields) {
    if (!value->empty()) {
      out[key] = *value;
    }
  }
  return out;
}

}  // namespace finwave::proxy
