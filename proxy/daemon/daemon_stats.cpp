// `stats` and the exit stats line: every counter of the daemon, as one JSON object.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "netfilter/teardown_set.hpp"
#include "proxy/daemon/daemon.hpp"
#include "proxy/dataplane/worker_counters.hpp"

namespace finwave::proxy {
namespace {

// The counters of kQueueCounterFields and the other tables (worker_counters.hpp), each under its
// group's key ("queue", "actions", "flows") or at the top level.
void add_counters_json(nlohmann::json& stats, const WorkerCounters& counters) {
  for_each_reported_counter(
      counters, [&](std::string_view group, std::string_view key, std::uint64_t value) {
        nlohmann::json& object = group.empty() ? stats : stats[std::string(group)];
        object[std::string(key)] = value;
      });
}

nlohmann::json parse_errors_json(const DataplaneCounters& d) {
  nlohmann::json parse_errors = nlohmann::json::object();
  for (std::size_t i = 1; i < d.parse_errors.size(); ++i) {
    if (d.parse_errors[i] != 0) {
      parse_errors[nf::to_string(static_cast<nf::ParseError>(i))] = d.parse_errors[i];
    }
  }
  return parse_errors;
}

nlohmann::json kernel_stats_json(const std::optional<nf::KernelQueueStats>& kernel) {
  if (!kernel) return nullptr;
  return {{"queue_total", kernel->queue_total},
          {"queue_dropped", kernel->queue_dropped},
          {"user_dropped", kernel->user_dropped},
          {"id_sequence", kernel->id_sequence}};
}

// One queue's own figures, under "queues".
nlohmann::json queue_json(std::uint16_t queue_num, const WorkerCounters& counters,
                          const std::optional<nf::KernelQueueStats>& kernel) {
  return {{"queue", queue_num},
          {"queued", counters.queue.queued},
          {"segments", counters.dataplane.segments},
          {"logged", counters.dataplane.logged},
          {"log",
           {{"group", queue_num},
            {"received", counters.log.received},
            {"lost", counters.log.lost},
            {"enobufs", counters.log.enobufs}}},
          {"rule_hits", counters.dataplane.rule_hits},
          {"flows", counters.flows.flows_tracked},
          {"flows_created", counters.flows.flows_created},
          {"outcomes", counters.flows.outcomes_emitted},
          {"kernel", kernel_stats_json(kernel)}};
}

nlohmann::json count_or_null(const std::optional<std::uint64_t>& n) {
  return n ? nlohmann::json(*n) : nlohmann::json(nullptr);
}

nlohmann::json handoff_json(const HandoffCounters& h) {
  return {{"outcomes", h.outcomes},
          {"outcomes_lost", h.outcomes_lost},
          {"rule_hits", h.rule_hits},
          {"rule_hits_dropped", h.rule_hits_dropped},
          {"wakeups", h.wakeups}};
}

nlohmann::json control_json(const ControlCounters& c) {
  return {{"clients", c.clients},
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

}  // namespace

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
    queues.push_back(queue_json(worker.queue_num(), counters, kernel));
  }
  nlohmann::json stats = {{"event", "stats"}, {"parse_errors", parse_errors_json(total.dataplane)}};
  add_counters_json(stats, total);
  // With several queues: the sums of the queues whose kernel counters could be read.
  stats["kernel"] = kernel_stats_json(kernel_total);
  stats["teardown_set"] = teardown_set_json(live_kernel);
  stats["capture"] = capture_json();
  stats["classes"] = classes_json();
  stats["queues"] = std::move(queues);
  if (handoff_) stats["handoff"] = handoff_json(handoff_->counters());
  if (control_) stats["control"] = control_json(control_->counters());
  return stats;
}

// How full the kernel's memory of connections in teardown is: its elements (null: more than
// count_limit, no set as with --capture-all, or it could not be read), and the captured
// segments that found it full (at max_entries no connection enters until old ones expire).
nlohmann::json Daemon::teardown_set_json(bool live_kernel) const {
  if (live_kernel) refresh_teardown_entries();
  return {
      {"v4", count_or_null(teardown_entries_[0])},
      {"v6", count_or_null(teardown_entries_[1])},
      {"count_limit", nf::kTeardownSetCountLimit},
      {"max_entries", nf::kTeardownSetMaxEntries},
      {"refused",
       {{"v4", count_or_null(teardown_refused_[0])}, {"v6", count_or_null(teardown_refused_[1])}}}};
}

// The capture watch (watch_capture()); the counts are those of its last look, at most
// kCaptureWatchMs old.
nlohmann::json Daemon::capture_json() const {
  const CaptureWatch& watch = capture_watch_state_;
  nlohmann::json rule_packets = nullptr;
  if (watch.counts_known) {
    rule_packets = watch.rule_packets_before + watch.rule_packets.value_or(0);
  }
  return {{"state", watch.intact ? "installed" : "lost"},
          {"checks", watch.checks},
          {"check_errors", watch.check_errors},
          {"lost", watch.lost},
          {"restored", watch.restored},
          {"restore_errors", watch.restore_errors},
          {"queue_rule_packets", rule_packets},
          {"passed_unqueued", count_or_null(passed_unqueued())}};
}

std::optional<std::uint64_t> Daemon::passed_unqueued() const noexcept {
  const CaptureWatch& watch = capture_watch_state_;
  if (!watch.counts_known) return std::nullopt;
  std::int64_t passed = watch.passed_before;
  if (watch.rule_packets) {
    const auto queued = static_cast<std::int64_t>(watch.ids - watch.ids_at_install);
    passed += std::max<std::int64_t>(0, static_cast<std::int64_t>(*watch.rule_packets) - queued);
  }
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, passed));
}

void Daemon::refresh_teardown_entries() const noexcept {
  constexpr std::uint64_t kTeardownEntriesMaxAgeUs = 1'000'000;
  if (chains_.installed() && (teardown_entries_read_us_ == 0 ||
                              now_us() - teardown_entries_read_us_ >= kTeardownEntriesMaxAgeUs)) {
    read_teardown_entries();
  }
}

void Daemon::read_teardown_entries() const noexcept {
  teardown_entries_ = {nf::teardown_set_entries(chains_.queue_num(), 4),
                       nf::teardown_set_entries(chains_.queue_num(), 6)};
  teardown_refused_ = {nf::teardown_set_refused(chains_.queue_num(), 4),
                       nf::teardown_set_refused(chains_.queue_num(), 6)};
  teardown_entries_read_us_ = now_us();
}

}  // namespace finwave::proxy
