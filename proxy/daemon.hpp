#pragma once

#include <uv.h>

#include <cstdint>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "netfilter/arrival_stamps.hpp"
#include "netfilter/capture_chains.hpp"
#include "netfilter/injector.hpp"
#include "netfilter/queue.hpp"
#include "netfilter/queue_stats.hpp"
#include "proxy/control_server.hpp"
#include "proxy/dataplane.hpp"
#include "proxy/delay_line.hpp"
#include "proxy/flow_table.hpp"
#include "proxy/options.hpp"
#include "proxy/outcome.hpp"
#include "proxy/pcap_writer.hpp"
#include "proxy/timer_lead.hpp"
#include "proxy/uv_handle.hpp"
#include "rules/engine.hpp"
#include "rules/rng.hpp"

namespace finwave::proxy {

/// The finwave daemon: one libuv loop that owns the NFQUEUE socket, the capture chains, the
/// flow table, the timers, the signals and the control socket. Construct, then run() on the
/// thread that will own everything.
class Daemon final : private ControlHandler {
 public:
  explicit Daemon(DaemonOptions options);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  /// Loads the rules (throws rules::ConfigError), binds the queue, installs the capture, runs
  /// until SIGINT/SIGTERM (SIGHUP reloads the rule file), shuts down in order and returns the
  /// process exit status (0 on a clean run). Set-up failures throw std::runtime_error /
  /// std::system_error with a message for the user.
  int run();

 private:
  static void on_readable(uv_poll_t* handle, int status, int events) noexcept;
  static void on_tick(uv_timer_t* handle) noexcept;
  static void on_signal(uv_signal_t* handle, int signum) noexcept;
  static void on_delay_timer(uv_poll_t* handle, int status, int events) noexcept;

  void start();
  void drain() noexcept;
  void run_due() noexcept;
  void arm_delay_timer() noexcept;
  void reload() noexcept;
  void tick() noexcept;
  void shutdown() noexcept;
  void emit(std::vector<Outcome>& outcomes) noexcept;
  void print_stats() noexcept;
  /// Every counter as one JSON object (the `stats` command and the exit stats line). With
  /// `live_kernel`, the kernel's queue counters are read now rather than taken from shutdown.
  nlohmann::json stats_json(bool live_kernel) const;
  /// Re-reads the rule file (throws rules::ConfigError, keeping the current rules). `by` is the
  /// rule_change event's "by" ("sighup" or "control"); `who` names the asker in the log.
  void reload_rules(const std::string& by, const std::string& who);

  // ControlHandler: the commands that read or change the daemon.
  nlohmann::json on_control_command(const ControlRequest& request,
                                    const std::string& client) override;
  void on_rule_hit_interest(bool wanted) noexcept override;
  nlohmann::json status_json() const;
  nlohmann::json rules_json() const;
  nlohmann::json rule_json(const std::string& name) const;
  nlohmann::json flows_json(const ControlRequest& request) const;
  nlohmann::json change_rule(const ControlRequest& request, const std::string& client);
  /// Throws ControlError(unknown_rule) with a "did you mean" unless a rule is called `name`.
  void require_rule(const std::string& name) const;
  std::uint64_t now_us() const noexcept;
  void log(const std::string& message) const noexcept;

  DaemonOptions options_;
  uv_loop_t loop_{};
  bool loop_initialized_ = false;
  bool stopping_ = false;

  rules::Engine engine_;
  rules::Rng rng_;
  std::optional<nf::Queue> queue_;
  nf::CaptureChains chains_;
  FlowTable flows_;
  DelayLine delays_;
  std::optional<nf::Injector> injector_;
  PcapWriter pcap_;
  std::optional<Dataplane> dataplane_;
  std::optional<nf::KernelQueueStats> kernel_stats_;  // read just before unbinding
  std::vector<Outcome> outcomes_;  // reused between ticks
  std::optional<ControlServer> control_;  // absent with --control none
  std::set<std::string> control_added_;   // rules added over the socket, until a reload
  std::uint64_t started_us_ = 0;
  std::time_t started_at_ = 0;

  int delay_fd_ = -1;  // timerfd: libuv's millisecond timers are too coarse for delays
  std::uint64_t delay_due_us_ = 0;    // the due time delay_fd_ is armed for; 0 = disarmed
  std::uint64_t delay_fires_us_ = 0;  // when it should fire: due minus the lead, or when armed
  TimerLead timer_lead_;
  std::optional<nf::ArrivalStamps> arrival_stamps_;  // delays run from the kernel's arrival time

  UvHandle<uv_poll_t> poll_;
  UvHandle<uv_poll_t> delay_poll_;
  UvHandle<uv_timer_t> tick_;
  UvHandle<uv_signal_t> sigint_;
  UvHandle<uv_signal_t> sigterm_;
  UvHandle<uv_signal_t> sighup_;
};

}  // namespace finwave::proxy
