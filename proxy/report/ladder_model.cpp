#include "proxy/report/ladder_model.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "netfilter/packet.hpp"
#include "proxy/tracker/timeline_ring.hpp"

namespace finwave::proxy::ladder {
namespace {

// What finwave did, with its amounts when the outcome has them: "DELAYED 300 ms",
// "DUPLICATED x2" (two copies sent behind the segment; `times` is "x" or "×").
std::string action_text(const TimelineEntry& e, std::string_view times) {
  std::string text;
  const auto copies = [&] {
    if (e.copies != 0) text += " " + std::string(times) + std::to_string(e.copies);
  };
  switch (e.verdict) {
    case Verdict::kAccept:
    case Verdict::kObserved:
      break;
    case Verdict::kDrop:
      text = "DROPPED";
      break;
    case Verdict::kDelay:
      text = "DELAYED";
      if (e.hold_ms) {
        text += " " + std::to_string(*e.hold_ms) + " ms";
        // The outcome was built before the segment went out: the delay the rule asked for.
        if (!e.released) text += " (still held)";
      }
      if (e.copies != 0) {
        text += ", DUPLICATED";
        copies();
      }
      break;
    case Verdict::kDuplicate:
      text = "DUPLICATED";
      copies();
      break;
    case Verdict::kReset:
      text = "RESET (sent as RST)";
      break;
  }
  return text;
}

void append_word(std::string& text, std::string_view word) {
  if (word.empty()) return;
  if (!text.empty()) text += ' ';
  text += word;
}

// Rule names are free text: keep control characters (a newline would break the layout) out.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = '?';
  }
  return out;
}

}  // namespace

std::string format_ms(std::int64_t us) {
  const bool negative = us < 0;
  const std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(us) : static_cast<std::uint64_t>(us);
  char text[48];
  std::snprintf(text, sizeof text, "%s%" PRIu64 ".%03" PRIu64 " ms", negative ? "-" : "",
                magnitude / 1000, magnitude % 1000);
  return text;
}

std::string amounts_text(const TimelineEntry& e) {
  std::string text;
  if (e.hold_ms) {
    text += e.released ? ", held " : ", still held, asked for ";
    text += std::to_string(*e.hold_ms) + " ms";
  }
  if (e.copies != 0)
    text += ", " + std::to_string(e.copies) + (e.copies == 1 ? " copy" : " copies");
  return text;
}

ArrowText arrow_text(const TimelineEntry& e, std::string_view times) {
  ArrowText text;
  text.head = nf::flags_to_string(e.flags);
  append_word(text.head, rules::to_string(e.role));
  if (e.retx) append_word(text.head, "retx");
  if (e.dup_ack) append_word(text.head, "dup_ack");
  if (e.bogus) append_word(text.head, "bogus");
  text.numbers = "seq=" + std::to_string(e.seq);
  // Without the ACK flag the acknowledgment field means nothing (a bare RST, a SYN).
  if ((e.flags & nf::tcp_flag::kAck) != 0) text.numbers += " ack=" + std::to_string(e.ack);
  if (e.len != 0) text.numbers += " len=" + std::to_string(e.len);
  text.action = action_text(e, times);
  return text;
}

std::string join_words(std::initializer_list<std::string_view> words) {
  std::string text;
  for (const std::string_view word : words) append_word(text, word);
  return text;
}

std::vector<std::string> title_fields(const Outcome& o, std::string_view arrow) {
  std::vector<std::string> fields = {
      "flow " + std::to_string(o.id) + ": client " + to_string(o.client),
      std::string(arrow) + " server " + to_string(o.server)};
  if (!o.sides_known) fields.emplace_back("(sides guessed by port)");
  return fields;
}

std::vector<std::string> summary_fields(const Outcome& o) {
  return {std::string(to_string(o.kind)), std::string(to_string(o.result)),
          "closer=" + std::string(to_string(o.closer)), "teardown " + format_ms(o.teardown_us),
          "ended by " + std::string(to_string(o.ended_by))};
}

std::string join_fields(const std::vector<std::string>& fields, std::string_view separator) {
  std::string line;
  for (const std::string& field : fields) {
    if (!line.empty()) line += separator;
    line += field;
  }
  return line;
}

std::vector<std::string> footer_lines(const Outcome& o, std::string_view times,
                                      std::string_view separator) {
  std::vector<std::string> lines;
  if (o.rst) {
    std::string line = "rst: from ";
    line += rules::to_string(o.rst->from);
    line += " in ";
    line += to_string(o.rst->stage);
    if (o.rst->answers_fin_retransmit) line += ", answering a FIN retransmission";
    lines.push_back(std::move(line));
  }
  std::vector<std::string> counters = {"fin_retx c" + std::to_string(o.fin_retransmits_client) +
                                           " s" + std::to_string(o.fin_retransmits_server),
                                       "final_ack " + std::to_string(o.final_acks_seen) +
                                           " seen / " + std::to_string(o.final_acks_dropped) +
                                           " dropped"};
  if (o.dup_acks != 0) counters.push_back("dup_acks " + std::to_string(o.dup_acks));
  if (o.data_after_fin_bytes != 0) {
    counters.push_back("data_after_fin " + std::to_string(o.data_after_fin_bytes) + " B");
  }
  lines.push_back(join_fields(counters, separator));
  for (const ActionRecord& a : o.actions) {
    std::string line = "finwave did: ";
    line += to_string(a.action);
    line += ' ';
    line += rules::to_string(a.role);
    line += ' ';
    line += times;
    line += std::to_string(a.count) + " (rule " + printable(a.rule) + ")";
    lines.push_back(std::move(line));
  }
  if (o.actions_dropped != 0) {
    lines.push_back("finwave did: " + std::to_string(o.actions_dropped) +
                    " more actions, not recorded");
  }
  return lines;
}

std::string cut_text(const Outcome& o) {
  return std::to_string(o.timeline_dropped) + (o.timeline_dropped == 1 ? " segment" : " segments") +
         " not recorded";
}

std::size_t cut_position(const Outcome& o) { return std::min(o.timeline.size(), kTimelineHead); }

bool is_handshake(const TimelineEntry& e) {
  return e.role == rules::Role::kSyn || e.role == rules::Role::kSynAck;
}

}  // namespace finwave::proxy::ladder
