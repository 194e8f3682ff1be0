// The baseline for finwave's benchmarks: the cheapest NFQUEUE consumer that does what finwave's
// data path must do at the least — take every packet and accept it — through the very same
// adapter (nf::Queue: libmnl, nfq_nlmsg API, F_GSO, fail-open, a batch verdict after draining
// the socket) behind the very same capture rules (nf::CaptureChains, router mode). Whatever
// finwave costs beyond this consumer is finwave's own: parsing, the flow table, the rule
// engine, the loop. Whatever this consumer costs beyond the kernel alone is the kernel's
// queueing cost.
//
// With --log it is the same for the log path: every class is logged (none queued, as finwave
// with no rules), and the copies are read through the very same nf::LogGroup, batched, and
// counted. Whatever finwave observing costs beyond it is finwave's tracking and reporting;
// whatever it costs beyond the kernel alone is what the capture table and the copies cost the
// kernel.
//
//   finwave-bare-consumer [--queue N] [--port P]... [--capture-all] [--log] [--queue-len N]
//                         [--ready-file PATH]
//
// Runs until SIGTERM or SIGINT, then removes the capture rules and prints one JSON line of
// counters on stdout, in the shape of finwave's own exit stats line ("queue", "kernel").
// Needs CAP_NET_ADMIN: run it inside a lab namespace, never in the machine's own.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "netfilter/capture_chains.hpp"
#include "netfilter/log_group.hpp"
#include "netfilter/queue.hpp"
#include "netfilter/queue_stats.hpp"

namespace {

namespace nf = finwave::nf;

struct Options {
  std::uint16_t queue_num = 0;
  std::vector<std::uint16_t> ports;
  bool capture_all = false;
  bool log = false;
  std::uint32_t queue_len = 4096;
  std::string ready_file;
  bool spin = false;
};

/// Accepts everything; counts GSO super-segments and bytes so the figures can be compared with
/// finwave's.
class AcceptAll final : public nf::PacketHandler {
 public:
  explicit AcceptAll(nf::Queue& queue) : queue_(queue) {}

  void on_packet(const nf::QueuedPacket& packet) noexcept override {
    if (packet.gso) ++gso_;
    bytes_ += packet.original_len;
    queue_.accept(packet.id);
  }

  std::uint64_t gso() const noexcept { return gso_; }
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  nf::Queue& queue_;
  std::uint64_t gso_ = 0;
  std::uint64_t bytes_ = 0;
};

/// Counts the copies, and looks at nothing but their length.
class CountCopies final : public nf::LogHandler {
 public:
  void on_logged(const nf::LoggedPacket& packet) noexcept override {
    ++copies_;
    bytes_ += packet.payload.size();
  }

  std::uint64_t copies() const noexcept { return copies_; }
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  std::uint64_t copies_ = 0;
  std::uint64_t bytes_ = 0;
};

void write_ready_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create the ready file " + path);
  const std::string pid = std::to_string(getpid()) + "\n";
  [[maybe_unused]] const auto written = ::write(fd, pid.data(), pid.size());
  ::close(fd);
}

void print_counters(const nf::QueueCounters& q, const AcceptAll& handler, std::uint64_t wakeups,
                    const std::optional<nf::KernelQueueStats>& kernel, const nf::LogGroup* log,
                    const CountCopies& copies) {
  std::printf(
      "{\"event\":\"stats\",\"consumer\":\"bare\",\"queue\":{\"queued\":%llu,\"accepted\":%llu,"
      "\"dropped\":%llu,\"held\":%llu,\"batches\":%llu,\"verdict_errors\":%llu,\"enobufs\":%llu,"
      "\"malformed_messages\":%llu},\"gso\":%llu,\"bytes\":%llu,\"wakeups\":%llu,",
      static_cast<unsigned long long>(q.queued), static_cast<unsigned long long>(q.accepted),
      static_cast<unsigned long long>(q.dropped), static_cast<unsigned long long>(q.held),
      static_cast<unsigned long long>(q.batches), static_cast<unsigned long long>(q.verdict_errors),
      static_cast<unsigned long long>(q.enobufs),
      static_cast<unsigned long long>(q.malformed_messages),
      static_cast<unsigned long long>(handler.gso()),
      static_cast<unsigned long long>(handler.bytes()), static_cast<unsigned long long>(wakeups));
  if (log != nullptr) {
    const nf::LogCounters& l = log->counters();
    std::printf(
        "\"logged\":%llu,\"log\":{\"received\":%llu,\"lost\":%llu,\"enobufs\":%llu,"
        "\"bytes\":%llu},",
        static_cast<unsigned long long>(copies.copies()),
        static_cast<unsigned long long>(l.received), static_cast<unsigned long long>(l.lost),
        static_cast<unsigned long long>(l.enobufs),
        static_cast<unsigned long long>(copies.bytes()));
  }
  if (kernel) {
    std::printf(
        "\"kernel\":{\"queue_total\":%u,\"queue_dropped\":%llu,\"user_dropped\":%llu,"
        "\"id_sequence\":%u}}\n",
        kernel->queue_total, static_cast<unsigned long long>(kernel->queue_dropped),
        static_cast<unsigned long long>(kernel->user_dropped), kernel->id_sequence);
  } else {
    std::printf("\"kernel\":null}\n");
  }
  std::fflush(stdout);
}

