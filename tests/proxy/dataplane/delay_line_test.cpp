// Tests of DelayLine (proxy/dataplane/delay_line.hpp): due order, capacity, slot reuse.

#include "proxy/dataplane/delay_line.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

namespace finwave::proxy {
namespace {

TEST_SUITE("delay_line") {
  TEST_CASE("delay_line: slots come out in due order, only once due") {
    DelayLine line(8);
    const std::vector<std::uint64_t> dues = {500, 100, 300, 200, 400};
    std::vector<std::uint32_t> slots;
    slots.reserve(dues.size());
    for (const std::uint64_t due : dues) slots.push_back(line.add(due));
    CHECK(line.size() == dues.size());
    REQUIRE(line.next_due().has_value());
    CHECK(*line.next_due() == 100);
    CHECK(line.pop_due(99) == DelayLine::kNone);

    std::vector<std::uint32_t> popped;
    for (std::uint32_t s = line.pop_due(350); s != DelayLine::kNone; s = line.pop_due(350)) {
      popped.push_back(s);
    }
    CHECK(popped == std::vector<std::uint32_t>{slots[1], slots[3], slots[2]});
    CHECK(*line.next_due() == 400);
    for (const std::uint32_t s : popped) line.free(s);
    CHECK(line.size() == 2);
  }

  TEST_CASE("delay_line: full at capacity; a freed slot is reused with defaults") {
    DelayLine line(2);
    const std::uint32_t a = line.add(10);
    const std::uint32_t b = line.add(20);
    CHECK(a != DelayLine::kNone);
    CHECK(b != DelayLine::kNone);
    CHECK(line.full());
    CHECK(line.add(30) == DelayLine::kNone);

    line.at(a).holding = true;
    line.at(a).queue_id = 77;
    line.at(a).bytes.assign(64, 0xab);
    CHECK(line.pop_due(10) == a);
    line.free(a);
    CHECK_FALSE(line.full());
    const std::uint32_t c = line.add(40);
    CHECK(c == a);
    CHECK_FALSE(line.at(c).holding);
    CHECK(line.at(c).queue_id == 0);
    CHECK(line.at(c).bytes.empty());
  }

  TEST_CASE("delay_line: a rescheduled slot comes out again at its new time") {
    DelayLine line(4);
    const std::uint32_t copy = line.add(100);
    const std::uint32_t other = line.add(250);
    CHECK(line.pop_due(100) == copy);
    line.reschedule(copy, 300);
    CHECK(*line.next_due() == 250);
    CHECK(line.pop_due(299) == other);
    CHECK(line.pop_due(299) == DelayLine::kNone);
    CHECK(line.pop_due(300) == copy);
    CHECK_FALSE(line.next_due().has_value());
  }

  TEST_CASE("delay_line: pop_any empties the line whatever the due times (shutdown)") {
    DelayLine line(4);
    line.add(1'000'000);
    line.add(5);
    line.add(2'000'000);
    int count = 0;
    for (std::uint32_t s = line.pop_any(); s != DelayLine::kNone; s = line.pop_any()) {
      line.free(s);
      ++count;
    }
    CHECK(count == 3);
    CHECK(line.size() == 0);
    CHECK_FALSE(line.next_due().has_value());
  }
}

}  // namespace
}  // namespace finwave::proxy
