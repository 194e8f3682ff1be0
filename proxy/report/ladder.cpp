#include "proxy/report/ladder.hpp"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include "netfilter/packet.hpp"
#include "proxy/report/utf8.hpp"
#include "proxy/tracker/timeline_ring.hpp"

namespace finwave::proxy {
namespace {

// ---------------------------------------------------------------------------------------------
// What both pictures say about a segment and a flow.

// "-2.000 ms", "1400.003 ms": exact, from integers, so golden files do not depend on printf's
// rounding of doubles.
std::string format_ms(std::int64_t us) {
  const bool negative = us < 0;
  const std::uint64_t magnitude =
      negative ? 0 - static_cast<std::uint64_t>(us) : static_cast<std::uint64_t>(us);
  char text[48];
  std::snprintf(text, sizeof text, "%s%" PRIu64 ".%03" PRIu64 " ms", negative ? "-" : "",
                magnitude / 1000, magnitude % 1000);
  return text;
}

// What finwave did, with its amounts when the outcome has them: "DELAYED 300 ms",
// "DUPLICATED x2" (two copies sent behind the segment; `times` is "x" or "×").
std::string action_text(const TimelineEntry& e, std::string_view times) {
  std::string text;
  const auto copies = [&] {
    if (e.copies != 0) text += " " + std::string(times) + std::to_string(e.copies);
  };
  switch (e.verdict) {
    case Verdict::kAccept:
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

// The amounts of a delay or duplicate for a tooltip: ", held 300 ms, 2 copies".
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

// The words on one arrow, in three parts so that a narrow ladder can move `numbers` to a line of
// its own: "F. fin2 retx" / "seq=9001 ack=2002" / "DROPPED".
struct ArrowText {
  std::string head;
  std::string numbers;
  std::string action;
};

void append_word(std::string& text, std::string_view word) {
  if (word.empty()) return;
  if (!text.empty()) text += ' ';
  text += word;
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

// Rule names are free text: keep control characters (a newline would break the layout) out.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = '?';
  }
  return out;
}

// Text that is not an arrow, shared by both pictures. Header lines come as fields, so that a
// narrow ladder breaks them between fields rather than inside one. `arrow` and `times` are "->"
// and "x" in ASCII, "→" and "×" in Unicode.
std::vector<std::string> title_fields(const Outcome& o, std::string_view arrow) {
  std::vector<std::string> fields = {
      "flow " + std::to_string(o.id) + ": client " + to_string(o.client),
      std::string(arrow) + " server " + to_string(o.server)};
  if (!o.sides_known) fields.emplace_back("(sides guessed by port)");
  return fields;
}
constexpr std::string_view kTitleSeparator = " ";

std::vector<std::string> summary_fields(const Outcome& o) {
  return {std::string(to_string(o.kind)), std::string(to_string(o.result)),
          "closer=" + std::string(to_string(o.closer)), "teardown " + format_ms(o.teardown_us),
          "ended by " + std::string(to_string(o.ended_by))};
}
constexpr std::string_view kSummarySeparator = "  ";
// SVG text collapses runs of spaces.
constexpr std::string_view kSvgSeparator = " \u00b7 ";

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

// Where the tracker left segments out: it keeps the first kTimelineHead entries and the last
// ones, so the gap follows the head.
std::size_t cut_position(const Outcome& o) { return std::min(o.timeline.size(), kTimelineHead); }

bool is_handshake(const TimelineEntry& e) {
  return e.role == rules::Role::kSyn || e.role == rules::Role::kSynAck;
}

// Lines of at most `width` columns, broken at the last double space (between fields) or else the
// last space that fits, or hard inside a word longer than a line; continuation lines are indented
// by two spaces. Spacing inside a line that fits is kept as it is.
void wrap_into(std::vector<std::string>& out, std::string_view text, std::size_t width) {
  std::string_view indent;
  while (utf8_columns(indent) + utf8_columns(text) > width) {
    const std::size_t room = width - utf8_columns(indent);
    const std::size_t fits = utf8_prefix_bytes(text, room);
    // Break between fields (two spaces) if possible, else between words. A space right after
    // the part that fits is as good a break as one inside it.
    std::size_t cut = text.rfind("  ", fits);
    if (cut == std::string_view::npos || cut == 0) cut = text.rfind(' ', fits);
    if (cut == std::string_view::npos || cut == 0) cut = fits;
    std::string_view line = text.substr(0, cut);
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    out.push_back(std::string(indent) + std::string(line));
    text.remove_prefix(cut);
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    indent = "  ";
  }
  if (!text.empty() || indent.empty()) out.push_back(std::string(indent) + std::string(text));
}

// Fields joined by `separator` into lines of at most `width` columns, broken between fields
// (a field wider than a line is word-wrapped); continuation lines are indented by two spaces.
void wrap_fields(std::vector<std::string>& out, const std::vector<std::string>& fields,
                 std::string_view separator, std::size_t width) {
  std::string line;
  bool first = true;
  const auto flush = [&] {
    if (!line.empty()) wrap_into(out, line, width);
    line.clear();
    first = false;
  };
  for (const std::string& field : fields) {
    std::string candidate = line.empty() && !first ? "  " : line;
    if (!line.empty()) candidate += separator;
    candidate += field;
    if (!line.empty() && utf8_columns(candidate) > width) {
      flush();
      line = "  " + field;
    } else {
      line = candidate;
    }
  }
  flush();
}

// ---------------------------------------------------------------------------------------------
// The ASCII ladder.

struct Glyphs {
  std::string_view life;
  std::string_view cut;
  std::string_view line;
  std::string_view delayed;
  std::string_view duplicated;
  std::string_view to_right;
  std::string_view to_left;
  std::string_view lost;
  std::string_view arrow;
  std::string_view times;
};

constexpr Glyphs kAscii{"|", ":", "-", "~", "=", ">", "<", "X", "->", "x"};
constexpr Glyphs kUnicode{"\u2502", "\u250a", "\u2500", "\u254c", "\u2550",
                          "\u25b6", "\u25c0", "\u2715", "\u2192", "\u00d7"};

// One line of the diagram as cells of one column each.
class Row {
 public:
  explicit Row(std::size_t width) : cells_(width, " ") {}

  void put(std::size_t column, std::string_view glyph) {
    if (column < cells_.size()) cells_[column] = glyph;
  }
  void text(std::size_t column, std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) put(column + i, text.substr(i, 1));
  }
  std::string str() const {
    std::string line;
    for (const std::string& cell : cells_) line += cell;
    line.erase(line.find_last_not_of(' ') + 1);
    return line;
  }

 private:
  std::vector<std::string> cells_;
};

// Columns: the time, right-aligned, then the client lifeline at `left` and the server lifeline at
// `right`, leaving room after it to centre the word "server" on it.
struct Geometry {
  std::size_t width = 0;
  std::size_t time_width = 0;
  std::size_t left = 0;
  std::size_t right = 0;
  std::size_t span() const { return right - left - 1; }
  std::size_t column(std::size_t in_span) const { return left + 1 + in_span; }
};

// Smallest body (cells between the arrow's ends) that holds " label " with a line cell each side.
constexpr std::size_t kLabelMargin = 4;

std::string cut_to(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  if (max == 0) return {};
  return std::string(text.substr(0, max - 1)) + "~";
}

class AsciiLadder {
 public:
  AsciiLadder(const Outcome& outcome, const LadderOptions& options)
      : o_(outcome), glyphs_(options.unicode ? kUnicode : kAscii) {
    g_.width = std::max(options.width, kMinLadderWidth);
    for (const TimelineEntry& e : o_.timeline) {
      g_.time_width = std::max(g_.time_width, format_ms(e.t_us).size());
    }
    g_.left = g_.time_width + 2;
    g_.right = g_.width - 3;
  }

