#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proxy/tracker/teardown.hpp"
#include "rules/role.hpp"
#include "rules/segment_facts.hpp"

namespace finwave::proxy {

/// One segment of a flow as the tracker saw it, with what finwave did to it.
struct TimelineEntry {
  /// Microseconds since the flow's first FIN (negative for the handshake before it); for a flow
  /// reset before any FIN, since the RST.
  std::int64_t t_us = 0;
  rules::Side from = rules::Side::kClient;
  rules::Role role = rules::Role::kAck;
  bool retx = false;       ///< Same sequence space already seen from this side.
  bool dup_ack = false;    ///< A repeated ACK of a FIN this side had already acknowledged.
  bool bogus = false;      ///< Contradicts what was seen (e.g. a FIN at another sequence number).
  std::uint8_t flags = 0;  ///< nf::tcp_flag bits.
  std::uint32_t seq = 0;   ///< Absolute, as `tcpdump -S` prints it.
  std::uint32_t ack = 0;
  std::uint32_t len = 0;  ///< Payload bytes.
  Verdict verdict = Verdict::kAccept;
  /// kDelay: how long finwave held the segment, in whole milliseconds: the time from when it was
  /// held to when it went out if `released`, else the delay the rule asked for (the outcome was
  /// built while the segment was still held). Unknown (nullopt) for other verdicts, and in JSON
  /// from producers that did not write it.
  std::optional<std::uint32_t> hold_ms;
  bool released = false;  ///< kDelay: the held segment went out before the outcome was built.
  /// Copies finwave sent behind the segment (kDuplicate, or kDelay followed by duplication);
  /// 0 otherwise, or unknown.
  std::uint16_t copies = 0;
};

/// A rule's effect on one flow: how many of its segments `rule` turned into `action` as `role`.
struct ActionRecord {
  std::string rule;
  rules::Role role = rules::Role::kAny;
  Verdict action = Verdict::kAccept;
  std::uint32_t count = 0;
};

/// The first RST that went out on a flow.
struct RstInfo {
  rules::Side from = rules::Side::kClient;
  Stage stage = Stage::kBeforeFin;
  /// The RST answered a retransmitted FIN from the other side that reached its sender (any of
  /// them, not only the latest): the sender had no socket for the connection any more.
  bool answers_fin_retransmit = false;
};

/// How one connection's teardown ended: produced exactly once per flow by FlowTable. Plain data;
/// the strings and vectors are allocated when the outcome is built, never per packet.
struct Outcome {
  std::uint64_t id = 0;  ///< Flow id, unique within one FlowTable (1, 2, ...).
  rules::Endpoint client;
  rules::Endpoint server;
  /// False when the flow was first seen at its FIN (no handshake): the sides were then named by
  /// the port rule of FlowTable (the lower port is the server).
  bool sides_known = true;
  Closer closer = Closer::kNone;
  TeardownKind kind = TeardownKind::kIncomplete;
  TeardownResult result = TeardownResult::kTimeout;
  EndReason ended_by = EndReason::kLinger;
  std::uint32_t fin_retransmits_client = 0;
  std::uint32_t fin_retransmits_server = 0;
  std::uint32_t final_acks_seen = 0;     ///< Segments named final_ack, whatever their verdict.
  std::uint32_t final_acks_dropped = 0;  ///< Of those, the ones finwave dropped.
  std::optional<RstInfo> rst;
  /// From the first FIN to the flow's last segment, or to the RST. 0 for an RST before any FIN.
  std::int64_t teardown_us = 0;
  /// Half-close bytes the passive side sent after acknowledging fin1, from sequence numbers.
  std::uint64_t data_after_fin_bytes = 0;
  std::uint32_t dup_acks = 0;          ///< Segments flagged dup_ack.
  std::uint32_t segments = 0;          ///< Segments of this flow the tracker saw (bogus ones too).
  std::uint32_t timeline_dropped = 0;  ///< Segments left out of `timeline` (kept: head and tail).
  std::uint32_t actions_dropped = 0;   ///< Rule actions beyond the per-flow action slots.
  /// Built from incomplete data: the log path lost copies while the flow was tracked (or just
  /// before it began), so segments may be missing from its counts and timeline.
  bool incomplete = false;
  std::vector<ActionRecord> actions;
  std::vector<TimelineEntry> timeline;  ///< In the order the tracker saw the segments.
};

}  // namespace finwave::proxy
