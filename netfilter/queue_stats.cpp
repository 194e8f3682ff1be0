#include "netfilter/queue_stats.hpp"

#include <charconv>
#include <fstream>
#include <iterator>
#include <string>

namespace finwave::nf {
namespace {

// Reads the next whitespace-separated unsigned number from `text`, advancing it.
template <typename T>
bool next_number(std::string_view& text, T& value) {
  const auto start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) return false;
  text.remove_prefix(start);
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{}) return false;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return true;
}

}  // namespace

std::optional<KernelQueueStats> parse_kernel_queue_stats(std::string_view proc_text,
                                                         std::uint16_t queue_num) noexcept {
  while (!proc_text.empty()) {
    const auto newline = proc_text.find('\n');
    std::string_view line = proc_text.substr(0, newline);
    proc_text.remove_prefix(newline == std::string_view::npos ? proc_text.size() : newline + 1);

    KernelQueueStats stats;
    if (!next_number(line, stats.queue_num) || stats.queue_num != queue_num) continue;
    if (next_number(line, stats.peer_port_id) && next_number(line, stats.queue_total) &&
        next_number(line, stats.copy_mode) && next_number(line, stats.copy_range) &&
        next_number(line, stats.queue_dropped) && next_number(line, stats.user_dropped) &&
        next_number(line, stats.id_sequence)) {
      return stats;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<KernelQueueStats> read_kernel_queue_stats(std::uint16_t queue_num) {
  // /proc/self/net: what /proc/net links to, and reachable under systemd's ProcSubset=pid.
  std::ifstream file("/proc/self/net/netfilter/nfnetlink_queue");
  if (!file) return std::nullopt;
  const std::string text{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  return parse_kernel_queue_stats(text, queue_num);
}

}  // namespace finwave::nf