  std::string render() {
    wrap_fields(lines_, title_fields(o_, glyphs_.arrow), kTitleSeparator, g_.width);
    wrap_fields(lines_, summary_fields(o_), kSummarySeparator, g_.width);
    lines_.emplace_back();
    names();
    if (o_.timeline.empty()) {
      wrap_into(lines_, "(no segments in the timeline)", g_.width);
    }
    for (std::size_t i = 0; i < o_.timeline.size(); ++i) {
      if (o_.timeline_dropped != 0 && i == cut_position(o_)) cut();
      segment(o_.timeline[i]);
    }
    if (o_.timeline_dropped != 0 && cut_position(o_) == o_.timeline.size()) cut();
    lines_.emplace_back();
    for (const std::string& line : footer_lines(o_, glyphs_.times, kSummarySeparator)) {
      wrap_into(lines_, line, g_.width);
    }
    std::string text;
    for (const std::string& line : lines_) {
      text += line;
      text += '\n';
    }
    return text;
  }

 private:
  Row lifelines(std::string_view glyph) const {
    Row row(g_.width);
    row.put(g_.left, glyph);
    row.put(g_.right, glyph);
    return row;
  }

  void names() {
    Row row(g_.width);
    row.text(g_.left - 3, "client");
    row.text(g_.right - 3, "server");
    lines_.push_back(row.str());
  }

