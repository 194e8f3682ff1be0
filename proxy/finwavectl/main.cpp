// finwavectl: the control client of the finwave daemon. Talks JSON lines over finwave's control
// socket (proxy/control_protocol.hpp) and prints what it hears for people (aligned tables,
// colours on a terminal) or, with --json, for scripts.
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/finwavectl/commands.hpp"
#include "proxy/finwavectl/connection.hpp"

namespace {

constexpr const char* kFooter = R"(Exit status:
  0  success
  1  wait timed out (no matching outcome in time)
  2  usage or protocol error (bad arguments, or the daemon refused: unknown rule, invalid rule,
     no outcome for the flow `show` asked for...)
  3  cannot reach the daemon (no socket, nobody listening, permission denied, connection lost)

Waiting without a race: `wait` matches outcomes reported after it starts. An outcome reported
between your change and the wait would be missed, so say where to start:
  seq=$(finwavectl --json enable lose-final-ack | jq .outcome_seq)
  ...run connections...
  finwavectl wait --rule lose-final-ack --result timeout --since "$seq" --timeout 20s
or `--since change` for "since the last rule change" (any client's).

Examples:
  finwavectl rules
  finwavectl enable lose-final-ack
  echo '{ name = "lose-fin2", role = "fin2", action = "drop" }' | finwavectl add -
  finwavectl wait --result timeout --timeout 20s --since change
  finwavectl show 198.18.1.2:40000 --svg teardown.svg
  finwavectl watch --events outcome,rule_change)";

int run(int argc, char** argv) {
  using namespace finwave::proxy::ctl;
  Options options;
  options.control = default_control_path();
  CLI::App app{
      "finwavectl: control a running finwave (toggle rules, watch and wait for teardown "
      "outcomes) over its control socket."};
  // Bash completion's helper, before CLI11, which would read the words being completed as
  // finwavectl's own.
  if (argc > 1 && std::string_view(argv[1]) == "__complete") {
    return run_complete(options, std::vector<std::string>(argv + 2, argv + argc));
  }
  app.footer(kFooter);
  app.set_version_flag("--version", std::string("finwavectl ") + FINWAVE_VERSION);
  define_commands(app, options, false);
  return parse_and_run(app, options, [&] { app.parse(argc, argv); });
}

}  // namespace

int main(int argc, char** argv) {
  // The daemon closing the connection must end in a message, not a silent SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwavectl: %s\n", error.what());
  } catch (...) {
    std::fprintf(stderr, "finwavectl: unexpected error\n");
  }
  return finwave::proxy::ctl::kExitUsage;
}
