#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "netfilter/packet.hpp"
#include "proxy/tracker/outcome.hpp"
#include "proxy/tracker/teardown.hpp"
#include "rules/flow_rule_state.hpp"
#include "rules/role.hpp"
#include "rules/segment_facts.hpp"

namespace finwave::proxy {

/// The tracker's knobs. Times are monotonic microseconds, like every `now_us` the table is given.
struct TrackerConfig {
  /// How long a fully acknowledged teardown waits for stray FIN retransmissions before it is
  /// reported clean, and how long a reset flow is kept so that stray segments land in its timeline.
  std::uint64_t settle_us = 1'000'000;
  /// How long a teardown that has not resolved is kept after its last segment before it is
  /// reported as a timeout.
  std::uint64_t linger_us = 120'000'000;
  /// Flows tracked at once (each costs FlowTable::flow_record_bytes() plus 16 bytes of index).
  std::size_t max_flows = 131072;
  /// How long a flow with no FIN yet is kept after its last segment (before the first FIN only
  /// SYN, SYN-ACK and RST are captured, so this is counted from the handshake). Evicted silently.
  std::uint64_t idle_us = 600'000'000;
  /// When the table is full, make room for a new flow by evicting the flow with no FIN yet that
  /// was seen least recently (counted in evicted_full). A flow whose teardown has begun is never
  /// evicted: when every tracked flow is in teardown, new flows are refused (refused_full).
  bool evict_idle_when_full = true;
  /// Seed of the 5-tuple hash. The daemon may pass a random value to make collisions unguessable;
  /// tests pass a fixed one.
  std::uint64_t hash_seed = 0x66696e77617665ULL;
};

/// A handle on a tracked flow: stays valid while the flow is tracked and is refused (not
/// dangling) after the flow was reported or evicted.
struct FlowRef {
  static constexpr std::uint32_t kNoSlot = 0xffffffffU;
  std::uint32_t slot = kNoSlot;
  std::uint32_t generation = 0;
  bool valid() const noexcept { return slot != kNoSlot; }
};

/// What FlowTable::classify() learned about one segment. Valid until the next call into the table
/// (the `rule_state` pointer included).
struct Classified {
  /// Invalid when the segment is not tracked: a pure ACK, data or RST for an unknown flow, or a
  /// new flow refused because the table is full. `facts` is then a best-effort guess (sides by the
  /// port rule), `rule_state` is null and commit() only counts.
  FlowRef flow;
  /// Role, retx, from, active closer and the client/server endpoints: what the rule engine needs.
  rules::SegmentFacts facts;
  bool dup_ack = false;  ///< Repeats an ACK of a FIN this side had already acknowledged.
  /// Contradicts what the tracker saw (a FIN at another sequence number than this side's recorded
  /// FIN, data beyond a side's FIN, an ACK beyond the peer's FIN). It is recorded in the timeline
  /// and counted but changes nothing else in the flow. The role is what the segment claims to be.
  bool bogus = false;
  bool sides_known = false;   ///< False when the flow was first seen at a FIN.
  std::uint64_t flow_id = 0;  ///< 0 when untracked.
  /// The rule engine's per-connection counters for this flow; null when untracked.
  rules::FlowRuleState* rule_state = nullptr;
};

/// What a delay or duplicate verdict amounted to, as the data path carried it out.
struct VerdictAmounts {
  std::uint32_t delay_us = 0;  ///< kDelay: the hold the rule asked for.
  /// kDuplicate, or kDelay followed by duplication: copies sent behind the segment.
  std::uint16_t copies = 0;
};

/// Counters for `stats`. All cumulative except flows_tracked.
struct TrackerCounters {
  std::uint64_t flows_tracked = 0;  ///< Flows in the table now.
  std::uint64_t flows_created = 0;
  std::uint64_t outcomes_emitted = 0;
  std::uint64_t evicted_idle = 0;       ///< Flows with no FIN evicted after idle_us.
  std::uint64_t evicted_full = 0;       ///< Flows with no FIN evicted to make room (table full).
  std::uint64_t refused_full = 0;       ///< New flows refused: table full of flows in teardown.
  std::uint64_t superseded = 0;         ///< Flows with no FIN replaced by a SYN with a new ISN.
  std::uint64_t segments = 0;           ///< Segments classified.
  std::uint64_t unknown_flow_acks = 0;  ///< ACK or data for an unknown flow: ignored.
  std::uint64_t unknown_flow_rsts = 0;  ///< RST for an unknown flow: ignored.
  std::uint64_t bogus_segments = 0;     ///< See Classified::bogus.
  std::uint64_t outcomes_lost = 0;      ///< Outcomes that could not be built (out of memory).
};

/// One line of the `flows` listing.
struct FlowSummary {
  std::uint64_t id = 0;
  rules::Endpoint client;
  rules::Endpoint server;
  bool sides_known = true;
  /// to_string(Stage) of the flow's current stage (never "after_close"), or "reset" once an RST
  /// went out and the flow waits out its settle window.
  std::string_view stage;
  Closer closer = Closer::kNone;
  std::uint64_t first_seen_us = 0;
  std::uint64_t last_segment_us = 0;
  std::uint32_t segments = 0;
};

/// The flow table and teardown tracker: names every queued segment's role in its connection's
/// teardown, follows the teardown through the verdicts finwave gave, and produces exactly one
/// Outcome per connection whose teardown began.
///
/// Pure code for the loop thread: no I/O, no clock (time comes in as monotonic microseconds; a
/// `now_us` smaller than an earlier one is taken as the earlier one), no randomness, no exception
/// and no allocation per segment (the table grows by chunks as flows are added, and outcomes are
/// allocated when built). Not thread-safe.
///
/// Per segment the data path calls classify(), lets the rule engine decide, then commit() with
/// the verdict; for a held (delayed) segment it calls release() when the segment finally goes out.
/// The loop calls advance() on a timer and finish_all() at shutdown.
///
/// Flows are keyed by the 5-tuple in either direction, IPv4 and IPv6. The client is the side that
/// sent the SYN (or did not send the SYN-ACK). A connection first seen at a FIN (finwave started
/// late, or the flow was evicted) is tracked with sides named by port: the endpoint with the lower
/// port is the server (services listen on low ports, clients use ephemeral ones); on equal ports
/// the lower address (bytewise) is the server. Its outcome says `sides_known: false`. A pure ACK,
/// data or an RST for an unknown flow creates nothing (ACKs of a connection finwave never saw
/// are common after a restart, and a stray RST has no teardown to report).
///
/// Two kinds of knowledge are kept apart. What a host *sent* (its FIN and its sequence numbers,
/// whether it acknowledged the peer's FIN) is taken from every committed segment whatever the
/// verdict, because a dropped segment was still sent: its retransmission is a retx, and the first
/// FIN is fin1 even if finwave dropped it. What a host *received* (its FIN acknowledged, an RST)
/// comes only from segments that went out. Roles and stages use the first; resolution (clean,
/// reset) uses the second.
///
/// Timeline: each commit() appends one entry, in call order, stamped with commit's `now_us` and
/// the verdict. A held segment appears once, when it was held (verdict "delay"); release() adds
/// no entry but moves the flow's last-segment time. Times in the outcome are relative to the first
/// FIN seen (or the RST when there was no FIN before it), so the handshake has negative times.
///
/// Outcome timing: outcomes come out of advance() only (and finish_all()), never from commit(),
/// so an outcome is late by at most the caller's advance() period.
///
/// Storage: a flat open-addressing index (linear probing, load <= 1/2, 8 bytes a slot, doubles as
/// needed up to 2 * max_flows rounded to a power of two) over fixed-size flow records kept in
/// chunks of 256 that never move, so FlowRef and rule_state stay put while a flow lives.
class FlowTable {
 public:
  /// Distinct (rule, role, action) triples kept per flow; more are counted in `actions_dropped`.
  static constexpr std::size_t kActionSlots = 8;