  void cut() {
    Row row = lifelines(glyphs_.cut);
    place_centered(row, cut_to(cut_text(o_), g_.span() - 2), 0, g_.span());
    lines_.push_back(row.str());
  }

  // Centres `text` in span cells [begin, end).
  void place_centered(Row& row, const std::string& text, std::size_t begin, std::size_t end) const {
    const std::size_t room = end - begin;
    const std::size_t offset = text.size() < room ? (room - text.size()) / 2 : 0;
    row.text(g_.column(begin + offset), text);
  }

  void segment(const TimelineEntry& e) {
    const ArrowText words = arrow_text(e, glyphs_.times);
    const bool lost = e.verdict == Verdict::kDrop;
    const std::size_t span = g_.span();
    // A lost arrow stops short of the receiver at an X, two thirds of the way or further if its
    // label needs it, with DROPPED written past the X; when that does not fit, DROPPED joins the
    // label and the X may move up to two cells from the receiver's lifeline.
    const std::size_t max_label = (lost ? span - 2 : span) - 1 - kLabelMargin;
    const auto lost_reach = [&](std::size_t label_size) {
      return std::min(span - 2, std::max(span * 2 / 3, label_size + kLabelMargin + 1));
    };

    std::string label;
    std::string past_tip;  // written beyond the X of a lost arrow
    std::string below;     // the sequence numbers, when they do not fit on the arrow
    const std::string plain = join_words({words.head, words.numbers});
    if (lost && lost_reach(plain.size()) + 1 + words.action.size() + 1 <= span) {
      label = plain;
      past_tip = words.action;
    } else {
      label = join_words({words.head, words.numbers, words.action});
      if (label.size() > max_label) {
        label = cut_to(join_words({words.head, words.action}), max_label);
        below = cut_to(words.numbers, span - 2);
      }
    }
    const std::size_t drawn = lost ? lost_reach(label.size()) : span;

    Row row = lifelines(glyphs_.life);
    const std::string time = format_ms(e.t_us);
    row.text(g_.time_width - time.size(), time);

    const bool to_server = e.from == rules::Side::kClient;
    // Span cells [begin, end) are drawn; the head (or the X) is at one end of them.
    const std::size_t begin = to_server ? 0 : span - drawn;
    const std::size_t end = to_server ? drawn : span;
    std::string_view line = glyphs_.line;
    if (e.verdict == Verdict::kDelay) line = glyphs_.delayed;
    if (e.verdict == Verdict::kDuplicate) line = glyphs_.duplicated;
    for (std::size_t i = begin; i < end; ++i) row.put(g_.column(i), line);
    const std::string_view tip = lost        ? glyphs_.lost
                                 : to_server ? glyphs_.to_right
                                             : glyphs_.to_left;
    row.put(g_.column(to_server ? end - 1 : begin), tip);

    // The body is the drawn part without its tip.
    const std::size_t body_begin = to_server ? begin : begin + 1;
    const std::size_t body_end = to_server ? end - 1 : end;
    place_centered(row, " " + label + " ", body_begin, body_end);
    if (!past_tip.empty()) {
      row.text(g_.column(to_server ? end + 1 : begin - 1 - past_tip.size()), past_tip);
    }
    lines_.push_back(row.str());

    if (!below.empty()) {
      Row more = lifelines(glyphs_.life);
      place_centered(more, below, body_begin, body_end);
      lines_.push_back(more.str());
    }
  }

