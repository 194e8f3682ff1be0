#pragma once

#include <cstdint>

namespace finwave::rules {

/// The engine's source of randomness: xoshiro256** seeded through splitmix64. Small, fast and
/// reproducible: the same seed gives the same sequence on every machine, which is what lets a
/// test or a `--seed` run replay a probabilistic rule set exactly. Not thread-safe; the loop
/// owns one. Not for cryptography.
class Rng {
 public:
  /// Seeds the four state words from `seed` with splitmix64 (any seed is fine, 0 included).
  explicit Rng(std::uint64_t seed = 0x66696e77617665ULL) noexcept { reseed(seed); }

  void reseed(std::uint64_t seed) noexcept {
    for (auto& word : state_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31U);
    }
  }

  /// The next 64 random bits.
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5U, 7) * 9U;
    const std::uint64_t t = state_[1] << 17U;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// A double uniformly distributed in [0, 1), with 53 random bits.
  double uniform01() noexcept { return static_cast<double>(next() >> 11U) * 0x1.0p-53; }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }

  std::uint64_t state_[4]{};
};

}  // namespace finwave::rules
