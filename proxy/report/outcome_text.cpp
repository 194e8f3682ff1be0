#include "proxy/report/outcome_text.hpp"

#include <cstdio>
#include <string>

namespace finwave::proxy {
namespace {

double to_ms(std::int64_t us) { return static_cast<double>(us) / 1000.0; }

}  // namespace

std::string to_text_line(const Outcome& o) {
  std::string line;
  line.reserve(160);
  line += "client ";
  line += to_string(o.client);
  line += " \u2192 server ";
  line += to_string(o.server);
  if (!o.sides_known) {
    line += " (sides guessed)";
  }
  if (o.incomplete) {
    line += " (incomplete: copies lost)";
  }
  line += "  ";
  line += to_string(o.kind);
  line += "  ";
  line += to_string(o.result);
  line += "  closer=";
  line += to_string(o.closer);
  line += "  fin_retx c" + std::to_string(o.fin_retransmits_client) + " s" +
          std::to_string(o.fin_retransmits_server);
  line += "  final_ack " + std::to_string(o.final_acks_seen) + " seen / " +
          std::to_string(o.final_acks_dropped) + " dropped";
  if (o.rst) {
    line += "  rst from ";
    line += rules::to_string(o.rst->from);
    line += " in ";
    line += to_string(o.rst->stage);
    if (o.rst->answers_fin_retransmit) {
      line += " (answering a FIN retransmit)";
    }
  }
  if (o.data_after_fin_bytes != 0) {
    line += "  data_after_fin " + std::to_string(o.data_after_fin_bytes) + " B";
  }
  if (o.dup_acks != 0) {
    line += "  dup_acks " + std::to_string(o.dup_acks);
  }
  char ms[32];
  std::snprintf(ms, sizeof ms, "  %.1f ms", to_ms(o.teardown_us));
  line += ms;
  if (o.ended_by == EndReason::kNewSyn || o.ended_by == EndReason::kShutdown) {
    line += "  (ended by ";
    line += to_string(o.ended_by);
    line += ")";
  }
  if (!o.actions.empty()) {
    line += "  [";
    for (std::size_t i = 0; i < o.actions.size(); ++i) {
      const ActionRecord& a = o.actions[i];
      if (i != 0) {
        line += ", ";
      }
      line += a.rule;
      line += ' ';
      line += to_string(a.action);
      line += ' ';
      line += rules::to_string(a.role);
      line += " \u00d7" + std::to_string(a.count);
    }
    line += "]";
  }
  if (o.timeline_dropped != 0) {
    line += "  (" + std::to_string(o.timeline_dropped) + " segments not in timeline)";
  }
  return line;
}

}  // namespace finwave::proxy
