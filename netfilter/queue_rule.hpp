#pragma once

#include <cstdint>
#include <string>

namespace finwave::nf {

/// Where the queue rule goes: an `inet` table's chain, both created beforehand (with nft).
struct QueueRuleTarget {
  std::string table;
  std::string chain;
};

/// Appends "counter, then NFQUEUE to queue_num (balanced over queue_count queues) with bypass"
/// to `target`'s chain, in one nftables transaction.
///
/// Why this is not part of the nft script the rest of the table comes from: this kernel has no
/// nftables `queue` expression (nft_queue is not built), and nft cannot write the xtables
/// NFQUEUE target that stands in for it. The target is the one iptables-nft uses, run through
/// the kernel's xtables compatibility layer; only segments that reach the end of the capture
/// chain pay for that layer, bulk data never does. The rule lists as `queue num N bypass`.
///
/// Throws std::runtime_error with the kernel's reason when the rule is refused (no such table or
/// chain, no CAP_NET_ADMIN, no NFQUEUE target in the kernel) or the kernel does not answer within
/// a second. Control plane only: blocks.
void append_queue_rule(const QueueRuleTarget& target, std::uint16_t queue_num,
                       std::uint16_t queue_count);

}  // namespace finwave::nf