  const Outcome& o_;
  const Glyphs& glyphs_;
  Geometry g_;
  std::vector<std::string> lines_;
};

// ---------------------------------------------------------------------------------------------
// The SVG ladder.

// Text for XML character data and attribute values: the five special characters as entities,
// and whatever is not valid UTF-8 or not allowed in XML 1.0 (control characters) as U+FFFD.
std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto replacement = [&out] { out += "\uFFFD"; };
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      switch (byte) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        case '\t':
        case '\n':
        case '\r':
          out += static_cast<char>(byte);
          break;
        default:
          if (byte < 0x20 || byte == 0x7f) {
            replacement();
          } else {
            out += static_cast<char>(byte);
          }
      }
      ++i;
      continue;
    }
    // XML 1.0 allows every Unicode character but U+FFFE and U+FFFF (and the controls above).
    const std::size_t length = utf8_sequence_length(text, i);
    const std::uint32_t code = length == 0 ? 0 : utf8_code_point(text, i, length);
    const bool valid = length != 0 && code != 0xfffe && code != 0xffff;
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      replacement();
      ++i;
    }
  }
  return out;
}

// Coordinates with at most one decimal, "12" rather than "12.0".
std::string num(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  std::string out = text;
  if (out.size() > 2 && out.compare(out.size() - 2, 2, ".0") == 0) out.resize(out.size() - 2);
  if (out == "-0") out = "0";
  return out;
}

struct Paint {
  std::string_view name;  ///< Marker id suffix and legend key.
  std::string_view color;
};

constexpr Paint kPlain{"accept", "#222222"};
constexpr Paint kHandshake{"handshake", "#8a8a8a"};
constexpr Paint kDropped{"drop", "#d62728"};
constexpr Paint kDelayed{"delay", "#e07000"};
constexpr Paint kDuplicated{"duplicate", "#1f77b4"};
constexpr Paint kReset{"reset", "#7b3fa0"};
constexpr Paint kPaints[] = {kPlain, kHandshake, kDropped, kDelayed, kDuplicated, kReset};

Paint paint_of(const TimelineEntry& e) {
  switch (e.verdict) {
    case Verdict::kDrop:
      return kDropped;
    case Verdict::kDelay:
      return kDelayed;
    case Verdict::kDuplicate:
      return kDuplicated;
    case Verdict::kReset:
      return kReset;
    case Verdict::kAccept:
      break;
  }
  if (e.role == rules::Role::kRst) return kReset;
  if (is_handshake(e)) return kHandshake;
  return kPlain;
}

