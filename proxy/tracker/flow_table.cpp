#include "proxy/tracker/flow_table.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "proxy/tracker/timeline_ring.hpp"

namespace finwave::proxy {
namespace {

using rules::Role;
using rules::Side;
namespace flag = nf::tcp_flag;

constexpr std::uint32_t kNil = FlowRef::kNoSlot;
constexpr std::uint32_t kChunkShift = 8;
constexpr std::uint32_t kChunkSize = 1U << kChunkShift;
constexpr std::size_t kInitialIndex = 1024;
// Slots are 32-bit and the index needs twice as many entries as flows.
constexpr std::size_t kMaxFlowsLimit = std::size_t{1} << 28;
constexpr std::uint16_t kNoRule = 0xffff;

constexpr std::size_t index_of(Side side) noexcept { return side == Side::kClient ? 0 : 1; }

rules::Endpoint endpoint_of(const nf::IpAddress& address, std::uint16_t port) noexcept {
  rules::Endpoint endpoint;
  endpoint.family = address.family;
  endpoint.address = address.bytes;
  endpoint.port = port;
  return endpoint;
}

bool same_endpoint(const rules::Endpoint& endpoint, const nf::IpAddress& address,
                   std::uint16_t port) noexcept {
  return endpoint.port == port && endpoint.family == address.family &&
         endpoint.address == address.bytes;
}

bool endpoint_less(const rules::Endpoint& a, const rules::Endpoint& b) noexcept {
  if (a.address != b.address) {
    return a.address < b.address;
  }
  return a.port < b.port;
}

// The port rule for a flow first seen at its FIN (see FlowTable): the lower port is the server,
// and on equal ports the lower address.
bool is_server_by_port(const rules::Endpoint& a, const rules::Endpoint& b) noexcept {
  if (a.port != b.port) {
    return a.port < b.port;
  }
  return a.address < b.address;
}

std::uint64_t mix(std::uint64_t hash, std::uint64_t value) noexcept {
  hash ^= value;
  hash *= 0xbf58476d1ce4e5b9ULL;
  hash ^= hash >> 31U;
  return hash;
}

std::uint64_t load64(const std::uint8_t* bytes) noexcept {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

// Did the segment reach the other host as it is?
constexpr bool delivers(Verdict verdict) noexcept {
  return verdict == Verdict::kAccept || verdict == Verdict::kDuplicate;
}

}  // namespace

/// Everything the tracker keeps about one connection, in fixed size (no pointers to the heap).
struct FlowTable::FlowRecord {
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
    std::uint16_t rule = kNoRule;
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
  std::uint32_t prev = kNil;  ///< Links in one of the table's lists (or the free list).
  std::uint32_t next = kNil;
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
    return segment.has(flag::kAck) && peer.fin_seen && segment.ack == peer.fin_seq + 1U;
  }
  static bool acks_beyond_fin(const nf::TcpSegment& segment, const SideState& peer) noexcept {
    return segment.has(flag::kAck) && peer.fin_seen && seq_after(segment.ack, peer.fin_seq + 1U);
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
    return rst.has(flag::kAck) && rst.ack == them.fin_seq + 1U;
  }

  /// Notes that a retransmission of `from`'s FIN went out.
  void fin_retransmit_delivered(Side from, const nf::TcpSegment& fin) noexcept {
    SideState& me = side(from);
    me.fin_retx_delivered = true;
    me.fin_retx_had_ack = fin.has(flag::kAck);
    me.fin_retx_ack = fin.ack;
  }

