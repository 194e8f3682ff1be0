// The SVG ladder: a flow's teardown as an SVG picture (render_ladder_svg()).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "netfilter/packet.hpp"
#include "proxy/report/ladder.hpp"
#include "proxy/report/ladder_model.hpp"
#include "proxy/report/utf8.hpp"

namespace finwave::proxy {
namespace {

using namespace ladder;  // NOLINT(google-build-using-namespace): the model both pictures share

// SVG text collapses runs of spaces.
constexpr std::string_view kSvgSeparator = " \u00b7 ";

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
    case Verdict::kObserved:
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

std::string render_ladder_svg(const Outcome& outcome) { return SvgLadder(outcome).render(); }

}  // namespace finwave::proxy
