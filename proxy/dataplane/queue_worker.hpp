#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "netfilter/injector.hpp"
#include "netfilter/queue.hpp"
#include "netfilter/unique_fd.hpp"
#include "proxy/dataplane/dataplane.hpp"
#include "proxy/dataplane/delay_line.hpp"
#include "proxy/dataplane/nf_queue_verdicts.hpp"
#include "proxy/dataplane/timer_lead.hpp"
#include "proxy/dataplane/worker_counters.hpp"
#include "proxy/loop/uv_handle.hpp"
#include "proxy/report/pcap_writer.hpp"
#include "proxy/tracker/flow_table.hpp"
#include "proxy/tracker/outcome.hpp"
#include "proxy/tracker/sinks.hpp"
#include "rules/engine.hpp"
#include "rules/rng.hpp"

namespace finwave::proxy {

/// One NFQUEUE queue and everything that works on its packets: the netlink socket, the flow
/// table, the delay line with its timerfd, the data path, a rule engine and rng of its own, and
/// the tick that turns resolved teardowns into outcomes. The NFQUEUE target's balancing hash
/// sends both directions of a connection to the same queue, so a worker sees whole connections
/// and needs nothing from the others.
///
/// Worker 0 runs on the daemon's loop, the control thread, exactly as the daemon did with one
/// queue: no lock is taken and no thread is crossed. Every other worker runs a loop of its own
/// on a thread of its own; it hands its outcomes to its OutcomeSink and its rule hits to its
/// RuleHitSink from that thread (the daemon gives it a Handoff), and the control thread reaches
/// its state only through the methods below marked "control thread", which take the worker's
/// lock. The worker holds that lock for a whole drain, delay run or tick, so a rule change never
/// lands in the middle of a packet (the rule names a decision points to stay valid).
///
/// Life: construct (binds the queue), start(), then at shutdown stop_reading() on every worker,
/// remove the capture chains, finish() on every worker, then take_final_outcomes() and
/// close_queue(). Every call is made from the control thread.
class QueueWorker final : private RuleHitSink {
 public:
  struct Config {
    std::size_t index = 0;  ///< 0 .. count-1; worker 0 runs on the control loop.
    std::size_t count = 1;
    std::uint16_t queue_num = 0;  ///< This worker's queue.
    std::uint32_t queue_len = 4096;
    TrackerConfig tracker;
    std::uint32_t max_held = 1024;
    std::uint32_t injected_mark = 0;
    std::optional<std::uint64_t> rng_seed;  ///< None: the Rng's default seed.
    std::string pcap_path;                  ///< Empty: no pcap.
    /// The log path's nfnetlink_log group, bound with the queue; none: nothing is logged to
    /// this worker (the capture queues every class).
    std::optional<std::uint16_t> log_group;
    std::uint32_t log_buffer = 64U << 20;  ///< Its socket's receive buffer, in bytes.
    bool log_batching = false;             ///< Start with batched delivery (nf::LogGroup).
    bool logging = true;  ///< Some class is logged: the log is read before each queue batch.
    bool quiet = false;
  };

  /// Binds the queue and opens what the data path sends with (raw sockets, timerfd, pcap file).
  /// `engine` is this worker's copy of the rules. Throws std::system_error /
  /// std::runtime_error with a message for the user.
  QueueWorker(Config config, rules::Engine engine, OutcomeSink& outcomes);
  QueueWorker(const QueueWorker&) = delete;
  QueueWorker& operator=(const QueueWorker&) = delete;
  /// Stops and joins the thread if start() ran and finish() did not (a failed start-up).
  ~QueueWorker();

  /// Starts reading the queue: on `control_loop` for worker 0, else on a new loop and thread.
  /// Throws std::runtime_error if a handle or the thread cannot be created.
  void start(uv_loop_t* control_loop);

  /// Control thread, shutdown step 1: stops reading the queue, reads what is queued and
  /// accepts every held segment. Returns once done (it waits for the worker's thread).
  void stop_reading() noexcept;
  /// Control thread, shutdown step 2 (after the capture chains are gone): reads and accepts held
  /// segments once more, finishes every flow (take_final_outcomes()), closes the pcap file and
  /// every handle, and joins the thread. Idempotent.
  void finish() noexcept;
  /// After finish(): the outcomes of the flows it finished, daemon-wide ids.
  std::vector<Outcome> take_final_outcomes() noexcept;
  /// After finish(): 0, or the libuv error uv_loop_close() gave for the worker's own loop.
  int loop_close_error() const noexcept { return loop_close_error_; }
  /// After finish(): unbinds the queue (the counters stay readable).
  void close_queue() noexcept;

  std::size_t index() const noexcept { return config_.index; }
  std::uint16_t queue_num() const noexcept { return config_.queue_num; }

