#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

#include "proxy/metrics/metrics_snapshot.hpp"

namespace finwave::proxy {

/// The Prometheus content type of metrics_text(): the text exposition format 0.0.4.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

/// `snapshot` as Prometheus metric families, every name prefixed `finwave_` (the list is in the
/// README's "Metrics" section). Pure.
std::vector<prometheus::MetricFamily> metric_families(const MetricsSnapshot& snapshot);

/// The families in the text exposition format (prometheus-cpp's TextSerializer). Pure.
std::string metrics_text(const MetricsSnapshot& snapshot);

}  // namespace finwave::proxy
