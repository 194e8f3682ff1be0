// The metrics: the snapshot the --metrics endpoint and the `metrics` command render, and the
// timer that hands it to the endpoint.
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>

#include "proxy/daemon/daemon.hpp"
#include "proxy/dataplane/worker_counters.hpp"

namespace finwave::proxy {
namespace {

std::uint64_t sum(const std::array<std::uint64_t, 16>& counts) noexcept {
  std::uint64_t total = 0;
  for (const std::uint64_t count : counts) total += count;
  return total;
}

void add_worker_counters(MetricsSnapshot& s, const WorkerCounters& c) {
  s.segments_queued = c.queue.queued;
  s.segments_logged = c.log.received;
  s.log_lost = c.log.lost;
  s.verdicts_accept = c.queue.accepted;
  s.verdicts_drop = c.queue.dropped;
  s.verdict_errors = c.queue.verdict_errors;
  s.held_now = c.queue.held;
  s.held_overflows = c.dataplane.held_overflow;
  s.dropped = c.dataplane.dropped;
  s.delayed = c.dataplane.delayed;
  s.duplicated = c.dataplane.duplicated;
  s.resets = c.dataplane.resets;
  s.copy_errors = c.dataplane.copy_errors;
  s.reset_errors = c.dataplane.reset_errors;
  s.parse_errors = sum(c.dataplane.parse_errors);
  s.flows_tracked = c.flows.flows_tracked;
  s.outcomes_lost = c.flows.outcomes_lost;
}

}  // namespace

MetricsSnapshot Daemon::metrics_snapshot() const {
  MetricsSnapshot s;
  s.version = FINWAVE_VERSION;
  s.start_time_s = static_cast<double>(started_at_);
  WorkerCounters total;
  std::optional<std::uint64_t> queue_full;
  std::optional<std::uint64_t> socket_full;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    // What the worker published at its last tick: reading it never waits for the worker.
    if (const auto published = workers_[i]->published_counters()) add(total, *published);
    const std::optional<nf::KernelQueueStats> kernel =
        stopping_ ? kernel_stats_[i] : nf::read_kernel_queue_stats(workers_[i]->queue_num());
    if (kernel) {
      queue_full = queue_full.value_or(0) + kernel->queue_dropped;
      socket_full = socket_full.value_or(0) + kernel->user_dropped;
    }
  }
  add_worker_counters(s, total);
  s.kernel_queue_full_drops = queue_full;
  s.kernel_socket_full_drops = socket_full;
  s.passed_unqueued = passed_unqueued();
  if (!stopping_) refresh_teardown_entries();
  s.teardown_set_elements = teardown_entries_;
  s.teardown_set_refused = teardown_refused_;
  if (control_) s.control_clients = control_->counters().clients;
  // Worker 0 runs on this thread: its engine is read without a lock, and every worker holds
  // the same rules.
  if (!workers_.empty()) {
    for (const rules::RuleStatus& rule : workers_[0]->rules()) {
      ++(rule.enabled ? s.rules_enabled : s.rules_disabled);
    }
  }
  s.outcomes = outcome_tally_;
  return s;
}

void Daemon::start_metrics() {
  metrics_server_->start();
  if (const int error = metrics_timer_.init(uv_timer_init, &loop_, this); error != 0) {
    throw std::runtime_error(std::string("cannot create the metrics timer: ") + uv_strerror(error));
  }
  if (const int error = uv_timer_start(metrics_timer_.get(), &Daemon::on_metrics_publish,
                                       kMetricsPublishMs, kMetricsPublishMs);
      error != 0) {
    throw std::runtime_error(std::string("cannot start the metrics timer: ") + uv_strerror(error));
  }
  publish_metrics();
}

void Daemon::on_metrics_publish(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Daemon*>(timer->data);
  if (self != nullptr) self->publish_metrics();
}

void Daemon::publish_metrics() noexcept {
  if (!metrics_server_) return;
  try {
    metrics_server_->publish(std::make_shared<const MetricsSnapshot>(metrics_snapshot()));
  } catch (const std::exception& error) {
    log(std::string("cannot renew the metrics (the last ones stay): ") + error.what());
  }
}

}  // namespace finwave::proxy