  /// Control thread: a copy of the counters.
  WorkerCounters counters() const;
  /// Any thread, without waiting for the worker: the counters as the worker last published
  /// them (at every tick, kTickMs apart, and when its queue closes); null before the first.
  std::shared_ptr<const WorkerCounters> published_counters() const noexcept {
    return published_.load();
  }
  /// Control thread: appends a summary of every tracked flow, daemon-wide ids.
  void append_flows(std::vector<FlowSummary>& out) const;
  /// Control thread: the rules of this worker's engine with its hit counts.
  std::vector<rules::RuleStatus> rules() const;
  /// Control thread: the rules of this worker's engine.
  std::shared_ptr<const rules::RuleSet> rule_set() const;
  /// Control thread: the engine's generation.
  std::uint32_t rule_generation() const;
  /// Control thread: runs `change(rules::Engine&)` on this worker's engine between two drains.
  /// Whatever `change` throws is passed on.
  template <typename Change>
  void change_rules(Change&& change) {
    const std::unique_lock<std::mutex> lock = guard();
    change(engine_);
  }
  /// Control thread: batched or one-by-one delivery on the log path (nf::LogGroup); nothing
  /// without one. Returns 0 or a negative errno.
  int set_log_batching(bool batching) noexcept;
  /// Control thread: whether some class is logged. Before the capture logs any, true; once it
  /// logs none, false (the log is drained first), which spares each queue batch a read of it.
  void set_logging(bool logging) noexcept;
  /// Control thread: who hears of rule decisions (daemon-wide flow ids) from the next drain on;
  /// nullptr for no one.
  void set_rule_hit_sink(RuleHitSink* sink) noexcept;

 private:
  enum class Step : std::uint8_t { kRunning, kStopReading, kFinish };

  static void on_readable(uv_poll_t* handle, int status, int events) noexcept;
  static void on_log_readable(uv_poll_t* handle, int status, int events) noexcept;
  static void on_delay_timer(uv_poll_t* handle, int status, int events) noexcept;
  static void on_tick(uv_timer_t* handle) noexcept;
  static void on_wake(uv_async_t* handle) noexcept;

  bool threaded() const noexcept { return config_.index > 0; }
  /// The lock the control thread and a threaded worker share; not taken for worker 0, whose
  /// every caller is the control thread itself.
  std::unique_lock<std::mutex> guard() const;
  /// Runs `step` on the worker's own thread and waits for it (directly for worker 0).
  void run_step(Step step) noexcept;
  void do_step(Step step) noexcept;
  void do_stop_reading() noexcept;
  void do_finish() noexcept;
  void drain() noexcept;
  void run_due() noexcept;
  /// Spins until the monotonic clock reaches `due_us` (a few hundred µs at most).
  void wait_until(std::uint64_t due_us) const noexcept;
  void arm_delay_timer() noexcept;
  void tick() noexcept;
  /// Publishes a copy of the counters for published_counters(); under the worker's lock.
  void publish_counters() noexcept;
  /// Turns the flow table's ids into daemon-wide ones.
  void renumber(std::vector<Outcome>& outcomes) const noexcept;
  void on_rule_hit(const RuleHit& hit) noexcept override;
  std::uint64_t now_us() const noexcept;
  nf::LogCounters log_counters() const noexcept {
    return log_group_ ? log_group_->counters() : nf::LogCounters{};
  }
  void log(const std::string& message) const noexcept;

  Config config_;
  OutcomeSink& outcome_sink_;
  RuleHitSink* rule_hit_sink_ = nullptr;

  rules::Engine engine_;
  rules::Rng rng_;
  std::optional<nf::Queue> queue_;
  std::optional<nf::LogGroup> log_group_;
  std::optional<NfQueueVerdicts> verdicts_;  // on *queue_, for dataplane_
  FlowTable flows_;
  DelayLine delays_;
  nf::Injector injector_;
  PcapWriter pcap_;
  std::optional<Dataplane> dataplane_;
  std::vector<Outcome> outcomes_;        // reused between ticks
  std::vector<Outcome> final_outcomes_;  // finish()'s
  WorkerCounters closed_counters_;       // what counters() returns after close_queue()
  std::atomic<std::shared_ptr<const WorkerCounters>> published_;

  nf::UniqueFd delay_fd_;           // timerfd: libuv's millisecond timers are too coarse for delays
  std::uint64_t delay_due_us_ = 0;  // the due time delay_fd_ is armed for; 0 = disarmed
  std::uint64_t delay_fires_us_ = 0;  // when it should fire: due minus the lead, or when armed
  TimerLead timer_lead_;

  uv_loop_t* loop_ = nullptr;  // the control loop (worker 0) or own_loop_
  uv_loop_t own_loop_{};
  bool own_loop_initialized_ = false;
  int loop_close_error_ = 0;
  UvHandle<uv_poll_t> poll_;
  UvHandle<uv_poll_t> log_poll_;
  UvHandle<uv_poll_t> delay_poll_;
  UvHandle<uv_timer_t> tick_;
  UvHandle<uv_async_t> wake_;  // threaded workers: the control thread's shutdown steps
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable step_done_;
  Step requested_ = Step::kRunning;  // guarded by mutex_
  Step done_ = Step::kRunning;       // guarded by mutex_
  bool finished_ = false;            // control thread only
};

}  // namespace finwave::proxy
