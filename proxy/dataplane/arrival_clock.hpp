#pragma once

#include <cstdint>

namespace finwave::proxy {

/// Turns the kernel's receive stamp of a queued packet (CLOCK_REALTIME, NFQA_TIMESTAMP) into
/// finwave's monotonic clock, so that a segment is tracked and delayed from when it reached
/// this host rather than from when finwave read it.
///
/// Reading the realtime clock for every packet would double the clock reads on the data path,
/// so the offset between the two clocks is kept and read again every kRefreshUs: a clock step
/// is picked up within that, and until then the checks of from_stamp() reject what it makes
/// impossible.
class ArrivalClock {
 public:
  static constexpr std::uint64_t kRefreshUs = 100'000;
  /// A stamp older than this is not believed (a clock step, or a stale stamp).
  static constexpr std::uint64_t kMaxAgeUs = 1'000'000;

  /// When a packet stamped `stamp_realtime_us` (0: no stamp) arrived, on the monotonic clock
  /// that gave `now_us`. Reads CLOCK_REALTIME at most once per kRefreshUs.
  std::uint64_t arrival_us(std::uint64_t stamp_realtime_us, std::uint64_t now_us) noexcept;

  /// Pure: the stamp moved onto the monotonic clock by `realtime_minus_monotonic_us`, or
  /// `now_us` when there is no stamp or it cannot be right (from the future, or older than
  /// kMaxAgeUs).
  static std::uint64_t from_stamp(std::uint64_t stamp_realtime_us, std::uint64_t now_us,
                                  std::int64_t realtime_minus_monotonic_us) noexcept;

 private:
  std::int64_t offset_us_ = 0;        // CLOCK_REALTIME minus the monotonic clock
  std::uint64_t offset_read_us_ = 0;  // monotonic time it was read; 0: never
};

}  // namespace finwave::proxy
