// finwave: the daemon's entry point. Parses the command line, runs the Daemon, and turns
// set-up failures into a message and an exit status (1 runtime, 2 usage or configuration).
// `finwave --check FILE` validates a rule file without touching the network.
#include <csignal>
#include <cstdio>
#include <exception>

#include "proxy/daemon/daemon.hpp"
#include "proxy/daemon/options.hpp"
#include "rules/config_error.hpp"
#include "rules/rule.hpp"
#include "rules/rule_loader.hpp"

namespace {

// finwave --check FILE: validates a rule file and lists what it would do.
int check_rules(const std::string& path) {
  try {
    const finwave::rules::RuleSet set = finwave::rules::load_rules_file(path);
    std::printf("%s: %zu rule(s), valid\n", path.c_str(), set.rules.size());
    for (const auto& rule : set.rules) {
      std::printf("  %-24s %s%s\n", rule.name.c_str(), finwave::rules::describe(rule).c_str(),
                  rule.enabled ? "" : " (disabled)");
    }
    return 0;
  } catch (const finwave::rules::ConfigError& error) {
    std::fprintf(stderr, "finwave: %s\n", error.what());
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using finwave::proxy::parse_daemon_options;
  auto parsed = parse_daemon_options(argc, argv);
  if (parsed.exit_code) return *parsed.exit_code;
  if (!parsed.options.check_path.empty()) return check_rules(parsed.options.check_path);

  // A reader that goes away (finwave | head) must not kill the daemon mid-teardown: the
  // capture table would stay behind.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    finwave::proxy::Daemon daemon(std::move(parsed.options));
    return daemon.run();
  } catch (const finwave::rules::ConfigError& error) {
    // Configuration errors name file:line:col; nothing was installed.
    std::fprintf(stderr, "finwave: %s\n", error.what());
    return 2;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwave: %s\n", error.what());
    return 1;
  }
}
