// Latency of SYN-FIN-heavy traffic: one short connection after another, each a 1-byte request
// and a 1-byte reply, timed per connection on the client. With finwave's teardown-only capture
// the timed segments cross the queue as follows:
//
//   connect_us  connect() called -> connect() returned    SYN, SYN-ACK: 2 queued segments
//   reply_us    connect() called -> the reply byte read    the same 2 (request and reply are
//                                                          data before any FIN: not queued)
//   fin_us      the reply byte read -> EOF read            the server's FIN: 1 queued segment
//                                                          (the server closes right after replying)
//
// so (reply_us with finwave - reply_us without) / 2 is the latency added per queued segment.
//
// With --direct-port, connections alternate between --port (captured: finwave or the bare
// consumer runs with that --port) and the direct port (not captured), one by one, so that both
// figures come from the same seconds of the same run: on a busy 2-core machine the kernel's own
// latency wanders between runs far more than a queue trip costs.
//
//   finwave-latency-probe server --port P [--listen ADDR] [--ready-file PATH]
//   finwave-latency-probe client --connect ADDR --port P [--direct-port P2] [--count N]
//                                [--warmup N] [--gap-us US] [--samples PATH]
//
// --gap-us pauses between connections, so that the teardown of one (its last segments cross the
// queue after the client has its figures) does not compete with the next for the CPUs.
//
// The client prints one JSON line: count, errors and p50/p90/p99/max of each figure in
// microseconds, under "queued" for --port and "direct" for --direct-port; --samples writes every
// connection's figures (one "port connect reply fin" line each). The server answers connections
// one at a time until SIGTERM.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <string>
#include <vector>

#include "socket_address.hpp"

namespace {

using finwave::bench::make_address;

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int serve(const std::string& listen_text, std::uint16_t port, const std::string& ready_file) {
  sockaddr_storage address{};
  socklen_t length = 0;
  if (!make_address(listen_text, port, address, length)) {
    std::fprintf(stderr, "latency-probe: bad listen address %s\n", listen_text.c_str());
    return 2;
  }
  const int listener = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.ss_family == AF_INET6) {
    const int zero = 0;
    setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(listener, 1024) != 0) {
    std::fprintf(stderr, "latency-probe: cannot listen on port %u: %s\n", unsigned{port},
                 std::strerror(errno));
    return 1;
  }
  if (!ready_file.empty()) {
    if (FILE* file = std::fopen(ready_file.c_str(), "w")) {
      std::fprintf(file, "%u\n", unsigned{port});
      std::fclose(file);
    }
  }
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::fprintf(stderr, "latency-probe: accept: %s\n", std::strerror(errno));
      return 1;
    }
    set_nodelay(fd);
    char byte = 0;
    if (read(fd, &byte, 1) == 1) {
      [[maybe_unused]] const auto written = write(fd, &byte, 1);
    }
    close(fd);
  }
}

struct Sample {
  double connect_us = 0;
  double reply_us = 0;
  double fin_us = 0;
};

