#include "proxy/dataplane/delay_line.hpp"

#include <algorithm>
#include <functional>

namespace finwave::proxy {

DelayLine::DelayLine(std::size_t capacity) : capacity_(capacity) {
  // Reserved once, so that add() and reschedule() never reallocate on the data path.
  slots_.reserve(capacity_);
  free_.reserve(capacity_);
  heap_.reserve(capacity_);
}

std::uint32_t DelayLine::add(std::uint64_t due_us) noexcept {
  std::uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
    std::vector<std::uint8_t> keep = std::move(slots_[slot].bytes);
    keep.clear();
    slots_[slot] = HeldSegment{};
    slots_[slot].bytes = std::move(keep);
  } else if (slots_.size() < capacity_) {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  } else {
    return kNone;
  }
  ++in_use_;
  reschedule(slot, due_us);
  return slot;
}

void DelayLine::reschedule(std::uint32_t slot, std::uint64_t due_us) noexcept {
  heap_.emplace_back(due_us, slot);
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
}

void DelayLine::free(std::uint32_t slot) noexcept {
  free_.push_back(slot);
  --in_use_;
}

std::optional<std::uint64_t> DelayLine::next_due() const noexcept {
  if (heap_.empty()) return std::nullopt;
  return heap_.front().first;
}

std::uint32_t DelayLine::pop_due(std::uint64_t now_us) noexcept {
  if (heap_.empty() || heap_.front().first > now_us) return kNone;
  return pop_any();
}

std::uint32_t DelayLine::pop_any() noexcept {
  if (heap_.empty()) return kNone;
  std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
  const std::uint32_t slot = heap_.back().second;
  heap_.pop_back();
  return slot;
}

}  // namespace finwave::proxy
