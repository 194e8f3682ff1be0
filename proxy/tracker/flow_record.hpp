#pragma once

// The flow record and the helpers the tracker's sources share: private to finwave_tracker
// (flow_table.cpp: the teardown logic; flow_index.cpp: storage, index and lists;
// flow_outcome.cpp: outcomes). Nothing outside proxy/tracker/ includes it.

#include <algorithm>
#include <cstring>
#include <optional>

#include "proxy/tracker/flow_table.hpp"
#include "proxy/tracker/timeline_ring.hpp"

namespace finwave::proxy {
namespace flow_detail {

using rules::Role;
using rules::Side;
namespace flag = nf::tcp_flag;

inline constexpr std::uint32_t kNil = FlowRef::kNoSlot;
inline constexpr std::uint32_t kChunkShift = 8;
inline constexpr std::uint32_t kChunkSize = 1U << kChunkShift;
inline constexpr std::size_t kInitialIndex = 1024;
// Slots are 32-bit and the index needs twice as many entries as flows.
inline constexpr std::size_t kMaxFlowsLimit = std::size_t{1} << 28;
inline constexpr std::uint16_t kNoRule = 0xffff;

constexpr std::size_t index_of(Side side) noexcept { return side == Side::kClient ? 0 : 1; }

inline rules::Endpoint endpoint_of(const nf::IpAddress& address, std::uint16_t port) noexcept {
  rules::Endpoint endpoint;
  endpoint.family = address.family;
  endpoint.address = address.bytes;
  endpoint.port = port;
  return endpoint;
}

inline bool same_endpoint(const rules::Endpoint& endpoint, const nf::IpAddress& address,
                          std::uint16_t port) noexcept {
  return endpoint.port == port && endpoint.family == address.family &&
         endpoint.address == address.bytes;
}

inline bool endpoint_less(const rules::Endpoint& a, const rules::Endpoint& b) noexcept {
  if (a.address != b.address) {
    return a.address < b.address;
  }
  return a.port < b.port;
}

// The port rule for a flow first seen at its FIN (see FlowTable): the lower port is the server,
// and on equal ports the lower address.
inline bool is_server_by_port(const rules::Endpoint& a, const rules::Endpoint& b) noexcept {
  if (a.port != b.port) {
    return a.port < b.port;
  }
  return a.address < b.address;
}

inline std::uint64_t mix(std::uint64_t hash, std::uint64_t value) noexcept {
  hash ^= value;
  hash *= 0xbf58476d1ce4e5b9ULL;
  hash ^= hash >> 31U;
  return hash;
}

inline std::uint64_t load64(const std::uint8_t* bytes) noexcept {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

// Did the segment reach the other host as it is?
constexpr bool delivers(Verdict verdict) noexcept {
  return verdict == Verdict::kAccept || verdict == Verdict::kDuplicate ||
         verdict == Verdict::kObserved;
}

}  // namespace flow_detail

/// Everything the tracker keeps about one connection, in fixed size (no pointers to the heap).
struct FlowTable::FlowRecord {
  using Role = rules::Role;
  using Side = rules::Side;

  /// What one side is known to have sent. Sequence numbers are absolute.
  struct SideState {
    std::uint32_t isn = 0;
    std::uint32_t fin_seq = 0;     ///< Sequence number of the FIN flag (seq + payload).
    std::uint32_t max_end = 0;     ///< Highest seq + seq_len of a non-SYN segment.
    std::uint32_t data_start = 0;  ///< Lowest seq of a segment acknowledging the peer's fin1.
    std::uint32_t fin_retransmits = 0;
    bool isn_seen = false;
    bool fin_seen = false;
    bool end_seen = false;
    bool data_start_seen = false;
    bool acked_peer_fin = false;  ///< Sent (whatever the verdict) an ACK of the peer's FIN.
    bool fin_acked = false;       ///< The peer's ACK of this side's FIN went out.
    /// A retransmission of this side's FIN reached the peer (accepted, duplicated, or held and
    /// released): a peer whose socket is gone answers it with an RST.
    bool fin_retx_delivered = false;
    bool fin_retx_had_ack = false;   ///< That retransmission carried the ACK flag.
    std::uint32_t fin_retx_ack = 0;  ///< Its acknowledgment number (the latest one delivered).
  };
  /// One timeline entry in 24 bytes: the time and the hold share 64 bits, the length and the
  /// copies 32, so that a record with its 28 entries stays within 1 KiB.
  struct TimelineSlot {
    static constexpr std::uint64_t kMaxTime = (std::uint64_t{1} << 43) - 1;  // about 100 days
    static constexpr std::uint32_t kMaxHoldMs = (1U << 21) - 1;  // about 35 min; rules stop at 20
    static constexpr std::uint32_t kMaxLen = (1U << 24) - 1;     // a BIG TCP segment is < 512 KiB

