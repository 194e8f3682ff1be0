#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "netfilter/packet.hpp"
#include "proxy/tracker/flow_table.hpp"

namespace finwave::proxy {

/// A segment finwave is doing something to over time: holding its verdict (delay), and/or
/// sending copies of it (duplicate).
struct HeldSegment {
  bool holding = false;        ///< The kernel still holds the original for a verdict.
  std::uint32_t queue_id = 0;  ///< Valid while holding.
  FlowRef flow;                ///< The tracker's flow, told when the original goes out.
  nf::TcpSegment segment;
  std::uint16_t copies_left = 0;    ///< Copies still to send after the original went out.
  std::uint32_t spacing_us = 0;     ///< Gap before each copy.
  std::vector<std::uint8_t> bytes;  ///< The packet with valid checksums, when copies follow.
};

/// Timed work on held and duplicated segments: a bounded pool of HeldSegment slots and a min-heap
/// of their due times. Pure (no clock, no I/O): the daemon arms a timerfd for next_due() and
/// calls pop_due() when it fires. Slots and their byte buffers are reused, so steady-state use
/// does not allocate. Loop thread only.
class DelayLine {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffU;

  /// At most `capacity` segments in flight at once (the --max-held safety bound).
  explicit DelayLine(std::size_t capacity);

  bool full() const noexcept { return free_.empty() && slots_.size() >= capacity_; }
  std::size_t size() const noexcept { return in_use_; }
  std::size_t capacity() const noexcept { return capacity_; }

  /// Takes a free slot (reset to defaults, its byte buffer kept for reuse) due at `due_us`.
  /// Returns kNone when full.
  std::uint32_t add(std::uint64_t due_us) noexcept;
  HeldSegment& at(std::uint32_t slot) noexcept { return slots_[slot]; }

  /// Puts a slot that pop_due() returned back on the heap, due at `due_us`.
  void reschedule(std::uint32_t slot, std::uint64_t due_us) noexcept;
  /// Frees a slot that pop_due() or pop_any() returned, for add() to reuse.
  void free(std::uint32_t slot) noexcept;

  /// The earliest due time, if anything is scheduled.
  std::optional<std::uint64_t> next_due() const noexcept;
  /// Removes and returns the earliest slot due at or before `now_us`, or kNone. The slot is off
  /// the heap until reschedule() or free().
  std::uint32_t pop_due(std::uint64_t now_us) noexcept;
  /// Removes and returns any scheduled slot regardless of time (shutdown), or kNone.
  std::uint32_t pop_any() noexcept;

 private:
  using Entry = std::pair<std::uint64_t, std::uint32_t>;  // (due, slot)
  std::size_t capacity_;
  std::vector<HeldSegment> slots_;
  std::vector<std::uint32_t> free_;
  std::vector<Entry> heap_;  // min-heap through std::greater
  std::size_t in_use_ = 0;
};

}  // namespace finwave::proxy
