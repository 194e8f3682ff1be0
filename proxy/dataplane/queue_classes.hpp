#pragma once

#include "netfilter/segment_class.hpp"
#include "rules/role.hpp"
#include "rules/rule.hpp"

namespace finwave::proxy {

/// The class of segment (its TCP flags, all the kernel can see) a segment of `role` belongs to:
/// syn → syn, syn_ack → syn_ack, fin1 and fin2 → fin, rst → rst, and ack1, final_ack, ack and
/// data_after_fin → ack. The tracker names roles by flags in the same order (RST, SYN, FIN).
/// Role::kAny has no one class (queue_classes() takes all).
nf::SegmentClass segment_class_of(rules::Role role) noexcept;

/// What the capture must queue so that every segment an enabled rule of `rules` could act on
/// reaches the rule engine: the class of each enabled rule's role, every class for a rule on
/// `any`. A superset of what the rules match (a class is queued whole, whatever a rule's
/// direction, ports or addresses), so rule counters and probabilities stay exact. None when no
/// rule is enabled: finwave only observes, and nothing is queued.
nf::SegmentClasses queue_classes(const rules::RuleSet& rules) noexcept;

}  // namespace finwave::proxy
