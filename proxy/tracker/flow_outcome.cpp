// Outcomes: a flow's record turned into its report, when its teardown ends.
#include "proxy/tracker/flow_record.hpp"

namespace finwave::proxy {

using namespace flow_detail;  // NOLINT(google-build-using-namespace): the tracker's own helpers

// ---------------------------------------------------------------------------------------------
// Outcomes.

Outcome FlowTable::build_outcome(const FlowRecord& flow, EndReason reason) const {
  Outcome outcome;
  outcome.id = flow.id;
  outcome.client = flow.ends[0];
  outcome.server = flow.ends[1];
  outcome.sides_known = flow.sides_known;
  outcome.closer = flow.closer();
  outcome.kind = flow.kind();
  outcome.result = flow.result();
  outcome.ended_by = reason;
  outcome.fin_retransmits_client = flow.sides[0].fin_retransmits;
  outcome.fin_retransmits_server = flow.sides[1].fin_retransmits;
  outcome.final_acks_seen = flow.final_acks_seen;
  outcome.final_acks_dropped = flow.final_acks_dropped;
  if (flow.reset) {
    outcome.rst = RstInfo{flow.rst_from, flow.rst_stage, flow.rst_answers};
  }
  const std::uint64_t origin = flow.origin_us();
  const std::uint64_t end = flow.reset ? flow.rst_us : flow.last_us;
  outcome.teardown_us = end > origin ? static_cast<std::int64_t>(end - origin) : 0;
  outcome.data_after_fin_bytes = flow.data_after_fin_bytes();
  outcome.dup_acks = flow.dup_acks;
  outcome.segments = flow.segments;
  outcome.timeline_dropped = static_cast<std::uint32_t>(timeline_dropped(flow.timeline_total));
  outcome.actions_dropped = flow.actions_dropped;
  outcome.incomplete = flow.incomplete;
  outcome.actions = actions_of(flow);

  const std::size_t total = flow.timeline_total;
  outcome.timeline.reserve(std::min(total, kTimelineCapacity));
  for (std::size_t i = 0; i < std::min(total, kTimelineHead); ++i) {
    outcome.timeline.push_back(flow.entry_of(flow.timeline[i], origin));
  }
  for (std::size_t i = timeline_tail_begin(total); i < total; ++i) {
    outcome.timeline.push_back(flow.entry_of(flow.timeline[timeline_slot(i)], origin));
  }
  return outcome;
}

std::vector<ActionRecord> FlowTable::actions_of(const FlowRecord& flow) const {
  std::vector<ActionRecord> actions;
  actions.reserve(flow.action_count);
  for (std::size_t i = 0; i < flow.action_count; ++i) {
    const FlowRecord::ActionSlot& action = flow.actions[i];
    ActionRecord entry;
    entry.rule = action.rule < rule_names_.size() ? rule_names_[action.rule] : std::string("?");
    entry.role = action.role;
    entry.action = action.action;
    entry.count = action.count;
    actions.push_back(std::move(entry));
  }
  return actions;
}

void FlowTable::emit(std::uint32_t slot, EndReason reason, std::vector<Outcome>& out) noexcept {
  try {
    out.push_back(build_outcome(record(slot), reason));
    ++counters_.outcomes_emitted;
  } catch (...) {
    ++counters_.outcomes_lost;
  }
  remove(slot);
}

void FlowTable::advance(std::uint64_t now_us, std::vector<Outcome>& out) noexcept {
  now_us = clamp_now(now_us);
  for (Outcome& outcome : pending_) {
    try {
      out.push_back(std::move(outcome));
      ++counters_.outcomes_emitted;
    } catch (...) {
      ++counters_.outcomes_lost;
    }
  }
  pending_.clear();

  auto head = [this](ListId list) { return list_head_[static_cast<std::size_t>(list)]; };
  for (std::uint32_t slot = head(ListId::kSettle); slot != kNil; slot = head(ListId::kSettle)) {
    const FlowRecord& flow = record(slot);
    if (now_us - flow.settle_start_us < config_.settle_us) {
      break;
    }
    emit(slot, flow.reset ? EndReason::kRst : EndReason::kSettled, out);
  }
  for (std::uint32_t slot = head(ListId::kLinger); slot != kNil; slot = head(ListId::kLinger)) {
    if (now_us - record(slot).last_us < config_.linger_us) {
      break;
    }
    emit(slot, EndReason::kLinger, out);
  }
  for (std::uint32_t slot = head(ListId::kIdle); slot != kNil; slot = head(ListId::kIdle)) {
    if (now_us - record(slot).last_us < config_.idle_us) {
      break;
    }
    remove(slot);
    ++counters_.evicted_idle;
  }
}

void FlowTable::finish_all(std::uint64_t now_us, std::vector<Outcome>& out) noexcept {
  advance(now_us, out);
  auto head = [this](ListId list) { return list_head_[static_cast<std::size_t>(list)]; };
  for (const ListId list : {ListId::kSettle, ListId::kLinger}) {
    for (std::uint32_t slot = head(list); slot != kNil; slot = head(list)) {
      emit(slot, EndReason::kShutdown, out);
    }
  }
  for (std::uint32_t slot = head(ListId::kIdle); slot != kNil; slot = head(ListId::kIdle)) {
    remove(slot);
  }
}

bool FlowTable::summarize(std::uint32_t slot, FlowSummary& out) const noexcept {
  const FlowRecord& flow = record(slot);
  if (!flow.in_use) {
    return false;
  }
  out.id = flow.id;
  out.client = flow.ends[0];
  out.server = flow.ends[1];
  out.sides_known = flow.sides_known;
  out.stage = flow.reset ? std::string_view("reset") : to_string(flow.stage(std::nullopt));
  out.closer = flow.closer();
  out.first_seen_us = flow.created_us;
  out.last_segment_us = flow.last_us;
  out.segments = flow.segments;
  return true;
}

}  // namespace finwave::proxy