  SideState& side(Side s) noexcept { return sides[index_of(s)]; }
  const SideState& side(Side s) const noexcept { return sides[index_of(s)]; }
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

FlowTable::FlowTable(TrackerConfig config) : config_(config) {
  config_.max_flows = std::min(config_.max_flows, kMaxFlowsLimit);
  list_head_.fill(kNil);
  list_tail_.fill(kNil);
  index_limit_ = kInitialIndex;
  while (index_limit_ < config_.max_flows * 2) {
    index_limit_ *= 2;
  }
  index_.resize(kInitialIndex);
}

FlowTable::~FlowTable() = default;
FlowTable::FlowTable(FlowTable&&) noexcept = default;
FlowTable& FlowTable::operator=(FlowTable&&) noexcept = default;

std::size_t FlowTable::flow_record_bytes() noexcept { return sizeof(FlowRecord); }

std::size_t FlowTable::memory_bytes() const noexcept {
  std::size_t bytes = chunks_.size() * kChunkSize * sizeof(FlowRecord);
  bytes += index_.capacity() * sizeof(IndexSlot);
  for (const std::string& name : rule_names_) {
    bytes += sizeof(std::string) + name.capacity();
  }
  return bytes;
}

FlowTable::FlowRecord& FlowTable::record(std::uint32_t slot) const noexcept {
  return chunks_[slot >> kChunkShift][slot & (kChunkSize - 1)];
}

FlowTable::FlowRecord* FlowTable::resolve(FlowRef ref) const noexcept {
  if (!ref.valid() || ref.slot >= slots_used_) {
    return nullptr;
  }
  FlowRecord& flow = record(ref.slot);
  if (!flow.in_use || flow.generation != ref.generation) {
    return nullptr;
  }
  return &flow;
}

std::uint64_t FlowTable::clamp_now(std::uint64_t now_us) noexcept {
  if (now_us < last_now_) {
    return last_now_;
  }
  last_now_ = now_us;
  return now_us;
}

// ---------------------------------------------------------------------------------------------
// Index: open addressing, linear probing, backward-shift deletion (no tombstones).

std::uint32_t FlowTable::hash_of(const rules::Endpoint& a,
                                 const rules::Endpoint& b) const noexcept {
  // Direction-independent: the two endpoints are hashed in a fixed order.
  const rules::Endpoint& lo = endpoint_less(a, b) ? a : b;
  const rules::Endpoint& hi = endpoint_less(a, b) ? b : a;
  std::uint64_t hash = mix(config_.hash_seed, a.family);
  hash = mix(hash, load64(lo.address.data()));
  hash = mix(hash, load64(lo.address.data() + 8));
  hash = mix(hash, (std::uint64_t{lo.port} << 16U) | hi.port);
  hash = mix(hash, load64(hi.address.data()));
  hash = mix(hash, load64(hi.address.data() + 8));
  return static_cast<std::uint32_t>(hash ^ (hash >> 32U));
}

std::uint32_t FlowTable::find(const nf::TcpSegment& segment, std::uint32_t hash,
                              Side& from) const noexcept {
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const IndexSlot& entry = index_[i];
    if (entry.record == 0) {
      return kNil;
    }
    if (entry.hash != hash) {
      continue;
    }
    const std::uint32_t slot = entry.record - 1;
    const FlowRecord& flow = record(slot);
    if (same_endpoint(flow.ends[0], segment.src, segment.src_port) &&
        same_endpoint(flow.ends[1], segment.dst, segment.dst_port)) {
      from = Side::kClient;
      return slot;
    }
    if (same_endpoint(flow.ends[1], segment.src, segment.src_port) &&
        same_endpoint(flow.ends[0], segment.dst, segment.dst_port)) {
      from = Side::kServer;
      return slot;
    }
  }
}

void FlowTable::index_insert(std::uint32_t hash, std::uint32_t slot) noexcept {
  const std::size_t mask = index_.size() - 1;
  std::size_t i = hash & mask;
  while (index_[i].record != 0) {
    i = (i + 1) & mask;
  }
  index_[i] = IndexSlot{hash, slot + 1};
}

void FlowTable::index_erase(std::uint32_t hash, std::uint32_t slot) noexcept {
  const std::size_t mask = index_.size() - 1;
  std::size_t hole = hash & mask;
  while (index_[hole].record != slot + 1) {
    if (index_[hole].record == 0) {
      return;  // Not indexed: nothing to do.
    }
    hole = (hole + 1) & mask;
  }
  // Shift back every later entry of the probe run that may live in the hole.
  for (std::size_t j = (hole + 1) & mask; index_[j].record != 0; j = (j + 1) & mask) {
    const std::size_t home = index_[j].hash & mask;
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) {
      continue;
    }
    index_[hole] = index_[j];
    hole = j;
  }
  index_[hole] = IndexSlot{};
}

