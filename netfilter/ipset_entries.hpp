#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace finwave::nf {

/// How many entries the ipset `name` holds, asked of the kernel over netlink (the header-only
/// form of `ipset list -terse`). nullopt when there is no such set, no permission, or no answer
/// within a second. Never throws.
///
/// Why netlink and not the ipset tool: `stats` is answered on the loop that also gives queue 0
/// its verdicts, and a fork and exec there stalls them for milliseconds; this is one round trip.
std::optional<std::uint64_t> ipset_entries(const std::string& name) noexcept;

/// The entry count in the kernel's reply to that request: the IPSET_ATTR_ELEMENTS inside the
/// IPSET_ATTR_DATA of the first IPSET_CMD_LIST message, or nullopt when the reply is an error,
/// is malformed or has no count. Pure.
std::optional<std::uint64_t> parse_ipset_list_reply(const void* reply, std::size_t length) noexcept;

}  // namespace finwave::nf
