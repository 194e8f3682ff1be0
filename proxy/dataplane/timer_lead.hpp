#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace finwave::proxy {

/// How early to arm the delay timer so that held segments leave on time.
///
/// A timer armed for T wakes finwave some time after T: the kernel's wake-up and scheduling
/// latency, typically 30–300 µs on a 2-core VM, longer after a long sleep. The timer is armed
/// that much early, and the worker then waits out the rest on the clock (QueueWorker::run_due),
/// so a segment leaves at its due time unless the wake-up was later than the lead. The lead is
/// the 90th percentile of the last kWindow wake-up latencies: high enough that nine wake-ups in
/// ten come in time, while one stalled wake-up (a busy CPU) does not move it. A lead that is too
/// long costs only CPU time (the wait), never precision.
///
/// Pure: the caller measures (now at wake-up minus the time the timer was armed for).
class TimerLead {
 public:
  static constexpr std::size_t kWindow = 31;
  /// The lead is this percentile of the window's wake-up latencies.
  static constexpr std::size_t kPercentile = 90;
  /// Never lead by more than this, whatever was measured: the longest wait for one wake-up.
  static constexpr std::uint64_t kMaxLeadUs = 1000;

  /// Records one wake-up that came `late_us` after the time the timer was armed for.
  void record(std::uint64_t late_us) noexcept;
  /// The current lead (0 until the first wake-up is recorded).
  std::uint64_t lead_us() const noexcept { return lead_us_; }
  std::size_t samples() const noexcept { return count_; }

 private:
  std::array<std::uint32_t, kWindow> window_{};
  std::size_t count_ = 0;  ///< Samples recorded, saturating at kWindow.
  std::size_t next_ = 0;   ///< Where the next sample goes (ring).
  std::uint64_t lead_us_ = 0;
};

}  // namespace finwave::proxy