    std::uint64_t since_created_us : 43 = 0;  ///< Saturates at kMaxTime.
    /// kDelay: the delay the rule asked for, then, once the segment went out (kReleased), how
    /// long it was held; in milliseconds, saturating at kMaxHoldMs.
    std::uint64_t hold_ms : 21 = 0;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint32_t len : 24 = 0;    ///< Payload bytes, saturating at kMaxLen.
    std::uint32_t copies : 8 = 0;  ///< Copies sent behind the segment (a rule sends <= 100).
    std::uint8_t flags = 0;
    Role role = Role::kAck;
    std::uint8_t bits = 0;  ///< kFromServer | kRetx | kDupAck | kBogus | kReleased.
    Verdict verdict = Verdict::kAccept;
  };
  // The timeline is most of the per-flow budget (flow_record_bytes(), tested).
  static_assert(sizeof(TimelineSlot) == 24, "a timeline entry grew: the record outgrows 1 KiB");
  struct ActionSlot {
    std::uint32_t count = 0;
    std::uint16_t rule = flow_detail::kNoRule;
    Role role = Role::kAny;
    Verdict action = Verdict::kAccept;
  };
  enum class Shape : std::uint8_t { kNone, kFourWay, kThreeWay, kSimultaneous };
  static constexpr std::uint8_t kFromServer = 1;
  static constexpr std::uint8_t kRetx = 2;
  static constexpr std::uint8_t kDupAck = 4;
  static constexpr std::uint8_t kBogus = 8;
  static constexpr std::uint8_t kReleased = 16;  ///< A held (kDelay) segment that went out.

  std::array<rules::Endpoint, 2> ends{};  ///< Client, server.
  std::uint64_t id = 0;
  std::uint64_t created_us = 0;
  std::uint64_t last_us = 0;  ///< Last segment that was not bogus.
  std::uint64_t first_fin_us = 0;
  std::uint64_t settle_start_us = 0;
  std::uint64_t rst_us = 0;
  std::uint32_t generation = 0;
  std::uint32_t hash = 0;
  /// Links in one of the table's lists (or the free list).
  std::uint32_t prev = flow_detail::kNil;
  std::uint32_t next = flow_detail::kNil;
  std::uint32_t segments = 0;
  std::uint32_t timeline_total = 0;
  std::uint32_t final_acks_seen = 0;
  std::uint32_t final_acks_dropped = 0;
  std::uint32_t dup_acks = 0;
  std::uint32_t actions_dropped = 0;
  std::array<SideState, 2> sides{};
  rules::FlowRuleState rule_state{};
  bool in_use = false;
  bool sides_known = true;
  bool fin1_seen = false;
  bool reset = false;
  bool rst_answers = false;
  bool incomplete = false;  // the log path lost copies while it was tracked
  Side fin1_side = Side::kClient;
  Side rst_from = Side::kClient;
  Stage rst_stage = Stage::kBeforeFin;
  Shape shape = Shape::kNone;
  ListId list = ListId::kNone;
  std::uint8_t action_count = 0;
  std::array<ActionSlot, kActionSlots> actions{};
  std::array<TimelineSlot, kTimelineCapacity> timeline{};

  /// Does the segment acknowledge `peer`'s FIN? Nothing can be acknowledged beyond a FIN, so
  /// only ack == fin_seq + 1 does (a larger ack is bogus).
  static bool acks_fin(const nf::TcpSegment& segment, const SideState& peer) noexcept {
    return segment.has(nf::tcp_flag::kAck) && peer.fin_seen && segment.ack == peer.fin_seq + 1U;
  }
  static bool acks_beyond_fin(const nf::TcpSegment& segment, const SideState& peer) noexcept {
    return segment.has(nf::tcp_flag::kAck) && peer.fin_seen &&
           seq_after(segment.ack, peer.fin_seq + 1U);
  }

