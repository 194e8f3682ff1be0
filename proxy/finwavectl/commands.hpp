#pragma once

#include <CLI/CLI.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace finwave::proxy::ctl {

/// Everything finwavectl's command line can say; one instance per command run.
struct Options {
  // Global.
  std::string control;
  bool json = false;
  std::string color = "auto";
  // Per subcommand.
  std::vector<std::string> names;                // enable, disable, remove
  std::string file;                              // add
  bool first = false;                            // add
  std::string ttl;                               // add: "30s" ("": none)
  std::uint64_t max_hits = 0;                    // add (0: none)
  std::uint64_t limit = 0;                       // flows, outcomes (0: the daemon's default)
  std::string since;                             // outcomes, wait
  std::string result, kind, closer, rule, flow;  // wait, watch
  std::string timeout = "5s";                    // wait
  std::uint32_t count = 1;                       // wait
  std::uint32_t watch_count = 0;                 // watch: stop after this many outcomes (0: never)
  std::vector<std::string> events;               // watch
  std::vector<std::string> lines;                // raw
  std::string svg;                               // show: also write the ladder as SVG here
  std::size_t width = 0;  // show: ASCII ladder columns (0: the terminal's, or 80)
  bool unicode = false;   // show
  bool quiet = false;     // show: no ASCII ladder (with --svg)
};

/// The default control socket: $FINWAVE_CONTROL, else finwave's default path.
std::string default_control_path();

/// Defines finwavectl's options and subcommands on `app`, bound to `options`. `in_shell` leaves
/// out the global options and the `shell` subcommand.
void define_commands(CLI::App& app, Options& options, bool in_shell);

/// Runs the subcommand `app` parsed; returns the exit status (see connection.hpp).
int run_parsed(const CLI::App& app, Options& options);

/// One command line from start to exit status, for `finwavectl ...` and for each line of the
/// shell alike: `parse` fills `app` (CLI11's parse of argv or of the line), then run_parsed().
/// A parse error (or --help) is printed by CLI11 and is kExitUsage (kExitOk for --help); a
/// CtlError is printed as "finwavectl: ..." with its exit code; any other error is printed the
/// same way and is kExitUsage.
int parse_and_run(CLI::App& app, Options& options, const std::function<void()>& parse);

/// `finwavectl __complete WORD... -- CURRENT` (bash completion, deploy/completion/finwavectl):
/// prints the words that complete CURRENT after WORD..., one per line. WORD... may start with
/// the global options (--control names the daemon asked for rule names). Returns 0.
int run_complete(Options options, const std::vector<std::string>& words);

/// The values `option` ("--kind") takes, from the daemon's vocabularies (rules/vocabulary.hpp):
/// for the option's check and the shell's completion. Empty for an option that takes free text.
std::vector<std::string> option_values(std::string_view option);

}  // namespace finwave::proxy::ctl
