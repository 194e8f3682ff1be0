#include "proxy/dataplane/queue_classes.hpp"

#include <algorithm>
#include <array>

namespace finwave::proxy {

nf::SegmentClass segment_class_of(rules::Role role) noexcept {
  switch (role) {
    case rules::Role::kSyn:
      return nf::SegmentClass::kSyn;
    case rules::Role::kSynAck:
      return nf::SegmentClass::kSynAck;
    case rules::Role::kFin1:
    case rules::Role::kFin2:
      return nf::SegmentClass::kFin;
    case rules::Role::kRst:
      return nf::SegmentClass::kRst;
    case rules::Role::kAck1:
    case rules::Role::kFinalAck:
    case rules::Role::kDataAfterFin:
    case rules::Role::kAck:
    case rules::Role::kAny:
      break;
  }
  return nf::SegmentClass::kAck;
}

std::optional<nf::PortMatch> port_narrowing(const rules::Rule& rule) {
  using End = nf::PortMatch::End;
  // A segment from the client has the client's port as its source and the server's as its
  // destination, whether the tracker saw the SYN or guessed the sides: the engine's facts name
  // the segment's own two ends.
  const bool from_client = rule.from == rules::Sender::kClient;
  const bool from_server = rule.from == rules::Sender::kServer;
  if (!rule.server_ports.empty() && (from_client || from_server)) {
    return nf::PortMatch{from_client ? End::kDestination : End::kSource, rule.server_ports};
  }
  if (!rule.client_ports.empty() && (from_client || from_server)) {
    return nf::PortMatch{from_client ? End::kSource : End::kDestination, rule.client_ports};
  }
  if (!rule.ports.empty()) return nf::PortMatch{End::kEither, rule.ports};
  if (!rule.server_ports.empty()) return nf::PortMatch{End::kEither, rule.server_ports};
  if (!rule.client_ports.empty()) return nf::PortMatch{End::kEither, rule.client_ports};
  return std::nullopt;
}

bool QueuePlan::logs_something() const noexcept {
  if (!classes.full()) return true;
  return std::any_of(only.begin(), only.end(),
                     [](const std::vector<nf::PortMatch>& matches) { return !matches.empty(); });
}

QueuePlan queue_plan(const rules::RuleSet& rules) {
  QueuePlan plan;
  std::array<bool, nf::kSegmentClassCount> whole{};
  for (const rules::Rule& rule : rules.rules) {
    if (!rule.enabled) continue;
    const std::optional<nf::PortMatch> narrowing = port_narrowing(rule);
    for (int i = 0; i < nf::kSegmentClassCount; ++i) {
      const auto segment_class = static_cast<nf::SegmentClass>(i);
      if (rule.role != rules::Role::kAny && segment_class_of(rule.role) != segment_class) continue;
      plan.classes.add(segment_class);
      auto& only = plan.only[static_cast<std::size_t>(i)];
      if (!narrowing) {
        whole[static_cast<std::size_t>(i)] = true;
      } else if (std::find(only.begin(), only.end(), *narrowing) == only.end()) {
        only.push_back(*narrowing);
      }
    }
  }
  for (std::size_t i = 0; i < whole.size(); ++i) {
    if (whole[i]) plan.only[i].clear();
  }
  return plan;
}

nf::SegmentClasses queue_classes(const rules::RuleSet& rules) { return queue_plan(rules).classes; }

}  // namespace finwave::proxy
