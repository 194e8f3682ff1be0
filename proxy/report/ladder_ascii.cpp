// The ASCII ladder: a flow's teardown as a text diagram for a terminal (render_ladder()).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/report/ladder.hpp"
#include "proxy/report/ladder_model.hpp"
#include "proxy/report/utf8.hpp"

namespace finwave::proxy {
namespace {

using namespace ladder;  // NOLINT(google-build-using-namespace): the model both pictures share

constexpr std::string_view kSummarySeparator = "  ";

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

}  // namespace

std::string render_ladder(const Outcome& outcome, const LadderOptions& options) {
  return AsciiLadder(outcome, options).render();
}

}  // namespace finwave::proxy
