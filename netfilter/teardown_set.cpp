#include "netfilter/teardown_set.hpp"

#include "netfilter/capture_chains.hpp"
#include "netfilter/nft_counter.hpp"
#include "netfilter/set_elements.hpp"

namespace finwave::nf {

std::string teardown_set_name(int family) { return family == 6 ? "teardown6" : "teardown4"; }

std::string refused_counter_name(int family) { return family == 6 ? "refused6" : "refused4"; }

std::optional<std::uint64_t> teardown_set_entries(std::uint16_t queue_num, int family) noexcept {
  try {
    return nft_set_elements(capture_table_name(queue_num), teardown_set_name(family),
                            kTeardownSetCountLimit);
  } catch (...) {  // Building the names can only fail to allocate.
    return std::nullopt;
  }
}

std::optional<std::uint64_t> teardown_set_refused(std::uint16_t queue_num, int family) noexcept {
  try {
    return nft_counter_packets(capture_table_name(queue_num), refused_counter_name(family));
  } catch (...) {  // Building the names can only fail to allocate.
    return std::nullopt;
  }
}

}  // namespace finwave::nf
