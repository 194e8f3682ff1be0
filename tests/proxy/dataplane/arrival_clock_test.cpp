#include "proxy/dataplane/arrival_clock.hpp"

#include <doctest/doctest.h>
#include <time.h>

#include <cstdint>

namespace finwave::proxy {
namespace {

// Realtime is monotonic plus this in the tests below: 2026-11-24 against ten hours of uptime.
constexpr std::int64_t kOffset = 1'795'000'000'000'000 - 36'000'000'000;
constexpr std::uint64_t kNow = 36'000'000'000;

std::uint64_t realtime_of(std::uint64_t monotonic_us) {
  return static_cast<std::uint64_t>(static_cast<std::int64_t>(monotonic_us) + kOffset);
}

TEST_SUITE("proxy") {
  TEST_CASE("arrival_clock: a stamp is moved onto the monotonic clock") {
    CHECK(ArrivalClock::from_stamp(realtime_of(kNow - 250), kNow, kOffset) == kNow - 250);
    CHECK(ArrivalClock::from_stamp(realtime_of(kNow), kNow, kOffset) == kNow);
    CHECK(ArrivalClock::from_stamp(realtime_of(kNow - 999'999), kNow, kOffset) == kNow - 999'999);
  }

  TEST_CASE("arrival_clock: no stamp, or one that cannot be right, gives now") {
    CHECK(ArrivalClock::from_stamp(0, kNow, kOffset) == kNow);
    // From the future: the realtime clock was stepped back.
    CHECK(ArrivalClock::from_stamp(realtime_of(kNow + 1), kNow, kOffset) == kNow);
    // Older than a second: stepped forward, or a stale stamp.
    CHECK(ArrivalClock::from_stamp(realtime_of(kNow - 1'000'000), kNow, kOffset) == kNow);
    // Before the monotonic clock's zero.
    CHECK(ArrivalClock::from_stamp(realtime_of(0) - 5, 100, kOffset) == 100);
  }

  TEST_CASE("arrival_clock: the live clock keeps a recent stamp and refuses an old one") {
    ArrivalClock clock;
    timespec realtime{};
    REQUIRE(clock_gettime(CLOCK_REALTIME, &realtime) == 0);
    timespec monotonic{};
    REQUIRE(clock_gettime(CLOCK_MONOTONIC, &monotonic) == 0);
    const auto real_us = static_cast<std::uint64_t>(realtime.tv_sec) * 1'000'000 +
                         static_cast<std::uint64_t>(realtime.tv_nsec) / 1000;
    const auto now_us = static_cast<std::uint64_t>(monotonic.tv_sec) * 1'000'000 +
                        static_cast<std::uint64_t>(monotonic.tv_nsec) / 1000;
    // 500 µs ago, give or take the microseconds between the two clock reads.
    const std::uint64_t arrived = clock.arrival_us(real_us - 500, now_us);
    CHECK(arrived <= now_us - 400);
    CHECK(arrived >= now_us - 600);
    // Ten seconds ago: not believed.
    CHECK(clock.arrival_us(real_us - 10'000'000, now_us) == now_us);
    CHECK(clock.arrival_us(0, now_us) == now_us);
  }
}

}  // namespace
}  // namespace finwave::proxy
