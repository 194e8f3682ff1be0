// Tests of finwave's command line (proxy/options.cpp): what it accepts, and the usage errors
// (exit status 2) for values out of range and options that cannot go together. Parsing only:
// nothing here starts the daemon.

#include "proxy/daemon/options.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using finwave::proxy::parse_daemon_options;
using finwave::proxy::ParsedOptions;

namespace {

ParsedOptions parse(const std::vector<const char*>& args) {
  std::vector<std::string> words = {"finwave"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  argv.reserve(words.size());
  for (std::string& word : words) argv.push_back(word.data());
  return parse_daemon_options(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_SUITE("options") {
  TEST_CASE("options: queues and real-time priority are read") {
    const ParsedOptions parsed =
        parse({"--queue", "7", "--queues", "3", "--realtime-priority", "10"});
    REQUIRE_FALSE(parsed.exit_code.has_value());
    CHECK(parsed.options.queue_num == 7);
    CHECK(parsed.options.queue_count == 3);
    CHECK(parsed.options.realtime_priority == 10);
  }

  TEST_CASE("options: the defaults are one queue, the normal scheduler and a 64 MiB log buffer") {
    const ParsedOptions parsed = parse({});
    REQUIRE_FALSE(parsed.exit_code.has_value());
    CHECK(parsed.options.queue_count == 1);
    CHECK(parsed.options.realtime_priority == 0);
    CHECK(parsed.options.log_buffer == 64U << 20);
    const ParsedOptions sized = parse({"--log-buffer", "4096"});
    REQUIRE_FALSE(sized.exit_code.has_value());
    CHECK(sized.options.log_buffer == 4096);
  }

  TEST_CASE("options: out-of-range values and clashing options are usage errors") {
    for (const std::vector<const char*>& args : std::vector<std::vector<const char*>>{
             {"--queues", "0"},
             {"--queues", "65"},
             {"--queue", "65535", "--queues", "2"},
             {"--queues", "2", "--pcap", "/tmp/finwave-options-test.pcap"},
             {"--realtime-priority", "100"},
             {"--realtime-priority", "-1"},
             {"--realtime-priority", "high"},
             {"--log-buffer", "4095"},
             {"--log-buffer", "1073741825"},
             {"--log-buffer", "big"},
         }) {
      std::string shown;
      for (const char* arg : args) shown += std::string(arg) + " ";
      CAPTURE(shown);
      const ParsedOptions parsed = parse(args);
      REQUIRE(parsed.exit_code.has_value());
      CHECK(*parsed.exit_code == 2);
    }
  }

  TEST_CASE("options: --metrics takes ADDRESS:PORT and is off by default") {
    CHECK_FALSE(parse({}).options.metrics.has_value());
    const ParsedOptions v4 = parse({"--metrics", "198.18.0.1:9464"});
    REQUIRE_FALSE(v4.exit_code.has_value());
    REQUIRE(v4.options.metrics.has_value());
    CHECK(v4.options.metrics->family == 4);
    CHECK(v4.options.metrics->port == 9464);
    CHECK(v4.options.metrics->address[0] == 198);
    const ParsedOptions v6 = parse({"--metrics", "[2001:db8::1]:65535"});
    REQUIRE_FALSE(v6.exit_code.has_value());
    REQUIRE(v6.options.metrics.has_value());
    CHECK(v6.options.metrics->family == 6);
    CHECK(v6.options.metrics->port == 65535);
    const ParsedOptions any = parse({"--metrics", "0.0.0.0:9464"});
    REQUIRE(any.options.metrics.has_value());
    CHECK(any.options.metrics->address[0] == 0);
  }

  TEST_CASE("options: a --metrics that is no ADDRESS:PORT is a usage error") {
    for (const char* value :
         {"9464", ":9464", "198.18.0.1", "198.18.0.1:0", "198.18.0.1:65536", "2001:db8::1:9464",
          "[198.18.0.1]:9464", "localhost:9464", "198.18.0.1:-1", "198.18.0.1:94a", ""}) {
      CAPTURE(value);
      const ParsedOptions parsed = parse({"--metrics", value});
      REQUIRE(parsed.exit_code.has_value());
      CHECK(*parsed.exit_code == 2);
    }
  }

  TEST_CASE("options: --netns takes a path or a PID, and an empty one is a usage error") {
    CHECK(parse({}).options.netns.empty());
    const ParsedOptions path = parse({"--netns", "/run/netns/app"});
    REQUIRE_FALSE(path.exit_code.has_value());
    CHECK(path.options.netns == "/run/netns/app");
    const ParsedOptions pid = parse({"--netns", "4242"});
    REQUIRE_FALSE(pid.exit_code.has_value());
    CHECK(pid.options.netns == "4242");
    const ParsedOptions empty = parse({"--netns", ""});
    REQUIRE(empty.exit_code.has_value());
    CHECK(*empty.exit_code == 2);
  }
}
