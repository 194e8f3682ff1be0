// Fuzzes the outcome reader behind finwave-ladder and finwavectl show (proxy/outcome_json.cpp)
// with JSON lines. A line is either refused with std::invalid_argument or read as an outcome;
// an outcome read once must survive the real writers (to_json_line(), to_json() in
// proxy/outcome.cpp): written and read again, it is the same outcome.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "proxy/report/outcome_json.hpp"
#include "proxy/report/outcome_text.hpp"
#include "proxy/tracker/outcome.hpp"

namespace {

using finwave::proxy::Outcome;
using finwave::proxy::TimelineEntry;

bool same_endpoint(const finwave::rules::Endpoint& a, const finwave::rules::Endpoint& b) {
  return a.family == b.family && a.address == b.address && a.port == b.port;
}

bool same_rst(const Outcome& a, const Outcome& b) {
  if (a.rst.has_value() != b.rst.has_value()) return false;
  return !a.rst || (a.rst->from == b.rst->from && a.rst->stage == b.rst->stage &&
                    a.rst->answers_fin_retransmit == b.rst->answers_fin_retransmit);
}

bool same_entry(const TimelineEntry& x, const TimelineEntry& y) {
  return x.t_us == y.t_us && x.from == y.from && x.role == y.role && x.retx == y.retx &&
         x.dup_ack == y.dup_ack && x.bogus == y.bogus && x.flags == y.flags && x.seq == y.seq &&
         x.ack == y.ack && x.len == y.len && x.verdict == y.verdict && x.hold_ms == y.hold_ms &&
         x.released == y.released && x.copies == y.copies;
}

// Field by field, as tests/proxy/ladder_test.cpp's check_same() compares.
void check_same(const Outcome& a, const Outcome& b) {
  FUZZ_CHECK(a.id == b.id, "id");
  FUZZ_CHECK(same_endpoint(a.client, b.client) && same_endpoint(a.server, b.server), "endpoints");
  FUZZ_CHECK(a.sides_known == b.sides_known, "sides_known");
  FUZZ_CHECK(a.closer == b.closer && a.kind == b.kind && a.result == b.result, "classification");
  FUZZ_CHECK(a.ended_by == b.ended_by, "ended_by");
  FUZZ_CHECK(a.fin_retransmits_client == b.fin_retransmits_client &&
                 a.fin_retransmits_server == b.fin_retransmits_server,
             "fin_retransmits");
  FUZZ_CHECK(a.final_acks_seen == b.final_acks_seen && a.final_acks_dropped == b.final_acks_dropped,
             "final_acks");
  FUZZ_CHECK(same_rst(a, b), "rst");
  FUZZ_CHECK(a.teardown_us == b.teardown_us, "teardown_ms");
  FUZZ_CHECK(a.data_after_fin_bytes == b.data_after_fin_bytes, "data_after_fin");
  FUZZ_CHECK(a.dup_acks == b.dup_acks && a.segments == b.segments, "dup_acks, segments");
  FUZZ_CHECK(a.timeline_dropped == b.timeline_dropped, "timeline_dropped");
  FUZZ_CHECK(a.actions_dropped == b.actions_dropped, "actions_dropped");
  FUZZ_CHECK(a.actions.size() == b.actions.size(), "actions");
  for (std::size_t i = 0; i < a.actions.size(); ++i) {
    FUZZ_CHECK(a.actions[i].rule == b.actions[i].rule && a.actions[i].role == b.actions[i].role &&
                   a.actions[i].action == b.actions[i].action &&
                   a.actions[i].count == b.actions[i].count,
               "an action");
  }
  FUZZ_CHECK(a.timeline.size() == b.timeline.size(), "timeline");
  for (std::size_t i = 0; i < a.timeline.size(); ++i) {
    FUZZ_CHECK(same_entry(a.timeline[i], b.timeline[i]), "a timeline entry");
  }
}

Outcome read_back(const std::string& line) {
  try {
    return finwave::proxy::outcome_from_json_line(line);
  } catch (const std::invalid_argument& error) {
    std::fprintf(stderr, "refused: %s\nline: %s\n", error.what(), line.c_str());
    FUZZ_CHECK(false, "what the writer writes, the reader reads");
  }
  __builtin_unreachable();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  Outcome first;
  try {
    first = finwave::proxy::outcome_from_json_line(line);
  } catch (const std::invalid_argument& error) {
    FUZZ_CHECK(*error.what() != '\0', "a refusal says why");
    return 0;
  } catch (...) {
    FUZZ_CHECK(false, "outcome_from_json_line() throws nothing but std::invalid_argument");
  }

  const std::string written = finwave::proxy::to_json_line(first);
  const Outcome second = read_back(written);
  check_same(first, second);
  FUZZ_CHECK(finwave::proxy::to_json_line(second) == written, "the writer is deterministic");

  // The control plane's sorted-key flavour reads back the same.
  const nlohmann::json sorted = finwave::proxy::to_json(first);
  check_same(first, finwave::proxy::outcome_from_json(sorted));
  FUZZ_CHECK(!finwave::proxy::to_text_line(first).empty(), "every outcome has a text line");
  return 0;
}