  /// Is `rst`, sent by `from`, the answer of a host with no socket to a retransmission of the
  /// peer's FIN that reached it? Such a host answers a segment with the ACK flag by an RST whose
  /// sequence number is that segment's acknowledgment number, and one without by an RST|ACK that
  /// acknowledges it (RFC 793, "Reset Generation"; Linux's tcp_v4_send_reset). Any retransmission
  /// that went out counts, not only the latest: one finwave held and released after later ones
  /// were dropped is answered after them. All of a side's FIN retransmissions share the FIN's
  /// sequence number, and in practice their acknowledgment number, so the latest one delivered
  /// stands for all.
  bool answers_fin_retransmit(Side from, const nf::TcpSegment& rst) const noexcept {
    const SideState& them = side(rules::peer_of(from));
    if (!them.fin_retx_delivered) {
      return false;
    }
    if (them.fin_retx_had_ack) {
      return rst.seq == them.fin_retx_ack;
    }
    return rst.has(nf::tcp_flag::kAck) && rst.ack == them.fin_seq + 1U;
  }

  /// Notes that a retransmission of `from`'s FIN went out.
  void fin_retransmit_delivered(Side from, const nf::TcpSegment& fin) noexcept {
    SideState& me = side(from);
    me.fin_retx_delivered = true;
    me.fin_retx_had_ack = fin.has(nf::tcp_flag::kAck);
    me.fin_retx_ack = fin.ack;
  }

  SideState& side(Side s) noexcept { return sides[flow_detail::index_of(s)]; }
  const SideState& side(Side s) const noexcept { return sides[flow_detail::index_of(s)]; }
  bool both_fins() const noexcept { return sides[0].fin_seen && sides[1].fin_seen; }
  bool both_acked() const noexcept { return sides[0].fin_acked && sides[1].fin_acked; }

  /// The stage (teardown.hpp) from what was seen so far; `rst_sender` only for an RST.
  Stage stage(std::optional<Side> rst_sender) const noexcept {
    if (!fin1_seen) {
      return Stage::kBeforeFin;
    }
    if (!both_fins()) {
      return Stage::kFinWait;
    }
    if (both_acked()) {
      return Stage::kTimeWait;
    }
    if (rst_sender) {
      const SideState& sender = side(*rst_sender);
      if (sender.fin_acked && sender.acked_peer_fin) {
        return Stage::kAfterClose;
      }
    }
    return shape == Shape::kSimultaneous ? Stage::kClosing : Stage::kLastAck;
  }

  Closer closer() const noexcept {
    if (!fin1_seen) {
      return Closer::kNone;
    }
    if (shape == Shape::kSimultaneous) {
      return Closer::kBoth;
    }
    return fin1_side == Side::kClient ? Closer::kClient : Closer::kServer;
  }

  /// The shape of the FIN exchange, as the outcome reports it.
  TeardownKind kind() const noexcept {
    if (!both_fins()) return reset ? TeardownKind::kReset : TeardownKind::kIncomplete;
    switch (shape) {
      case Shape::kThreeWay:
        return TeardownKind::kThreeWay;
      case Shape::kSimultaneous:
        return TeardownKind::kSimultaneous;
      case Shape::kNone:
      case Shape::kFourWay:
        break;
    }
    return TeardownKind::kFourWay;
  }

  TeardownResult result() const noexcept {
    if (reset) return TeardownResult::kReset;
    return both_acked() ? TeardownResult::kClean : TeardownResult::kTimeout;
  }

  /// Bytes the passive closer sent after it acknowledged fin1 (half-close data), up to its own
  /// FIN or the furthest it got.
  std::uint32_t data_after_fin_bytes() const noexcept {
    if (!fin1_seen) return 0;
    const SideState& passive = side(rules::peer_of(fin1_side));
    if (!passive.data_start_seen) return 0;
    std::uint32_t stream_end = passive.data_start;
    if (passive.fin_seen) {
      stream_end = passive.fin_seq;
    } else if (passive.end_seen) {
      stream_end = passive.max_end;
    }
    return seq_after(stream_end, passive.data_start) ? stream_end - passive.data_start : 0;
  }

  /// Time origin of the timeline: the first FIN, or the RST if it came first.
  std::uint64_t origin_us() const noexcept {
    if (fin1_seen && (!reset || first_fin_us <= rst_us)) {
      return first_fin_us;
    }
    if (reset) {
      return rst_us;
    }
    return created_us;
  }