/// One timed connection; false (with errno's text in `error`) when any step failed.
bool probe_once(const sockaddr_storage& address, socklen_t length, Sample& sample,
                std::string& error) {
  const std::uint64_t start = now_ns();
  const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  set_nodelay(fd);
  bool ok = false;
  char byte = 'x';
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    error = std::string("connect: ") + std::strerror(errno);
  } else {
    const std::uint64_t connected = now_ns();
    char reply = 0;
    if (write(fd, &byte, 1) != 1) {
      error = std::string("write: ") + std::strerror(errno);
    } else if (read(fd, &reply, 1) != 1) {
      error = "read: no reply";
    } else {
      const std::uint64_t replied = now_ns();
      if (read(fd, &reply, 1) != 0) {
        error = "read: expected EOF";
      } else {
        const std::uint64_t eof = now_ns();
        sample.connect_us = static_cast<double>(connected - start) / 1000.0;
        sample.reply_us = static_cast<double>(replied - start) / 1000.0;
        sample.fin_us = static_cast<double>(eof - replied) / 1000.0;
        ok = true;
      }
    }
  }
  close(fd);
  return ok;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  // Nearest rank.
  const auto rank =
      static_cast<std::size_t>(std::lround(p / 100.0 * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void print_figure(const char* name, const std::vector<double>& values, bool last) {
  std::printf("\"%s\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f}%s", name,
              percentile(values, 50), percentile(values, 90), percentile(values, 99),
              percentile(values, 100), last ? "" : ",");
}

void print_figures(const char* name, const std::vector<Sample>& samples, bool last) {
  std::vector<double> connect, reply, fin;
  for (const Sample& sample : samples) {
    connect.push_back(sample.connect_us);
    reply.push_back(sample.reply_us);
    fin.push_back(sample.fin_us);
  }
  std::printf("\"%s\":{\"count\":%zu,", name, samples.size());
  print_figure("connect_us", connect, false);
  print_figure("reply_us", reply, false);
  print_figure("fin_us", fin, true);
  std::printf("}%s", last ? "" : ",");
}

int run_client(const std::string& connect_text, std::uint16_t port, std::uint16_t direct_port,
               int count, int warmup, int gap_us, const std::string& samples_path) {
  sockaddr_storage queued_address{};
  sockaddr_storage direct_address{};
  socklen_t length = 0;
  if (!make_address(connect_text, port, queued_address, length) ||
      !make_address(connect_text, direct_port, direct_address, length)) {
    std::fprintf(stderr, "latency-probe: bad address %s\n", connect_text.c_str());
    return 2;
  }
  const int per_connection = direct_port != 0 ? 2 : 1;
  std::vector<Sample> queued;
  std::vector<Sample> direct;
  queued.reserve(static_cast<std::size_t>(count));
  direct.reserve(static_cast<std::size_t>(count));
  FILE* samples_file = samples_path.empty() ? nullptr : std::fopen(samples_path.c_str(), "w");
  int errors = 0;
  std::string first_error;
  for (int i = 0; i < (warmup + count) * per_connection; ++i) {
    const bool is_direct = per_connection == 2 && i % 2 == 1;
    if (gap_us > 0) {
      const timespec gap{gap_us / 1'000'000, static_cast<long>(gap_us % 1'000'000) * 1000};
      nanosleep(&gap, nullptr);
    }
    Sample sample;
    std::string error;
    if (!probe_once(is_direct ? direct_address : queued_address, length, sample, error)) {
      ++errors;
      if (first_error.empty()) first_error = error;
      continue;
    }
    if (i / per_connection < warmup) continue;
    (is_direct ? direct : queued).push_back(sample);
    if (samples_file != nullptr) {
      std::fprintf(samples_file, "%u %.1f %.1f %.1f\n", unsigned{is_direct ? direct_port : port},
                   sample.connect_us, sample.reply_us, sample.fin_us);
    }
  }
  if (samples_file != nullptr) std::fclose(samples_file);
  std::printf("{\"event\":\"latency\",\"errors\":%d,\"first_error\":\"%s\",", errors,
              first_error.c_str());
  print_figures("queued", queued, per_connection == 1);
  if (per_connection == 2) print_figures("direct", direct, true);
  std::printf("}\n");
  return errors == 0 ? 0 : 1;
}

}  // namespace

int parse_and_run(int argc, char** argv) {
  CLI::App app{
      "finwave-latency-probe: per-connection latency of short request/response "
      "connections (connect, 1-byte request, 1-byte reply, server closes)"};
  app.require_subcommand(1);
  std::string listen_text = "::";
  std::string connect_text;
  std::string ready_file;
  std::string samples_path;
  std::uint16_t port = 0;
  std::uint16_t direct_port = 0;
  int count = 2000;
  int warmup = 50;
  int gap_us = 0;
  CLI::App* server = app.add_subcommand("server", "answer connections one at a time");
  server->add_option("--listen", listen_text, "address to listen on");
  server->add_option("--port", port, "TCP port")->required();
  server->add_option("--ready-file", ready_file, "file created once listening");
  CLI::App* client = app.add_subcommand("client", "time short connections one after another");
  client->add_option("--connect", connect_text, "server address")->required();
  client->add_option("--port", port, "TCP port (the captured one)")->required();
  client->add_option("--direct-port", direct_port,
                     "alternate connections with this port (not captured)");
  client->add_option("--count", count, "timed connections")->check(CLI::PositiveNumber);
  client->add_option("--warmup", warmup, "untimed connections first")
      ->check(CLI::NonNegativeNumber);
  client->add_option("--gap-us", gap_us, "pause between connections (microseconds)")
      ->check(CLI::NonNegativeNumber);
  client->add_option("--samples", samples_path, "write every connection's figures here");
  CLI11_PARSE(app, argc, argv);
  if (server->parsed()) return serve(listen_text, port, ready_file);
  return run_client(connect_text, port, direct_port, count, warmup, gap_us, samples_path);
}

int main(int argc, char** argv) {
  // A benchmark tool that fails says why and exits 1, rather than terminating on an exception.
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwave-latency-probe: %s\n", error.what());
    return 1;
  }
}
