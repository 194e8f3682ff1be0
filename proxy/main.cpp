// finwave: the daemon's entry point. Parses the command line, runs the Daemon, and turns
// set-up failures into a message and an exit status (1 runtime, 2 usage or configuration).
#include <csignal>
#include <cstdio>
#include <exception>

#include "proxy/daemon.hpp"
#include "proxy/options.hpp"

int main(int argc, char** argv) {
  using finwave::proxy::parse_daemon_options;
  auto parsed = parse_daemon_options(argc, argv);
  if (parsed.exit_code) return *parsed.exit_code;

  // A reader that goes away (finwave | head) must not kill the daemon mid-teardown: the
  // capture chains would stay behind.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    finwave::proxy::Daemon daemon(std::move(parsed.options));
    return daemon.run();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwave: %s\n", error.what());
    return 1;
  }
}
