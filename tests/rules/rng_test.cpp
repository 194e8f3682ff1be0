#include "rules/rng.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

using finwave::rules::Rng;

TEST_SUITE("rules") {
  TEST_CASE("rng: the same seed gives the same sequence") {
    Rng a(42);
    Rng b(42);
    for (int i = 0; i < 1000; ++i) {
      REQUIRE(a.next() == b.next());
    }
  }

  TEST_CASE("rng: different seeds give different sequences") {
    Rng a(1);
    Rng b(2);
    int equal = 0;
    for (int i = 0; i < 100; ++i) {
      equal += a.next() == b.next() ? 1 : 0;
    }
    CHECK(equal == 0);
  }

  TEST_CASE("rng: reseed restarts the sequence") {
    Rng rng(7);
    std::vector<std::uint64_t> first;
    first.reserve(10);
    for (int i = 0; i < 10; ++i) {
      first.push_back(rng.next());
    }
    rng.reseed(7);
    for (std::uint64_t value : first) {
      CHECK(rng.next() == value);
    }
  }

  TEST_CASE("rng: the sequence is stable across builds (replays stay replays)") {
    // xoshiro256** seeded by splitmix64; pinned so a change of algorithm is a visible decision.
    Rng rng(0);
    CHECK(rng.next() == 0x99ec5f36cb75f2b4ULL);
    CHECK(rng.next() == 0xbf6e1f784956452aULL);
  }

  TEST_CASE("rng: uniform01 stays between 0 included and 1 excluded and is evenly spread") {
    Rng rng(2024);
    double sum = 0;
    int buckets[10] = {};
    constexpr int kDraws = 100000;
    for (int i = 0; i < kDraws; ++i) {
      const double u = rng.uniform01();
      REQUIRE(u >= 0.0);
      REQUIRE(u < 1.0);
      sum += u;
      ++buckets[static_cast<int>(u * 10)];
    }
    CHECK(sum / kDraws == doctest::Approx(0.5).epsilon(0.01));
    for (int count : buckets) {
      CHECK(count == doctest::Approx(kDraws / 10.0).epsilon(0.05));
    }
  }
}
