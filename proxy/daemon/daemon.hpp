#pragma once

#include <uv.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "netfilter/arrival_stamps.hpp"
#include "netfilter/capture_chains.hpp"
#include "netfilter/queue_stats.hpp"
#include "proxy/control/control_server.hpp"
#include "proxy/daemon/options.hpp"
#include "proxy/daemon/privileges.hpp"
#include "proxy/dataplane/handoff.hpp"
#include "proxy/dataplane/queue_classes.hpp"
#include "proxy/dataplane/queue_worker.hpp"
#include "proxy/loop/uv_handle.hpp"
#include "proxy/metrics/metrics_server.hpp"
#include "proxy/metrics/metrics_snapshot.hpp"
#include "proxy/tracker/outcome.hpp"
#include "rules/engine.hpp"

namespace finwave::proxy {

/// The finwave daemon: one libuv loop, the control thread, that owns the capture chains, the
/// signals, the control socket and stdout, and the queue workers that read the NFQUEUE queues
/// (QueueWorker). With one queue the only worker runs on this loop; with --queues N the others
/// run on threads of their own and hand their outcomes and rule hits over through a Handoff.
/// Construct, then run() on the thread that will own everything.
class Daemon final : private ControlHandler, private OutcomeSink {
 public:
  explicit Daemon(DaemonOptions options);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  /// Loads the rules (throws rules::ConfigError), binds the queues, installs the capture, runs
  /// until SIGINT/SIGTERM (SIGHUP reloads the rule file), shuts down in order and returns the
  /// process exit status (0 on a clean run). Set-up failures throw std::runtime_error /
  /// std::system_error with a message for the user.
  int run();

 private:
  /// How often the capture watch looks at the kernel (watch_capture()): a deleted table or
  /// queue rule is noticed within this, and put back a few tens of milliseconds later.
  static constexpr std::uint64_t kCaptureWatchMs = 250;

  /// How often the rules added with a ttl or max_hits are looked at while there are any: a
  /// rule goes at most this long after its time is up or its budget used (the engine stops
  /// letting a used-up rule decide at once).
  static constexpr std::uint64_t kRuleLifetimeCheckMs = 20;

  /// How often the --metrics endpoint's snapshot is renewed. Prometheus scrapes every 15 s or
  /// so; the queue workers publish their counters every 50 ms.
  static constexpr std::uint64_t kMetricsPublishMs = 250;

  static void on_signal(uv_signal_t* handle, int signum) noexcept;
  static void on_capture_watch(uv_timer_t* timer) noexcept;
  static void on_rule_lifetimes(uv_timer_t* timer) noexcept;
  static void on_metrics_publish(uv_timer_t* timer) noexcept;

  /// The capture watch: looks whether the table and its queue rule are still there, puts back
  /// what someone deleted, and says so on stderr and in `stats` (see the comment in daemon.cpp).
  void watch_capture() noexcept;
  /// The watch found the table (or its queue rule) gone: counts and says it.
  void note_loss(nf::QueueRuleState state, const std::string& table) noexcept;
  /// Puts back what is gone; a failure is said once per loss.
  void restore_capture(nf::QueueRuleState state, const std::string& table) noexcept;
  /// Reads the queue rule's counter and the kernel's queue ids together: the pair from which
  /// `capture.passed_unqueued` comes. Returns false when either cannot be read.
  bool read_capture_counts(const nf::QueueRuleProbe& probe) noexcept;
  /// The queue ids the kernel has handed out on finwave's queues (their id sequences, summed).
  std::optional<std::uint64_t> queue_ids() const noexcept;

