#include "proxy/dataplane/worker_counters.hpp"

#include <tuple>

namespace finwave::proxy {
namespace {

// Every field of these structs is a std::uint64_t counter (parse_errors an array of them), so
// a table that lists as many fields as the struct has words lists them all.
constexpr std::size_t kWords = sizeof(std::uint64_t);
static_assert(sizeof(nf::QueueCounters) == kQueueCounterFields.size() * kWords,
              "a new QueueCounters field: list it in kQueueCounterFields");
static_assert(sizeof(DataplaneCounters) ==
                  (std::tuple_size_v<decltype(DataplaneCounters::parse_errors)> +
                   kDataplaneCounterFields.size()) *
                      kWords,
              "a new DataplaneCounters field: list it in kDataplaneCounterFields");
static_assert(sizeof(TrackerCounters) == kTrackerCounterFields.size() * kWords,
              "a new TrackerCounters field: list it in kTrackerCounterFields");
static_assert(sizeof(nf::LogCounters) == kLogCounterFields.size() * kWords,
              "a new LogCounters field: list it in kLogCounterFields");

// A field listed twice would leave another one out while the sizes still agree.
template <class Counters, std::size_t kSize>
constexpr bool distinct(const std::array<CounterField<Counters>, kSize>& fields) {
  for (std::size_t i = 0; i < kSize; ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (fields[i].field == fields[j].field) return false;
    }
  }
  return true;
}
static_assert(distinct(kQueueCounterFields) && distinct(kDataplaneCounterFields) &&
              distinct(kTrackerCounterFields) && distinct(kLogCounterFields));

template <class Counters, std::size_t kSize>
void add_fields(const std::array<CounterField<Counters>, kSize>& fields, Counters& total,
                const Counters& more) noexcept {
  for (const auto& field : fields) total.*field.field += more.*field.field;
}

}  // namespace

void add(WorkerCounters& total, const WorkerCounters& more) noexcept {
  add_fields(kQueueCounterFields, total.queue, more.queue);
  add_fields(kDataplaneCounterFields, total.dataplane, more.dataplane);
  for (std::size_t i = 0; i < total.dataplane.parse_errors.size(); ++i) {
    total.dataplane.parse_errors[i] += more.dataplane.parse_errors[i];
  }
  add_fields(kTrackerCounterFields, total.flows, more.flows);
  add_fields(kLogCounterFields, total.log, more.log);
}

void add(nf::KernelQueueStats& total, const nf::KernelQueueStats& more) noexcept {
  total.queue_total += more.queue_total;
  total.queue_dropped += more.queue_dropped;
  total.user_dropped += more.user_dropped;
  total.id_sequence += more.id_sequence;
}

void add_rule_hits(std::vector<rules::RuleStatus>& total,
                   const std::vector<rules::RuleStatus>& more) noexcept {
  for (std::size_t i = 0; i < total.size() && i < more.size(); ++i) {
    if (total[i].name == more[i].name) total[i].hits += more[i].hits;
  }
}

}  // namespace finwave::proxy
