#include "proxy/daemon/options.hpp"

#include <CLI/CLI.hpp>
#include <map>
#include <string>

#include "proxy/tracker/teardown.hpp"

namespace finwave::proxy {

nf::CaptureSpec capture_spec(const DaemonOptions& options) {
  nf::CaptureSpec spec;
  spec.mode = options.mode;
  spec.queue_num = options.queue_num;
  spec.queue_count = options.queue_count;
  spec.ports = options.ports;
  spec.addresses = options.addresses;
  spec.capture_all = options.capture_all;
  return spec;
}

ParsedOptions parse_daemon_options(int argc, char** argv) {
  ParsedOptions parsed;
  DaemonOptions& o = parsed.options;
  CLI::App app{
      "finwave: a transparent TCP proxy that injects faults into connection teardown (the four\n"
      "waves) and reports how every connection's teardown ended. Outcomes go to stdout, one per\n"
      "line; logs go to stderr."};
  app.set_version_flag("--version", std::string("finwave ") + FINWAVE_VERSION);
  app.option_defaults()->always_capture_default();

  app.add_option("--rules", o.rules_path, "Rule file (TOML); without it finwave only observes")
      ->check(CLI::ExistingFile);
  app.add_option("--check", o.check_path, "Validate a rule file, print what it holds, and exit")
      ->check(CLI::ExistingFile);
  const std::map<std::string, nf::CaptureMode> modes{{"router", nf::CaptureMode::kRouter},
                                                     {"local", nf::CaptureMode::kLocal}};
  app.add_option("--mode", o.mode,
                 "router: hook FORWARD on the host between client and server; local: hook this "
                 "host's own traffic (loopback included)")
      ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case))
      ->default_str("router");
  app.add_option("--port", o.ports, "Only connections with this port on either side (repeatable)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--address", o.addresses,
                 "Only connections with an endpoint in this CIDR prefix (repeatable)");
  app.add_option("--queue", o.queue_num, "NFQUEUE number (the first one with --queues)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--queues", o.queue_count,
                 "Spread the capture over N queues (--queue .. --queue+N-1), a thread each; about "
                 "one per core that should give verdicts. A connection's queue comes from a hash "
                 "of its addresses and ports, the same both ways. "
                 "--queue-len, --max-held, --max-flows and --log-buffer are per queue")
      ->check(CLI::Range(1, int{kMaxQueues}));
  app.add_option("--queue-len", o.queue_len, "Packets the kernel may queue for finwave")
      ->check(CLI::Range(16, 1 << 20));
  app.add_option("--log-buffer", o.log_buffer,
                 "Bytes of socket buffer for the copies of logged segments (per queue); copies "
                 "that find it full are lost, counted, and their outcomes marked incomplete")
      ->check(CLI::Range(4096, 1 << 30));
  app.add_option("--control", o.control_path,
                 "Control socket path (finwavectl's default too); \"none\" for no control socket")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--control-group", o.control_group,
                 "Let this group use the control socket (mode 0660); default: root only (0600)");
  app.add_flag("--json", o.json, "Outcomes as JSON lines instead of readable lines");
  app.add_flag("--ladder", o.ladder,
               "Draw a ladder diagram of each outcome under its line (on stderr with --json)");
  app.add_option("--settle", o.settle_s,
                 "Seconds a fully acknowledged teardown waits for stray retransmissions before it "
                 "is reported clean")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--linger", o.linger_s,
                 "Seconds an unresolved teardown waits (after its last segment) before it is "
                 "reported as a timeout")
      ->check(CLI::Range(0.01, 86400.0));
  app.add_option("--max-flows", o.max_flows, "Most connections tracked at once")
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--pcap", o.pcap_path, "Write every captured segment to this pcap file");
  app.add_option("--seed", o.seed, "Seed for rule probabilities (a run is then reproducible)");
  app.add_option("--max-held", o.max_held,
                 "Most segments held (delayed or being copied) at once; past it a segment a rule "
                 "would delay passes at once and is counted")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--realtime-priority", o.realtime_priority,
                 "Run finwave's threads at this SCHED_FIFO priority (1-99): held segments leave "
                 "on time and verdicts are not kept waiting behind other work on a busy machine "
                 "(default: 0, the normal scheduler)")
      ->check(CLI::Range(0, 99));
  app.add_flag("--capture-all", o.capture_all,
               "Queue every TCP segment, not only teardown (for benchmarks)");
  app.add_option("--ready-file", o.ready_file,
                 "Create this file once the queue is bound and the capture is installed");
  app.add_option("--netns", o.netns,
                 "Work in this network namespace: a file such as /run/netns/NAME or "
                 "/proc/PID/ns/net, or a PID. finwave enters it before it binds its queue and "
                 "installs its table, and removes the table from there on exit; the control "
                 "socket and --metrics stay where finwave started. Needs CAP_SYS_ADMIN to enter")
      ->type_name("PATH|PID")
      // An empty value would read as no --netns at all: finwave would work where it started.
      ->check(
          [](const std::string& value) {
            return value.empty()
                       ? std::string("give a namespace file such as /run/netns/NAME or a PID")
                       : std::string();
          },
          "");
  app.add_option_function<std::string>(
         "--metrics",
         [&o](const std::string& text) {
           const std::optional<rules::Endpoint> endpoint = endpoint_from_string(text);
           if (!endpoint || endpoint->port == 0) {
             throw CLI::ValidationError(
                 "--metrics",
                 "expected ADDRESS:PORT such as 198.18.0.1:9464 or [2001:db8::1]:9464 "
                 "(0.0.0.0 or [::] for every address; port 1-65535), got '" +
                     text + "'");
           }
           o.metrics = endpoint;
         },
         "Serve Prometheus metrics at http://ADDRESS:PORT/metrics (no port is opened without "
         "it)")
      ->type_name("ADDRESS:PORT");
  app.add_flag("-q,--quiet", o.quiet, "Log only errors");
  // Checks that involve two options, once all are parsed.
  app.callback([&o] {
    const unsigned last_queue = unsigned{o.queue_num} + o.queue_count - 1U;
    if (last_queue > 65535U) {
      throw CLI::ValidationError("--queues",
                                 std::to_string(o.queue_count) + " queues from --queue " +
                                     std::to_string(o.queue_num) + " would end at " +
                                     std::to_string(last_queue) + "; the last queue is 65535");
    }
    if (o.queue_count > 1 && !o.pcap_path.empty()) {
      throw CLI::ValidationError(
          "--pcap", "one pcap file is written by one thread: use --pcap with --queues 1");
    }
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    parsed.exit_code = app.exit(error);
    // CLI11 exits 0 for --help/--version and 1+ for errors; finwave's usage errors are 2.
    if (*parsed.exit_code != 0) parsed.exit_code = 2;
  }
  return parsed;
}

}  // namespace finwave::proxy
