// MetricsSnapshot -> Prometheus metric families: names, help, types and labels in one place.
#include "proxy/metrics/metric_families.hpp"

#include <prometheus/text_serializer.h>

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace finwave::proxy {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

using Labels = std::vector<ClientMetric::Label>;

ClientMetric sample(MetricType type, double value, Labels labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

class Families {
 public:
  /// A new family; the samples added next belong to it.
  Families& family(const char* name, MetricType type, const char* help) {
    families_.push_back(MetricFamily{std::string("finwave_") + name, help, type, {}});
    return *this;
  }
  Families& add(double value, Labels labels = {}) {
    MetricFamily& family = families_.back();
    family.metric.push_back(sample(family.type, value, std::move(labels)));
    return *this;
  }
  Families& add(std::uint64_t value, Labels labels = {}) {
    return add(static_cast<double>(value), std::move(labels));
  }
  /// A figure finwave could not read is left out rather than reported as 0.
  Families& add(const std::optional<std::uint64_t>& value, Labels labels = {}) {
    if (value) add(*value, std::move(labels));
    return *this;
  }
  Families& histogram(const OutcomeTally& tally) {
    ClientMetric metric;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kTeardownBucketsS.size(); ++i) {
      cumulative += tally.teardown_buckets()[i];
      metric.histogram.bucket.push_back({cumulative, kTeardownBucketsS[i]});
    }
    // The +Inf bucket is the sample count (TextSerializer writes it).
    metric.histogram.sample_count = tally.teardown_count();
    metric.histogram.sample_sum = tally.teardown_sum_s();
    families_.back().metric.push_back(std::move(metric));
    return *this;
  }
  std::vector<MetricFamily> take() { return std::move(families_); }

 private:
  std::vector<MetricFamily> families_;
};

constexpr const char* kFamilyLabel[2] = {"ipv4", "ipv6"};

void add_outcomes(Families& f, const OutcomeTally& tally) {
  f.family("outcomes_total", MetricType::Counter,
           "Connections whose teardown finwave reported, by how it went (kind), how it ended "
           "(result) and who closed first (closer)");
  for (std::size_t k = 0; k < OutcomeTally::kKinds; ++k) {
    for (std::size_t r = 0; r < OutcomeTally::kResults; ++r) {
      for (std::size_t c = 0; c < OutcomeTally::kClosers; ++c) {
        const auto kind = static_cast<TeardownKind>(k);
        const auto result = static_cast<TeardownResult>(r);
        const auto closer = static_cast<Closer>(c);
        const std::uint64_t count = tally.outcomes(kind, result, closer);
        // Only the combinations seen: most of the 60 never happen.
        if (count == 0) continue;
        f.add(count, {{"closer", std::string(to_string(closer))},
                      {"kind", std::string(to_string(kind))},
                      {"result", std::string(to_string(result))}});
      }
    }
  }
  f.family("fin_retransmissions_total", MetricType::Counter,
           "FIN retransmissions in reported teardowns, by the side that sent them");
  for (std::size_t s = 0; s < tally.fin_retransmits().size(); ++s) {
    f.add(tally.fin_retransmits()[s],
          {{"side", std::string(to_string(static_cast<rules::Side>(s)))}});
  }
  f.family("teardown_duration_seconds", MetricType::Histogram,
           "From the first FIN to the connection's last segment, of reported teardowns that "
           "had a FIN")
      .histogram(tally);
  f.family("rule_actions_total", MetricType::Counter,
           "Segments a rule acted on in reported teardowns, by rule, the segment's role and "
           "what was done");
  for (const auto& [key, count] : tally.rule_actions()) {
    f.add(count, {{"action", std::string(to_string(key.action))},
                  {"role", std::string(rules::to_string(key.role))},
                  {"rule", key.rule}});
  }
}

void add_data_path(Families& f, const MetricsSnapshot& s) {
  f.family("segments_total", MetricType::Counter,
           "Captured segments that reached finwave, by the path they took")
      .add(s.segments_queued, {{"path", "queued"}})
      .add(s.segments_logged, {{"path", "logged"}});
  f.family("log_lost_total", MetricType::Counter,
           "Copies of logged segments the kernel could not hand to finwave (its socket buffer "
           "was full); the outcomes of the flows then tracked say incomplete")
      .add(s.log_lost);
  f.family("verdicts_total", MetricType::Counter, "Verdicts finwave gave queued segments")
      .add(s.verdicts_accept, {{"verdict", "accept"}})
      .add(s.verdicts_drop, {{"verdict", "drop"}});
  f.family("verdict_errors_total", MetricType::Counter,
           "Verdicts the kernel refused or that could not be sent")
      .add(s.verdict_errors);
  f.family("actions_total", MetricType::Counter, "Segments rules acted on, by action")
      .add(s.dropped, {{"action", "drop"}})
      .add(s.delayed, {{"action", "delay"}})
      .add(s.duplicated, {{"action", "duplicate"}})
      .add(s.resets, {{"action", "reset"}});
  f.family("action_errors_total", MetricType::Counter,
           "Copies or RSTs that could not be sent, by action")
      .add(s.copy_errors, {{"action", "duplicate"}})
      .add(s.reset_errors, {{"action", "reset"}});
  f.family("held_segments", MetricType::Gauge, "Segments held now (delayed, or being copied)")
      .add(s.held_now);
  f.family("held_overflows_total", MetricType::Counter,
           "Segments a rule would have held that passed at once: --max-held was reached")
      .add(s.held_overflows);
  f.family("parse_errors_total", MetricType::Counter,
           "Queued packets that were no parseable TCP segment (passed unchanged)")
      .add(s.parse_errors);
  f.family("flows_tracked", MetricType::Gauge, "Connections the tracker holds now")
      .add(s.flows_tracked);
  f.family("outcomes_lost_total", MetricType::Counter,
           "Outcomes that could not be reported (memory ran out)")
      .add(s.outcomes_lost);
}

void add_kernel(Families& f, const MetricsSnapshot& s) {
  f.family("kernel_queue_drops_total", MetricType::Counter,
           "Segments the kernel could not queue for finwave: its queue was full (queue_full) or "
           "finwave's socket buffer was (socket_full)")
      .add(s.kernel_queue_full_drops, {{"reason", "queue_full"}})
      .add(s.kernel_socket_full_drops, {{"reason", "socket_full"}});
  f.family("passed_unqueued_total", MetricType::Counter,
           "Captured segments the kernel let pass without a verdict (fail-open)")
      .add(s.passed_unqueued);
  f.family("teardown_set_elements", MetricType::Gauge,
           "Connections in the kernel's teardown set now, by address family");
  for (std::size_t i = 0; i < 2; ++i)
    f.add(s.teardown_set_elements[i], {{"family", kFamilyLabel[i]}});
  f.family("teardown_set_refused_total", MetricType::Counter,
           "Captured segments that found the teardown set full, by address family");
  for (std::size_t i = 0; i < 2; ++i)
    f.add(s.teardown_set_refused[i], {{"family", kFamilyLabel[i]}});
}

}  // namespace

std::vector<prometheus::MetricFamily> metric_families(const MetricsSnapshot& s) {
  Families f;
  f.family("build_info", MetricType::Gauge, "Always 1: the finwave version serving these metrics")
      .add(1.0, {{"version", s.version}});
  f.family("start_time_seconds", MetricType::Gauge, "When the daemon started, in Unix time")
      .add(s.start_time_s);
  add_outcomes(f, s.outcomes);
  add_data_path(f, s);
  add_kernel(f, s);
  f.family("control_clients", MetricType::Gauge, "Clients connected to the control socket now")
      .add(s.control_clients);
  f.family("rules", MetricType::Gauge, "Rules loaded, by state")
      .add(s.rules_enabled, {{"state", "enabled"}})
      .add(s.rules_disabled, {{"state", "disabled"}});
  return f.take();
}

std::string metrics_text(const MetricsSnapshot& snapshot) {
  return prometheus::TextSerializer().Serialize(metric_families(snapshot));
}

}  // namespace finwave::proxy
