#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "netfilter/queue_rule.hpp"
#include "netfilter/segment_class.hpp"
#include "netfilter/teardown_set.hpp"

namespace finwave::nf {

/// Where finwave sits: on the forwarding host between client and server, or on one of them.
enum class CaptureMode {
  kRouter,  ///< Hook FORWARD.
  kLocal,   ///< Hook OUTPUT, and PREROUTING to local addresses except from loopback (OUTPUT sees
            ///< both directions there).
};

/// What the kernel hands to finwave's queue(s). Only teardown leaves the kernel: SYN, FIN and
/// RST segments, and every segment of a connection after its first FIN (which the capture chain
/// itself records in a set, see teardown_set.hpp). Bulk data before the first FIN is never
/// queued.
struct CaptureSpec {
  CaptureMode mode = CaptureMode::kRouter;
  std::uint16_t queue_num = 0;
  /// More than 1: segments are spread over queues queue_num .. queue_num+count-1. nftables'
  /// `symhash` (addresses and ports, the same both ways) picks queue queue_num+i and log group
  /// log_group+i together, so a connection's queued and logged segments meet on one worker.
  /// (With capture_all: the NFQUEUE target's balancing, which hashes the addresses only.)
  std::uint16_t queue_count = 1;
  /// Empty: every TCP port. Otherwise a segment is captured when either of its ports is listed.
  std::vector<std::uint16_t> ports;
  /// Optional CIDR prefixes ("198.18.0.0/15", "2001:db8:1::/48"; a bare address is a host),
  /// matched as source or destination. A family none of them belongs to is not captured at all.
  std::vector<std::string> addresses;
  /// skb mark of finwave's own raw-socket copies (SO_MARK): such packets are never queued. All of
  /// its bits must be set for a packet to count as injected.
  std::uint32_t injected_mark = 0x0f1a0000;
  /// The classes of captured segment that go to the queue (the queue path: finwave decides
  /// each). The others are logged to `log_group` (the log path: they go on at once and finwave
  /// gets a copy). The daemon queues what its enabled rules could act on (queue_classes.hpp).
  SegmentClasses queued = SegmentClasses::all();
  /// Of a queued class, only the segments these match are queued, the others logged (a class
  /// without any is queued whole). From the enabled rules' ports and senders (queue_classes.hpp).
  QueueNarrowing queued_only{};
  /// The nfnetlink_log group of the log path (of queue_num; queue queue_num+i has log_group+i).
  std::uint16_t log_group = 0;
  /// Benchmarks: queue every TCP segment, not only teardown (`queued` is then ignored).
  bool capture_all = false;
  /// Elements each teardown set holds at most (teardown_set.hpp); tests make it small to fill it.
  std::uint32_t teardown_set_size = kTeardownSetMaxEntries;
};

/// The nftables table (family inet) finwave owns for `queue_num`: "finwave-q<queue_num>". It
/// holds the teardown sets, the capture chain and a base chain per hook.
std::string capture_table_name(std::uint16_t queue_num);

/// The chain of that table every captured segment goes to, ending in the queue rule.
inline constexpr const char* kCaptureChain = "capture";

/// The chain the capture chain jumps to just before its queue rule: it logs and accepts the
/// segments of the classes that are not queued. Replaced whole when the rules change. With
/// several queues each has its own ("classify0", ...), jumped to from its queue's chain
/// ("queue0", ...), which holds that queue's rule; the capture chain picks one by symhash.
inline constexpr const char* kClassifyChain = "classify";

/// The classify chain of queue `index` of `spec`'s range ("classify" with one queue).
std::string classify_chain_name(const CaptureSpec& spec, std::uint16_t index);
/// The chains that hold a queue rule: "capture" alone, or "queue0" .. "queueN-1".
std::vector<std::string> queue_rule_chains(const CaptureSpec& spec);

/// The `nft -f` input that replaces the classify chain of `spec`'s table in one transaction:
/// from the next segment on, the classes of `spec.queued` are queued and the others logged.
/// Pure. Throws std::invalid_argument like validate().
std::string render_classify_input(const CaptureSpec& spec);

/// Throws std::invalid_argument with a message naming the offending field when `spec` cannot be
/// rendered: a zero port, queue_count 0 or a queue range past 65535, an address that is not a
/// CIDR prefix or whose prefix length is too long, a zero injected_mark or teardown_set_size.
void validate(const CaptureSpec& spec);

/// The `nft -f` input that creates the table of `spec`, replacing one of the same name in the
/// same transaction: its teardown sets and refused counters, the capture chain without its queue
/// rule (which nft cannot write, see queue_rule.hpp), and the base chains that send TCP segments of
/// the captured ports and addresses to it. Pure: no I/O. Throws std::invalid_argument like
/// validate().
std::string render_nft_input(const CaptureSpec& spec);

/// finwave's capture rules in the kernel, for one queue (range), IPv4 and IPv6: one nftables
/// table. Move-only; the table lives until remove() or destruction. Control plane only: every
/// call runs nft (or talks netlink) and blocks; not thread-safe.
class CaptureChains {
 public:
  /// Creates the table of `spec` (replacing a stale one of the same queue, from a crashed run),
  /// then appends the queue rule. If either step fails, removes what it installed and throws
  /// std::runtime_error carrying nft's stderr or the kernel's reason. Throws
  /// std::invalid_argument for an invalid spec, std::runtime_error when nft (package nftables)
  /// is missing.
  static CaptureChains install(const CaptureSpec& spec);

