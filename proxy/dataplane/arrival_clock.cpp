#include "proxy/dataplane/arrival_clock.hpp"

#include <time.h>

namespace finwave::proxy {

std::uint64_t ArrivalClock::arrival_us(std::uint64_t stamp_realtime_us,
                                       std::uint64_t now_us) noexcept {
  if (stamp_realtime_us == 0) return now_us;
  if (offset_read_us_ == 0 || now_us - offset_read_us_ >= kRefreshUs) {
    timespec realtime{};
    if (clock_gettime(CLOCK_REALTIME, &realtime) != 0) return now_us;
    const auto real_us = static_cast<std::int64_t>(realtime.tv_sec) * 1'000'000 +
                         static_cast<std::int64_t>(realtime.tv_nsec) / 1000;
    offset_us_ = real_us - static_cast<std::int64_t>(now_us);
    offset_read_us_ = now_us;
  }
  return from_stamp(stamp_realtime_us, now_us, offset_us_);
}

std::uint64_t ArrivalClock::from_stamp(std::uint64_t stamp_realtime_us, std::uint64_t now_us,
                                       std::int64_t realtime_minus_monotonic_us) noexcept {
  if (stamp_realtime_us == 0) return now_us;
  const std::int64_t stamp_us =
      static_cast<std::int64_t>(stamp_realtime_us) - realtime_minus_monotonic_us;
  const auto now = static_cast<std::int64_t>(now_us);
  if (stamp_us > now || stamp_us < 0) return now_us;
  const auto age_us = static_cast<std::uint64_t>(now - stamp_us);
  return age_us < kMaxAgeUs ? static_cast<std::uint64_t>(stamp_us) : now_us;
}

}  // namespace finwave::proxy
