#pragma once

#include <array>
#include <cstdint>

namespace finwave::proxy {

/// What the data path saw and did that the queue's own counters don't tell.
struct DataplaneCounters {
  /// Packets that were not a parsable TCP segment, by reason (indexed by nf::ParseError); each
  /// was accepted untouched.
  std::array<std::uint64_t, 16> parse_errors{};
  std::uint64_t segments = 0;  ///< Parsed queued TCP segments handed to the tracker.
  std::uint64_t logged = 0;    ///< Parsed logged copies handed to the tracker.
  /// Queued segments that arrived before the last logged copy the tracker was given: the two
  /// sockets were read out of the hook's order (see Dataplane::before_batch()). Never a
  /// segment and its cause: a copy is in its socket before anything it causes is queued.
  std::uint64_t order_inversions = 0;
  /// Times the log path was found to have lost copies; the flows then tracked are marked
  /// incomplete.
  std::uint64_t log_losses = 0;
  std::uint64_t rule_hits = 0;       ///< Segments a rule decided (pass rules included).
  std::uint64_t dropped = 0;         ///< Segments dropped by a rule.
  std::uint64_t delayed = 0;         ///< Segments held by a delay rule.
  std::uint64_t duplicated = 0;      ///< Segments a duplicate rule copied (originals).
  std::uint64_t copies_sent = 0;     ///< Copies sent from the raw socket.
  std::uint64_t copy_errors = 0;     ///< Copies the raw socket refused (e.g. EMSGSIZE).
  std::uint64_t resets = 0;          ///< Segments replaced by an RST.
  std::uint64_t reset_errors = 0;    ///< RSTs that could not be built or sent (original passed).
  std::uint64_t held_overflow = 0;   ///< Delay/duplicate refused by --max-held: accepted as is.
  std::uint64_t released = 0;        ///< Held segments released when their delay ran out.
  std::uint64_t released_early = 0;  ///< Held segments released at shutdown.
};

}  // namespace finwave::proxy