class SvgLadder {
 public:
  // Horizontal layout, in pixels.
  static constexpr double kClientX = 170;
  static constexpr double kServerX = 700;
  static constexpr double kMinWidth = 840;
  static constexpr double kCharWidth = 7.3;  // 12 px monospace
  // Vertical layout: every arrow falls by kSlope; consecutive arrows start at least kStep apart,
  // plus a logarithm of the time between them, up to kMaxExtra.
  static constexpr double kTop = 136;
  static constexpr double kSlope = 16;
  static constexpr double kStep = 38;
  static constexpr double kExtraPerDoubling = 8;
  static constexpr double kMaxExtra = 90;
  static constexpr std::int64_t kBreakUs = 50'000;  // gaps marked with their length
  static constexpr double kBreakRoom = 14;
  static constexpr double kCutRoom = 30;
  static constexpr int kCopiesDrawn = 3;

  explicit SvgLadder(const Outcome& outcome) : o_(outcome) {}

  std::string render() {
    const std::string title = join_fields(title_fields(o_, "\u2192"), kTitleSeparator);
    const std::string summary = join_fields(summary_fields(o_), kSvgSeparator);
    const std::vector<std::string> footer = footer_lines(o_, "\u00d7", kSvgSeparator);
    std::size_t widest = utf8_columns(title) + 4;
    for (const std::string& line : footer) widest = std::max(widest, utf8_columns(line));
    const double width =
        std::max(kMinWidth, std::ceil(static_cast<double>(widest) * kCharWidth) + 40);

    // Where each row goes, then the rows, to know the height.
    std::vector<std::string> before_row(o_.timeline.size());  // A cut band or a gap break.
    double y = kTop;
    for (std::size_t i = 0; i < o_.timeline.size(); ++i) {
      if (i != 0) {
        const double previous = y;
        const std::int64_t gap =
            std::max<std::int64_t>(0, o_.timeline[i].t_us - o_.timeline[i - 1].t_us);
        y += step(gap);
        if (o_.timeline_dropped != 0 && i == cut_position(o_)) {
          y += kCutRoom;
          before_row[i] = cut_band(between(previous, y));
        } else if (gap >= kBreakUs) {
          y += kBreakRoom;
          before_row[i] = gap_break(between(previous, y), gap);
        }
      }
      row_y_.push_back(y);
    }
    std::string rows;
    double lowest = y;
    for (std::size_t i = 0; i < o_.timeline.size(); ++i) {
      const double reached = arrival_y(i);
      lowest = std::max(lowest, reached - kSlope);
      rows += before_row[i];
      rows += arrow(o_.timeline[i], i, row_y_[i], reached);
    }
    double bottom = lowest + kSlope + 24;
    if (o_.timeline.empty()) {
      rows += text_at((kClientX + kServerX) / 2, kTop, "(no segments in the timeline)", "middle",
                      "#555555");
      bottom = kTop + 24;
    }
    if (o_.timeline_dropped != 0 && cut_position(o_) == o_.timeline.size()) {
      rows += cut_band(bottom);
      bottom += kCutRoom + 20;
    }
    const double footer_top = bottom + 28;
    const double legend_y = footer_top + 18 * static_cast<double>(footer.size()) + 14;
    const double height = legend_y + 30;

    std::string svg;
    svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + num(width) +
           "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
           "\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"12\">\n";
    svg += "<title>finwave ladder: " + xml_escape(title) + "</title>\n";
    svg += defs();
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
    svg += "<text x=\"20\" y=\"28\" font-size=\"15\" font-weight=\"bold\">" + xml_escape(title) +
           "</text>\n";
    svg += text_at(20, 48, summary, "start", "#444444");
    svg += lifeline(kClientX, "client", to_string(o_.client), bottom);
    svg += lifeline(kServerX, "server", to_string(o_.server), bottom);
    svg += rows;
    for (std::size_t i = 0; i < footer.size(); ++i) {
      svg += text_at(20, footer_top + 18 * static_cast<double>(i), footer[i], "start", "#222222");
    }
    svg += legend(legend_y);
    svg += "</svg>\n";
    return svg;
  }