  /// Removes the table of `queue_num`, whoever installed it. Returns whether there was one.
  /// Throws std::runtime_error when nft fails or is missing.
  static bool remove_stale(std::uint16_t queue_num);

  CaptureChains() = default;
  CaptureChains(CaptureChains&& other) noexcept;
  CaptureChains& operator=(CaptureChains&& other) noexcept;
  CaptureChains(const CaptureChains&) = delete;
  CaptureChains& operator=(const CaptureChains&) = delete;
  ~CaptureChains();

  /// Empties the capture chain but leaves the table and its hooks in place: nothing more is
  /// queued, and nothing already queued is dropped. Shutdown calls this first, gives every
  /// queued packet its verdict, then calls remove() — removing the table unregisters its hooks,
  /// and the kernel drops whatever is still queued through them. Never throws (failures are
  /// written to stderr).
  void stop_capturing() noexcept;

  /// Removes the table; idempotent, never throws (failures are written to stderr, since the
  /// caller is usually shutting down and cannot do better).
  void remove() noexcept;

  /// Queues the classes of `spec.queued` and logs the others from the next segment on: one nft
  /// transaction, so no segment meets a half-made chain. Throws std::runtime_error carrying nft's
  /// stderr (the chain is then as it was), std::invalid_argument for an invalid spec.
  void classify(const CaptureSpec& spec);

  /// Looks whether the table and its queue rule are still in the kernel (someone may delete
  /// either with nft while finwave runs): probe_queue_rule() on the capture chain. kUnknown
  /// also when nothing is installed. Never throws; a couple of netlink round trips.
  QueueRuleProbe check() const noexcept;

  /// Puts back what check() found gone: the whole table (`found` kChainMissing: install() of
  /// `spec` again, its teardown sets start empty), or only the queue rule (kMissing: appended to
  /// the chain that is still there, so that nothing queued through the table's hooks is
  /// disturbed). Throws std::runtime_error like install(); the chains are then not installed
  /// and a later restore() with kChainMissing may try again.
  void restore(const CaptureSpec& spec, QueueRuleState found);

  /// True between a successful install() and remove().
  bool installed() const noexcept { return installed_; }
  std::uint16_t queue_num() const noexcept { return queue_num_; }

 private:
  CaptureChains(const CaptureSpec& spec, bool installed)
      : queue_num_(spec.queue_num), rule_chains_(queue_rule_chains(spec)), installed_(installed) {}

  std::uint16_t queue_num_ = 0;
  std::vector<std::string> rule_chains_;  // queue_rule_chains() of the spec installed
  bool installed_ = false;
};

}  // namespace finwave::nf
