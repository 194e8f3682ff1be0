#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netfilter/capture_chains.hpp"
#include "rules/segment_facts.hpp"

namespace finwave::proxy {

/// Most queues (and so threads) --queues accepts: far more than the cores that could use them.
inline constexpr std::uint16_t kMaxQueues = 64;

/// Everything `finwave` is told on its command line (see `finwave --help`).
struct DaemonOptions {
  std::string rules_path;  ///< Empty: run with no rules (observe only).
  std::string check_path;  ///< --check FILE: validate a rule file and exit.
  nf::CaptureMode mode = nf::CaptureMode::kRouter;
  std::vector<std::uint16_t> ports;
  std::vector<std::string> addresses;
  std::uint16_t queue_num = 0;
  /// --queues N: queues queue_num .. queue_num + N - 1, one thread each.
  std::uint16_t queue_count = 1;
  int realtime_priority = 0;  ///< SCHED_FIFO priority for every thread; 0: the normal scheduler.
  std::uint32_t queue_len = 4096;
  /// --log-buffer BYTES: the receive buffer of each log group's socket.
  std::uint32_t log_buffer = 64U << 20;
  std::string control_path = "/run/finwave/control.sock";  ///< "none": no control socket.
  std::string control_group;  ///< Empty: socket mode 0600; else group-owned, mode 0660.
  bool json = false;
  bool ladder = false;  ///< --ladder: an ASCII ladder diagram under each outcome.
  double settle_s = 1.0;
  double linger_s = 120.0;
  std::uint64_t max_flows = 131072;
  std::string pcap_path;
  std::optional<std::uint64_t> seed;
  std::uint32_t max_held = 1024;
  bool capture_all = false;
  std::string ready_file;
  /// --netns PATH|PID: work in this network namespace (its queue, table, raw sockets); empty:
  /// finwave's own.
  std::string netns;
  /// --metrics ADDRESS:PORT: serve Prometheus metrics there; none by default.
  std::optional<rules::Endpoint> metrics;
  bool quiet = false;
};

/// What `options` ask the kernel to capture (the capture table's spec).
nf::CaptureSpec capture_spec(const DaemonOptions& options);

/// What parse_daemon_options() decided: run, or exit now with `exit_code` (help, version, usage
/// errors: the message is already printed).
struct ParsedOptions {
  DaemonOptions options;
  std::optional<int> exit_code;
};

ParsedOptions parse_daemon_options(int argc, char** argv);

}  // namespace finwave::proxy
