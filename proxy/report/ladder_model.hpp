#pragma once

// The ladder model: what both pictures (the ASCII ladder, ladder_ascii.cpp, and the SVG one,
// ladder_svg.cpp) say about a flow and each of its segments. Private to finwave_report.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tracker/outcome.hpp"

namespace finwave::proxy::ladder {

/// "-2.000 ms", "1400.003 ms": exact, from integers, so golden files do not depend on printf's
/// rounding of doubles.
std::string format_ms(std::int64_t us);

/// The amounts of a delay or duplicate for a tooltip: ", held 300 ms, 2 copies".
std::string amounts_text(const TimelineEntry& e);

/// The words on one arrow, in three parts so that a narrow ladder can move `numbers` to a line
/// of its own: "F. fin2 retx" / "seq=9001 ack=2002" / "DROPPED".
struct ArrowText {
  std::string head;
  std::string numbers;
  std::string action;
};

/// The words on the arrow of `e`; `times` is "x" or "×" (in "DUPLICATED x2").
ArrowText arrow_text(const TimelineEntry& e, std::string_view times);

/// The non-empty words, separated by one space.
std::string join_words(std::initializer_list<std::string_view> words);

/// Text that is not an arrow, shared by both pictures. Header lines come as fields, so that a
/// narrow ladder breaks them between fields rather than inside one. `arrow` and `times` are "->"
/// and "x" in ASCII, "→" and "×" in Unicode.
std::vector<std::string> title_fields(const Outcome& o, std::string_view arrow);
inline constexpr std::string_view kTitleSeparator = " ";

/// "four_way", "clean", "closer=client", "teardown 1.002 ms", "ended by settle".
std::vector<std::string> summary_fields(const Outcome& o);

/// The fields on one line, `separator` between them.
std::string join_fields(const std::vector<std::string>& fields, std::string_view separator);

/// Under the arrows: the RST, the counters, and what finwave did (rule by rule).
std::vector<std::string> footer_lines(const Outcome& o, std::string_view times,
                                      std::string_view separator);

/// "3 segments not recorded": the gap the tracker left in the timeline.
std::string cut_text(const Outcome& o);

/// Where the tracker left segments out: it keeps the first kTimelineHead entries and the last
/// ones, so the gap follows the head.
std::size_t cut_position(const Outcome& o);

/// A SYN or SYN-ACK (drawn in grey: not part of the teardown).
bool is_handshake(const TimelineEntry& e);

}  // namespace finwave::proxy::ladder