 private:
  // How far a row starts below the previous one, `gap_us` later.
  static double step(std::int64_t gap_us) {
    const double gap_ms = static_cast<double>(std::max<std::int64_t>(0, gap_us)) / 1000.0;
    return kStep + std::min(kMaxExtra, kExtraPerDoubling * std::log2(1.0 + gap_ms));
  }

  // The height of time `t_us` on the lifelines: between the rows around it, in proportion; past
  // the last row, one step further.
  double y_at(std::int64_t t_us) const {
    const std::vector<TimelineEntry>& timeline = o_.timeline;
    for (std::size_t i = 0; i + 1 < timeline.size(); ++i) {
      const std::int64_t begin = timeline[i].t_us;
      const std::int64_t end = timeline[i + 1].t_us;
      if (t_us > end) continue;
      if (t_us <= begin || end <= begin) return row_y_[i];
      const double part = static_cast<double>(t_us - begin) / static_cast<double>(end - begin);
      return row_y_[i] + (row_y_[i + 1] - row_y_[i]) * part;
    }
    return row_y_.back() + step(t_us - timeline.back().t_us);
  }

  // Where arrow `index` ends: kSlope below its row, or for a held segment that went out, kSlope
  // below the height of the time it went out (the arrow crosses what passed meanwhile).
  double arrival_y(std::size_t index) const {
    const TimelineEntry& e = o_.timeline[index];
    if (e.verdict == Verdict::kDelay && e.released && e.hold_ms && *e.hold_ms != 0) {
      return std::max(row_y_[index], y_at(released_us(e))) + kSlope;
    }
    return row_y_[index] + kSlope;
  }

  static std::int64_t released_us(const TimelineEntry& e) {
    return e.t_us + static_cast<std::int64_t>(e.hold_ms.value_or(0)) * 1000;
  }

  // Halfway between the end of the arrow at `previous` and the top of the label at `next`.
  static double between(double previous, double next) {
    return (previous + kSlope + next + kSlope / 2 - 18) / 2;
  }

  static std::string text_at(double x, double y, std::string_view text, std::string_view anchor,
                             std::string_view color, std::string_view extra = {}) {
    std::string out = "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"";
    if (anchor != "start") out += " text-anchor=\"" + std::string(anchor) + "\"";
    out += " fill=\"" + std::string(color) + "\"";
    if (!extra.empty()) out += " " + std::string(extra);
    out += ">" + xml_escape(text) + "</text>\n";
    return out;
  }

  static std::string defs() {
    std::string out = "<defs>\n";
    for (const Paint& paint : kPaints) {
      out += "<marker id=\"head-" + std::string(paint.name) +
             "\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
             "markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"" +
             std::string(paint.color) + "\"/></marker>\n";
    }
    out += "</defs>\n";
    return out;
  }

  static std::string lifeline(double x, std::string_view name, const std::string& address,
                              double bottom) {
    std::string out;
    out += "<line class=\"lifeline\" x1=\"" + num(x) + "\" y1=\"104\" x2=\"" + num(x) + "\" y2=\"" +
           num(bottom) + "\" stroke=\"#9a9a9a\" stroke-width=\"2\"/>\n";
    out += "<rect x=\"" + num(x - 95) +
           "\" y=\"64\" width=\"190\" height=\"40\" rx=\"4\" fill=\"#f2f2f2\" "
           "stroke=\"#9a9a9a\"/>\n";
    out += text_at(x, 80, name, "middle", "#222222", "font-weight=\"bold\"");
    out += text_at(x, 97, address, "middle", "#444444", "font-size=\"11\"");
    return out;
  }

