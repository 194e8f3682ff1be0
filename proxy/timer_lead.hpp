#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace finwave::proxy {

/// How early to arm the delay timer so that held segments leave on time.
///
/// A timer armed for T wakes finwave some time after T (the kernel's wake-up and scheduling
/// latency: typically 50–300 µs on a 2-core VM, and steady for a given machine). Arming it that
/// much early, and releasing what is due within that margin, moves the release from "T plus the
/// wake-up" to "about T". The lead is the median of the last kWindow wake-up latencies: a median
/// so that one stalled wake-up (a busy CPU) does not make every later release early.
///
/// Pure: the caller measures (now at wake-up minus the time the timer was armed for).
class TimerLead {
 public:
  static constexpr std::size_t kWindow = 31;
  /// Never lead by more than this, whatever was measured: a release is early by at most this.
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
