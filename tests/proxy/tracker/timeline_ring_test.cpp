// Tests of the timeline ring (proxy/tracker/timeline_ring.hpp) against a naive model: keep every
// segment number, then keep the first kTimelineHead and the last kTimelineTail.

#include "proxy/tracker/timeline_ring.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

namespace finwave::proxy {
namespace {

static_assert(kTimelineHead < kTimelineCapacity);
static_assert(timeline_slot(0) == 0);
static_assert(timeline_slot(kTimelineHead) == kTimelineHead);
static_assert(timeline_slot(kTimelineCapacity) == kTimelineHead);  // the ring wraps
static_assert(timeline_tail_begin(kTimelineHead) == kTimelineHead);
static_assert(timeline_dropped(kTimelineCapacity) == 0);
static_assert(timeline_dropped(kTimelineCapacity + 1) == 1);

TEST_SUITE("timeline_ring") {
  TEST_CASE("timeline_ring: head and tail kept as the naive model says, 0 to 100 segments") {
    for (std::size_t total = 0; total <= 100; ++total) {
      CAPTURE(total);
      // Write segment numbers into the slots as the tracker does.
      std::array<std::size_t, kTimelineCapacity> slots{};
      for (std::size_t n = 0; n < total; ++n) slots[timeline_slot(n)] = n;
      // Read them back as an outcome is built: head, then the tail from its first kept number.
      std::vector<std::size_t> kept;
      for (std::size_t n = 0; n < std::min(total, kTimelineHead); ++n) kept.push_back(slots[n]);
      for (std::size_t n = timeline_tail_begin(total); n < total; ++n) {
        kept.push_back(slots[timeline_slot(n)]);
      }
      // The model.
      std::vector<std::size_t> expected;
      for (std::size_t n = 0; n < total; ++n) {
        if (n < kTimelineHead || n + kTimelineTail >= std::max(total, kTimelineCapacity)) {
          expected.push_back(n);
        }
      }
      CHECK(kept == expected);
      CHECK(timeline_dropped(total) == total - expected.size());
    }
  }
}

}  // namespace
}  // namespace finwave::proxy
