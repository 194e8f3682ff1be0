#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace finwave::nf {

/// The kernel's memory of which connections are in teardown: an ipset of type hash:ip,port,ip,
/// one per queue (range) and address family, which the capture chain fills itself. The set type
/// has one port, so a connection is two entries, one per direction: (address, port, peer
/// address) of each end. The first FIN of a connection adds both, every later captured segment
/// refreshes them, and a SYN removes its sender's entry (a new connection on the same 4-tuple
/// starts outside the set). A segment without FIN, SYN or RST is queued only when both of its
/// entries are in the set: the server's entry (server, port, client) is shared by every
/// connection between that client address and that server port, the client's (client,
/// ephemeral port, server) is its own. Entries expire kTeardownSetTimeoutSeconds after the last
/// captured segment that refreshed them.
///
/// Why a set and not the connection tracker: conntrack (with a CONNMARK on the first FIN) costs
/// every forwarded packet its state tracking, about 8% of single-stream bulk throughput on these
/// machines; the one set lookup per packet costs about half that, and most of it is the
/// xtables compatibility layer iptables-nft runs `-m set` through (tests/bench/capture_cost.sh
/// measures each part). The set also holds connections that began before finwave: conntrack
/// cannot mark a connection it first meets at its FIN.

/// Seconds an entry outlives the last captured segment of its connection. Longer than the
/// largest gap between FIN retransmissions (the retransmission timeout is capped at 120 s), so
/// that a final ACK still finds its connection in the set.
inline constexpr unsigned kTeardownSetTimeoutSeconds = 180;
/// Entries per set: 2,900 connections a second, two entries each, for the timeout. The set is
/// created with forceadd: when it is full, adding an entry evicts one from the same hash bucket
/// (most likely a connection long closed) rather than failing, so new connections stay
/// captured. An add fails only when its bucket is empty, which a full set of this size
/// rarely has; then that connection's final ACKs are not captured (its FINs still are).
inline constexpr unsigned kTeardownSetMaxEntries = 1U << 20;

/// "finwave-q<queue_num>-v4" or "-v6".
std::string teardown_set_name(std::uint16_t queue_num, int family);

/// Creates the set for `family` (4 or 6); an identical set left by an earlier run is kept.
/// Throws std::runtime_error with ipset's own message when it fails (for example a set of the
/// same name with other parameters), and when ipset is not installed (naming the package).
void create_teardown_set(std::uint16_t queue_num, int family);

/// How many entries the set for `family` holds now (one netlink round trip, see
/// ipset_entries.hpp); nullopt when the set does not exist or cannot be read. Never throws.
std::optional<std::uint64_t> teardown_set_entries(std::uint16_t queue_num, int family) noexcept;

/// Destroys the set for `family` if it exists. Returns whether one was destroyed. A set still
/// referenced by a rule cannot be destroyed: remove the rules first. Throws std::runtime_error
/// when ipset fails; returns false when ipset is not installed (there can be no set then).
bool destroy_teardown_set(std::uint16_t queue_num, int family);

}  // namespace finwave::nf