bool FlowTable::index_reserve() noexcept {
  if ((counters_.flows_tracked + 1) * 2 <= index_.size()) {
    return true;
  }
  if (index_.size() >= index_limit_) {
    return false;
  }
  std::vector<IndexSlot> old;
  try {
    old.swap(index_);
    index_.assign(old.size() * 2, IndexSlot{});
  } catch (...) {
    index_.swap(old);
    return false;
  }
  for (const IndexSlot& entry : old) {
    if (entry.record != 0) {
      index_insert(entry.hash, entry.record - 1);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Records and lists.

std::uint32_t FlowTable::allocate_record() noexcept {
  if (free_head_ != kNil) {
    const std::uint32_t slot = free_head_;
    free_head_ = record(slot).next;
    return slot;
  }
  if (slots_used_ == chunks_.size() * kChunkSize) {
    try {
      chunks_.push_back(std::make_unique<FlowRecord[]>(kChunkSize));
    } catch (...) {
      return kNil;
    }
  }
  return slots_used_++;
}

std::uint32_t FlowTable::create(const nf::TcpSegment& segment, std::uint32_t hash, Side sender,
                                bool sides_known, std::uint64_t now_us) noexcept {
  if (counters_.flows_tracked >= config_.max_flows) {
    if (!config_.evict_idle_when_full ||
        list_head_[static_cast<std::size_t>(ListId::kIdle)] == kNil) {
      ++counters_.refused_full;
      return kNil;
    }
    remove(list_head_[static_cast<std::size_t>(ListId::kIdle)]);
    ++counters_.evicted_full;
  }
  if (!index_reserve()) {
    ++counters_.refused_full;
    return kNil;
  }
  const std::uint32_t slot = allocate_record();
  if (slot == kNil) {
    ++counters_.refused_full;
    return kNil;
  }
  FlowRecord& flow = record(slot);
  const std::uint32_t generation = flow.generation;
  flow = FlowRecord{};
  flow.generation = generation;
  flow.in_use = true;
  flow.id = next_id_++;
  flow.hash = hash;
  const rules::Endpoint src = endpoint_of(segment.src, segment.src_port);
  const rules::Endpoint dst = endpoint_of(segment.dst, segment.dst_port);
  flow.ends[0] = sender == Side::kClient ? src : dst;
  flow.ends[1] = sender == Side::kClient ? dst : src;
  flow.sides_known = sides_known;
  flow.created_us = now_us;
  flow.last_us = now_us;
  index_insert(hash, slot);
  list_push_back(ListId::kIdle, slot);
  ++counters_.flows_tracked;
  ++counters_.flows_created;
  return slot;
}

void FlowTable::remove(std::uint32_t slot) noexcept {
  FlowRecord& flow = record(slot);
  list_unlink(slot);
  index_erase(flow.hash, slot);
  flow.in_use = false;
  ++flow.generation;
  flow.next = free_head_;
  free_head_ = slot;
  --counters_.flows_tracked;
}

void FlowTable::list_unlink(std::uint32_t slot) noexcept {
  FlowRecord& flow = record(slot);
  if (flow.list == ListId::kNone) {
    return;
  }
  const auto list = static_cast<std::size_t>(flow.list);
  if (flow.prev != kNil) {
    record(flow.prev).next = flow.next;
  } else {
    list_head_[list] = flow.next;
  }
  if (flow.next != kNil) {
    record(flow.next).prev = flow.prev;
  } else {
    list_tail_[list] = flow.prev;
  }
  flow.prev = kNil;
  flow.next = kNil;
  flow.list = ListId::kNone;
}

void FlowTable::list_push_back(ListId list_id, std::uint32_t slot) noexcept {
  FlowRecord& flow = record(slot);
  const auto list = static_cast<std::size_t>(list_id);
  flow.list = list_id;
  flow.prev = list_tail_[list];
  flow.next = kNil;
  if (list_tail_[list] != kNil) {
    record(list_tail_[list]).next = slot;
  } else {
    list_head_[list] = slot;
  }
  list_tail_[list] = slot;
}

void FlowTable::touch(FlowRecord& flow, std::uint32_t slot, std::uint64_t now_us) noexcept {
  flow.last_us = std::max(flow.last_us, now_us);
  // The idle and linger lists are ordered by last segment time: moving to the back keeps them so.
  if (flow.list == ListId::kIdle || flow.list == ListId::kLinger) {
    const ListId list = flow.list;
    list_unlink(slot);
    list_push_back(list, slot);
  }
}

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

// ---------------------------------------------------------------------------------------------
// Outcomes.

Outcome FlowTable::build_outcome(const FlowRecord& flow, EndReason reason) const {
  Outcome outcome;
  outcome.id = flow.id;
  outcome.client = flow.ends[0];
  outcome.server = flow.ends[1];
  outcome.sides_known = flow.sides_known;
  outcome.closer = flow.closer();
  if (flow.both_fins()) {
    switch (flow.shape) {
      case FlowRecord::Shape::kThreeWay:
        outcome.kind = TeardownKind::kThreeWay;
        break;
      case FlowRecord::Shape::kSimultaneous:
        outcome.kind = TeardownKind::kSimultaneous;
        break;
      default:
        outcome.kind = TeardownKind::kFourWay;
        break;
    }
  } else {
    outcome.kind = flow.reset ? TeardownKind::kReset : TeardownKind::kIncomplete;
  }
  if (flow.reset) {
    outcome.result = TeardownResult::kReset;
  } else if (flow.both_acked()) {
    outcome.result = TeardownResult::kClean;
  } else {
    outcome.result = TeardownResult::kTimeout;
  }
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

  if (flow.fin1_seen) {
    const FlowRecord::SideState& passive = flow.side(rules::peer_of(flow.fin1_side));
    if (passive.data_start_seen) {
      std::uint32_t stream_end = passive.data_start;
      if (passive.fin_seen) {
        stream_end = passive.fin_seq;
      } else if (passive.end_seen) {
        stream_end = passive.max_end;
      }
      if (seq_after(stream_end, passive.data_start)) {
        outcome.data_after_fin_bytes = stream_end - passive.data_start;
      }
    }
  }
  outcome.dup_acks = flow.dup_acks;
  outcome.segments = flow.segments;
  outcome.timeline_dropped = static_cast<std::uint32_t>(timeline_dropped(flow.timeline_total));
  outcome.actions_dropped = flow.actions_dropped;

  outcome.actions.reserve(flow.action_count);
  for (std::size_t i = 0; i < flow.action_count; ++i) {
    const FlowRecord::ActionSlot& action = flow.actions[i];
    ActionRecord entry;
    entry.rule = action.rule < rule_names_.size() ? rule_names_[action.rule] : std::string("?");
    entry.role = action.role;
    entry.action = action.action;
    entry.count = action.count;
    outcome.actions.push_back(std::move(entry));
  }

  auto add_entry = [&](const FlowRecord::TimelineSlot& slot) {
    TimelineEntry entry;
    entry.t_us = static_cast<std::int64_t>(flow.time_of(slot)) - static_cast<std::int64_t>(origin);
    entry.from = (slot.bits & FlowRecord::kFromServer) != 0 ? Side::kServer : Side::kClient;
    entry.role = slot.role;
    entry.retx = (slot.bits & FlowRecord::kRetx) != 0;
    entry.dup_ack = (slot.bits & FlowRecord::kDupAck) != 0;
    entry.bogus = (slot.bits & FlowRecord::kBogus) != 0;
    entry.flags = slot.flags;
    entry.seq = slot.seq;
    entry.ack = slot.ack;
    entry.len = slot.len;
    entry.verdict = slot.verdict;
    if (slot.verdict == Verdict::kDelay) {
      entry.hold_ms = static_cast<std::uint32_t>(slot.hold_ms);
      entry.released = (slot.bits & FlowRecord::kReleased) != 0;
    }
    entry.copies = static_cast<std::uint16_t>(slot.copies);
    outcome.timeline.push_back(entry);
  };
  const std::size_t total = flow.timeline_total;
  outcome.timeline.reserve(std::min(total, kTimelineCapacity));
  for (std::size_t i = 0; i < std::min(total, kTimelineHead); ++i) {
    add_entry(flow.timeline[i]);
  }
  for (std::size_t i = timeline_tail_begin(total); i < total; ++i) {
    add_entry(flow.timeline[timeline_slot(i)]);
  }
  return outcome;
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
