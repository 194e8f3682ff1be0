// Throughput of the teardown tracker: synthetic four-way teardowns pushed through
// classify + commit + advance, as the data path and the loop's timer would, then the cost of
// formatting the outcomes. Prints figures; asserts nothing about speed.
//
//   finwave-tracker-bench [TEARDOWNS]   (default 1000000)

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "netfilter/packet.hpp"
#include "proxy/report/outcome_json.hpp"
#include "proxy/report/outcome_text.hpp"
#include "proxy/tracker/flow_table.hpp"
#include "proxy/tracker/outcome.hpp"
#include "proxy/tracker/timeline_ring.hpp"

namespace {

using finwave::nf::TcpSegment;
using finwave::proxy::Classified;
using finwave::proxy::FlowTable;
using finwave::proxy::Outcome;
using finwave::proxy::TrackerConfig;
using finwave::proxy::Verdict;
namespace flag = finwave::nf::tcp_flag;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Connection n: client 198.18.1.x or 2001:db8:1::x (every 4th is IPv6), a port of its own.
void make_endpoints(std::uint64_t n, TcpSegment& from_client) {
  const bool v6 = n % 4 == 3;
  from_client.src = {};
  from_client.dst = {};
  from_client.src.family = from_client.dst.family = v6 ? 6 : 4;
  const auto host = static_cast<std::uint8_t>(n / 50000 % 250 + 2);
  const auto subnet = static_cast<std::uint8_t>(n / (std::uint64_t{50000} * 250) % 250);
  if (v6) {
    from_client.src.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, subnet, 0, host};
    from_client.dst.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  } else {
    from_client.src.bytes = {198, 18, subnet, host};
    from_client.dst.bytes = {198, 19, 2, 2};
  }
  from_client.src_port = static_cast<std::uint16_t>(10000 + n % 50000);
  from_client.dst_port = 5000;
}

TcpSegment reversed(const TcpSegment& s) {
  TcpSegment r = s;
  std::swap(r.src, r.dst);
  std::swap(r.src_port, r.dst_port);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t teardowns = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;

  TrackerConfig config;
  // A short settle window keeps about 15 k flows in the table at the synthetic packet rate
  // (one segment per microsecond of virtual time); the default would need over 131 k.
  config.settle_us = 100'000;
  FlowTable table(config);
  std::vector<Outcome> outcomes;
  outcomes.reserve(4096);

  std::uint64_t now = 1'000'000;
  std::uint64_t emitted = 0;
  std::uint64_t peak_flows = 0;
  std::size_t peak_bytes = 0;
  std::vector<Outcome> kept;  // a sample to format afterwards
  kept.reserve(100'000);

  auto step = [&](const TcpSegment& s, Verdict verdict, const char* rule) {
    now += 1;
    const Classified c = table.classify(s, now);
    table.commit(c, s, verdict, rule, now);
  };

  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t n = 0; n < teardowns; ++n) {
    TcpSegment c;
    make_endpoints(n, c);
    const auto isn_c = static_cast<std::uint32_t>(n * 2654435761U);
    const std::uint32_t isn_s = isn_c ^ 0x5a5a5a5aU;
    const std::uint32_t fin_c = isn_c + 1 + 4096;
    const std::uint32_t fin_s = isn_s + 1 + 65536;

    c.flags = flag::kSyn;
    c.seq = isn_c;
    c.ack = 0;
    step(c, Verdict::kAccept, "");
    TcpSegment s = reversed(c);
    s.flags = flag::kSyn | flag::kAck;
    s.seq = isn_s;
    s.ack = isn_c + 1;
    step(s, Verdict::kAccept, "");
    c.flags = flag::kFin | flag::kAck;
    c.seq = fin_c;
    c.ack = fin_s;
    step(c, Verdict::kAccept, "");
    s.flags = flag::kAck;
    s.seq = fin_s;
    s.ack = fin_c + 1;
    step(s, Verdict::kAccept, "");
    s.flags = flag::kFin | flag::kAck;
    step(s, Verdict::kAccept, "");
    c.flags = flag::kAck;
    c.seq = fin_c + 1;
    c.ack = fin_s + 1;
    // Every 10th final ACK is "seen" by a rule that lets it pass, to exercise action records.
    step(c, Verdict::kAccept, n % 10 == 0 ? "watch-final-ack" : "");

    if (n % 64 == 63) {
      table.advance(now, outcomes);
      emitted += outcomes.size();
      for (Outcome& o : outcomes) {
        if (kept.size() < kept.capacity()) kept.push_back(std::move(o));
      }
      outcomes.clear();
      if (table.size() > peak_flows) {
        peak_flows = table.size();
        peak_bytes = table.memory_bytes();
      }
    }
  }
  table.finish_all(now + config.settle_us, outcomes);
  emitted += outcomes.size();
  const double tracked_s = seconds_since(start);

  const auto format_start = std::chrono::steady_clock::now();
  std::size_t json_bytes = 0;
  for (const Outcome& o : kept) json_bytes += finwave::proxy::to_json_line(o).size();
  const double json_s = seconds_since(format_start);
  const auto text_start = std::chrono::steady_clock::now();
  std::size_t text_bytes = 0;
  for (const Outcome& o : kept) text_bytes += finwave::proxy::to_text_line(o).size();
  const double text_s = seconds_since(text_start);

  const auto& counters = table.counters();
  const double segments = static_cast<double>(counters.segments);
  std::printf("flow record:        %zu bytes (timeline %zu entries)\n",
              FlowTable::flow_record_bytes(), finwave::proxy::kTimelineCapacity);
  std::printf("teardowns:          %llu four-way, %llu outcomes, %llu refused\n",
              static_cast<unsigned long long>(teardowns), static_cast<unsigned long long>(emitted),
              static_cast<unsigned long long>(counters.refused_full));
  std::printf("tracker:            %.3f s  %.0f outcomes/s  %.0f segments/s  %.0f ns/segment\n",
              tracked_s, static_cast<double>(emitted) / tracked_s, segments / tracked_s,
              tracked_s * 1e9 / segments);
  std::printf("table peak:         %llu flows, %.1f MiB\n",
              static_cast<unsigned long long>(peak_flows),
              static_cast<double>(peak_bytes) / (1024.0 * 1024.0));
  std::printf(
      "to_json_line:       %.0f outcomes/s (%.0f bytes each)\n",
      static_cast<double>(kept.size()) / json_s,
      kept.empty() ? 0.0 : static_cast<double>(json_bytes) / static_cast<double>(kept.size()));
  std::printf(
      "to_text_line:       %.0f outcomes/s (%.0f bytes each)\n",
      static_cast<double>(kept.size()) / text_s,
      kept.empty() ? 0.0 : static_cast<double>(text_bytes) / static_cast<double>(kept.size()));
  return emitted == teardowns ? 0 : 1;
}
