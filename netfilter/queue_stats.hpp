#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace finwave::nf {

/// One queue's line of /proc/net/netfilter/nfnetlink_queue: the kernel's own account, which
/// tests compare with finwave's counters.
struct KernelQueueStats {
  std::uint16_t queue_num = 0;
  std::uint32_t peer_port_id = 0;  ///< Netlink port id of the process bound to the queue.
  std::uint32_t queue_total = 0;   ///< Packets waiting for a verdict right now.
  std::uint32_t copy_mode = 0;
  std::uint32_t copy_range = 0;
  std::uint64_t queue_dropped = 0;  ///< Dropped because the queue was full.
  std::uint64_t user_dropped = 0;   ///< Dropped because the netlink socket's buffer was full.
  std::uint32_t id_sequence = 0;    ///< Id of the last packet queued: packets queued so far.
};

/// Finds queue `queue_num` in the text of /proc/net/netfilter/nfnetlink_queue.
std::optional<KernelQueueStats> parse_kernel_queue_stats(std::string_view proc_text,
                                                         std::uint16_t queue_num) noexcept;

/// Reads the calling thread's network namespace's /proc file; std::nullopt if the queue is not
/// bound (the kernel lists bound queues only) or the file cannot be read.
std::optional<KernelQueueStats> read_kernel_queue_stats(std::uint16_t queue_num);

}  // namespace finwave::nf
