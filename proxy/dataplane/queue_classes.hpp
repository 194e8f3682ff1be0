#pragma once

#include <optional>

#include "netfilter/segment_class.hpp"
#include "rules/role.hpp"
#include "rules/rule.hpp"

namespace finwave::proxy {

/// The class of segment (its TCP flags, all the kernel can see) a segment of `role` belongs to:
/// syn → syn, syn_ack → syn_ack, fin1 and fin2 → fin, rst → rst, and ack1, final_ack, ack and
/// data_after_fin → ack. The tracker names roles by flags in the same order (RST, SYN, FIN).
/// Role::kAny has no one class (queue_classes() takes all).
nf::SegmentClass segment_class_of(rules::Role role) noexcept;

/// What of a segment class the kernel can test for a rule: its ports, at the end its sender
/// says. `ports` at either end; `server_ports` at the destination from the client, at the
/// source from the server, at either end otherwise (the active or passive closer, or any
/// sender); `client_ports` the other way round. One of them when a rule has several (each alone
/// is a superset of what the rule matches), the one tied to an end first. None when the rule
/// has no ports: the class is queued whole. Addresses are not tested (not yet).
std::optional<nf::PortMatch> port_narrowing(const rules::Rule& rule);

/// What the capture must queue so that every segment an enabled rule could act on reaches the
/// rule engine, and which segments of those classes the kernel can leave to the log path.
struct QueuePlan {
  /// The class of each enabled rule's role, every class for a rule on `any`; none when no rule
  /// is enabled (finwave only observes, and nothing is queued).
  nf::SegmentClasses classes;
  /// A class narrowed to its rules' port matches (port_narrowing()); whole when one of its
  /// rules has none.
  nf::QueueNarrowing only{};

  /// Some class, or part of one, goes to the log path.
  bool logs_something() const noexcept;
  bool operator==(const QueuePlan&) const = default;
};

/// The plan for the enabled rules of `rules`: a superset of the segments they match, so rule
/// counters and probabilities stay exact.
QueuePlan queue_plan(const rules::RuleSet& rules);

/// queue_plan(rules).classes.
nf::SegmentClasses queue_classes(const rules::RuleSet& rules);

}  // namespace finwave::proxy
