#pragma once

#include <cstddef>

namespace finwave::proxy {

// A flow's timeline lives in a fixed array of kTimelineCapacity slots: the first kTimelineHead
// segments stay where they were written, and the later ones go round a ring in the remaining
// kTimelineTail slots, so an outcome shows how the connection began and how it ended; the
// segments between are only counted (Outcome::timeline_dropped). The tracker writes and reads
// the slots through these, and the ladder renders the gap between head and tail.

/// Timeline entries kept per flow.
inline constexpr std::size_t kTimelineCapacity = 28;
/// Of those, the first ones, kept as they came.
inline constexpr std::size_t kTimelineHead = 20;
/// The rest: a ring of the latest segments.
inline constexpr std::size_t kTimelineTail = kTimelineCapacity - kTimelineHead;

/// The slot that holds the flow's `n`-th segment (counting from 0) while it is still kept.
constexpr std::size_t timeline_slot(std::size_t n) noexcept {
  return n < kTimelineHead ? n : kTimelineHead + (n - kTimelineHead) % kTimelineTail;
}

/// The number of the first segment still kept in the tail ring after `total` segments (equal to
/// the head's end while nothing has been overwritten).
constexpr std::size_t timeline_tail_begin(std::size_t total) noexcept {
  if (total <= kTimelineHead) return total;
  return total > kTimelineCapacity ? total - kTimelineTail : kTimelineHead;
}

/// Segments written but no longer kept after `total` segments.
constexpr std::size_t timeline_dropped(std::size_t total) noexcept {
  return total > kTimelineCapacity ? total - kTimelineCapacity : 0;
}

}  // namespace finwave::proxy
