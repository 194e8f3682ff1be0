#pragma once

#include <libmnl/libmnl.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "netfilter/mnl_socket.hpp"

namespace finwave::nf {

/// The longest nftables table, set or object name the kernel takes (NFT_NAME_MAXLEN, 256 with
/// the terminator).
inline constexpr std::size_t kNftNameMax = 255;

/// Whether `name` can name an nftables table, set or object.
inline bool valid_nft_name(const std::string& name) noexcept {
  return !name.empty() && name.size() <= kNftNameMax;
}

/// A bound netfilter netlink socket whose reads give up after a second (a kernel that never
/// answers must not hang the control loop); null when it cannot be had. Never throws.
MnlSocket open_nft_socket() noexcept;

/// Starts an nftables request of `type` (NFT_MSG_*) with `flags` for the inet family at the
/// start of `buffer`: the netlink header and the nfgenmsg. Attributes go on with mnl_attr_put_*.
nlmsghdr* put_nft_request(char* buffer, std::uint16_t type, std::uint16_t flags) noexcept;

}  // namespace finwave::nf