  explicit FlowTable(TrackerConfig config = {});
  ~FlowTable();
  FlowTable(FlowTable&&) noexcept;
  FlowTable& operator=(FlowTable&&) noexcept;
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  /// Finds (or creates) the segment's flow and names the segment's role. Changes no teardown
  /// state; the only side effects are creating a flow, and, for a SYN with a new ISN on a 4-tuple
  /// whose old connection is still tracked, retiring the old flow: if its teardown had begun, its
  /// outcome (`ended_by: new_syn`) is queued for the next advance().
  Classified classify(const nf::TcpSegment& segment, std::uint64_t now_us) noexcept;

  /// Records what the data path did with the segment classify() just named, and applies it:
  /// - every verdict: a timeline entry (with the verdict), the counters (FIN retransmits, final
  ///   ACKs seen and dropped, dup ACKs), what the sender is known to have sent (its FIN and its
  ///   sequence numbers, used to name later segments), and the flow's last-segment time;
  /// - kAccept and kDuplicate: the segment reached the other host: its ACK may acknowledge a FIN,
  ///   an RST resets the flow;
  /// - kDrop: nothing reached the other host (a dropped final ACK does not acknowledge fin2);
  /// - kDelay: as kDrop until release() says the held segment went out;
  /// - kReset: the segment was replaced by an RST from the same sender: the flow is reset.
  /// A non-empty `rule_name` records an action (rule, role, verdict) on the flow; the name is
  /// copied (interned once per distinct name). `amounts` go into the timeline entry: the delay
  /// asked for (kDelay; release() replaces it with the time the segment was held) and the copies
  /// (kDuplicate, kDelay). Bogus segments only get a timeline entry. Does nothing for an
  /// untracked segment.
  void commit(const Classified& classified, const nf::TcpSegment& segment, Verdict verdict,
              std::string_view rule_name, std::uint64_t now_us,
              VerdictAmounts amounts = {}) noexcept;

