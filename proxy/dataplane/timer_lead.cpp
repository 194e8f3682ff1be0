#include "proxy/dataplane/timer_lead.hpp"

#include <algorithm>

namespace finwave::proxy {

void TimerLead::record(std::uint64_t late_us) noexcept {
  window_[next_] = static_cast<std::uint32_t>(std::min<std::uint64_t>(late_us, kMaxLeadUs));
  next_ = (next_ + 1) % kWindow;
  count_ = std::min(count_ + 1, kWindow);
  // At most 31 numbers, once per timer wake-up: a copy and nth_element cost less than the
  // wake-up itself.
  std::array<std::uint32_t, kWindow> sorted = window_;
  const auto end = sorted.begin() + static_cast<std::ptrdiff_t>(count_);
  const auto rank = sorted.begin() + static_cast<std::ptrdiff_t>((count_ - 1) * kPercentile / 100);
  std::nth_element(sorted.begin(), rank, end);
  lead_us_ = *rank;
}

}  // namespace finwave::proxy
