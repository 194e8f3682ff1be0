#pragma once

#include <uv.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netfilter/capture_chains.hpp"
#include "netfilter/queue.hpp"
#include "netfilter/queue_stats.hpp"
#include "proxy/dataplane.hpp"
#include "proxy/flow_table.hpp"
#include "proxy/options.hpp"
#include "proxy/outcome.hpp"
#include "proxy/pcap_writer.hpp"
#include "proxy/uv_handle.hpp"

namespace finwave::proxy {

/// The finwave daemon: one libuv loop that owns the NFQUEUE socket, the capture chains, the
/// flow table, the timers and the signals. Construct, then run() on the thread that will own
/// everything.
class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  /// Binds the queue, installs the capture, runs until SIGINT/SIGTERM, shuts down in order and
  /// returns the process exit status (0 on a clean run). Set-up failures throw
  /// std::runtime_error / std::system_error with a message for the user.
  int run();

 private:
  static void on_readable(uv_poll_t* handle, int status, int events) noexcept;
  static void on_tick(uv_timer_t* handle) noexcept;
  static void on_signal(uv_signal_t* handle, int signum) noexcept;

  void start();
  void drain() noexcept;
  void tick() noexcept;
  void shutdown() noexcept;
  void emit(std::vector<Outcome>& outcomes) noexcept;
  void print_stats() noexcept;
  std::uint64_t now_us() const noexcept;
  void log(const std::string& message) const noexcept;

  DaemonOptions options_;
  uv_loop_t loop_{};
  bool loop_initialized_ = false;
  bool stopping_ = false;

  std::optional<nf::Queue> queue_;
  nf::CaptureChains chains_;
  FlowTable flows_;
  PcapWriter pcap_;
  std::optional<Dataplane> dataplane_;
  std::optional<nf::KernelQueueStats> kernel_stats_;  // read just before unbinding
  std::vector<Outcome> outcomes_;  // reused between ticks

  UvHandle<uv_poll_t> poll_;
  UvHandle<uv_timer_t> tick_;
  UvHandle<uv_signal_t> sigint_;
  UvHandle<uv_signal_t> sigterm_;
};

}  // namespace finwave::proxy
