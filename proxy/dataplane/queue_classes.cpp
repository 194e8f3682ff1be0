#include "proxy/dataplane/queue_classes.hpp"

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

nf::SegmentClasses queue_classes(const rules::RuleSet& rules) noexcept {
  nf::SegmentClasses classes = nf::SegmentClasses::none();
  for (const rules::Rule& rule : rules.rules) {
    if (!rule.enabled) continue;
    if (rule.role == rules::Role::kAny) return nf::SegmentClasses::all();
    classes.add(segment_class_of(rule.role));
  }
  return classes;
}

}  // namespace finwave::proxy