  CapabilityNeeds capability_needs() const noexcept;
  void start();
  void start_workers(const rules::Engine& engine);
  void reload() noexcept;
  void shutdown() noexcept;
  /// After shutdown: 0, or the first error uv_loop_close() gave for a worker's own loop.
  int loop_errors() const noexcept;
  /// OutcomeSink: worker 0's outcomes, and the other workers' through the Handoff.
  void on_outcomes(std::vector<Outcome>& outcomes) noexcept override;
  void emit(std::vector<Outcome>& outcomes) noexcept;
  void print_stats() noexcept;
  /// Every counter as one JSON object (the `stats` command and the exit stats line): the sums
  /// over the queues, and each queue's own under "queues". With `live_kernel`, the kernel's
  /// queue counters are read now rather than taken from shutdown.
  nlohmann::json stats_json(bool live_kernel) const;
  /// `stats.teardown_set`: the teardown sets' entries and refused counters, read again when
  /// `live_kernel` and the last reading is over a second old.
  nlohmann::json teardown_set_json(bool live_kernel) const;
  /// `stats.capture`: what the capture watch saw at its last look.
  nlohmann::json capture_json() const;
  /// `stats.capture.passed_unqueued`; std::nullopt before the capture watch could count.
  std::optional<std::uint64_t> passed_unqueued() const noexcept;
  /// Everything the metrics report, from what the workers last published (never their locks)
  /// and the control thread's own figures.
  MetricsSnapshot metrics_snapshot() const;
  /// Starts the --metrics endpoint (throws std::runtime_error) and its publish timer.
  void start_metrics();
  /// Hands the endpoint a fresh snapshot.
  void publish_metrics() noexcept;
  /// Re-reads the rule file (throws rules::ConfigError, keeping the current rules). `by` is the
  /// rule_change event's "by" ("sighup" or "control"); `who` names the asker in the log.
  void reload_rules(const std::string& by, const std::string& who);
  /// Applies `change(rules::Engine&)` to every worker's engine, worker 0's first. They all hold
  /// the same rules, so a change worker 0's engine refuses (throws) changes nothing anywhere,
  /// and one it accepts is accepted by all.
  template <typename Change>
  void change_rules(const Change& change) {
    for (auto& worker : workers_) worker->change_rules(change);
    requeue();
  }
  /// The capture spec as it stands: the options' plus what is queued now.
  nf::CaptureSpec live_capture_spec() const;
  /// Makes the capture queue what the enabled rules could act on now and log the rest
  /// (queue_plan()), in one nft transaction, before the change that called it replies. When
  /// nft fails every class is queued (always safe), and that is said.
  void requeue() noexcept;
  /// Whether the log path may batch its copies with `queued` classes queued: only when nothing
  /// is queued (no order between the two paths to keep) and in router mode, where every copy
  /// carries the kernel's arrival stamp (copies from the OUTPUT hook carry none, and a batched
  /// one would be timed when read, up to a batch's timeout late).
  bool log_may_batch(const QueuePlan& plan) const noexcept;
  /// What is queued and logged now, for the log: "ack (dport 5000)", "rst, syn, the rest of ack".
  std::string describe_queued() const;
  std::string describe_logged() const;
  /// Every worker's log path to batched or one-by-one delivery; a failure is said.
  void set_log_batching(bool batching) noexcept;
  /// {"queued": [...], "logged": [...]}: the classes of segment on each path.
  nlohmann::json classes_json() const;
  /// The rules with their hits summed over the workers.
  std::vector<rules::RuleStatus> rule_statuses() const;

  // ControlHandler: the commands that read or change the daemon.
  nlohmann::json on_control_command(const ControlRequest& request,
                                    const std::string& client) override;
  void on_rule_hit_interest(bool wanted) noexcept override;
  nlohmann::json status_json() const;
  nlohmann::json rules_json() const;
  nlohmann::json rule_json(const std::string& name) const;
  /// One rule as `rules` lists it (and add, enable, disable reply with it).
  nlohmann::json rule_entry(std::size_t position, const rules::RuleStatus& rule) const;
  nlohmann::json flows_json(const ControlRequest& request) const;
  /// enable, disable, add, remove: the reply, after the rule_change event. Each of the three
  /// below returns the name of the rule it changed (and whether enabling or disabling changed
  /// anything: a rule already so does not).
  nlohmann::json change_rule(const ControlRequest& request, const std::string& client);
  std::pair<std::string, bool> set_rule_enabled(const ControlRequest& request,
                                                const std::string& by);
  std::string add_rule(const ControlRequest& request, const std::string& by);
  std::string remove_rule(const ControlRequest& request, const std::string& by);
  /// Remembers the lifetime of a rule `add` gave a ttl or max_hits, and starts the look.
  void track_rule_lifetime(const std::string& name, const ControlRequest& request,
                           const std::shared_ptr<std::atomic<std::int64_t>>& budget);
  /// Forgets rule lifetimes: one (remove), or all (reset, reload); the look stops when none
  /// is left.
  void forget_rule_lifetime(const std::string& name) noexcept;
  void forget_rule_lifetimes() noexcept;
  /// The look: removes the rules whose ttl is up or whose budget is used, each with a
  /// rule_change event whose "by" says why ("ttl", "max_hits").
  void end_rule_lifetimes() noexcept;
  /// "expires_in_s" and "hits_left" of a rule with a lifetime, into `rule`.
  void add_lifetime_json(const std::string& name, nlohmann::json& rule) const;
  /// `reset`: the rules as last loaded from the file (none without --rules), with their enabled
  /// states; every rule added over the socket goes. Hit counts and every flow's rule counts
  /// restart, as after a reload. The reply names what went and what came back.
  nlohmann::json reset_rules(const std::string& client);
  /// Throws ControlError(unknown_rule) with a "did you mean" unless a rule is called `name`.
  void require_rule(const std::string& name) const;
  std::uint64_t now_us() const noexcept;
  /// read_teardown_entries() when the last reading is over a second old.
  void refresh_teardown_entries() const noexcept;
  /// Reads both teardown sets' entry counts and refused counters into teardown_entries_ and
  /// teardown_refused_ (a few netlink round trips).
  void read_teardown_entries() const noexcept;
  void log(const std::string& message) const noexcept;

