// The daemon's life: start-up, outcomes to stdout, signals, reloads and shutdown. Its other
// jobs have files of their own: capture_watch.cpp, daemon_stats.cpp, control_commands.cpp.
#include "proxy/daemon/daemon.hpp"

#include <fcntl.h>
#include <sched.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "netfilter/netns.hpp"
#include "netfilter/unique_fd.hpp"
#include "proxy/daemon/privileges.hpp"
#include "proxy/dataplane/queue_classes.hpp"
#include "proxy/report/ladder.hpp"
#include "proxy/report/outcome_json.hpp"
#include "proxy/report/outcome_text.hpp"
#include "rules/rule_loader.hpp"

namespace finwave::proxy {
namespace {

// Outcomes the control socket keeps for `outcomes` and `wait --since` (a few KiB each).
constexpr std::size_t kOutcomeHistory = 1000;

TrackerConfig tracker_config(const DaemonOptions& options) {
  TrackerConfig config;
  config.settle_us = static_cast<std::uint64_t>(options.settle_s * 1e6);
  config.linger_us = static_cast<std::uint64_t>(options.linger_s * 1e6);
  config.max_flows = static_cast<std::size_t>(options.max_flows);
  // A fixed hash seed would let anyone who can open connections through finwave pick 4-tuples
  // that collide in the flow table.
  std::random_device entropy;
  config.hash_seed = (std::uint64_t{entropy()} << 32) | entropy();
  return config;
}

}  // namespace

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon() {
  // run() normally leaves nothing behind; this covers a set-up failure half-way. Held packets
  // go before the chains, and worker threads are joined before what they post to goes.
  if (control_) control_->stop();
  sigint_.close();
  sigterm_.close();
  sighup_.close();
  for (auto& worker : workers_) worker->finish();
  chains_.remove();
  workers_.clear();
  if (handoff_) handoff_->close();
  if (loop_initialized_) {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
}

std::uint64_t Daemon::now_us() const noexcept { return uv_hrtime() / 1000; }

void Daemon::log(const std::string& message) const noexcept {
  if (!options_.quiet) std::fprintf(stderr, "finwave: %s\n", message.c_str());
}

int Daemon::run() {
  if (const int error = uv_loop_init(&loop_); error != 0) {
    throw std::runtime_error(std::string("cannot create the event loop: ") + uv_strerror(error));
  }
  loop_initialized_ = true;
  require_capabilities(capability_needs());
  if (options_.realtime_priority > 0) {
    // Before start(): the queue workers' threads inherit it (and so do the nft runs that
    // install the capture table, which finish in milliseconds). finwave sleeps in epoll
    // between packets and timers and spins only briefly (at most 2 ms per timer wake-up) just
    // before a delayed segment is due, so the real-time class mostly decides who runs first
    // when it wakes, and keeps it running while its release carries the segment on through
    // the kernel.
    sched_param param{};
    param.sched_priority = options_.realtime_priority;
    if (sched_setscheduler(0, SCHED_FIFO, &param) != 0) {
      throw std::system_error(errno, std::generic_category(),
                              "--realtime-priority " + std::to_string(options_.realtime_priority) +
                                  ": cannot switch to SCHED_FIFO (needs CAP_SYS_NICE)");
    }
    log("running at SCHED_FIFO priority " + std::to_string(options_.realtime_priority));
  }
  start();
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Every handle is closed by now; a non-zero result would mean one leaked.
  const int closed = uv_loop_close(&loop_);
  loop_initialized_ = false;
  if (closed != 0) {
    std::fprintf(stderr, "finwave: event loop still had open handles at exit: %s\n",
                 uv_strerror(closed));
    return 1;
  }
  if (const int error = loop_errors(); error != 0) {
    std::fprintf(stderr,
                 "finwave: a queue worker's event loop still had open handles at exit: %s\n",
                 uv_strerror(error));
    return 1;
  }
  return 0;
}

CapabilityNeeds Daemon::capability_needs() const noexcept {
  return {!options_.netns.empty(), options_.realtime_priority > 0};
}

void Daemon::start() {
  started_us_ = now_us();
  started_at_ = std::time(nullptr);
  // A --netns that names no network namespace ends the start-up before anything is made.
  nf::UniqueFd netns;
  if (!options_.netns.empty()) netns = nf::open_netns(options_.netns);
  rules::Engine engine;
  if (!options_.rules_path.empty()) {
    loaded_rules_ = rules::load_rules_file(options_.rules_path);
    engine.replace(loaded_rules_);
    log("loaded " + std::to_string(engine.rules().size()) + " rule(s) from " + options_.rules_path);
  }
  // Before anything is installed: a control socket another finwave owns ends the start-up
  // with nothing to undo.
  if (options_.control_path != "none") {
    control_.emplace(&loop_, static_cast<ControlHandler&>(*this),
                     ControlServer::Config{options_.control_path, options_.control_group,
                                           kOutcomeHistory, options_.quiet});
    control_->start();
  }
  // Also before: a metrics address that cannot be bound ends the start-up just as early.
  if (options_.metrics) metrics_server_.emplace(*options_.metrics);
  // --netns: everything from here on (queue, table, raw sockets, the workers' threads, nft)
  // works in that namespace. The control socket is a file and the metrics socket is already
  // bound, so both stay where finwave started: a host's finwave is reached on the host.
  if (netns) {
    nf::enter_netns(netns, options_.netns);
    log("working in the network namespace " + options_.netns);
  }
  arrival_stamps_.emplace();
  if (!arrival_stamps_->enabled()) {
    log("cannot turn on the kernel's receive timestamps: delays run from when finwave reads "
        "the segment, not from its arrival");
  }
  start_workers(engine);

  auto check = [](int error, const char* what) {
    if (error != 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(error));
  };
  check(sigint_.init(uv_signal_init, &loop_, this), "cannot watch SIGINT");
  check(uv_signal_start(sigint_.get(), &Daemon::on_signal, SIGINT), "cannot watch SIGINT");
  check(sigterm_.init(uv_signal_init, &loop_, this), "cannot watch SIGTERM");
  check(uv_signal_start(sigterm_.get(), &Daemon::on_signal, SIGTERM), "cannot watch SIGTERM");
  check(sighup_.init(uv_signal_init, &loop_, this), "cannot watch SIGHUP");
  check(uv_signal_start(sighup_.get(), &Daemon::on_signal, SIGHUP), "cannot watch SIGHUP");
  check(capture_watch_.init(uv_timer_init, &loop_, this), "cannot create the capture watch");
  check(uv_timer_start(capture_watch_.get(), &Daemon::on_capture_watch, kCaptureWatchMs,
                       kCaptureWatchMs),
        "cannot start the capture watch");
  if (metrics_server_) start_metrics();

  std::string ports;
  for (const auto port : options_.ports) ports += (ports.empty() ? "" : ",") + std::to_string(port);
  const unsigned last_queue = unsigned{options_.queue_num} + options_.queue_count - 1U;
  log(std::string("capturing teardown in ") +
      (options_.mode == nf::CaptureMode::kRouter ? "router" : "local") + " mode on queue" +
      (options_.queue_count == 1 ? " " + std::to_string(options_.queue_num)
                                 : "s " + std::to_string(options_.queue_num) + "-" +
                                       std::to_string(last_queue) + " (a thread each)") +
      (ports.empty() ? ", all ports" : ", ports " + ports));

  if (!options_.ready_file.empty()) {
    const nf::UniqueFd fd(
        ::open(options_.ready_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw std::runtime_error("cannot create the ready file " + options_.ready_file);
    const std::string pid = std::to_string(getpid()) + "\n";
    [[maybe_unused]] const auto written = ::write(fd.get(), pid.data(), pid.size());
  }
  // Under systemd (Type=notify): ready at the same point as the ready file. Without
  // NOTIFY_SOCKET this does nothing.
  sd_notify(0, "READY=1\nSTATUS=capturing teardown");
}

void Daemon::start_workers(const rules::Engine& engine) {
  const std::size_t count = options_.queue_count;
  // --capture-all (benchmarks) queues everything, through the queue's own balancing.
  log_path_ = !options_.capture_all;
  if (log_path_) plan_ = queue_plan(*engine.rule_set());
  const nf::CaptureSpec spec = live_capture_spec();
  if (count > 1) handoff_.emplace(&loop_, static_cast<OutcomeSink&>(*this));
  QueueWorker::Config config;
  config.count = count;
  config.queue_len = options_.queue_len;
  config.log_buffer = options_.log_buffer;
  config.tracker = tracker_config(options_);
  config.max_held = options_.max_held;
  config.injected_mark = spec.injected_mark;
  config.quiet = options_.quiet;
  for (std::size_t index = 0; index < count; ++index) {
    config.index = index;
    config.queue_num = static_cast<std::uint16_t>(options_.queue_num + index);
    // Worker 0 draws what one queue always drew; the others start elsewhere, so that a
    // probability rule does not decide alike on every queue. --seed S gives worker i S + i.
    config.rng_seed.reset();
    if (options_.seed) {
      config.rng_seed = *options_.seed + index;
    } else if (index > 0) {
      config.rng_seed = index;
    }
    config.pcap_path = index == 0 ? options_.pcap_path : std::string();
    // symhash sends a connection's queued segments to queue_num + i and its logged ones to
    // log_group + i: one worker sees them all.
    if (log_path_) config.log_group = static_cast<std::uint16_t>(spec.log_group + index);
    config.log_batching = log_may_batch(plan_);
    config.logging = plan_.logs_something();
    // Each worker decides with an engine of its own rather than one shared under a lock:
    // decide() counts hits, so a shared engine would need the lock for every decision of every
    // queue, and Decision::rule_name points into the engine's rules, so it would have to be
    // held until the tracker has copied the name too. Copies cost a rule set per queue, and
    // a control change is applied to each (change_rules()).
    OutcomeSink& outcomes = index == 0 ? static_cast<OutcomeSink&>(*this) : *handoff_;
    workers_.push_back(std::make_unique<QueueWorker>(config, engine, outcomes));
  }
  kernel_stats_.assign(count, std::nullopt);

  const nf::QueueRuleState stale =
      nf::probe_queue_rule({nf::capture_table_name(spec.queue_num), nf::kCaptureChain}).state;
  if (stale == nf::QueueRuleState::kPresent || stale == nf::QueueRuleState::kMissing) {
    // The queue is ours (the bind above succeeded), so no finwave reads for this table: it is
    // a crashed run's, whose queue rule's bypass has let segments pass unseen since.
    log("replacing the stale capture table inet " + nf::capture_table_name(spec.queue_num) +
        " (left by a finwave that is gone)");
  }
  // Read before the rule exists, so that every id handed out after it is counted against the
  // rule's counter (those a stale table's rule hands out meanwhile make it come out low).
  capture_watch_state_.ids_at_install = queue_ids().value_or(0);
  // Bind first, capture second: with the queue rule's bypass a packet queued before the bind
  // would pass unseen, never be lost; the other order cannot do better. With balancing every
  // queue of the range must be bound, or its share of the connections would pass unseen.
  chains_ = nf::CaptureChains::install(spec);
  // Everything that needed more than CAP_NET_ADMIN is open, and no thread runs yet: what is
  // dropped now is dropped for every thread (each inherits its creator's capabilities).
  log(drop_capabilities(capability_needs()));
  for (auto& worker : workers_) worker->start(&loop_);
}

nf::CaptureSpec Daemon::live_capture_spec() const {
  nf::CaptureSpec spec = capture_spec(options_);
  spec.queued = plan_.classes;
  spec.queued_only = plan_.only;
  spec.log_group = options_.queue_num;
  return spec;
}

bool Daemon::log_may_batch(const QueuePlan& plan) const noexcept {
  return plan.classes.empty() && options_.mode == nf::CaptureMode::kRouter;
}

void Daemon::set_log_batching(bool batching) noexcept {
  for (auto& worker : workers_) {
    if (const int error = worker->set_log_batching(batching); error < 0) {
      log(std::string("cannot switch the log path's delivery: ") + std::strerror(-error));
    }
  }
}

void Daemon::requeue() noexcept {
  if (!log_path_ || workers_.empty() || !chains_.installed()) return;
  QueuePlan wanted;
  try {
    wanted = queue_plan(*workers_.front()->rule_set());
  } catch (const std::bad_alloc&) {
    wanted = QueuePlan{nf::SegmentClasses::all(), {}};  // queueing everything is always safe
  }
  if (wanted == plan_) return;
  const QueuePlan before = plan_;
  if (log_may_batch(before) && !log_may_batch(wanted)) {
    // From here on a queued segment may depend on a logged one: copies one by one, and the
    // last batch out of the kernel (its timeout is a hundredth of a second, counted in ticks of
    // up to 4 ms) before the first segment is queued. The control thread waits that long.
    set_log_batching(false);
    uv_sleep(static_cast<unsigned>(nf::LogGroup::kBatchTimeoutCs * 10 + 15));
  }
  // The log is read before each queue batch from before the first class is logged.
  if (wanted.logs_something()) {
    for (auto& worker : workers_) worker->set_logging(true);
  }
  try {
    plan_ = wanted;
    chains_.classify(live_capture_spec());
    log("queueing " + describe_queued() + "; logging " + describe_logged());
  } catch (const std::exception& error) {
    log(std::string("cannot change what is queued, queueing every segment: ") + error.what());
    try {
      plan_ = QueuePlan{nf::SegmentClasses::all(), {}};
      chains_.classify(live_capture_spec());
    } catch (const std::exception& again) {
      // The chain is as it was: `before` is what is queued.
      plan_ = before;
      log(std::string("cannot queue every segment either, the rules may miss segments: ") +
          again.what());
    }
  }
  if (log_may_batch(plan_)) set_log_batching(true);
  // Nothing is logged any more (no batch is pending: a full queue is never batched): the last
  // copies are read, and queue batches stop reading the log.
  if (!plan_.logs_something()) {
    for (auto& worker : workers_) worker->set_logging(false);
  }
}

nlohmann::json Daemon::classes_json() const {
  nlohmann::json queued = nlohmann::json::array();
  nlohmann::json logged = nlohmann::json::array();
  nlohmann::json only = nlohmann::json::object();
  for (int i = 0; i < nf::kSegmentClassCount; ++i) {
    const auto segment_class = static_cast<nf::SegmentClass>(i);
    (plan_.classes.has(segment_class) ? queued : logged).push_back(nf::to_string(segment_class));
    const std::vector<nf::PortMatch>& matches = plan_.only[static_cast<std::size_t>(i)];
    if (!plan_.classes.has(segment_class) || matches.empty()) continue;
    nlohmann::json texts = nlohmann::json::array();
    for (const nf::PortMatch& match : matches) texts.push_back(nf::to_string(match));
    only[std::string(nf::to_string(segment_class))] = std::move(texts);
  }
  nlohmann::json delivery = nullptr;  // no log path
  if (log_path_) delivery = log_may_batch(plan_) ? "batched" : "one by one";
  return {{"queued", std::move(queued)},
          {"queued_only", std::move(only)},
          {"logged", std::move(logged)},
          {"delivery", delivery}};
}

std::string Daemon::describe_queued() const {
  std::string text;
  for (int i = 0; i < nf::kSegmentClassCount; ++i) {
    const auto segment_class = static_cast<nf::SegmentClass>(i);
    if (!plan_.classes.has(segment_class)) continue;
    if (!text.empty()) text += ", ";
    text += nf::to_string(segment_class);
    const std::vector<nf::PortMatch>& matches = plan_.only[static_cast<std::size_t>(i)];
    for (std::size_t m = 0; m < matches.size(); ++m) {
      text += (m == 0 ? " (" : " or ") + nf::to_string(matches[m]);
    }
    if (!matches.empty()) text += ')';
  }
  return text.empty() ? "none" : text;
}

std::string Daemon::describe_logged() const {
  std::string text;
  for (int i = 0; i < nf::kSegmentClassCount; ++i) {
    const auto segment_class = static_cast<nf::SegmentClass>(i);
    const bool queued = plan_.classes.has(segment_class);
    const bool narrowed = queued && !plan_.only[static_cast<std::size_t>(i)].empty();
    if (queued && !narrowed) continue;
    if (!text.empty()) text += ", ";
    if (narrowed) text += "the rest of ";
    text += nf::to_string(segment_class);
  }
  return text.empty() ? "none" : text;
}

void Daemon::on_outcomes(std::vector<Outcome>& outcomes) noexcept { emit(outcomes); }

void Daemon::emit(std::vector<Outcome>& outcomes) noexcept {
  // A batch's lines are written into one buffer, kept from batch to batch, and go out in one
  // write: at connection churn rates a string and a write per outcome showed in the profile.
  output_.clear();
  for (Outcome& outcome : outcomes) {
    const std::size_t before = output_.size();
    try {
      if (options_.json) {
        append_json_line(output_, outcome);
      } else {
        output_ += to_text_line(outcome);
      }
      output_ += '\n';
      if (options_.ladder) {
        // Under its outcome line; on stderr with --json, so that stdout stays JSON lines.
        const std::string ladder = render_ladder(outcome);
        if (options_.json) {
          std::fwrite(ladder.data(), 1, ladder.size(), stderr);
        } else {
          output_ += ladder;
        }
      }
    } catch (const std::exception& error) {
      output_.resize(before);  // no half line
      log(std::string("cannot format an outcome: ") + error.what());
    }
    try {
      outcome_tally_.add(outcome);
    } catch (const std::bad_alloc&) {
      log("out of memory: an outcome is missing from the metrics");
    }
    if (control_) control_->publish_outcome(std::move(outcome));
  }
  if (!output_.empty()) {
    std::fwrite(output_.data(), 1, output_.size(), stdout);
    std::fflush(stdout);
  }
  // A burst (thousands of flows ending at once) leaves no large buffer behind.
  if (output_.capacity() > kKeptOutputBytes) std::string().swap(output_);
  outcomes.clear();
}

void Daemon::on_signal(uv_signal_t* handle, int signum) noexcept {
  auto* self = static_cast<Daemon*>(handle->data);
  if (self == nullptr) return;
  if (signum == SIGHUP) {
    self->reload();
    return;
  }
  self->log(std::string("received ") + (signum == SIGINT ? "SIGINT" : "SIGTERM") +
            ", shutting down");
  self->shutdown();
}

void Daemon::reload() noexcept {
  if (options_.rules_path.empty()) {
    log("SIGHUP: no rule file to reload (started without --rules)");
    return;
  }
  sd_notify(0, "RELOADING=1");
  try {
    reload_rules("sighup", "SIGHUP");
    sd_notify(0, "READY=1\nSTATUS=capturing teardown");
  } catch (const std::exception& error) {
    log(std::string("SIGHUP: reload failed, keeping the current rules: ") + error.what());
    sd_notify(
        0, "READY=1\nSTATUS=capturing teardown; the last reload failed, the rules before it stand");
  }
}

void Daemon::reload_rules(const std::string& by, const std::string& who) {
  // All or nothing: a file that fails validation leaves the running rules untouched.
  const rules::RuleSet loaded = rules::load_rules_file(options_.rules_path);
  change_rules([&](rules::Engine& engine) { engine.replace(loaded); });
  loaded_rules_ = loaded;
  control_added_.clear();
  forget_rule_lifetimes();
  log(who + ": reloaded " + std::to_string(loaded.rules.size()) + " rule(s) from " +
      options_.rules_path);
  if (control_) control_->publish_rule_change("reload", "", by, loaded.rules.size());
}

std::vector<rules::RuleStatus> Daemon::rule_statuses() const {
  if (workers_.empty()) return {};
  std::vector<rules::RuleStatus> statuses = workers_.front()->rules();
  for (std::size_t i = 1; i < workers_.size(); ++i) add_rule_hits(statuses, workers_[i]->rules());
  return statuses;
}

void Daemon::shutdown() noexcept {
  if (stopping_) return;
  stopping_ = true;
  sd_notify(0, "STOPPING=1");
  capture_watch_.close();
  rule_lifetime_timer_.close();
  metrics_timer_.close();
  // The last look at the queue rule's counter, while it is still there.
  if (capture_watch_state_.intact) read_capture_counts(chains_.check());
  // Every packet still queued must get its verdict before the capture chains go: removing them
  // makes the kernel drop what is queued through them (a held FIN was lost that way), and so
  // does closing the socket. So: the chains are emptied first (nothing more is queued, nothing
  // queued is dropped); every worker stops reading, reads what is queued and releases
  // everything held; the chains go; then every worker reads once more (nothing should be left)
  // and finishes its flows.
  chains_.stop_capturing();
  for (auto& worker : workers_) worker->stop_reading();
  if (chains_.installed()) read_teardown_entries();
  chains_.remove();
  for (auto& worker : workers_) worker->finish();
  // Every thread is joined: what they handed over comes first, then what finish() reported.
  if (handoff_) handoff_->deliver();
  for (auto& worker : workers_) {
    std::vector<Outcome> outcomes = worker->take_final_outcomes();
    emit(outcomes);
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    kernel_stats_[i] = nf::read_kernel_queue_stats(workers_[i]->queue_num());
  }
  print_stats();
  // The endpoint goes before the control socket: the last snapshot has the final outcomes.
  publish_metrics();
  metrics_server_.reset();
  // Waits are answered, subscribers told, the socket file removed; clients close once their
  // last lines are written.
  if (control_) control_->stop();
  if (handoff_) handoff_->close();
  sigint_.close();
  sigterm_.close();
  sighup_.close();
  for (auto& worker : workers_) worker->close_queue();
}

int Daemon::loop_errors() const noexcept {
  for (const auto& worker : workers_) {
    if (worker->loop_close_error() != 0) return worker->loop_close_error();
  }
  return 0;
}

}  // namespace finwave::proxy
