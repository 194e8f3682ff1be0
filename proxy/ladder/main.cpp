// finwave-ladder: draws the ladder diagram of outcomes saved as JSON lines (`finwave --json`,
// finwavectl's outcome lines), as ASCII on stdout and optionally as SVG files.

#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "proxy/report/ladder.hpp"
#include "proxy/report/outcome_json.hpp"
#include "proxy/tracker/teardown.hpp"

namespace {

using finwave::proxy::Outcome;

constexpr int kExitNothing = 1;  // nothing to draw, or an SVG file could not be written
constexpr int kExitUsage = 2;    // bad command line or bad input

struct Args {
  std::vector<std::string> inputs;
  std::string flow;
  std::string svg_path;
  std::size_t width = 0;
  bool unicode = false;
  bool quiet = false;
};

// The terminal's width when stdout is one, else 80 (so that piped output does not depend on the
// terminal it was run from).
std::size_t default_width() {
  winsize size{};
  if (isatty(STDOUT_FILENO) == 1 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 &&
      size.ws_col >= finwave::proxy::kMinLadderWidth) {
    return size.ws_col;
  }
  return 80;
}

// What --flow selects: a flow id, or the client's address and port.
class FlowFilter {
 public:
  // Throws std::invalid_argument for text that is neither.
  explicit FlowFilter(const std::string& text) {
    if (text.empty()) return;
    active_ = true;
    if (text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 19) {
      id_ = std::stoull(text);
      return;
    }
    const auto endpoint = finwave::proxy::endpoint_from_string(text);
    if (!endpoint) {
      throw std::invalid_argument(
          "--flow: expected a flow id or CLIENT_ADDR:PORT (e.g. 3, "
          "198.18.1.2:40000, [2001:db8:1::2]:40000), got \"" +
          text + "\"");
    }
    // Compared in to_string()'s form, so "[2001:0db8:1:0::2]:40000" matches too.
    client_ = finwave::proxy::to_string(*endpoint);
  }

  bool matches(const Outcome& outcome) const {
    if (!active_) return true;
    if (client_.empty()) return outcome.id == id_;
    return finwave::proxy::to_string(outcome.client) == client_;
  }

 private:
  bool active_ = false;
  std::uint64_t id_ = 0;
  std::string client_;
};

// Reads every outcome line of `stream`; lines that are JSON but not outcomes (stats, replies)
// are skipped, blank lines too. Bad lines are reported with their place and make `bad` true.
void read_outcomes(std::istream& stream, const std::string& name, const FlowFilter& filter,
                   std::vector<Outcome>& out, bool& bad) {
  std::string line;
  std::size_t number = 0;
  while (std::getline(stream, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = name + ":" + std::to_string(number) + ": ";
    nlohmann::json json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded()) {
      std::cerr << "finwave-ladder: " << where << "not a JSON line\n";
      bad = true;
      continue;
    }
    if (!json.is_object() || !json.contains("event") || json.at("event") != "outcome") continue;
    try {
      Outcome outcome = finwave::proxy::outcome_from_json(json);
      if (filter.matches(outcome)) out.push_back(std::move(outcome));
    } catch (const std::invalid_argument& error) {
      std::cerr << "finwave-ladder: " << where << error.what() << "\n";
      bad = true;
    }
  }
}

// "ladder.svg" for one diagram; "ladder-1.svg", "ladder-2.svg", ... for several, numbered in
// input order.
std::string svg_name(const std::string& path, std::size_t index, std::size_t count) {
  if (count == 1) return path;
  const std::size_t slash = path.rfind('/');
  std::size_t dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) ||
      dot == (slash == std::string::npos ? 0 : slash + 1)) {
    dot = path.size();
  }
  return path.substr(0, dot) + "-" + std::to_string(index + 1) + path.substr(dot);
}

}  // namespace

namespace {

int run(int argc, char** argv) {
  Args args;
  CLI::App app{
      "Draws the ladder diagram of finwave outcomes read as JSON lines (finwave --json), from "
      "files or stdin: client and server columns, one arrow per captured segment with its time, "
      "role, flags and what finwave did to it.",
      "finwave-ladder"};
  app.set_version_flag("--version", std::string("finwave-ladder ") + FINWAVE_VERSION);
  app.add_option("files", args.inputs, "Files of JSON lines; none or - reads stdin");
  app.add_option("--flow", args.flow, "Only this flow: its id, or the client's ADDR:PORT");
  app.add_option("--svg", args.svg_path,
                 "Also write each diagram as SVG to FILE (several diagrams: FILE-1.svg, "
                 "FILE-2.svg, ... in input order)");
  app.add_option("--width", args.width,
                 "Columns of the ASCII ladder (default: the terminal's, or 80)")
      ->check(CLI::Range(static_cast<std::size_t>(finwave::proxy::kMinLadderWidth),
                         static_cast<std::size_t>(1000)));
  app.add_flag("--unicode", args.unicode, "Box-drawing lines and arrows instead of ASCII");
  app.add_flag("-q,--quiet", args.quiet, "Do not print the ASCII ladders (with --svg)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? 0 : kExitUsage;
  }

  std::optional<FlowFilter> filter;
  try {
    filter.emplace(args.flow);
  } catch (const std::invalid_argument& error) {
    std::cerr << "finwave-ladder: " << error.what() << "\n";
    return kExitUsage;
  }

  std::vector<Outcome> outcomes;
  bool bad = false;
  if (args.inputs.empty()) args.inputs.emplace_back("-");
  for (const std::string& input : args.inputs) {
    if (input == "-") {
      read_outcomes(std::cin, "stdin", *filter, outcomes, bad);
      continue;
    }
    std::ifstream file(input);
    if (!file) {
      std::cerr << "finwave-ladder: cannot open " << input << "\n";
      bad = true;
      continue;
    }
    read_outcomes(file, input, *filter, outcomes, bad);
  }

  finwave::proxy::LadderOptions options;
  options.width = args.width != 0 ? args.width : default_width();
  options.unicode = args.unicode;
  int status = 0;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    if (!args.quiet) {
      if (i != 0) std::cout << "\n";
      std::cout << finwave::proxy::render_ladder(outcomes[i], options);
    }
    if (args.svg_path.empty()) continue;
    const std::string path = svg_name(args.svg_path, i, outcomes.size());
    std::ofstream svg(path, std::ios::binary | std::ios::trunc);
    svg << finwave::proxy::render_ladder_svg(outcomes[i]);
    svg.close();
    if (!svg) {
      std::cerr << "finwave-ladder: cannot write " << path << "\n";
      status = kExitNothing;
      continue;
    }
    std::cerr << "finwave-ladder: wrote " << path << " (flow " << outcomes[i].id << ", client "
              << finwave::proxy::to_string(outcomes[i].client) << ")\n";
  }
  std::cout.flush();
  if (bad) return kExitUsage;
  if (outcomes.empty()) {
    std::cerr << "finwave-ladder: "
              << (args.flow.empty() ? "no outcome in the input"
                                    : "no outcome for flow " + args.flow)
              << "\n";
    return kExitNothing;
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    // Out of memory or a stream failure: nothing the input could have caused.
    std::cerr << "finwave-ladder: " << error.what() << "\n";
    return 1;
  }
}
