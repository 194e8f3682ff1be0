#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rules/segment_facts.hpp"
#include "rules/vocabulary.hpp"

namespace finwave::proxy {

/// What the data path did with a queued segment. The tracker is told after the rule engine has
/// decided, and only segments that went out change what the hosts know (a dropped final ACK does
/// not acknowledge fin2).
enum class Verdict : std::uint8_t {
  kAccept,     ///< Passed on unchanged.
  kDrop,       ///< Never reaches the other host.
  kDelay,      ///< Held, passed on later (FlowTable::release() tells the tracker when).
  kDuplicate,  ///< Passed on, plus a copy injected behind it.
  kReset,      ///< Replaced on the wire by an RST from the same sender.
  /// Passed on by the kernel at once, a copy logged to finwave (the log path): no rule could act
  /// on it, so finwave decided nothing.
  kObserved,
};

/// The verdict's name in timelines and outcomes; "" for a value that is no verdict.
constexpr std::string_view to_string(Verdict verdict) noexcept {
  switch (verdict) {
    case Verdict::kAccept:
      return "accept";
    case Verdict::kDrop:
      return "drop";
    case Verdict::kDelay:
      return "delay";
    case Verdict::kDuplicate:
      return "duplicate";
    case Verdict::kReset:
      return "reset";
    case Verdict::kObserved:
      return "observed";
  }
  return "";
}
using VerdictNames = rules::Vocabulary<Verdict, Verdict::kObserved>;

/// Who closed first: the sender of fin1, "both" for a simultaneous close, "none" when no FIN was
/// seen (an RST before any FIN).
enum class Closer : std::uint8_t { kNone, kClient, kServer, kBoth };
constexpr std::string_view to_string(Closer closer) noexcept {
  switch (closer) {
    case Closer::kNone:
      return "none";
    case Closer::kClient:
      return "client";
    case Closer::kServer:
      return "server";
    case Closer::kBoth:
      return "both";
  }
  return "";
}
using CloserNames = rules::Vocabulary<Closer, Closer::kBoth>;

/// The shape of the FIN exchange. kFourWay, kThreeWay and kSimultaneous need both FINs; a
/// teardown that ended by an RST before the second FIN is kReset, one that did neither is
/// kIncomplete.
enum class TeardownKind : std::uint8_t {
  kFourWay,       ///< fin1, a separate ack1 (or data acknowledging fin1), fin2, final_ack.
  kThreeWay,      ///< ack1 rides on fin2: fin2 is the passive side's first ACK of fin1.
  kSimultaneous,  ///< The second FIN does not acknowledge the first, nor did anything before it.
  kReset,         ///< An RST came before the second FIN.
  kIncomplete,    ///< Neither the second FIN nor an RST.
};
constexpr std::string_view to_string(TeardownKind kind) noexcept {
  switch (kind) {
    case TeardownKind::kFourWay:
      return "four_way";
    case TeardownKind::kThreeWay:
      return "three_way";
    case TeardownKind::kSimultaneous:
      return "simultaneous";
    case TeardownKind::kReset:
      return "reset";
    case TeardownKind::kIncomplete:
      return "incomplete";
  }
  return "";
}
using TeardownKindNames = rules::Vocabulary<TeardownKind, TeardownKind::kIncomplete>;

/// How the teardown ended: kClean once both FINs were acknowledged by segments that went out and
/// the settle window passed; kReset if an RST went out (in any stage, even after a clean close);
/// kTimeout otherwise (nothing resolved it within the linger window, or finwave shut down first).
enum class TeardownResult : std::uint8_t { kClean, kReset, kTimeout };
constexpr std::string_view to_string(TeardownResult result) noexcept {
  switch (result) {
    case TeardownResult::kClean:
      return "clean";
    case TeardownResult::kReset:
      return "reset";
    case TeardownResult::kTimeout:
      return "timeout";
  }
  return "";
}
using TeardownResultNames = rules::Vocabulary<TeardownResult, TeardownResult::kTimeout>;

/// Where a connection's teardown stood, judged from the segments seen before the one at hand.
/// Used for `rst.stage` in outcomes and the `flows` listing. "Acknowledged" counts only ACKs that
/// went out; "sent" counts every segment a host sent, dropped ones too.
enum class Stage : std::uint8_t {
  kBeforeFin,  ///< No FIN from either side yet.
  kFinWait,    ///< One side has sent its FIN, the other has not (FIN_WAIT_1/2 vs CLOSE_WAIT).
  kClosing,    ///< Both FINs sent in a simultaneous close, not both acknowledged yet.
  kLastAck,    ///< Both FINs sent, fin2 (or fin1) not acknowledged yet (passive side in LAST_ACK).
  kTimeWait,   ///< Both FINs acknowledged; the settle window runs (active closer in TIME_WAIT).
  /// For an RST only: both FINs sent, not both acknowledged, and the RST's sender had its own
  /// FIN acknowledged and had sent its ACK of the peer's FIN: from where it stood its close was
  /// complete and its socket may be gone, while the peer still waited for that ACK. The classic
  /// case: the final ACK was lost, fin2 is retransmitted, and the active closer answers with an
  /// RST because its socket no longer exists.
  kAfterClose,
};
constexpr std::string_view to_string(Stage stage) noexcept {
  switch (stage) {
    case Stage::kBeforeFin:
      return "before_fin";
    case Stage::kFinWait:
      return "fin_wait";
    case Stage::kClosing:
      return "closing";
    case Stage::kLastAck:
      return "last_ack";
    case Stage::kTimeWait:
      return "time_wait";
    case Stage::kAfterClose:
      return "after_close";
  }
  return "";
}
using StageNames = rules::Vocabulary<Stage, Stage::kAfterClose>;

/// What made the tracker report a flow.
enum class EndReason : std::uint8_t {
  kSettled,   ///< Settle window passed after both FINs were acknowledged.
  kRst,       ///< Settle window passed after an RST.
  kLinger,    ///< Linger window passed since the flow's last segment.
  kNewSyn,    ///< A new SYN took the same 4-tuple (TIME_WAIT reuse) while this flow was open.
  kShutdown,  ///< finwave shut down (FlowTable::finish_all).
};
/// The reason's name in outcomes (`ended_by`); "" for a value that is no reason.
constexpr std::string_view to_string(EndReason reason) noexcept {
  switch (reason) {
    case EndReason::kSettled:
      return "settle";
    case EndReason::kRst:
      return "rst";
    case EndReason::kLinger:
      return "linger";
    case EndReason::kNewSyn:
      return "new_syn";
    case EndReason::kShutdown:
      return "shutdown";
  }
  return "";
}
using EndReasonNames = rules::Vocabulary<EndReason, EndReason::kShutdown>;

/// "198.18.1.2:40000" or "[2001:db8:1::2]:40000".
std::string to_string(const rules::Endpoint& endpoint);

/// The inverse of to_string(Endpoint), the one endpoint parser (outcomes read back, filters,
/// finwave-ladder): "ADDRESS:PORT" with an IPv4 address, "[ADDRESS]:PORT" with an IPv6 one
/// (any form inet_pton() accepts), PORT 0-65535 in at most five decimal digits. std::nullopt
/// for anything else: an unbracketed IPv6 address, a bracketed IPv4 one, a sign, a missing
/// port, an embedded NUL. Port 0 is accepted because to_string() can write it; a caller that
/// needs a connection's port rejects it.
std::optional<rules::Endpoint> endpoint_from_string(std::string_view text);

/// A bare address, "198.18.2.2" or "2001:db8:2::2", as an Endpoint with port 0; std::nullopt
/// for anything else.
std::optional<rules::Endpoint> address_from_string(std::string_view text);

/// Serial-number arithmetic on 32-bit TCP sequence numbers (RFC 1982): `a` comes before `b` when
/// `b - a` taken modulo 2^32 is in (0, 2^31).
constexpr bool seq_before(std::uint32_t a, std::uint32_t b) noexcept {
  return static_cast<std::int32_t>(a - b) < 0;
}
constexpr bool seq_after(std::uint32_t a, std::uint32_t b) noexcept { return seq_before(b, a); }
constexpr bool seq_at_or_after(std::uint32_t a, std::uint32_t b) noexcept {
  return !seq_before(a, b);
}
constexpr bool seq_at_or_before(std::uint32_t a, std::uint32_t b) noexcept {
  return !seq_after(a, b);
}

}  // namespace finwave::proxy
