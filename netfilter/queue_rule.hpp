#pragma once

#include <cstdint>
#include <optional>
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

/// What one look at a queue rule's chain found.
enum class QueueRuleState {
  kPresent,       ///< The chain holds an NFQUEUE rule.
  kMissing,       ///< The chain is there, without an NFQUEUE rule.
  kChainMissing,  ///< No such chain, or no such table.
  kUnknown,       ///< The kernel could not be asked (no socket, no answer, another error).
};

/// The result of probe_queue_rule().
struct QueueRuleProbe {
  QueueRuleState state = QueueRuleState::kUnknown;
  /// The packet count of the queue rule's counter (kPresent only): every segment that reached
  /// the end of the capture chain, queued or let pass by the kernel (bypass, fail-open).
  std::optional<std::uint64_t> packets;
  /// With kUnknown: why (errno).
  int error = 0;
};

/// Looks for the queue rule in `target`'s chain: two netlink round trips (the chain, then a dump
/// of its rules, a handful of messages for finwave's capture chain), each given up after a
/// second. Never throws. Cheap enough to run on a timer on the loop that gives verdicts.
QueueRuleProbe probe_queue_rule(const QueueRuleTarget& target) noexcept;

}  // namespace finwave::nf