  /// A segment committed with Verdict::kDelay went out now: applies it as an accepted segment
  /// would have been (no new timeline entry; its entry is marked released, with the time it was
  /// held from its commit() to now in place of the delay asked for). A released FIN
  /// retransmission can be answered by an RST like one that went out at once, whatever went by
  /// while it was held. Returns false if the flow is no longer tracked. Not calling it for a
  /// held segment that is finally discarded is correct.
  bool release(FlowRef flow, const nf::TcpSegment& segment, std::uint64_t now_us) noexcept;

  /// Appends the outcome of every flow whose teardown resolved by `now_us`, and evicts idle flows
  /// with no FIN:
  /// - clean: both FINs acknowledged (by segments that went out) and settle_us passed since the
  ///   later of the last such ACK and the last FIN retransmission;
  /// - reset: settle_us passed since the first RST that went out;
  /// - timeout: linger_us passed since the flow's last segment without either;
  /// - queued outcomes of flows retired by a new SYN.
  /// Outcomes that cannot be allocated are counted in outcomes_lost; nothing throws.
  void advance(std::uint64_t now_us, std::vector<Outcome>& out) noexcept;

  /// Shutdown: first does what advance(now_us) does, then appends the outcome of every other flow
  /// whose teardown has begun (a FIN or an RST was seen) with the result as it stands (clean if
  /// both FINs were acknowledged, reset after an RST, else timeout) and `ended_by: shutdown`, and
  /// forgets every flow (those with no FIN silently). The table stays usable.
  void finish_all(std::uint64_t now_us, std::vector<Outcome>& out) noexcept;

  /// Calls `visit(const FlowSummary&)` for every tracked flow, in no particular order. The
  /// visitor must not call into the table.
  template <class Visitor>
  void for_each_flow(Visitor&& visit) const {
    FlowSummary summary;
    for (std::uint32_t slot = 0; slot < slots_used_; ++slot) {
      if (summarize(slot, summary)) visit(static_cast<const FlowSummary&>(summary));
    }
  }

  /// The log path lost copies (whose flows cannot be known): marks every flow tracked now, and
  /// every flow created within kIncompleteWindowUs after `now_us`, incomplete (Outcome).
  void mark_incomplete(std::uint64_t now_us) noexcept;
  /// A lost copy is noticed when the next one arrives; the flow of a lost SYN may begin at its
  /// SYN-ACK or later, within a retransmission or two.
  static constexpr std::uint64_t kIncompleteWindowUs = 3'000'000;