  // A long silence between two arrows: the lifelines interrupted, and how long it was.
  static std::string gap_break(double y, std::int64_t gap_us) {
    std::string out;
    for (const double x : {kClientX, kServerX}) {
      out += "<rect x=\"" + num(x - 6) + "\" y=\"" + num(y - 4) +
             "\" width=\"12\" height=\"8\" fill=\"#ffffff\"/>\n";
      out += "<path d=\"M" + num(x - 6) + "," + num(y - 1) + " L" + num(x + 6) + "," + num(y - 5) +
             " M" + num(x - 6) + "," + num(y + 5) + " L" + num(x + 6) + "," + num(y + 1) +
             "\" stroke=\"#9a9a9a\" stroke-width=\"1.5\"/>\n";
    }
    out += text_at(kClientX - 16, y + 4, "+" + format_ms(gap_us), "end", "#777777",
                   "font-style=\"italic\"");
    return out;
  }

  std::string cut_band(double y) const {
    std::string out;
    out += "<rect class=\"cut\" x=\"" + num(kClientX - 100) + "\" y=\"" + num(y - 13) +
           "\" width=\"" + num(kServerX - kClientX + 200) +
           "\" height=\"20\" fill=\"#f6f6f6\" stroke=\"#bbbbbb\" stroke-dasharray=\"4 3\"/>\n";
    out += text_at((kClientX + kServerX) / 2, y + 1, "\u22ef " + cut_text(o_) + " \u22ef", "middle",
                   "#555555", "font-style=\"italic\"");
    return out;
  }

  // Arrow `index` from its row at `y` down to `reached` at the receiver's lifeline.
  std::string arrow(const TimelineEntry& e, std::size_t index, double y, double reached) const {
    const Paint paint = paint_of(e);
    const std::string color(paint.color);
    const bool to_server = e.from == rules::Side::kClient;
    const bool lost = e.verdict == Verdict::kDrop;
    const double x1 = to_server ? kClientX : kServerX;
    const double x2 = to_server ? kServerX : kClientX;
    // A lost segment's line stops at 60% of the way, where an X marks the loss.
    const double reach = lost ? 0.6 : 1.0;
    const double xe = x1 + (x2 - x1) * reach;
    const double ye = y + (reached - y) * reach;
    // A held segment's line is steep: its label goes next to the sender, above the line, so
    // that it stays on its own row.
    const bool steep = reached - y > 2 * kSlope;
    const double stroke = is_handshake(e) ? 1.2 : 1.6;

    const ArrowText words = arrow_text(e, "\u00d7");
    std::string out;
    out += "<line class=\"segment verdict-" + std::string(to_string(e.verdict)) +
           "\" data-index=\"" + std::to_string(index) + "\" data-role=\"" +
           std::string(rules::to_string(e.role)) + "\" data-from=\"" +
           std::string(rules::to_string(e.from)) + "\" data-verdict=\"" +
           std::string(to_string(e.verdict)) + "\" x1=\"" + num(x1) + "\" y1=\"" + num(y) +
           "\" x2=\"" + num(xe) + "\" y2=\"" + num(ye) + "\" stroke=\"" + color +
           "\" stroke-width=\"" + num(stroke) + "\"";
    if (e.verdict == Verdict::kDelay) out += " stroke-dasharray=\"7 4\"";
    if (!lost) out += " marker-end=\"url(#head-" + std::string(paint.name) + ")\"";
    std::string tooltip = format_ms(e.t_us) + "  " + std::string(rules::to_string(e.from)) +
                          (to_server ? " \u2192 server  " : " \u2192 client  ") +
                          join_words({words.head, words.numbers}) + "  verdict " +
                          std::string(to_string(e.verdict)) + amounts_text(e);
    if (e.verdict == Verdict::kDelay && e.released && e.hold_ms) {
      tooltip += ", went out at " + format_ms(released_us(e));
    }
    out += "><title>" + xml_escape(tooltip) + "</title></line>\n";
    if (e.verdict == Verdict::kDuplicate) {
      // The copies finwave injects behind the segment, one line each (at most kCopiesDrawn; one
      // when the outcome does not say how many).
      const int lines = std::clamp<int>(e.copies, 1, kCopiesDrawn);
      for (int k = 1; k <= lines; ++k) {
        const double offset = 5.0 * k;
        out += "<line class=\"copy\" x1=\"" + num(x1) + "\" y1=\"" + num(y + offset) + "\" x2=\"" +
               num(x2) + "\" y2=\"" + num(y + offset + kSlope) + "\" stroke=\"" + color +
               "\" stroke-width=\"1\" marker-end=\"url(#head-" + std::string(paint.name) +
               ")\"/>\n";
      }
    }
    if (lost) {
      out += "<path class=\"lost\" d=\"M" + num(xe - 5) + "," + num(ye - 5) + " L" + num(xe + 5) +
             "," + num(ye + 5) + " M" + num(xe - 5) + "," + num(ye + 5) + " L" + num(xe + 5) + "," +
             num(ye - 5) + "\" stroke=\"" + color + "\" stroke-width=\"2.2\"/>\n";
    }
    out +=
        "<circle cx=\"" + num(x1) + "\" cy=\"" + num(y) + "\" r=\"2.5\" fill=\"" + color + "\"/>\n";
    out += text_at(kClientX - 16, y + 4, format_ms(e.t_us), "end", "#555555");

    // The label sits above the middle of the drawn line (next to the sender for a steep one),
    // kept between the lifelines, its baseline just above the line where the line is highest
    // under it (at the sender's side).
    const std::string label_text = join_words({words.head, words.numbers, words.action});
    const double half = kCharWidth * static_cast<double>(utf8_columns(label_text)) / 2;
    double label_x = steep ? x1 + (to_server ? 1 : -1) * (half + 12) : x1 + (xe - x1) / 2;
    if (2 * half + 16 < kServerX - kClientX) {
      label_x = std::clamp(label_x, kClientX + 8 + half, kServerX - 8 - half);
    }
    const double near_x = to_server ? label_x - half : label_x + half;
    const double near_t = std::clamp((near_x - x1) / (x2 - x1), 0.0, 1.0);
    const double label_y = y + (reached - y) * near_t - 5;
    out += "<text x=\"" + num(label_x) + "\" y=\"" + num(label_y) +
           "\" text-anchor=\"middle\" fill=\"" + color + "\">" +
           xml_escape(join_words({words.head, words.numbers}));
    if (!words.action.empty()) {
      out += " <tspan font-weight=\"bold\">" + xml_escape(words.action) + "</tspan>";
    }
    out += "</text>\n";
    return out;
  }

