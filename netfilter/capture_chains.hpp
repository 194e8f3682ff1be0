#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace finwave::nf {

/// Where finwave sits: on the forwarding host between client and server, or on one of them.
enum class CaptureMode {
  kRouter,  ///< Hook FORWARD.
  kLocal,   ///< Hook OUTPUT, and PREROUTING to local addresses except from loopback (OUTPUT sees
            ///< both directions there).
};

/// What the kernel hands to finwave's queue(s). Only teardown leaves the kernel: SYN, FIN and
/// RST segments, and every segment of a connection after its first FIN (which the chain itself
/// records in an ipset, see teardown_set.hpp). Bulk data before the first FIN is never queued.
struct CaptureSpec {
  CaptureMode mode = CaptureMode::kRouter;
  std::uint16_t queue_num = 0;
  /// More than 1: `--queue-balance queue_num:queue_num+count-1` (the kernel hashes on addresses
  /// only, not ports).
  std::uint16_t queue_count = 1;
  /// Empty: every TCP port. Otherwise a segment is captured when either of its ports is listed.
  std::vector<std::uint16_t> ports;
  /// Optional CIDR prefixes ("198.18.0.0/15", "2001:db8:1::/48"; a bare address is a host),
  /// matched as source or destination. A family none of them belongs to is not captured at all.
  std::vector<std::string> addresses;
  /// skb mark of finwave's own raw-socket copies (SO_MARK): such packets are never queued. All of
  /// its bits must be set for a packet to count as injected.
  std::uint32_t injected_mark = 0x0f1a0000;
  /// Benchmarks: queue every TCP segment, not only teardown.
  bool capture_all = false;
};

/// Name of the mangle chain finwave owns for `queue_num`: "FINWAVE-Q<queue_num>".
std::string capture_chain_name(std::uint16_t queue_num);

/// Throws std::invalid_argument with a message naming the offending field when `spec` cannot be
/// rendered: a zero port, queue_count 0 or a queue range past 65535, an address that is not a
/// CIDR prefix or whose prefix length is too long, or a zero injected_mark.
void validate(const CaptureSpec& spec);

/// The `iptables-restore --noflush` input (table mangle) that creates the chain and its jump
/// rules for `family` 4 or 6; the chain refers to that family's teardown set, which must exist. Pure: no I/O. Returns "" when the spec captures nothing in that
/// family (addresses given, none of that family). Throws std::invalid_argument like validate(),
/// and for a family other than 4 or 6.
std::string render_restore_input(const CaptureSpec& spec, int family);

/// finwave's capture rules in the kernel, for one queue (range), IPv4 and IPv6. Move-only; the
/// rules live until remove() or destruction. Control plane only: every call runs
/// iptables-restore/-save and blocks; not thread-safe.
class CaptureChains {
 public:
  /// Removes stale chains and sets of the same queue (from a crashed run), then creates the
  /// teardown sets and installs the rules of `spec` for IPv4 and IPv6. If either family fails,
  /// removes what it installed and throws std::runtime_error carrying iptables-restore's or
  /// ipset's stderr. Throws std::invalid_argument for an invalid spec, std::runtime_error when
  /// a needed tool (iptables, ipset) is missing.
  static CaptureChains install(const CaptureSpec& spec);

  /// Removes every FINWAVE-Q<queue_num> chain and every jump rule pointing at it, in both
  /// families, whoever installed them, then the queue's teardown sets. Returns how many rules
  /// were removed (jump rules plus the chains' own rules). A family whose tools are missing counts as empty; throws
  /// std::runtime_error when iptables-save or iptables-restore fails, or when both families'
  /// tools are missing.
  static int remove_stale(std::uint16_t queue_num);

  CaptureChains() = default;
  CaptureChains(CaptureChains&& other) noexcept;
  CaptureChains& operator=(CaptureChains&& other) noexcept;
  CaptureChains(const CaptureChains&) = delete;
  CaptureChains& operator=(const CaptureChains&) = delete;
  ~CaptureChains();

  /// Empties the chains but leaves them and their jump rules in place: nothing more is queued,
  /// and nothing already queued is dropped. Shutdown calls this first, gives every queued packet
  /// its verdict, then calls remove() — removing a chain (and with it, when it was the last,
  /// the table's hooks) makes the kernel drop whatever is still queued through it. Never throws
  /// (failures are written to stderr).
  void stop_capturing() noexcept;

  /// Removes the rules, then the teardown sets; idempotent, never throws (failures are written to stderr, since the
  /// caller is usually shutting down and cannot do better).
  void remove() noexcept;

  /// True between a successful install() and remove().
  bool installed() const noexcept { return installed_; }
  std::uint16_t queue_num() const noexcept { return queue_num_; }

 private:
  CaptureChains(std::uint16_t queue_num, bool installed) noexcept
      : queue_num_(queue_num), installed_(installed) {}

  std::uint16_t queue_num_ = 0;
  bool installed_ = false;
};

}  // namespace finwave::nf
