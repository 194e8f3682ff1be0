// The flow table's storage: records in chunks, the hash index, the lists by deadline.
#include "proxy/tracker/flow_record.hpp"

namespace finwave::proxy {

using namespace flow_detail;  // NOLINT(google-build-using-namespace): the tracker's own helpers

FlowTable::FlowTable(TrackerConfig config) : config_(config) {
  config_.max_flows = std::min(config_.max_flows, kMaxFlowsLimit);
  list_head_.fill(kNil);
  list_tail_.fill(kNil);
  index_limit_ = kInitialIndex;
  while (index_limit_ < config_.max_flows * 2) {
    index_limit_ *= 2;
  }
  index_.resize(kInitialIndex);
}

FlowTable::~FlowTable() = default;
FlowTable::FlowTable(FlowTable&&) noexcept = default;
FlowTable& FlowTable::operator=(FlowTable&&) noexcept = default;

std::size_t FlowTable::flow_record_bytes() noexcept { return sizeof(FlowRecord); }

std::size_t FlowTable::memory_bytes() const noexcept {
  std::size_t bytes = chunks_.size() * kChunkSize * sizeof(FlowRecord);
  bytes += index_.capacity() * sizeof(IndexSlot);
  for (const std::string& name : rule_names_) {
    bytes += sizeof(std::string) + name.capacity();
  }
  return bytes;
}

FlowTable::FlowRecord& FlowTable::record(std::uint32_t slot) const noexcept {
  return chunks_[slot >> kChunkShift][slot & (kChunkSize - 1)];
}

FlowTable::FlowRecord* FlowTable::resolve(FlowRef ref) const noexcept {
  if (!ref.valid() || ref.slot >= slots_used_) {
    return nullptr;
  }
  FlowRecord& flow = record(ref.slot);
  if (!flow.in_use || flow.generation != ref.generation) {
    return nullptr;
  }
  return &flow;
}

std::uint64_t FlowTable::clamp_now(std::uint64_t now_us) noexcept {
  if (now_us < last_now_) {
    return last_now_;
  }
  last_now_ = now_us;
  return now_us;
}

// ---------------------------------------------------------------------------------------------
// Index: open addressing, linear probing, backward-shift deletion (no tombstones).

std::uint32_t FlowTable::hash_of(const rules::Endpoint& a,
                                 const rules::Endpoint& b) const noexcept {
  // Direction-independent: the two endpoints are hashed in a fixed order.
  const rules::Endpoint& lo = endpoint_less(a, b) ? a : b;
  const rules::Endpoint& hi = endpoint_less(a, b) ? b : a;
  std::uint64_t hash = mix(config_.hash_seed, a.family);
  hash = mix(hash, load64(lo.address.data()));
  hash = mix(hash, load64(lo.address.data() + 8));
  hash = mix(hash, (std::uint64_t{lo.port} << 16U) | hi.port);
  hash = mix(hash, load64(hi.address.data()));
  hash = mix(hash, load64(hi.address.data() + 8));
  return static_cast<std::uint32_t>(hash ^ (hash >> 32U));
}

std::uint32_t FlowTable::find(const nf::TcpSegment& segment, std::uint32_t hash,
                              Side& from) const noexcept {
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const IndexSlot& entry = index_[i];
    if (entry.record == 0) {
      return kNil;
    }
    if (entry.hash != hash) {
      continue;
    }
    const std::uint32_t slot = entry.record - 1;
    const FlowRecord& flow = record(slot);
    if (same_endpoint(flow.ends[0], segment.src, segment.src_port) &&
        same_endpoint(flow.ends[1], segment.dst, segment.dst_port)) {
      from = Side::kClient;
      return slot;
    }
    if (same_endpoint(flow.ends[1], segment.src, segment.src_port) &&
        same_endpoint(flow.ends[0], segment.dst, segment.dst_port)) {
      from = Side::kServer;
      return slot;
    }
  }
}

void FlowTable::index_insert(std::uint32_t hash, std::uint32_t slot) noexcept {
  const std::size_t mask = index_.size() - 1;
  std::size_t i = hash & mask;
  while (index_[i].record != 0) {
    i = (i + 1) & mask;
  }
  index_[i] = IndexSlot{hash, slot + 1};
}

void FlowTable::index_erase(std::uint32_t hash, std::uint32_t slot) noexcept {
  const std::size_t mask = index_.size() - 1;
  std::size_t hole = hash & mask;
  while (index_[hole].record != slot + 1) {
    if (index_[hole].record == 0) {
      return;  // Not indexed: nothing to do.
    }
    hole = (hole + 1) & mask;
  }
  // Shift back every later entry of the probe run that may live in the hole.
  for (std::size_t j = (hole + 1) & mask; index_[j].record != 0; j = (j + 1) & mask) {
    const std::size_t home = index_[j].hash & mask;
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) {
      continue;
    }
    index_[hole] = index_[j];
    hole = j;
  }
  index_[hole] = IndexSlot{};
}

