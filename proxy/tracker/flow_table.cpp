// The teardown logic: naming each segment's role, and what it changes in its flow.
#include "proxy/tracker/flow_record.hpp"

namespace finwave::proxy {

using namespace flow_detail;  // NOLINT(google-build-using-namespace): the tracker's own helpers

// ---------------------------------------------------------------------------------------------
// Classification.

Classified FlowTable::classify(const nf::TcpSegment& segment, std::uint64_t now_us) noexcept {
  now_us = clamp_now(now_us);
  ++counters_.segments;
  Classified out;
  const rules::Endpoint src = endpoint_of(segment.src, segment.src_port);
  const rules::Endpoint dst = endpoint_of(segment.dst, segment.dst_port);
  const std::uint32_t hash = hash_of(src, dst);
  const bool syn = segment.has(flag::kSyn) && !segment.has(flag::kRst);
  const bool pure_syn = syn && !segment.has(flag::kAck);
  const bool fin = segment.has(flag::kFin) && !segment.has(flag::kRst) && !syn;

  Side from = Side::kClient;
  std::uint32_t slot = find(segment, hash, from);
  if (slot != kNil && pure_syn) {
    FlowRecord& flow = record(slot);
    const FlowRecord::SideState& sender = flow.side(from);
    const bool same_syn = sender.isn_seen && sender.isn == segment.seq;
    // A client SYN on a flow known only from its SYN-ACK completes the picture.
    const bool first_syn =
        from == Side::kClient && !sender.isn_seen && !flow.fin1_seen && !flow.reset;
    if (!same_syn && !first_syn) {
      // A new connection on the same 4-tuple (TIME_WAIT reuse, or a port reused after a
      // connection finwave saw no end of). An old teardown is reported; a flow that never began
      // one is dropped silently, like an idle one.
      if (flow.fin1_seen || flow.reset) {
        try {
          pending_.push_back(build_outcome(flow, EndReason::kNewSyn));
        } catch (...) {
          ++counters_.outcomes_lost;
        }
      } else {
        ++counters_.superseded;
      }
      remove(slot);
      slot = kNil;
    }
  }
  if (slot == kNil) {
    if (pure_syn) {
      from = Side::kClient;
      slot = create(segment, hash, from, true, now_us);
    } else if (syn) {
      from = Side::kServer;
      slot = create(segment, hash, from, true, now_us);
    } else if (fin) {
      from = is_server_by_port(src, dst) ? Side::kServer : Side::kClient;
      slot = create(segment, hash, from, false, now_us);
    } else if (segment.has(flag::kRst)) {
      ++counters_.unknown_flow_rsts;
    } else {
      ++counters_.unknown_flow_acks;
    }
  }

  if (slot == kNil) {
    // Untracked: a best guess for the rule engine, nothing recorded.
    if (!syn) {
      from = is_server_by_port(src, dst) ? Side::kServer : Side::kClient;
    }
    out.facts.from = from;
    out.facts.client = from == Side::kClient ? src : dst;
    out.facts.server = from == Side::kClient ? dst : src;
    out.sides_known = syn;
    if (segment.has(flag::kRst)) {
      out.facts.role = Role::kRst;
    } else if (syn) {
      out.facts.role = pure_syn ? Role::kSyn : Role::kSynAck;
    } else if (fin) {
      out.facts.role = Role::kFin1;
    } else {
      out.facts.role = Role::kAck;
    }
    return out;
  }

  FlowRecord& flow = record(slot);
  name_segment(flow, from, segment, out);
  out.flow = FlowRef{slot, flow.generation};
  out.flow_id = flow.id;
  out.sides_known = flow.sides_known;
  out.rule_state = &flow.rule_state;
  out.facts.client = flow.ends[0];
  out.facts.server = flow.ends[1];
  if (out.bogus) {
    ++counters_.bogus_segments;
  }
  return out;
}

void FlowTable::name_segment(const FlowRecord& flow, Side from, const nf::TcpSegment& segment,
                             Classified& out) const noexcept {
  const Side peer = rules::peer_of(from);
  const FlowRecord::SideState& me = flow.side(from);
  const FlowRecord::SideState& them = flow.side(peer);
  const std::uint32_t end = segment.seq + segment.seq_len();
  Role role = Role::kAck;
  bool retx = false;
  bool dup_ack = false;
  bool bogus = false;

  if (segment.has(flag::kRst)) {
    role = Role::kRst;
  } else if (segment.has(flag::kSyn)) {
    role = segment.has(flag::kAck) ? Role::kSynAck : Role::kSyn;
    retx = me.isn_seen && me.isn == segment.seq;
  } else if (segment.has(flag::kFin)) {
    const std::uint32_t fin_seq = segment.seq + segment.payload_len;
    if (me.fin_seen) {
      role = flow.fin1_side == from ? Role::kFin1 : Role::kFin2;
      // A FIN's sequence number never changes; retransmissions may carry more data before it.
      if (fin_seq == me.fin_seq) {
        retx = true;
      } else {
        bogus = true;
      }
    } else {
      role = flow.fin1_seen ? Role::kFin2 : Role::kFin1;
      // This side already sent bytes beyond this FIN.
      if (me.end_seen && seq_before(fin_seq + 1U, me.max_end)) {
        bogus = true;
      }
    }
    if (FlowRecord::acks_beyond_fin(segment, them)) {
      bogus = true;
    }
  } else if (segment.payload_len > 0) {
    if (me.fin_seen && seq_after(end, me.fin_seq)) {
      bogus = true;  // Data beyond this side's own FIN.
    } else if (flow.fin1_seen && flow.fin1_side == peer && FlowRecord::acks_fin(segment, them)) {
      role = Role::kDataAfterFin;  // Half-close data: the passive side has acknowledged fin1.
    }
    retx = me.end_seen && seq_at_or_before(end, me.max_end);
    if (FlowRecord::acks_beyond_fin(segment, them)) {
      bogus = true;
    }
  } else if (FlowRecord::acks_fin(segment, them)) {
    role = flow.fin1_side == peer ? Role::kAck1 : Role::kFinalAck;
    // A repeat, unless it was sent before this side's own FIN and overtaken by it (an ack1 that
    // arrives after a fin2 that carries the same ACK).
    dup_ack = me.acked_peer_fin && !(me.fin_seen && seq_at_or_before(segment.seq, me.fin_seq));
  } else if (FlowRecord::acks_beyond_fin(segment, them)) {
    bogus = true;
  }

  out.facts.role = role;
  out.facts.retx = retx;
  out.facts.from = from;
  if (flow.fin1_seen) {
    out.facts.active_closer = flow.fin1_side;
  } else if (role == Role::kFin1 && !bogus) {
    out.facts.active_closer = from;
  }
  out.dup_ack = dup_ack;
  out.bogus = bogus;
}

// ---------------------------------------------------------------------------------------------
// Commit, release.

void FlowTable::commit(const Classified& classified, const nf::TcpSegment& segment, Verdict verdict,
                       std::string_view rule_name, std::uint64_t now_us,
                       VerdictAmounts amounts) noexcept {
  FlowRecord* flow = resolve(classified.flow);
  if (flow == nullptr) {
    return;
  }
  now_us = clamp_now(now_us);
  const std::uint32_t slot = classified.flow.slot;
  if (flow->segments != 0xffffffffU) {
    ++flow->segments;
  }
  flow->add_timeline(classified, segment, verdict, amounts, now_us);
  if (!rule_name.empty()) {
    record_action(*flow, rule_name, classified.facts.role, verdict);
  }
  if (classified.bogus) {
    return;
  }

  const Side from = classified.facts.from;
  const bool rst = segment.has(flag::kRst);
  // The stage is judged on what came before this segment.
  Stage stage = Stage::kBeforeFin;
  bool answers = false;
  if ((rst || verdict == Verdict::kReset) && !flow->reset) {
    stage = flow->stage(from);
    answers = rst && flow->answers_fin_retransmit(from, segment);
  }
  observe(*flow, slot, classified, segment, verdict, now_us);
  if (verdict == Verdict::kReset) {
    reset_flow(*flow, slot, from, stage, false, now_us);
  } else if (delivers(verdict)) {
    if (rst) {
      reset_flow(*flow, slot, from, stage, answers, now_us);
    } else {
      deliver(*flow, slot, from, segment, now_us);
    }
  }
  if (segment.has(flag::kFin) && !rst && classified.facts.retx && delivers(verdict)) {
    flow->fin_retransmit_delivered(from, segment);
  }
  touch(*flow, slot, now_us);
}

bool FlowTable::release(FlowRef ref, const nf::TcpSegment& segment, std::uint64_t now_us) noexcept {
  FlowRecord* flow = resolve(ref);
  if (flow == nullptr) {
    return false;
  }
  now_us = clamp_now(now_us);
  Side from = Side::kClient;
  if (same_endpoint(flow->ends[0], segment.src, segment.src_port) &&
      same_endpoint(flow->ends[1], segment.dst, segment.dst_port)) {
    from = Side::kClient;
  } else if (same_endpoint(flow->ends[1], segment.src, segment.src_port) &&
             same_endpoint(flow->ends[0], segment.dst, segment.dst_port)) {
    from = Side::kServer;
  } else {
    return false;
  }
  FlowRecord::TimelineSlot* held = flow->held_entry(from, segment);
  // Was it a retransmission when it was held? Without its entry, a FIN from a side that has
  // retransmitted its FIN is taken for one.
  const bool retx = held != nullptr ? (held->bits & FlowRecord::kRetx) != 0
                                    : flow->side(from).fin_retransmits > 0;
  if (held != nullptr) {
    held->bits |= FlowRecord::kReleased;
    held->hold_ms = FlowRecord::hold_ms_of(now_us - std::min(now_us, flow->time_of(*held))) &
                    FlowRecord::TimelineSlot::kMaxHoldMs;
  }
  if (segment.has(flag::kRst)) {
    if (!flow->reset) {
      reset_flow(*flow, ref.slot, from, flow->stage(from),
                 flow->answers_fin_retransmit(from, segment), now_us);
    }
  } else {
    deliver(*flow, ref.slot, from, segment, now_us);
    if (segment.has(flag::kFin) && retx) {
      flow->fin_retransmit_delivered(from, segment);
    }
  }
  touch(*flow, ref.slot, now_us);
  return true;
}

void FlowTable::observe(FlowRecord& flow, std::uint32_t slot, const Classified& classified,
                        const nf::TcpSegment& segment, Verdict verdict,
                        std::uint64_t now_us) noexcept {
  const Side from = classified.facts.from;
  const Side peer = rules::peer_of(from);
  FlowRecord::SideState& me = flow.side(from);
  const FlowRecord::SideState& them = flow.side(peer);
  const bool acked_peer_fin_before = me.acked_peer_fin;
  const bool rst = segment.has(flag::kRst);

  if (segment.has(flag::kSyn) && !rst) {
    me.isn = segment.seq;
    me.isn_seen = true;
  } else if (!rst && segment.seq_len() > 0) {
    // SYNs stay out: before the first FIN only the handshake is captured, and after 2 GiB of
    // unseen data the ISN says nothing about where the stream is.
    const std::uint32_t end = segment.seq + segment.seq_len();
    if (!me.end_seen || seq_after(end, me.max_end)) {
      me.max_end = end;
      me.end_seen = true;
    }
  }

  if (segment.has(flag::kFin) && !rst && !segment.has(flag::kSyn)) {
    const std::uint32_t fin_seq = segment.seq + segment.payload_len;
    if (!me.fin_seen) {
      me.fin_seen = true;
      me.fin_seq = fin_seq;
      if (!flow.fin1_seen) {
        flow.fin1_seen = true;
        flow.fin1_side = from;
        flow.first_fin_us = now_us;
        if (flow.list == ListId::kIdle) {
          list_unlink(slot);
          list_push_back(ListId::kLinger, slot);
        }
      } else if (acked_peer_fin_before) {
        flow.shape = FlowRecord::Shape::kFourWay;
      } else if (FlowRecord::acks_fin(segment, them)) {
        flow.shape = FlowRecord::Shape::kThreeWay;
      } else {
        flow.shape = FlowRecord::Shape::kSimultaneous;
      }
    } else {
      ++me.fin_retransmits;
      // The sender has not had its ACK yet: the settle window starts again.
      if (flow.list == ListId::kSettle && !flow.reset) {
        flow.settle_start_us = now_us;
        list_unlink(slot);
        list_push_back(ListId::kSettle, slot);
      }
    }
  }

  if (!rst && FlowRecord::acks_fin(segment, them)) {
    if (flow.fin1_side == peer) {
      // The passive side's stream after it acknowledged fin1: half-close data starts here.
      if (!me.data_start_seen || seq_before(segment.seq, me.data_start)) {
        me.data_start = segment.seq;
        me.data_start_seen = true;
      }
      // An ack1 overtaken by the fin2 that was sent after it: the close was four-way after all.
      if (classified.facts.role == Role::kAck1 && flow.shape == FlowRecord::Shape::kThreeWay &&
          me.fin_seen && seq_at_or_before(segment.seq, me.fin_seq)) {
        flow.shape = FlowRecord::Shape::kFourWay;
      }
    }
    me.acked_peer_fin = true;
  }

  if (classified.facts.role == Role::kFinalAck) {
    ++flow.final_acks_seen;
    if (verdict == Verdict::kDrop) {
      ++flow.final_acks_dropped;
    }
  }
  if (classified.dup_ack) {
    ++flow.dup_acks;
  }
  flow.last_us = std::max(flow.last_us, now_us);
}

void FlowTable::deliver(FlowRecord& flow, std::uint32_t slot, Side from,
                        const nf::TcpSegment& segment, std::uint64_t now_us) noexcept {
  FlowRecord::SideState& them = flow.side(rules::peer_of(from));
  if (!FlowRecord::acks_fin(segment, them) || them.fin_acked) {
    return;
  }
  them.fin_acked = true;
  if (flow.both_acked() && !flow.reset && flow.list != ListId::kSettle) {
    flow.settle_start_us = now_us;
    list_unlink(slot);
    list_push_back(ListId::kSettle, slot);
  }
}

void FlowTable::reset_flow(FlowRecord& flow, std::uint32_t slot, Side from, Stage stage,
                           bool answers_fin_retransmit, std::uint64_t now_us) noexcept {
  if (flow.reset) {
    return;  // Only the first RST counts; later ones are in the timeline.
  }
  flow.reset = true;
  flow.rst_from = from;
  flow.rst_stage = stage;
  flow.rst_answers = answers_fin_retransmit;
  flow.rst_us = now_us;
  // Kept for the settle window so that stray segments land in its timeline.
  flow.settle_start_us = now_us;
  list_unlink(slot);
  list_push_back(ListId::kSettle, slot);
}

std::uint16_t FlowTable::intern(std::string_view rule_name) noexcept {
  if (last_rule_ < rule_names_.size() && rule_names_[last_rule_] == rule_name) {
    return last_rule_;
  }
  for (std::size_t i = 0; i < rule_names_.size(); ++i) {
    if (rule_names_[i] == rule_name) {
      last_rule_ = static_cast<std::uint16_t>(i);
      return last_rule_;
    }
  }
  if (rule_names_.size() >= kNoRule) {
    return kNoRule;
  }
  try {
    rule_names_.emplace_back(rule_name);
  } catch (...) {
    return kNoRule;
  }
  last_rule_ = static_cast<std::uint16_t>(rule_names_.size() - 1);
  return last_rule_;
}

void FlowTable::record_action(FlowRecord& flow, std::string_view rule_name, Role role,
                              Verdict verdict) noexcept {
  const std::uint16_t rule = intern(rule_name);
  for (std::size_t i = 0; i < flow.action_count; ++i) {
    FlowRecord::ActionSlot& action = flow.actions[i];
    if (action.rule == rule && action.role == role && action.action == verdict) {
      if (action.count != 0xffffffffU) {
        ++action.count;
      }
      return;
    }
  }
  if (flow.action_count == kActionSlots) {
    ++flow.actions_dropped;
    return;
  }
  flow.actions[flow.action_count++] = FlowRecord::ActionSlot{1, rule, role, verdict};
}

}  // namespace finwave::proxy
