#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace finwave::nf {

/// The kernel's memory of which connections are in teardown: an nftables set in finwave's
/// capture table, one per address family, of (address . port . peer address), which the capture
/// chain fills itself. A key has one port, so a connection is two elements, one per direction:
/// (address, port, peer address) of each end. The first FIN of a connection adds both, every
/// later captured segment refreshes them, and a SYN removes its sender's element (a new
/// connection on the same 4-tuple starts outside the set). A segment without FIN, SYN or RST is
/// queued only when both of its elements are in the set: the server's element (server, port,
/// client) is shared by every connection between that client address and that server port, the
/// client's (client, ephemeral port, server) is its own. Elements expire
/// kTeardownSetTimeoutSeconds after the last captured segment that refreshed them.
///
/// Why a set and not the connection tracker: conntrack (with a CONNMARK on the first FIN) costs
/// every forwarded packet its state tracking, about 8% of single-stream bulk throughput on these
/// machines. Why nftables and not an ipset: an ipset lookup from iptables-nft runs through the
/// xtables compatibility layer, which cost 6% of that throughput where a native set lookup costs
/// about 2% (tests/bench/capture_cost.sh measures each part). The set also holds connections
/// that began before finwave: conntrack cannot mark a connection it first meets at its FIN.

/// Seconds an element outlives the last captured segment of its connection. Longer than the
/// largest gap between FIN retransmissions (the retransmission timeout is capped at 120 s), so
/// that a final ACK still finds its connection in the set.
inline constexpr unsigned kTeardownSetTimeoutSeconds = 180;
/// Elements per set: 2,900 connections a second, two elements each, for the timeout. A full set
/// takes no more elements until old ones expire (nftables has no eviction): a connection whose
/// first FIN finds it full is still captured at its FINs, SYNs and RSTs, but not at its final
/// ACKs. The capture chain counts the segments that found the set full (the "refused" counter).
inline constexpr unsigned kTeardownSetMaxEntries = 1U << 20;

/// The most elements teardown_set_entries() counts. Counting costs the kernel more than linear
/// time (see set_elements.hpp), and the control loop that asks also gives queue 0 its verdicts:
/// at 2,000 elements a count takes about 0.2 ms, so the two families' counts, read at most once
/// a second, hold up a verdict by no more than the 0.3 ms a delay may be off (10,000 would take
/// 1.5-3 ms each). Above it, the refused counters are the figure that matters.
inline constexpr std::uint64_t kTeardownSetCountLimit = 2'000;

/// The set's name in the capture table: "teardown4" or "teardown6".
std::string teardown_set_name(int family);

/// The name of the capture table's counter of captured segments whose connection could not
/// enter the set for `family` because it was full: "refused4" or "refused6".
std::string refused_counter_name(int family);

/// How many live elements the set for `family` of queue `queue_num`'s capture table holds now;
/// nullopt when there are more than kTeardownSetCountLimit, or the set does not exist or cannot
/// be read. Never throws.
std::optional<std::uint64_t> teardown_set_entries(std::uint16_t queue_num, int family) noexcept;

/// The refused counter of `family` (one netlink round trip); nullopt when it does not exist or
/// cannot be read. Never throws.
std::optional<std::uint64_t> teardown_set_refused(std::uint16_t queue_num, int family) noexcept;

}  // namespace finwave::nf