  DaemonOptions options_;
  uv_loop_t loop_{};
  bool loop_initialized_ = false;
  bool stopping_ = false;

  nf::CaptureChains chains_;
  /// The classes of segment queued now, wholly or in part (the rest is logged). Every class,
  /// whole, when there is no log path (--capture-all).
  QueuePlan plan_{nf::SegmentClasses::all(), {}};
  bool log_path_ = false;
  /// What the capture watch has seen (control thread only).
  struct CaptureWatch {
    bool intact = true;              // false from a loss until the capture is back
    std::uint64_t checks = 0;        // looks at the kernel
    std::uint64_t check_errors = 0;  // looks the kernel did not answer (nothing concluded)
    std::uint64_t lost = 0;          // times the table or its queue rule was found gone
    std::uint64_t restored = 0;      // times finwave put it back
    std::uint64_t restore_errors = 0;
    std::uint64_t restore_errors_at_loss = 0;  // so that each loss says its first failure
    std::uint64_t lost_at_us = 0;              // when the current loss was noticed
    std::string last_loss;  // what was gone the last time ("table", "queue rule")
    // Segments the queue rule sent on that the kernel let pass unqueued (fail-open: the queue
    // was full, or finwave's socket buffer): the queue rule's counter minus the queue ids the
    // kernel handed out, both since the rule was (re)installed, plus what earlier rules left.
    std::optional<std::uint64_t> rule_packets;  // the current rule's counter, last read
    std::uint64_t rule_packets_before = 0;      // counted by rules since deleted
    std::uint64_t ids_at_install = 0;           // queue ids handed out when the rule came
    std::uint64_t ids = 0;                      // queue ids handed out, last read
    std::int64_t passed_before = 0;             // passed_unqueued of rules since deleted
    bool counts_known = false;
  };
  CaptureWatch capture_watch_state_;
  UvHandle<uv_timer_t> capture_watch_;
  std::optional<nf::ArrivalStamps> arrival_stamps_;  // delays run from the kernel's arrival time
  std::optional<Handoff> handoff_;                   // with more than one queue
  /// Worker i reads queue queue_num + i; worker 0 runs on this loop.
  std::vector<std::unique_ptr<QueueWorker>> workers_;
  /// Per worker, read just before unbinding.
  std::vector<std::optional<nf::KernelQueueStats>> kernel_stats_;
  /// Entries of the IPv4 and IPv6 teardown sets, and their refused counters: read at most once
  /// a second for `stats` (a flood of requests must not turn into a flood of netlink round
  /// trips on the loop that gives verdicts), and once more just before the sets are destroyed.
  mutable std::array<std::optional<std::uint64_t>, 2> teardown_entries_{};
  mutable std::array<std::optional<std::uint64_t>, 2> teardown_refused_{};
  mutable std::uint64_t teardown_entries_read_us_ = 0;  // 0: never read
  std::optional<ControlServer> control_;                // absent with --control none
  std::set<std::string> control_added_;  // rules added over the socket, until a reload
  /// The rule file's rules as last loaded (start-up, reload, SIGHUP): what `reset` puts back.
  rules::RuleSet loaded_rules_;
  /// The rules `add` gave a ttl or max_hits: when each expires, and its hit budget (shared with
  /// every engine's copy of the rule).
  struct RuleLifetime {
    std::optional<std::uint64_t> expires_us;
    std::shared_ptr<std::atomic<std::int64_t>> hit_budget;
  };
  std::map<std::string, RuleLifetime> rule_lifetimes_;
  UvHandle<uv_timer_t> rule_lifetime_timer_;
  /// emit()'s lines of one batch of outcomes; its capacity is kept up to kKeptOutputBytes.
  std::string output_;
  static constexpr std::size_t kKeptOutputBytes = 4U << 20;
  /// What the reported outcomes said, for the metrics (every outcome passes emit()).
  OutcomeTally outcome_tally_;
  std::optional<MetricsServer> metrics_server_;  // with --metrics
  UvHandle<uv_timer_t> metrics_timer_;
  std::uint64_t started_us_ = 0;
  std::time_t started_at_ = 0;

  UvHandle<uv_signal_t> sigint_;
  UvHandle<uv_signal_t> sigterm_;
  UvHandle<uv_signal_t> sighup_;
};

}  // namespace finwave::proxy
