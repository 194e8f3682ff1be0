#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace finwave::nf {

/// How many live elements the set `set` of the nftables `inet` table `table` holds, counted
/// from a dump of its elements (nftables reports no element count of its own). Expired elements
/// the garbage collector has not reaped yet are not dumped, so not counted. nullopt when there
/// is no such table or set, no permission, or the kernel stops answering for a second. Never
/// throws. Costs one netlink round trip per few hundred elements: a set of 100,000 takes
/// milliseconds, so callers ask at most about once a second.
std::optional<std::uint64_t> nft_set_elements(const std::string& table,
                                              const std::string& set) noexcept;

/// What one read of that dump holds.
struct SetElementsChunk {
  std::uint64_t elements = 0;  ///< NFTA_LIST_ELEMs in the chunk's NEWSETELEM messages.
  bool done = false;           ///< The dump ended (NLMSG_DONE) in this chunk.
  bool failed = false;         ///< An error message, or a message cut short.
};

/// Parses one read of the dump. Pure.
SetElementsChunk parse_set_elements_chunk(const void* chunk, std::size_t length) noexcept;

}  // namespace finwave::nf
