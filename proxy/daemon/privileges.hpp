#pragma once

#include <string>

namespace finwave::proxy {

/// finwave's capabilities: what it needs, checked before it starts, and what it keeps after.
///
/// - CAP_NET_ADMIN: its NFQUEUE queue (binding, and every verdict: nfnetlink checks the sender
///   of each message) and its nftables table (nft, and the netlink reads of its sets and
///   counters). Kept for the whole run.
/// - CAP_NET_RAW: the raw sockets that send copies and RSTs. Needed only to open them at
///   start-up; dropped once they are open.
/// - CAP_SYS_ADMIN, only with --netns: to enter the namespace. Dropped after.
/// - CAP_SYS_NICE, only with --realtime-priority: kept (a thread started later returns to the
///   real-time class it was lowered from).
///
/// finwave runs as root, or as any user holding these: ambient capabilities (setpriv,
/// systemd's AmbientCapabilities=) or file capabilities on the binary (setcap). The nft it
/// runs needs CAP_NET_ADMIN too, so that one is made ambient, which a program it runs inherits.
struct CapabilityNeeds {
  bool netns = false;     ///< --netns given.
  bool realtime = false;  ///< --realtime-priority given.
};

/// Before anything is made: raises the needed capabilities that are permitted but not
/// effective, makes CAP_NET_ADMIN ambient, and throws std::runtime_error naming every needed
/// capability finwave does not hold and how to give it.
void require_capabilities(const CapabilityNeeds& needs);

/// After start-up, before any thread starts (capabilities are per thread; threads inherit
/// them): keeps CAP_NET_ADMIN (and CAP_SYS_NICE with --realtime-priority) and drops every other
/// capability from every set, the bounding set included when finwave may change it. Returns
/// what it did for the log; throws std::runtime_error if the kernel refuses.
std::string drop_capabilities(const CapabilityNeeds& needs);

}  // namespace finwave::proxy
