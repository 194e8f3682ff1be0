#pragma once

#include <string>

#include "netfilter/unique_fd.hpp"

namespace finwave::nf {

/// `--netns PATH|PID`: the network namespace finwave works in instead of its own. `spec` is a
/// namespace file (/run/netns/NAME, /proc/PID/ns/net, a bind mount of one) or a PID (digits
/// only: that process's /proc/PID/ns/net). Opens it and checks that it is a network namespace.
/// Throws std::runtime_error with a one-line message naming `spec`: no such process, no such
/// file, not a network namespace, no permission.
UniqueFd open_netns(const std::string& spec);

/// Moves the calling thread into the network namespace `netns` (open_netns()'s). Every socket
/// it opens from then on, every thread it starts and every program it runs (nft) work there;
/// sockets opened before stay where they were. Throws std::runtime_error naming `spec` (entering
/// needs CAP_SYS_ADMIN).
void enter_netns(const UniqueFd& netns, const std::string& spec);

}  // namespace finwave::nf