  const TrackerCounters& counters() const noexcept { return counters_; }
  const TrackerConfig& config() const noexcept { return config_; }
  /// Flows tracked now.
  std::size_t size() const noexcept { return static_cast<std::size_t>(counters_.flows_tracked); }
  /// Bytes held by flow records, the index and interned rule names.
  std::size_t memory_bytes() const noexcept;
  /// sizeof the per-flow record, timeline and rule state included.
  static std::size_t flow_record_bytes() noexcept;

 private:
  struct FlowRecord;
  struct IndexSlot {
    std::uint32_t hash = 0;
    std::uint32_t record = 0;  ///< Slot + 1; 0 when the index slot is empty.
  };
  enum class ListId : std::uint8_t { kNone, kIdle, kLinger, kSettle };
  static constexpr std::size_t kLists = 4;

  FlowRecord& record(std::uint32_t slot) const noexcept;
  FlowRecord* resolve(FlowRef ref) const noexcept;
  bool summarize(std::uint32_t slot, FlowSummary& out) const noexcept;
  std::uint64_t clamp_now(std::uint64_t now_us) noexcept;

  std::uint32_t hash_of(const rules::Endpoint& a, const rules::Endpoint& b) const noexcept;
  std::uint32_t find(const nf::TcpSegment& segment, std::uint32_t hash,
                     rules::Side& from) const noexcept;
  void index_insert(std::uint32_t hash, std::uint32_t slot) noexcept;
  void index_erase(std::uint32_t hash, std::uint32_t slot) noexcept;
  bool index_reserve() noexcept;

  std::uint32_t create(const nf::TcpSegment& segment, std::uint32_t hash, rules::Side sender,
                       bool sides_known, std::uint64_t now_us) noexcept;
  std::uint32_t allocate_record() noexcept;
  void remove(std::uint32_t slot) noexcept;

  void list_unlink(std::uint32_t slot) noexcept;
  void list_push_back(ListId list, std::uint32_t slot) noexcept;

  void name_segment(const FlowRecord& flow, rules::Side from, const nf::TcpSegment& segment,
                    Classified& out) const noexcept;
  void observe(FlowRecord& flow, std::uint32_t slot, const Classified& classified,
               const nf::TcpSegment& segment, Verdict verdict, std::uint64_t now_us) noexcept;
  void deliver(FlowRecord& flow, std::uint32_t slot, rules::Side from,
               const nf::TcpSegment& segment, std::uint64_t now_us) noexcept;
  void reset_flow(FlowRecord& flow, std::uint32_t slot, rules::Side from, Stage stage,
                  bool answers_fin_retransmit, std::uint64_t now_us) noexcept;
  void touch(FlowRecord& flow, std::uint32_t slot, std::uint64_t now_us) noexcept;
  void record_action(FlowRecord& flow, std::string_view rule_name, rules::Role role,
                     Verdict verdict) noexcept;
  std::uint16_t intern(std::string_view rule_name) noexcept;

  Outcome build_outcome(const FlowRecord& flow, EndReason reason) const;
  /// What the rules did to `flow`, by rule name.
  std::vector<ActionRecord> actions_of(const FlowRecord& flow) const;
  void emit(std::uint32_t slot, EndReason reason, std::vector<Outcome>& out) noexcept;

  TrackerConfig config_;
  TrackerCounters counters_;
  std::vector<std::unique_ptr<FlowRecord[]>> chunks_;
  std::uint32_t slots_used_ = 0;  ///< High-water mark of record slots handed out.
  std::uint32_t free_head_ = FlowRef::kNoSlot;
  std::vector<IndexSlot> index_;
  std::size_t index_limit_ = 0;  ///< Largest index size (power of two) for max_flows.
  std::array<std::uint32_t, kLists> list_head_{};  ///< Set to kNoSlot by the constructor.
  std::array<std::uint32_t, kLists> list_tail_{};
  std::uint64_t last_now_ = 0;
  std::uint64_t incomplete_until_us_ = 0;  ///< mark_incomplete()'s window for new flows.
  std::uint64_t next_id_ = 1;
  std::vector<Outcome> pending_;  ///< Outcomes of flows retired by a new SYN.
  std::vector<std::string> rule_names_;
  std::uint16_t last_rule_ = 0xffff;  ///< Index of the most recently interned name.
};

}  // namespace finwave::proxy