  /// The timeline entry of a held segment that went out now: the oldest entry still held with
  /// the same sender, flags, sequence numbers and length (held segments of one rule go out in
  /// the order they came). Null when that entry was left out of the timeline.
  TimelineSlot* held_entry(Side from, const nf::TcpSegment& segment) noexcept {
    const std::uint8_t from_bit = from == Side::kServer ? kFromServer : 0;
    const auto matches = [&](const TimelineSlot& entry) {
      return entry.verdict == Verdict::kDelay && (entry.bits & kReleased) == 0 &&
             (entry.bits & kFromServer) == from_bit && entry.flags == segment.flags &&
             entry.seq == segment.seq && entry.ack == segment.ack &&
             entry.len == std::min(segment.payload_len, TimelineSlot::kMaxLen);
    };
    const std::uint32_t total = timeline_total;
    const std::uint32_t head = std::min<std::uint32_t>(total, kTimelineHead);
    for (std::uint32_t i = 0; i < head; ++i) {
      if (matches(timeline[i])) return &timeline[i];
    }
    for (std::size_t i = timeline_tail_begin(total); i < total; ++i) {
      TimelineSlot& entry = timeline[timeline_slot(i)];
      if (matches(entry)) return &entry;
    }
    return nullptr;
  }

  /// Microseconds to milliseconds, rounded, saturating at the timeline's limit.
  static std::uint32_t hold_ms_of(std::uint64_t us) noexcept {
    return static_cast<std::uint32_t>(
        std::min<std::uint64_t>((us + 500) / 1000, TimelineSlot::kMaxHoldMs));
  }

  std::uint64_t time_of(const TimelineSlot& entry) const noexcept {
    return created_us + entry.since_created_us;
  }

  /// A timeline slot as the outcome reports it, its time from the teardown's `origin`.
  TimelineEntry entry_of(const TimelineSlot& slot, std::uint64_t origin) const {
    TimelineEntry entry;
    entry.t_us = static_cast<std::int64_t>(time_of(slot)) - static_cast<std::int64_t>(origin);
    entry.from = (slot.bits & kFromServer) != 0 ? Side::kServer : Side::kClient;
    entry.role = slot.role;
    entry.retx = (slot.bits & kRetx) != 0;
    entry.dup_ack = (slot.bits & kDupAck) != 0;
    entry.bogus = (slot.bits & kBogus) != 0;
    entry.flags = slot.flags;
    entry.seq = slot.seq;
    entry.ack = slot.ack;
    entry.len = slot.len;
    entry.verdict = slot.verdict;
    if (slot.verdict == Verdict::kDelay) {
      entry.hold_ms = static_cast<std::uint32_t>(slot.hold_ms);
      entry.released = (slot.bits & kReleased) != 0;
    }
    entry.copies = static_cast<std::uint16_t>(slot.copies);
    return entry;
  }

  void add_timeline(const Classified& c, const nf::TcpSegment& segment, Verdict verdict,
                    VerdictAmounts amounts, std::uint64_t now_us) noexcept {
    const std::uint32_t n = timeline_total;
    TimelineSlot& entry = timeline[timeline_slot(n)];
    // now_us never goes back (clamp_now), so it is at or after created_us.
    // Saturated, then masked: the mask tells the compiler the value fits its bit-field.
    entry.since_created_us =
        std::min(now_us - created_us, TimelineSlot::kMaxTime) & TimelineSlot::kMaxTime;
    entry.hold_ms =
        verdict == Verdict::kDelay ? hold_ms_of(amounts.delay_us) & TimelineSlot::kMaxHoldMs : 0U;
    entry.seq = segment.seq;
    entry.ack = segment.ack;
    entry.len = std::min(segment.payload_len, TimelineSlot::kMaxLen) & TimelineSlot::kMaxLen;
    entry.copies = verdict == Verdict::kDelay || verdict == Verdict::kDuplicate
                       ? static_cast<std::uint8_t>(std::min<std::uint16_t>(amounts.copies, 0xff))
                       : 0U;
    entry.flags = segment.flags;
    entry.role = c.facts.role;
    entry.bits = static_cast<std::uint8_t>((c.facts.from == Side::kServer ? kFromServer : 0) |
                                           (c.facts.retx ? kRetx : 0) | (c.dup_ack ? kDupAck : 0) |
                                           (c.bogus ? kBogus : 0));
    entry.verdict = verdict;
    if (timeline_total != 0xffffffffU) {
      ++timeline_total;
    }
  }
};

}  // namespace finwave::proxy