int run(const Options& options) {
  // Signals arrive through a signalfd polled next to the queue, so the loop never runs a handler
  // in the middle of a drain.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    throw std::system_error(errno, std::generic_category(), "sigprocmask");
  }
  const int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");

  nf::QueueConfig queue_config;
  queue_config.queue_num = options.queue_num;
  queue_config.max_len = options.queue_len;
  nf::Queue queue = nf::Queue::open(queue_config);
  AcceptAll handler(queue);

  nf::CaptureSpec spec;
  spec.mode = nf::CaptureMode::kRouter;
  spec.queue_num = options.queue_num;
  spec.ports = options.ports;
  spec.capture_all = options.capture_all;
  std::optional<nf::LogGroup> log;
  CountCopies copies;
  if (options.log) {
    // As finwave observing: nothing queued, the copies batched (router mode).
    spec.queued = nf::SegmentClasses::none();
    nf::LogGroupConfig log_config;
    log_config.group = spec.log_group;
    log_config.batching = true;
    log = nf::LogGroup::open(log_config);
  }
  // Bound first, captured second, as finwave does.
  nf::CaptureChains chains = nf::CaptureChains::install(spec);
  if (!options.ready_file.empty()) write_ready_file(options.ready_file);

  std::uint64_t wakeups = 0;
  // A log socket's place is taken by -1 (poll skips it) without --log.
  pollfd fds[3] = {
      {queue.fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}, {log ? log->fd() : -1, POLLIN, 0}};
  for (;;) {
    // --spin never sleeps: what the queue costs when no wake-up is needed (a CPU burnt).
    const int ready = ::poll(fds, 3, options.spin ? 0 : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "bare-consumer: poll: %s\n", std::strerror(errno));
      break;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      ++wakeups;
      const int drained = queue.drain(handler);
      if (drained < 0) std::fprintf(stderr, "bare-consumer: drain: %s\n", std::strerror(-drained));
    }
    if (log && (fds[2].revents & (POLLIN | POLLERR)) != 0) {
      ++wakeups;
      if ((fds[2].revents & POLLERR) != 0) log->take_error();  // an overrun, counted
      const int drained = log->drain(copies, 1 << 20);
      if (drained < 0) std::fprintf(stderr, "bare-consumer: log: %s\n", std::strerror(-drained));
    }
    if ((fds[1].revents & POLLIN) != 0) break;
  }

  // Stop capturing first, then give whatever is still queued its verdict.
  chains.remove();
  queue.drain(handler);
  if (log) {
    log->unbind();  // sends what the kernel still batched
    log->drain(copies, 1 << 20);
  }
  const auto kernel = nf::read_kernel_queue_stats(options.queue_num);
  print_counters(queue.counters(), handler, wakeups, kernel, log ? &*log : nullptr, copies);
  ::close(signal_fd);
  return 0;
}

}  // namespace

int parse_and_run(int argc, char** argv) {
  Options options;
  CLI::App app{
      "finwave-bare-consumer: accept-everything NFQUEUE consumer behind finwave's capture rules "
      "(router mode), the baseline of the benchmarks. Prints its counters as one JSON line on "
      "SIGTERM/SIGINT."};
  app.add_option("--queue", options.queue_num, "NFQUEUE number")->check(CLI::Range(0, 65535));
  app.add_option("--port", options.ports, "Only connections with this port (repeatable)")
      ->check(CLI::Range(1, 65535));
  app.add_flag("--capture-all", options.capture_all, "Queue every TCP segment, not only teardown");
  CLI::Option* capture_all = app.get_option("--capture-all");
  app.add_flag("--log", options.log,
               "Log every class instead of queueing it (finwave observing's path), and count the "
               "copies")
      ->excludes(capture_all);
  app.add_flag("--spin", options.spin,
               "Poll without sleeping (burns a CPU): the queue's cost without a wake-up");
  app.add_option("--queue-len", options.queue_len, "Packets the kernel may queue")
      ->check(CLI::Range(16, 1 << 20));
  app.add_option("--ready-file", options.ready_file,
                 "Create this file once the queue is bound and the capture installed");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bare-consumer: %s\n", error.what());
    return 1;
  }
}

int main(int argc, char** argv) {
  // A benchmark tool that fails says why and exits 1, rather than terminating on an exception.
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwave-bare-consumer: %s\n", error.what());
    return 1;
  }
}