bool FlowTable::index_reserve() noexcept {
  if ((counters_.flows_tracked + 1) * 2 <= index_.size()) {
    return true;
  }
  if (index_.size() >= index_limit_) {
    return false;
  }
  std::vector<IndexSlot> old;
  try {
    old.swap(index_);
    index_.assign(old.size() * 2, IndexSlot{});
  } catch (...) {
    index_.swap(old);
    return false;
  }
  for (const IndexSlot& entry : old) {
    if (entry.record != 0) {
      index_insert(entry.hash, entry.record - 1);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Records and lists.

std::uint32_t FlowTable::allocate_record() noexcept {
  if (free_head_ != kNil) {
    const std::uint32_t slot = free_head_;
    free_head_ = record(slot).next;
    return slot;
  }
  if (slots_used_ == chunks_.size() * kChunkSize) {
    try {
      chunks_.push_back(std::make_unique<FlowRecord[]>(kChunkSize));
    } catch (...) {
      return kNil;
    }
  }
  return slots_used_++;
}

std::uint32_t FlowTable::create(const nf::TcpSegment& segment, std::uint32_t hash, Side sender,
                                bool sides_known, std::uint64_t now_us) noexcept {
  if (counters_.flows_tracked >= config_.max_flows) {
    if (!config_.evict_idle_when_full ||
        list_head_[static_cast<std::size_t>(ListId::kIdle)] == kNil) {
      ++counters_.refused_full;
      return kNil;
    }
    remove(list_head_[static_cast<std::size_t>(ListId::kIdle)]);
    ++counters_.evicted_full;
  }
  if (!index_reserve()) {
    ++counters_.refused_full;
    return kNil;
  }
  const std::uint32_t slot = allocate_record();
  if (slot == kNil) {
    ++counters_.refused_full;
    return kNil;
  }
  FlowRecord& flow = record(slot);
  const std::uint32_t generation = flow.generation;
  flow = FlowRecord{};
  flow.generation = generation;
  flow.in_use = true;
  flow.id = next_id_++;
  flow.hash = hash;
  const rules::Endpoint src = endpoint_of(segment.src, segment.src_port);
  const rules::Endpoint dst = endpoint_of(segment.dst, segment.dst_port);
  flow.ends[0] = sender == Side::kClient ? src : dst;
  flow.ends[1] = sender == Side::kClient ? dst : src;
  flow.sides_known = sides_known;
  // A lost copy may have been this flow's first segment.
  flow.incomplete = now_us < incomplete_until_us_;
  flow.created_us = now_us;
  flow.last_us = now_us;
  index_insert(hash, slot);
  list_push_back(ListId::kIdle, slot);
  ++counters_.flows_tracked;
  ++counters_.flows_created;
  return slot;
}

void FlowTable::remove(std::uint32_t slot) noexcept {
  FlowRecord& flow = record(slot);
  list_unlink(slot);
  index_erase(flow.hash, slot);
  flow.in_use = false;
  ++flow.generation;
  flow.next = free_head_;
  free_head_ = slot;
  --counters_.flows_tracked;
}

void FlowTable::list_unlink(std::uint32_t slot) noexcept {
  FlowRecord& flow = record(slot);
  if (flow.list == ListId::kNone) {
    return;
  }
  const auto list = static_cast<std::size_t>(flow.list);
  if (flow.prev != kNil) {
    record(flow.prev).next = flow.next;
  } else {
    list_head_[list] = flow.next;
  }
  if (flow.next != kNil) {
    record(flow.next).prev = flow.prev;
  } else {
    list_tail_[list] = flow.prev;
  }
  flow.prev = kNil;
  flow.next = kNil;
  flow.list = ListId::kNone;
}

void FlowTable::list_push_back(ListId list_id, std::uint32_t slot) noexcept {
  FlowRecord& flow = record(slot);
  const auto list = static_cast<std::size_t>(list_id);
  flow.list = list_id;
  flow.prev = list_tail_[list];
  flow.next = kNil;
  if (list_tail_[list] != kNil) {
    record(list_tail_[list]).next = slot;
  } else {
    list_head_[list] = slot;
  }
  list_tail_[list] = slot;
}

void FlowTable::touch(FlowRecord& flow, std::uint32_t slot, std::uint64_t now_us) noexcept {
  flow.last_us = std::max(flow.last_us, now_us);
  // The idle and linger lists are ordered by last segment time: moving to the back keeps them so.
  if (flow.list == ListId::kIdle || flow.list == ListId::kLinger) {
    const ListId list = flow.list;
    list_unlink(slot);
    list_push_back(list, slot);
  }
}

void FlowTable::mark_incomplete(std::uint64_t now_us) noexcept {
  for (std::uint32_t slot = 0; slot < slots_used_; ++slot) {
    FlowRecord& flow = record(slot);
    if (flow.in_use) flow.incomplete = true;
  }
  incomplete_until_us_ = now_us + kIncompleteWindowUs;
}

}  // namespace finwave::proxy
