#include "proxy/dataplane/dataplane.hpp"

#include <uv.h>

#include <algorithm>
#include <array>

#include "netfilter/craft.hpp"

namespace finwave::proxy {
namespace {

std::uint64_t monotonic_us() noexcept { return uv_hrtime() / 1000; }

}  // namespace

void Dataplane::on_packet(const nf::QueuedPacket& packet) noexcept {
  nf::TcpSegment segment;
  const nf::ParseError error = nf::parse_tcp_segment(packet.payload, segment, packet.original_len);
  if (error != nf::ParseError::kNone) {
    // Not ours to judge: a packet finwave cannot read passes untouched.
    ++counters_.parse_errors[static_cast<std::size_t>(error) % counters_.parse_errors.size()];
    p_.verdicts.accept(packet.id);
    return;
  }
  ++counters_.segments;
  if (p_.pcap != nullptr) p_.pcap->write(packet.payload, packet.original_len);
  if (packet.arrival_realtime_us != 0 && packet.arrival_realtime_us < last_logged_arrival_us_) {
    ++counters_.order_inversions;
  }

  const std::uint64_t now_us = monotonic_us();
  // The tracker keeps the segment's arrival, not the moment finwave read it: the timeline is
  // compared with captures on the wire, and a delay's hold is measured from there too.
  const std::uint64_t arrived_us = arrival_clock_.arrival_us(packet.arrival_realtime_us, now_us);
  const Classified classified = p_.flows.classify(segment, arrived_us);
  rules::Decision decision;
  // An untracked segment (a stray ACK, a full table) has no per-connection counters to match
  // against: it passes.
  if (classified.rule_state != nullptr) {
    decision = p_.engine.decide(classified.facts, *classified.rule_state, p_.rng);
  }
  if (decision.matched()) ++counters_.rule_hits;

  const Verdict verdict = carry_out(packet, segment, classified, decision, arrived_us, now_us);
  // A decision that could not be carried out is recorded as what really happened (accept),
  // without the rule: the outcome's actions list only what finwave did.
  const bool acted = decision.matched() &&
                     (verdict != Verdict::kAccept || decision.action == rules::Action::kPass);
  VerdictAmounts amounts;
  if (verdict == Verdict::kDelay) amounts.delay_us = decision.delay_us;
  if ((verdict == Verdict::kDelay || verdict == Verdict::kDuplicate) && p_.injector != nullptr) {
    amounts.copies = decision.copies;
  }
  p_.flows.commit(classified, segment, verdict, acted ? decision.rule_name : std::string_view{},
                  arrived_us, amounts);
  if (p_.rule_hits != nullptr && decision.matched()) {
    p_.rule_hits->on_rule_hit(
        RuleHit{decision.rule_name, classified.facts, classified.flow_id, verdict});
  }
}

void Dataplane::drain_log() noexcept {
  if (p_.log == nullptr) return;
  p_.log->drain(*this);
  const nf::LogCounters& log = p_.log->counters();
  const std::uint64_t lost = log.lost + log.enobufs;
  if (lost != log_lost_seen_) {
    // Which flows the lost copies belonged to cannot be known: every flow tracked now, and
    // those that begin soon after, is marked.
    log_lost_seen_ = lost;
    ++counters_.log_losses;
    p_.flows.mark_incomplete(monotonic_us());
  }
}

void Dataplane::on_logged(const nf::LoggedPacket& packet) noexcept {
  nf::TcpSegment segment;
  const nf::ParseError error = nf::parse_tcp_segment(packet.payload, segment, packet.original_len);
  if (error != nf::ParseError::kNone) {
    ++counters_.parse_errors[static_cast<std::size_t>(error) % counters_.parse_errors.size()];
    return;
  }
  ++counters_.logged;
  if (p_.pcap != nullptr) p_.pcap->write(packet.payload, packet.original_len);
  if (packet.arrival_realtime_us != 0) last_logged_arrival_us_ = packet.arrival_realtime_us;
  const std::uint64_t now_us = monotonic_us();
  const std::uint64_t arrived_us = arrival_clock_.arrival_us(packet.arrival_realtime_us, now_us);
  const Classified classified = p_.flows.classify(segment, arrived_us);
  p_.flows.commit(classified, segment, Verdict::kObserved, {}, arrived_us, {});
}

Verdict Dataplane::carry_out(const nf::QueuedPacket& packet, const nf::TcpSegment& segment,
                             const Classified& classified, const rules::Decision& decision,
                             std::uint64_t arrived_us, std::uint64_t now_us) noexcept {
  switch (decision.action) {
    case rules::Action::kPass:
      p_.verdicts.accept(packet.id);
      return Verdict::kAccept;
    case rules::Action::kDrop:
      p_.verdicts.drop(packet.id);
      ++counters_.dropped;
      return Verdict::kDrop;
    case rules::Action::kDelay:
      // From the segment's arrival: the trip through the queue to here is part of the delay.
      if (schedule(packet, segment, classified, decision, arrived_us + decision.delay_us, true) ==
          DelayLine::kNone) {
        p_.verdicts.accept(packet.id);
        return Verdict::kAccept;
      }
      p_.verdicts.hold(packet.id);
      ++counters_.delayed;
      return Verdict::kDelay;
    case rules::Action::kDuplicate:
      p_.verdicts.accept(packet.id);
      if (schedule(packet, segment, classified, decision, now_us + decision.spacing_us, false) ==
          DelayLine::kNone) {
        return Verdict::kAccept;
      }
      ++counters_.duplicated;
      return Verdict::kDuplicate;
    case rules::Action::kReset: {
      std::array<std::uint8_t, nf::kRstMaxBytes> rst{};
      const std::size_t length = nf::build_rst(packet.payload, segment, rst);
      if (length == 0 || p_.verdicts.replace(packet.id, std::span(rst.data(), length)) < 0) {
        ++counters_.reset_errors;
        p_.verdicts.accept(packet.id);
        return Verdict::kAccept;
      }
      ++counters_.resets;
      return Verdict::kReset;
    }
  }
  // Not reached with an action the engine gives; the packet still gets its one verdict.
  p_.verdicts.accept(packet.id);
  return Verdict::kAccept;
}

std::uint32_t Dataplane::schedule(const nf::QueuedPacket& packet, const nf::TcpSegment& segment,
                                  const Classified& classified, const rules::Decision& decision,
                                  std::uint64_t due_us, bool hold) noexcept {
  const bool copies = decision.copies > 0 && p_.injector != nullptr;
  if (!hold && !copies) {
    ++counters_.copy_errors;
    return DelayLine::kNone;
  }
  const std::uint32_t slot = p_.delays.add(due_us);
  if (slot == DelayLine::kNone) {
    ++counters_.held_overflow;
    return slot;
  }
  HeldSegment& held = p_.delays.at(slot);
  held.holding = hold;
  held.queue_id = packet.id;
  held.flow = classified.flow;
  held.segment = segment;
  held.copies_left = copies ? decision.copies : 0;
  held.spacing_us = decision.spacing_us;
  if (copies) {
    // Only the IP datagram: a raw IPv4 socket rewrites the total length to what it is given,
    // so trailing bytes would become TCP payload with a wrong checksum. A copy the copy range
    // cut short is refused by finalize_checksums() below.
    const std::size_t datagram = std::size_t{segment.ip_header_len} + segment.tcp_header_len +
                                 std::size_t{segment.payload_len};
    try {
      held.bytes.assign(packet.payload.begin(),
                        packet.payload.begin() +
                            static_cast<std::ptrdiff_t>(std::min(datagram, packet.payload.size())));
    } catch (...) {
      held.copies_left = 0;
      ++counters_.copy_errors;
    }
    // With F_GSO the kernel may hand over a packet whose TCP checksum the NIC was to finish.
    if (held.copies_left > 0 && !nf::finalize_checksums(held.bytes, held.segment)) {
      held.copies_left = 0;
      ++counters_.copy_errors;
    }
  }
  return slot;
}

void Dataplane::on_due(std::uint64_t now_us, std::uint64_t horizon_us) noexcept {
  for (std::uint32_t slot = p_.delays.pop_due(horizon_us); slot != DelayLine::kNone;
       slot = p_.delays.pop_due(horizon_us)) {
    HeldSegment& held = p_.delays.at(slot);
    if (held.holding) {
      end_hold(held, now_us);
      ++counters_.released;
    } else if (held.copies_left > 0) {
      send_copy(held);
    }
    if (held.copies_left > 0) {
      p_.delays.reschedule(slot, now_us + held.spacing_us);
    } else {
      p_.delays.free(slot);
    }
  }
}

void Dataplane::end_hold(HeldSegment& held, std::uint64_t now_us) noexcept {
  p_.verdicts.accept_held(held.queue_id);
  p_.flows.release(held.flow, held.segment, now_us);
  held.holding = false;
}

void Dataplane::send_copy(HeldSegment& held) noexcept {
  --held.copies_left;
  if (p_.injector->send(held.bytes, held.segment) < 0) {
    ++counters_.copy_errors;
  } else {
    ++counters_.copies_sent;
  }
}

void Dataplane::end_all_holds(std::uint64_t now_us) noexcept {
  for (std::uint32_t slot = p_.delays.pop_any(); slot != DelayLine::kNone;
       slot = p_.delays.pop_any()) {
    HeldSegment& held = p_.delays.at(slot);
    if (held.holding) {
      end_hold(held, now_us);
      ++counters_.released_early;
    }
    p_.delays.free(slot);
  }
}

}  // namespace finwave::proxy
