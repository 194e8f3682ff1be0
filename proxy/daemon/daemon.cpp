#include "proxy/daemon/daemon.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "netfilter/teardown_set.hpp"
#include "netfilter/unique_fd.hpp"
#include "proxy/dataplane/worker_counters.hpp"
#include "proxy/report/ladder.hpp"
#include "proxy/report/outcome_json.hpp"
#include "proxy/report/outcome_text.hpp"
#include "rules/config_error.hpp"
#include "rules/rule.hpp"
#include "rules/rule_loader.hpp"
#include "rules/suggest.hpp"

namespace finwave::proxy {
namespace {

// Outcomes the control socket keeps for `outcomes` and `wait --since` (a few KiB each).
constexpr std::size_t kOutcomeHistory = 1000;

// How often the capture watch looks at the kernel (Daemon::watch_capture()): a deleted table
// or queue rule is noticed within this, and put back a few tens of milliseconds later.
constexpr std::uint64_t kCaptureWatchMs = 250;

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

nf::CaptureSpec capture_spec(const DaemonOptions& options) {
  nf::CaptureSpec spec;
  spec.mode = options.mode;
  spec.queue_num = options.queue_num;
  spec.queue_count = options.queue_count;
  spec.ports = options.ports;
  spec.addresses = options.addresses;
  spec.capture_all = options.capture_all;
  return spec;
}

// The counters of kQueueCounterFields and the other tables (worker_counters.hpp), each under its
// group's key ("queue", "actions", "flows") or at the top level.
void add_counters_json(nlohmann::json& stats, const WorkerCounters& counters) {
  for_each_reported_counter(
      counters, [&](std::string_view group, std::string_view key, std::uint64_t value) {
        nlohmann::json& object = group.empty() ? stats : stats[std::string(group)];
        object[std::string(key)] = value;
      });
}

nlohmann::json kernel_stats_json(const std::optional<nf::KernelQueueStats>& kernel) {
  if (!kernel) return nullptr;
  return {{"queue_total", kernel->queue_total},
          {"queue_dropped", kernel->queue_dropped},
          {"user_dropped", kernel->user_dropped},
          {"id_sequence", kernel->id_sequence}};
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

void Daemon::start() {
  started_us_ = now_us();
  started_at_ = std::time(nullptr);
  rules::Engine engine;
  if (!options_.rules_path.empty()) {
    engine.replace(rules::load_rules_file(options_.rules_path));
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
}

void Daemon::start_workers(const rules::Engine& engine) {
  const nf::CaptureSpec spec = capture_spec(options_);
  const std::size_t count = options_.queue_count;
  if (count > 1) handoff_.emplace(&loop_, static_cast<OutcomeSink&>(*this));
  QueueWorker::Config config;
  config.count = count;
  config.queue_len = options_.queue_len;
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
  for (auto& worker : workers_) worker->start(&loop_);
}

void Daemon::on_outcomes(std::vector<Outcome>& outcomes) noexcept { emit(outcomes); }

void Daemon::emit(std::vector<Outcome>& outcomes) noexcept {
  for (Outcome& outcome : outcomes) {
    try {
      const std::string line = options_.json ? to_json_line(outcome) : to_text_line(outcome);
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      if (options_.ladder) {
        // Under its outcome line; on stderr with --json, so that stdout stays JSON lines.
        const std::string ladder = render_ladder(outcome);
        std::fwrite(ladder.data(), 1, ladder.size(), options_.json ? stderr : stdout);
      }
    } catch (const std::exception& error) {
      log(std::string("cannot format an outcome: ") + error.what());
    }
    if (control_) control_->publish_outcome(std::move(outcome));
  }
  if (!outcomes.empty()) std::fflush(stdout);
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

void Daemon::on_capture_watch(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Daemon*>(timer->data);
  if (self != nullptr) self->watch_capture();
}

// Someone may delete finwave's table or its queue rule while it runs: `nft flush ruleset`, a
// firewall reload, a colleague's clean-up. The kernel does not tell a queue's reader that
// nothing is sent to it any more; finwave would run on, seeing, faulting and reporting nothing.
//
// finwave puts the capture back rather than exit: it is a chaos tool that runs for hours under
// test suites that come and go around it, and a firewall reload that takes its table should
// cost a gap in the capture, not the run. The gap is not hidden: it is said on stderr and
// counted in `stats` (capture.lost, capture.restored, capture.state), so a test can tell that
// connections seen during it may be reported incompletely. Deleting the table makes the kernel
// drop what is queued through its hooks (its verdicts are then refused, queue.verdict_errors);
// nothing can save those. A table that cannot be put back (nft gone, a permission taken) is
// tried again at every look, and said once per loss.
//
// It looks four times a second rather than subscribing to nftables notifications
// (NFNLGRP_NFTABLES): a notification says that something changed, not whether the capture is
// whole, so the look is needed anyway; a subscriber must read every change anyone makes to the
// namespace's ruleset (kube-proxy and firewall managers rewrite theirs all the time) on this
// loop, the one that gives queue 0's verdicts, and loses notifications to ENOBUFS when it falls
// behind. The look is two short netlink round trips and a read of /proc, whatever else changes.
// Putting a table back runs nft (tens of milliseconds, during which queue 0 waits): rare, and
// better than no capture.
void Daemon::watch_capture() noexcept {
  if (stopping_) return;
  CaptureWatch& watch = capture_watch_state_;
  ++watch.checks;
  nf::QueueRuleProbe probe;
  if (chains_.installed()) {
    probe = chains_.check();
  } else {
    probe.state = nf::QueueRuleState::kChainMissing;  // a restore that failed: try again
  }
  const std::string table = "inet " + nf::capture_table_name(options_.queue_num);
  if (probe.state == nf::QueueRuleState::kUnknown) {
    // Nothing is concluded from a look that failed; say so now and then.
    if (watch.check_errors++ % 120 == 0) {
      log("capture watch: cannot look at table " + table + ": " + std::strerror(probe.error));
    }
    return;
  }
  if (probe.state == nf::QueueRuleState::kPresent) {
    read_capture_counts(probe);
    return;
  }
  if (watch.intact) {
    watch.intact = false;
    ++watch.lost;
    watch.lost_at_us = now_us();
    watch.restore_errors_at_loss = watch.restore_errors;
    watch.last_loss = probe.state == nf::QueueRuleState::kMissing ? "queue rule" : "table";
    // What the deleted rule counted up to the last look is kept; what it counted since is lost.
    if (watch.counts_known && watch.rule_packets) {
      const auto queued = static_cast<std::int64_t>(watch.ids - watch.ids_at_install);
      watch.passed_before +=
          std::max<std::int64_t>(0, static_cast<std::int64_t>(*watch.rule_packets) - queued);
      watch.rule_packets_before += *watch.rule_packets;
    }
    watch.rule_packets = std::nullopt;
    log("capture lost: " +
        (probe.state == nf::QueueRuleState::kMissing
             ? "the queue rule of " + table + " chain " + nf::kCaptureChain + " was deleted"
             : "table " + table + " was deleted") +
        " (not by finwave): teardown segments pass unseen until it is back; restoring it");
  }
  // No queue rule exists now, so nothing is queued between this read and the new rule.
  const std::optional<std::uint64_t> ids_before = queue_ids();
  try {
    chains_.restore(capture_spec(options_), probe.state);
  } catch (const std::exception& error) {
    if (++watch.restore_errors == watch.restore_errors_at_loss + 1) {
      log(std::string("capture watch: cannot restore the capture (trying again every ") +
          std::to_string(kCaptureWatchMs) + " ms): " + error.what());
    }
    return;
  }
  watch.intact = true;
  ++watch.restored;
  // The new rule's counter starts at 0; the queue ids go on.
  watch.counts_known = watch.counts_known && ids_before;
  watch.ids_at_install = watch.ids = ids_before.value_or(0);
  watch.rule_packets = 0;
  log("capture restored: " +
      (watch.last_loss == "table" ? "table " + table : "the queue rule of " + table) +
      " put back " + std::to_string((now_us() - watch.lost_at_us) / 1000) +
      " ms after the loss was noticed" +
      (watch.last_loss == "table" ? " (connections in teardown then are seen again from their "
                                    "next FIN or RST)"
                                  : ""));
}

bool Daemon::read_capture_counts(const nf::QueueRuleProbe& probe) noexcept {
  CaptureWatch& watch = capture_watch_state_;
  if (probe.state != nf::QueueRuleState::kPresent || !probe.packets) return false;
  // The counter first, the ids second: a segment queued in between makes the difference come
  // out low (and it is clamped at 0), never counts a queued segment as passed.
  const std::optional<std::uint64_t> ids = queue_ids();
  if (!ids) return false;
  watch.rule_packets = *probe.packets;
  watch.ids = *ids;
  watch.counts_known = true;
  return true;
}

std::optional<std::uint64_t> Daemon::queue_ids() const noexcept {
  std::uint64_t ids = 0;
  try {
    for (const auto& worker : workers_) {
      const auto kernel = nf::read_kernel_queue_stats(worker->queue_num());
      if (!kernel) return std::nullopt;
      ids += kernel->id_sequence;
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return ids;
}

void Daemon::reload() noexcept {
  if (options_.rules_path.empty()) {
    log("SIGHUP: no rule file to reload (started without --rules)");
    return;
  }
  try {
    reload_rules("sighup", "SIGHUP");
  } catch (const std::exception& error) {
    log(std::string("SIGHUP: reload failed, keeping the current rules: ") + error.what());
  }
}

void Daemon::reload_rules(const std::string& by, const std::string& who) {
  // All or nothing: a file that fails validation leaves the running rules untouched.
  const rules::RuleSet loaded = rules::load_rules_file(options_.rules_path);
  change_rules([&](rules::Engine& engine) { engine.replace(loaded); });
  control_added_.clear();
  log(who + ": reloaded " + std::to_string(loaded.rules.size()) + " rule(s) from " +
      options_.rules_path);
  if (control_) control_->publish_rule_change("reload", "", by, loaded.rules.size());
}

template <typename Change>
void Daemon::change_rules(const Change& change) {
  for (auto& worker : workers_) worker->change_rules(change);
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
  capture_watch_.close();
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

void Daemon::print_stats() noexcept {
  if (workers_.empty()) return;
  try {
    const std::string line = dump_line(stats_json(false));
    if (options_.json) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
    std::fprintf(stderr, "finwave: stats %s\n", line.c_str());
  } catch (const std::exception& error) {
    log(std::string("cannot format stats: ") + error.what());
  }
}

nlohmann::json Daemon::stats_json(bool live_kernel) const {
  if (workers_.empty()) return {{"event", "stats"}};
  WorkerCounters total;
  std::optional<nf::KernelQueueStats> kernel_total;
  nlohmann::json queues = nlohmann::json::array();
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const QueueWorker& worker = *workers_[i];
    const WorkerCounters counters = worker.counters();
    add(total, counters);
    const std::optional<nf::KernelQueueStats> kernel =
        live_kernel ? nf::read_kernel_queue_stats(worker.queue_num()) : kernel_stats_[i];
    if (kernel && kernel_total) {
      add(*kernel_total, *kernel);
    } else if (kernel) {
      kernel_total = kernel;
    }
    queues.push_back({{"queue", worker.queue_num()},
                      {"queued", counters.queue.queued},
                      {"segments", counters.dataplane.segments},
                      {"rule_hits", counters.dataplane.rule_hits},
                      {"flows", counters.flows.flows_tracked},
                      {"flows_created", counters.flows.flows_created},
                      {"outcomes", counters.flows.outcomes_emitted},
                      {"kernel", kernel_stats_json(kernel)}});
  }
  const DataplaneCounters& d = total.dataplane;
  nlohmann::json parse_errors = nlohmann::json::object();
  for (std::size_t i = 1; i < d.parse_errors.size(); ++i) {
    if (d.parse_errors[i] != 0) {
      parse_errors[nf::to_string(static_cast<nf::ParseError>(i))] = d.parse_errors[i];
    }
  }
  nlohmann::json stats = {{"event", "stats"}, {"parse_errors", parse_errors}};
  add_counters_json(stats, total);
  // With several queues: the sums of the queues whose kernel counters could be read.
  stats["kernel"] = kernel_stats_json(kernel_total);
  // How full the kernel's memory of connections in teardown is: its elements (null: more than
  // count_limit, no set as with --capture-all, or it could not be read), and the captured
  // segments that found it full (at max_entries no connection enters until old ones expire).
  constexpr std::uint64_t kTeardownEntriesMaxAgeUs = 1'000'000;
  const std::uint64_t now = now_us();
  if (live_kernel && chains_.installed() &&
      (teardown_entries_read_us_ == 0 ||
       now - teardown_entries_read_us_ >= kTeardownEntriesMaxAgeUs)) {
    read_teardown_entries();
  }
  const auto entries_json = [](const std::optional<std::uint64_t>& n) {
    return n ? nlohmann::json(*n) : nlohmann::json(nullptr);
  };
  stats["teardown_set"] = {
      {"v4", entries_json(teardown_entries_[0])},
      {"v6", entries_json(teardown_entries_[1])},
      {"count_limit", nf::kTeardownSetCountLimit},
      {"max_entries", nf::kTeardownSetMaxEntries},
      {"refused",
       {{"v4", entries_json(teardown_refused_[0])}, {"v6", entries_json(teardown_refused_[1])}}}};
  // The capture watch (watch_capture()); the counts are those of its last look, at most
  // kCaptureWatchMs old.
  const CaptureWatch& watch = capture_watch_state_;
  nlohmann::json rule_packets = nullptr;
  nlohmann::json passed = nullptr;
  if (watch.counts_known && watch.rule_packets) {
    rule_packets = watch.rule_packets_before + *watch.rule_packets;
    const auto queued = static_cast<std::int64_t>(watch.ids - watch.ids_at_install);
    passed = watch.passed_before +
             std::max<std::int64_t>(0, static_cast<std::int64_t>(*watch.rule_packets) - queued);
  } else if (watch.counts_known) {
    rule_packets = watch.rule_packets_before;
    passed = watch.passed_before;
  }
  stats["capture"] = {{"state", watch.intact ? "installed" : "lost"},
                      {"checks", watch.checks},
                      {"check_errors", watch.check_errors},
                      {"lost", watch.lost},
                      {"restored", watch.restored},
                      {"restore_errors", watch.restore_errors},
                      {"queue_rule_packets", rule_packets},
                      {"passed_unqueued", passed}};
  stats["queues"] = std::move(queues);
  if (handoff_) {
    const HandoffCounters h = handoff_->counters();
    stats["handoff"] = {{"outcomes", h.outcomes},
                        {"outcomes_lost", h.outcomes_lost},
                        {"rule_hits", h.rule_hits},
                        {"rule_hits_dropped", h.rule_hits_dropped},
                        {"wakeups", h.wakeups}};
  }
  if (control_) {
    const ControlCounters& c = control_->counters();
    stats["control"] = {{"clients", c.clients},
                        {"subscribers", c.subscribers},
                        {"waits", c.waits},
                        {"connections", c.connections},
                        {"requests", c.requests},
                        {"errors", c.errors},
                        {"refused_clients", c.refused_clients},
                        {"events_dropped", c.events_dropped},
                        {"clients_dropped", c.clients_dropped},
                        {"outcomes", c.outcomes}};
  }
  return stats;
}

void Daemon::read_teardown_entries() const noexcept {
  teardown_entries_ = {nf::teardown_set_entries(chains_.queue_num(), 4),
                       nf::teardown_set_entries(chains_.queue_num(), 6)};
  teardown_refused_ = {nf::teardown_set_refused(chains_.queue_num(), 4),
                       nf::teardown_set_refused(chains_.queue_num(), 6)};
  teardown_entries_read_us_ = now_us();
}

// --- Control commands (loop thread; may throw ControlError) ---------------------------------

void Daemon::on_rule_hit_interest(bool wanted) noexcept {
  RuleHitSink* sink = wanted && control_ ? &*control_ : nullptr;
  // Worker 0 shares this thread and tells the control server itself; the others go through
  // the Handoff, which tells it here.
  if (handoff_) handoff_->set_rule_hit_sink(sink);
  for (auto& worker : workers_) {
    worker->set_rule_hit_sink(worker->index() == 0 || sink == nullptr ? sink : &*handoff_);
  }
}

nlohmann::json Daemon::on_control_command(const ControlRequest& request,
                                          const std::string& client) {
  switch (request.command) {
    case ControlCommand::kStatus:
      return status_json();
    case ControlCommand::kRules:
      return rules_json();
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
    case ControlCommand::kAdd:
    case ControlCommand::kRemove:
      return change_rule(request, client);
    case ControlCommand::kReload:
      if (options_.rules_path.empty()) {
        throw ControlError(ControlErrorCode::kNoRuleFile,
                           "finwave was started without --rules: there is no file to reload");
      }
      try {
        reload_rules("control", "control (" + client + ")");
      } catch (const rules::ConfigError& error) {
        log("control (" + client + "): reload failed, keeping the current rules: " + error.what());
        throw ControlError(ControlErrorCode::kReloadFailed,
                           std::string(error.what()) + " (the current rules are kept)");
      }
      return {{"source", options_.rules_path},
              {"rules", rule_statuses().size()},
              {"outcome_seq", control_ ? control_->last_outcome_seq() : 0}};
    case ControlCommand::kFlows:
      return flows_json(request);
    case ControlCommand::kStats:
      return stats_json(true);
    default:
      break;
  }
  throw ControlError(ControlErrorCode::kInternal,
                     "command " + std::string(to_string(request.command)) + " reached the daemon");
}

nlohmann::json Daemon::status_json() const {
  char started[32] = "";
  std::tm utc{};
  if (gmtime_r(&started_at_, &utc) != nullptr) {
    std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &utc);
  }
  std::size_t enabled = 0;
  const std::vector<rules::RuleStatus> statuses = rule_statuses();
  for (const auto& rule : statuses) enabled += rule.enabled ? 1 : 0;
  WorkerCounters total;
  for (const auto& worker : workers_) add(total, worker->counters());
  const TrackerCounters& t = total.flows;
  nlohmann::json status = {
      {"version", FINWAVE_VERSION},
      {"pid", getpid()},
      {"mode", options_.mode == nf::CaptureMode::kRouter ? "router" : "local"},
      {"queue", options_.queue_num},
      {"queue_count", options_.queue_count},
      {"ports", options_.ports},
      {"addresses", options_.addresses},
      {"started", started},
      {"uptime_s", static_cast<double>(now_us() - started_us_) / 1e6},
      {"rules_file",
       options_.rules_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(options_.rules_path)},
      {"rules", statuses.size()},
      {"rules_enabled", enabled},
      {"settle_s", options_.settle_s},
      {"linger_s", options_.linger_s},
      {"flows", {{"tracked", t.flows_tracked}, {"outcomes", t.outcomes_emitted}}},
      {"capture", capture_watch_state_.intact ? "installed" : "lost"},
  };
  if (!workers_.empty()) {
    status["segments"] = total.dataplane.segments;
    status["rule_hits"] = total.dataplane.rule_hits;
    status["queue_counters"] = {{"queued", total.queue.queued},
                                {"dropped", total.queue.dropped},
                                {"held", total.queue.held}};
  }
  if (control_) {
    const ControlCounters& c = control_->counters();
    status["control"] = {{"path", control_->path()},
                         {"clients", c.clients},
                         {"subscribers", c.subscribers},
                         {"waits", c.waits}};
    status["last_outcome_seq"] = control_->last_outcome_seq();
    status["rule_change_seq"] = control_->rule_change_seq();
  }
  return status;
}

nlohmann::json Daemon::rules_json() const {
  nlohmann::json list = nlohmann::json::array();
  std::size_t position = 0;
  for (const rules::RuleStatus& rule : rule_statuses()) {
    list.push_back({{"position", ++position},
                    {"name", rule.name},
                    {"enabled", rule.enabled},
                    {"summary", rule.summary},
                    {"hits", rule.hits},
                    {"origin", control_added_.count(rule.name) != 0 ? "control" : "file"}});
  }
  return {{"rules", std::move(list)},
          {"source", options_.rules_path.empty() ? nlohmann::json(nullptr)
                                                 : nlohmann::json(options_.rules_path)},
          {"generation", workers_.empty() ? 0 : workers_.front()->rule_generation()}};
}

nlohmann::json Daemon::rule_json(const std::string& name) const {
  std::size_t position = 0;
  for (const rules::RuleStatus& rule : rule_statuses()) {
    ++position;
    if (rule.name == name) {
      return {{"position", position},
              {"name", rule.name},
              {"enabled", rule.enabled},
              {"summary", rule.summary},
              {"hits", rule.hits},
              {"origin", control_added_.count(rule.name) != 0 ? "control" : "file"}};
    }
  }
  return nullptr;
}

void Daemon::require_rule(const std::string& name) const {
  const std::vector<rules::RuleStatus> statuses = rule_statuses();
  std::vector<std::string_view> names;
  for (const auto& rule : statuses) {
    if (rule.name == name) return;
    names.push_back(rule.name);
  }
  std::string message = "no rule named '" + name + "'";
  if (const auto guess = rules::closest_match(name, names)) {
    message += "; did you mean '" + std::string(*guess) + "'?";
  } else if (names.empty()) {
    message += " (there are no rules)";
  }
  throw ControlError(ControlErrorCode::kUnknownRule, message);
}

nlohmann::json Daemon::change_rule(const ControlRequest& request, const std::string& client) {
  const std::string by = "control (" + client + ")";
  std::string change;
  std::string name = request.name;
  bool changed = true;
  switch (request.command) {
    case ControlCommand::kEnable:
    case ControlCommand::kDisable: {
      require_rule(name);
      const bool enable = request.command == ControlCommand::kEnable;
      change = enable ? "enable" : "disable";
      // A no-op must not restart every flow's rule counts (each change is a new generation).
      changed = rule_json(name).at("enabled").get<bool>() != enable;
      if (changed) {
        change_rules([&](rules::Engine& engine) { engine.set_enabled(name, enable); });
      }
      log(by + ": " + change + (changed ? "d" : "d (already)") + " rule '" + name + "'");
      break;
    }
    case ControlCommand::kAdd: {
      change = "add";
      rules::Rule rule;
      try {
        rule = rules::parse_single_rule(request.rule_toml, "add");
      } catch (const rules::ConfigError& error) {
        // JSON rules were converted to TOML: positions in that text would only confuse.
        throw ControlError(ControlErrorCode::kInvalidRule,
                           request.rule_from_json ? error.message : std::string(error.what()));
      }
      name = rule.name;
      if (!rule_json(name).is_null()) {
        throw ControlError(ControlErrorCode::kRuleExists,
                           "a rule named '" + name + "' exists already; remove it first");
      }
      const std::string summary = rules::describe(rule);
      try {
        const auto where =
            request.add_first ? rules::Engine::Placement::kFirst : rules::Engine::Placement::kLast;
        change_rules([&](rules::Engine& engine) { engine.add(rule, where); });
      } catch (const rules::ConfigError& error) {
        throw ControlError(ControlErrorCode::kInvalidRule, error.message);
      }
      control_added_.insert(name);
      log(by + ": added rule '" + name + "' " + (request.add_first ? "first" : "last") + ": " +
          summary);
      break;
    }
    case ControlCommand::kRemove:
      change = "remove";
      require_rule(name);
      change_rules([&](rules::Engine& engine) { engine.remove(name); });
      control_added_.erase(name);
      log(by + ": removed rule '" + name + "'");
      break;
    default:
      throw ControlError(ControlErrorCode::kInternal, "not a rule change");
  }
  if (changed && control_) {
    control_->publish_rule_change(change, name, "control", rule_statuses().size());
  }
  nlohmann::json reply = {{"change", change},
                          {"changed", changed},
                          {"rules", rule_statuses().size()},
                          {"outcome_seq", control_ ? control_->last_outcome_seq() : 0}};
  reply["rule"] =
      request.command == ControlCommand::kRemove ? nlohmann::json(name) : rule_json(name);
  return reply;
}

nlohmann::json Daemon::flows_json(const ControlRequest& request) const {
  constexpr std::uint64_t kDefaultFlowLimit = 1000;
  const std::uint64_t limit = request.limit.value_or(kDefaultFlowLimit);
  const std::uint64_t now = now_us();
  std::vector<FlowSummary> flows;
  for (const auto& worker : workers_) worker->append_flows(flows);
  std::sort(flows.begin(), flows.end(),
            [](const FlowSummary& a, const FlowSummary& b) { return a.id < b.id; });
  nlohmann::json list = nlohmann::json::array();
  auto ms = [](std::uint64_t from, std::uint64_t to) {
    return to > from ? static_cast<double>(to - from) / 1000.0 : 0.0;
  };
  for (const FlowSummary& flow : flows) {
    if (list.size() >= limit) break;
    nlohmann::json entry = {{"id", flow.id},
                            {"client", to_string(flow.client)},
                            {"server", to_string(flow.server)},
                            {"sides_known", flow.sides_known},
                            {"stage", std::string(flow.stage)},
                            {"closer", std::string(to_string(flow.closer))},
                            {"segments", flow.segments},
                            {"age_ms", ms(flow.first_seen_us, now)},
                            {"idle_ms", ms(flow.last_segment_us, now)}};
    if (workers_.size() > 1) {
      entry["queue"] = options_.queue_num + worker_of_flow(flow.id, workers_.size());
    }
    list.push_back(std::move(entry));
  }
  return {{"flows", std::move(list)}, {"count", flows.size()}, {"truncated", flows.size() > limit}};
}

}  // namespace finwave::proxy