  static std::string legend(double y) {
    struct Key {
      Paint paint;
      std::string_view text;
      std::string_view dash;
    };
    static constexpr Key kKeys[] = {
        {kDropped, "dropped", ""},   {kDelayed, "delayed", "7 4"},  {kDuplicated, "duplicated", ""},
        {kReset, "reset / RST", ""}, {kHandshake, "handshake", ""},
    };
    std::string out = "<g class=\"legend\">\n";
    double x = 20;
    for (const Key& key : kKeys) {
      out += "<line x1=\"" + num(x) + "\" y1=\"" + num(y) + "\" x2=\"" + num(x + 30) + "\" y2=\"" +
             num(y) + "\" stroke=\"" + std::string(key.paint.color) + "\" stroke-width=\"1.6\"";
      if (!key.dash.empty()) out += " stroke-dasharray=\"" + std::string(key.dash) + "\"";
      out += "/>\n";
      out += text_at(x + 36, y + 4, key.text, "start", key.paint.color);
      x += 56 + kCharWidth * static_cast<double>(key.text.size()) + 20;
    }
    out += "</g>\n";
    return out;
  }

  const Outcome& o_;
  std::vector<double> row_y_;  ///< Where each timeline entry's arrow starts.
};

}  // namespace

std::string render_ladder(const Outcome& outcome, const LadderOptions& options) {
  return AsciiLadder(outcome, options).render();
}

std::string render_ladder_svg(const Outcome& outcome) { return SvgLadder(outcome).render(); }

}  // namespace finwave::proxy
