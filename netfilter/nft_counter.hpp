#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace finwave::nf {

/// The packet count of the named counter `name` in the nftables `inet` table `table`, asked of
/// the kernel in one netlink round trip (NFT_MSG_GETOBJ). nullopt when there is no such table or
/// counter, no permission, or no answer within a second. Never throws.
std::optional<std::uint64_t> nft_counter_packets(const std::string& table,
                                                 const std::string& name) noexcept;

/// The packet count in the kernel's reply to that request: NFTA_COUNTER_PACKETS inside the
/// NFTA_OBJ_DATA of the first NEWOBJ message, or nullopt when the reply is an error, is
/// malformed, or has no count. Pure.
std::optional<std::uint64_t> parse_counter_reply(const void* reply, std::size_t length) noexcept;

}  // namespace finwave::nf
