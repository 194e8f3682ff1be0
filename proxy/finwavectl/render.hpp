#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace finwave::proxy::ctl {

/// Colours for a terminal; all empty when colour is off (not a terminal, NO_COLOR, --color never).
struct Style {
  bool enabled = false;
  std::string paint(std::string_view text, std::string_view code) const;
  std::string good(std::string_view text) const { return paint(text, "32"); }
  std::string bad(std::string_view text) const { return paint(text, "31"); }
  std::string warn(std::string_view text) const { return paint(text, "33"); }
  std::string dim(std::string_view text) const { return paint(text, "2"); }
  std::string bold(std::string_view text) const { return paint(text, "1"); }
  /// green for clean, red for reset, yellow for timeout.
  std::string result(std::string_view result) const;
};

/// Decides whether to colour `stream`: "always", "never", or "auto" (a terminal, NO_COLOR unset,
/// TERM not "dumb").
Style make_style(std::string_view mode, std::FILE* stream);

/// A table with aligned columns. Cells may hold colour codes; widths count what is visible.
class Table {
 public:
  explicit Table(std::vector<std::string> headers, std::vector<bool> right_aligned = {});
  void add(std::vector<std::string> row);
  void print(std::FILE* out, const Style& style, bool header = true) const;
  bool empty() const noexcept { return rows_.empty(); }

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

/// The width of the terminal `stream` writes to, or 80 when it is not a terminal (so that piped
/// output does not depend on the terminal it was run from) or narrower than `minimum`.
std::size_t terminal_width(std::FILE* stream, std::size_t minimum);

/// Characters a terminal shows for `text` (UTF-8 code points, colour escapes not counted).
std::size_t visible_width(std::string_view text);

/// One line for an outcome event: "#12 flow 7  198.18.1.2:40000 → 198.18.2.2:5000  four_way
/// timeout  closer=client  final_ack 3 seen/3 dropped  2012.4 ms  [lose-final-ack drop
/// final_ack ×3]".
std::string outcome_line(const nlohmann::json& outcome, const Style& style);

/// One line for any event (outcome, rule_hit, rule_change, lagged, shutdown).
std::string event_line(const nlohmann::json& event, const Style& style);

/// Human renderings of replies.
void print_status(const nlohmann::json& reply, const Style& style, std::FILE* out);
void print_rules(const nlohmann::json& reply, const Style& style, std::FILE* out);
void print_flows(const nlohmann::json& reply, const Style& style, std::FILE* out);
/// Nested counters flattened to aligned "queue.queued  123" lines.
void print_flat(const nlohmann::json& value, std::FILE* out);

}  // namespace finwave::proxy::ctl
