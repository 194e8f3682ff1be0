#pragma once

#include <cstddef>
#include <string>

#include "proxy/tracker/outcome.hpp"

namespace finwave::proxy {

/// Narrowest ASCII ladder render_ladder() draws; a smaller LadderOptions::width is taken as this.
inline constexpr std::size_t kMinLadderWidth = 48;

/// How render_ladder() draws.
struct LadderOptions {
  /// Columns of every line (terminal width). Labels that do not fit on their arrow move their
  /// sequence numbers to a line of their own, then are cut short.
  std::size_t width = 80;
  /// Box-drawing lifelines and arrows, and → × in the text; plain ASCII when false.
  bool unicode = false;
};

/// The teardown of one connection as an ASCII ladder diagram (the picture TCP articles draw), one
/// line per '\n', each at most `options.width` columns, no trailing spaces:
///
///     flow 1: client 198.18.1.2:40000 -> server 198.18.2.2:5000
///     four_way  clean  closer=client  teardown 3.000 ms  ended by settle
///
///             client                                                            server
///      0.000 ms  |------------------ F. fin1 seq=2001 ack=9001 ------------------->|
///      1.000 ms  |<------------------- . ack1 seq=9001 ack=2002 -------------------|
///
/// Client on the left, server on the right, one arrow per timeline entry with its time in
/// milliseconds since the first FIN, its flags, role, `retx` / `dup_ack` / `bogus` marks,
/// sequence numbers and what finwave did to it: DROPPED (the arrow stops at an X short of the
/// receiver), DELAYED 300 ms (drawn with ~; the time it was held, or "(still held)" and the delay
/// asked for when the outcome was built first), DUPLICATED x2 (drawn with =; the copies sent
/// behind it, "×2" in Unicode), RESET (sent as RST); an amount the outcome lacks (JSON from an
/// older finwave) is left out. A row marks where segments were left out of the timeline
/// (`timeline_dropped`); a footer gives the RST, the counters and the rules' actions.
/// Pure function, any thread.
std::string render_ladder(const Outcome& outcome, const LadderOptions& options = {});

/// The same diagram as a standalone SVG 1.1 document (UTF-8, all text escaped): two vertical
/// lifelines, one sloped arrow per timeline entry whose vertical position follows time (gaps are
/// compressed logarithmically, and gaps of 50 ms or more are marked with their length), each
/// labelled with time, flags, role, marks and action (with its amount, as in the ASCII ladder),
/// and coloured by verdict: red and cut short with an X for dropped; orange and dashed for
/// delayed, reaching the receiver at the height of the time it went out (crossing what passed
/// meanwhile) when the outcome has it; blue with a thinner line per copy (up to three) for
/// duplicated; purple for reset. Every arrow is a `<line class="segment verdict-…">` with
/// `data-index`, `data-role`, `data-from` and `data-verdict` attributes and a `<title>` tooltip;
/// nothing else carries `data-role`. Pure function, any thread.
std::string render_ladder_svg(const Outcome& outcome);

}  // namespace finwave::proxy
