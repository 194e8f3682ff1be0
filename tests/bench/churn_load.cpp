// Connection churn as fast as the kernel takes it: worker processes that each loop
// connect -> send 64 bytes -> close, and the sink server they connect to. The churn and soak
// benchmarks use it (tests/bench/soak.sh); a load generator that tops out near 2 k conn/s would
// measure itself, not finwave.
//
//   finwave-churn-load --connect ADDR --port P [--workers N] [--count N] [--duration S]
//                      [--rate R] [--shape client-first|four-way] [--bytes B] [--bind ADDR]
//                      [--timeout-ms MS] [--progress S]
//   finwave-churn-load --listen ADDR --port P [--workers N] [--ready-file PATH]
//
// Client: N processes (processes, not threads: socket() and close() of threads contend for one
// descriptor table), each making one blocking connection after another. --shape client-first
// closes right after the send, without waiting for the server (the client's FIN goes out with
// or after the data and the server's FIN reaches an orphaned socket); --shape four-way
// half-closes after the send, reads until the server's FIN, then closes: the client process
// waits for the whole teardown but the final ACK. --rate caps the total rate (each worker keeps
// an even schedule of its share, catching up after a stall), so a soak can run steadily for as
// long as it likes. Stops after --count connections in all, after --duration seconds, or on
// SIGINT/SIGTERM, whichever comes first; then prints one JSON line on stdout: connections
// attempted, established (connect succeeded: the teardown began), ok, failed by step and errno,
// elapsed seconds and the rate. --progress S adds a JSON line on stderr every S seconds.
//
// Server (--listen): N threads, each with its own SO_REUSEPORT listener and epoll loop, accept
// every connection, read until EOF and close; until SIGINT/SIGTERM, then one JSON line.
//
// Exit status: 0 when every connection succeeded, 1 otherwise, 2 on a usage error.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "ready_file.hpp"
#include "socket_address.hpp"

namespace {

using finwave::bench::make_address;

constexpr const char* kHelpFooter =
    R"(Many connections from one client address run out of ephemeral ports: each connection
the client closed first keeps its 4-tuple in TIME_WAIT for 60 s. So, in the client's own
network namespace (the soak and churn benchmarks do this in their lab):
  sysctl -w net.ipv4.ip_local_port_range="1024 65535"   about 64 000 ports
  sysctl -w net.ipv4.tcp_tw_reuse=1     connect() may reuse a TIME_WAIT 4-tuple after 1 s
  (net.ipv4.tcp_max_tw_buckets=4096 also keeps connect()'s search for a free port short,
  at the price of TIME_WAIT itself: a retransmitted FIN then meets no socket and an RST)
Without --bind, connect() picks the port and may reuse TIME_WAIT 4-tuples. With --bind ADDR
each socket is bound to ADDR, port 0, first: with SO_REUSEADDR and IP_BIND_ADDRESS_NO_PORT,
so the port is still chosen at connect() time, per 4-tuple. (A plain bind() to port 0 picks
a port no other socket holds, whatever its destination, and runs out once the TIME_WAIT
sockets hold the whole range.) The sink: with client-first the clients do not wait for it,
so while it is starved of CPU its accept queue fills; past the backlog the kernel drops SYNs
and the client waits a second to retry (nstat: TcpExtListenOverflows). Give it a backlog,
and net.core.somaxconn in its namespace, of 65535.)";

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void sleep_until_ns(std::uint64_t when) {
  const timespec ts{static_cast<time_t>(when / 1'000'000'000ULL),
                    static_cast<long>(when % 1'000'000'000ULL)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

/// Room for many descriptors (root may raise the hard limit up to fs.nr_open).
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

std::string errno_name(int error) {
  const char* name = strerrorname_np(error);
  return name != nullptr ? name : "errno" + std::to_string(error);
}

// --- Client ------------------------------------------------------------------------------------

enum class Shape { kClientFirst, kFourWay };

/// The steps a connection can fail in, as the JSON names them.
enum Step : int { kSocket, kBind, kConnect, kSend, kShutdown, kRead, kClose, kSteps };
constexpr std::array<const char*, kSteps> kStepNames = {"socket",   "bind", "connect", "send",
                                                        "shutdown", "read", "close"};
constexpr int kMaxErrno = 256;

/// One worker's counters, in memory shared with the parent (which reads them while the worker
/// runs, for --progress). Lock-free atomics work across processes.
struct WorkerCounters {
  std::atomic<std::uint64_t> attempted{0};
  std::atomic<std::uint64_t> established{0};
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> max_lag_us{0};
  std::atomic<std::uint64_t> started_ns{0};
  std::atomic<std::uint64_t> finished_ns{0};
  std::array<std::array<std::atomic<std::uint64_t>, kMaxErrno>, kSteps> failures{};
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

/// Shared by the parent and every worker: the stop flag (a signal to the parent or to a worker
/// stops them all) and each worker's counters, in one anonymous MAP_SHARED mapping.
struct Shared {
  std::atomic<int> stop{0};
  WorkerCounters* workers = nullptr;  ///< `count` of them, in the same mapping.
  int count = 0;
};

Shared* g_shared = nullptr;

void on_stop_signal(int /*signal*/) noexcept {
  if (g_shared != nullptr) g_shared->stop.store(1, std::memory_order_relaxed);
}

/// Maps the shared memory before the workers are forked; nullptr if it cannot.
Shared* map_shared(int workers) {
  const std::size_t header = (sizeof(Shared) + alignof(WorkerCounters) - 1) /
                             alignof(WorkerCounters) * alignof(WorkerCounters);
  const std::size_t size = header + sizeof(WorkerCounters) * static_cast<std::size_t>(workers);
  void* memory = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  auto* shared = new (memory) Shared{};
  shared->workers = reinterpret_cast<WorkerCounters*>(static_cast<char*>(memory) + header);
  shared->count = workers;
  for (int w = 0; w < workers; ++w) new (&shared->workers[w]) WorkerCounters{};
  return shared;
}

struct ClientOptions {
  sockaddr_storage server{};
  socklen_t server_length = 0;
  sockaddr_storage bind{};
  socklen_t bind_length = 0;
  bool bind_source = false;
  Shape shape = Shape::kClientFirst;
  int bytes = 64;
  int timeout_ms = 10000;
};

void fail(WorkerCounters& counters, Step step, int error) {
  counters.failed.fetch_add(1, std::memory_order_relaxed);
  const int index = error > 0 && error < kMaxErrno ? error : 0;
  counters.failures[step][static_cast<std::size_t>(index)].fetch_add(1, std::memory_order_relaxed);
}

/// One connection: connect, send, close (client-first) or shutdown, read to EOF, close.
void one_connection(const ClientOptions& o, const std::vector<char>& payload,
                    WorkerCounters& counters) {
  counters.attempted.fetch_add(1, std::memory_order_relaxed);
  const int fd = socket(o.server.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(counters, kSocket, errno);
    return;
  }
  // SO_SNDTIMEO bounds connect() and send(); SO_RCVTIMEO the wait for the server's FIN.
  const timeval timeout{o.timeout_ms / 1000, static_cast<suseconds_t>(o.timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (o.shape == Shape::kFourWay) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (o.bind_source) {
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&o.bind), o.bind_length) != 0) {
      fail(counters, kBind, errno);
      close(fd);
      return;
    }
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&o.server), o.server_length) != 0) {
    fail(counters, kConnect, errno);
    close(fd);
    return;
  }
  counters.established.fetch_add(1, std::memory_order_relaxed);
  std::size_t sent = 0;
  while (sent < payload.size()) {
    const ssize_t n = send(fd, payload.data() + sent, payload.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fail(counters, kSend, n < 0 ? errno : EPIPE);
      close(fd);
      return;
    }
    sent += static_cast<std::size_t>(n);
  }
  if (o.shape == Shape::kFourWay) {
    if (shutdown(fd, SHUT_WR) != 0) {
      fail(counters, kShutdown, errno);
      close(fd);
      return;
    }
    char buffer[512];
    for (;;) {
      const ssize_t n = read(fd, buffer, sizeof buffer);
      if (n > 0) continue;
      if (n == 0) break;
      if (errno == EINTR) continue;
      // EAGAIN here is SO_RCVTIMEO expiring: the server's FIN did not come in time.
      fail(counters, kRead, errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno);
      close(fd);
      return;
    }
  }
  if (close(fd) != 0) {
    fail(counters, kClose, errno);
    return;
  }
  counters.ok.fetch_add(1, std::memory_order_relaxed);
}

struct Plan {
  std::uint64_t count = 0;      ///< 0: no limit.
  double duration_s = 0;        ///< 0: no limit.
  double rate = 0;              ///< Connections per second of this worker; 0: as fast as it goes.
  std::uint64_t offset_ns = 0;  ///< Where this worker's schedule starts (spreads the workers).
};

void run_worker(const ClientOptions& o, const Plan& plan, WorkerCounters& counters) {
  const std::vector<char> payload(static_cast<std::size_t>(o.bytes), 'x');
  const std::uint64_t start = now_ns();
  counters.started_ns.store(start, std::memory_order_relaxed);
  const std::uint64_t deadline =
      plan.duration_s > 0 ? start + static_cast<std::uint64_t>(plan.duration_s * 1e9) : UINT64_MAX;
  const double interval_ns = plan.rate > 0 ? 1e9 / plan.rate : 0;
  std::uint64_t max_lag_ns = 0;
  for (std::uint64_t i = 0; plan.count == 0 || i < plan.count; ++i) {
    if (g_shared->stop.load(std::memory_order_relaxed) != 0) break;
    std::uint64_t now = now_ns();
    if (interval_ns > 0) {
      const auto due =
          start + plan.offset_ns + static_cast<std::uint64_t>(static_cast<double>(i) * interval_ns);
      if (due >= deadline) break;
      if (due > now) {
        sleep_until_ns(due);
        now = now_ns();
      } else if (now - due > max_lag_ns) {
        max_lag_ns = now - due;
        counters.max_lag_us.store(max_lag_ns / 1000, std::memory_order_relaxed);
      }
    }
    if (now >= deadline) break;
    one_connection(o, payload, counters);
  }
  counters.finished_ns.store(now_ns(), std::memory_order_relaxed);
}

struct Totals {
  std::uint64_t attempted = 0;
  std::uint64_t established = 0;
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::uint64_t max_lag_us = 0;
  std::map<std::string, std::uint64_t> failures;
};

Totals add_up(const Shared& shared, int workers, bool with_failures) {
  Totals t;
  for (int w = 0; w < workers; ++w) {
    const WorkerCounters& c = shared.workers[w];
    t.attempted += c.attempted.load(std::memory_order_relaxed);
    t.established += c.established.load(std::memory_order_relaxed);
    t.ok += c.ok.load(std::memory_order_relaxed);
    t.failed += c.failed.load(std::memory_order_relaxed);
    t.max_lag_us = std::max(t.max_lag_us, c.max_lag_us.load(std::memory_order_relaxed));
    if (!with_failures || c.failed.load(std::memory_order_relaxed) == 0) continue;
    for (int step = 0; step < kSteps; ++step) {
      for (int error = 0; error < kMaxErrno; ++error) {
        const std::uint64_t n =
            c.failures[static_cast<std::size_t>(step)][static_cast<std::size_t>(error)].load(
                std::memory_order_relaxed);
        if (n == 0) continue;
        t.failures[std::string(kStepNames[static_cast<std::size_t>(step)]) + " " +
                   (error == 0 ? std::string("unknown") : errno_name(error))] += n;
      }
    }
  }
  return t;
}

int run_client(const ClientOptions& o, int workers, std::uint64_t count, double duration_s,
               double rate, double progress_s) {
  g_shared = map_shared(workers);
  if (g_shared == nullptr) {
    std::fprintf(stderr, "churn-load: cannot map shared memory: %s\n", std::strerror(errno));
    return 1;
  }
  raise_fd_limit();
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  const std::uint64_t start = now_ns();
  std::vector<pid_t> children;
  for (int w = 0; w < workers; ++w) {
    Plan plan;
    const auto n = static_cast<std::uint64_t>(workers);
    const auto index = static_cast<std::uint64_t>(w);
    if (count > 0) plan.count = count / n + (index < count % n ? 1 : 0);
    plan.duration_s = duration_s;
    plan.rate = rate / static_cast<double>(workers);
    // Worker w starts w/N of an interval late: together they make one even schedule.
    if (plan.rate > 0) {
      plan.offset_ns = static_cast<std::uint64_t>(1e9 / rate * static_cast<double>(w));
    }
    if (count > 0 && plan.count == 0) continue;
    const pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "churn-load: fork: %s\n", std::strerror(errno));
      g_shared->stop.store(1);
      break;
    }
    if (pid == 0) {
      run_worker(o, plan, g_shared->workers[w]);
      _exit(0);
    }
    children.push_back(pid);
  }
  std::uint64_t next_progress =
      progress_s > 0 ? start + static_cast<std::uint64_t>(progress_s * 1e9) : UINT64_MAX;
  std::size_t running = children.size();
  int worker_errors = 0;
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      --running;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++worker_errors;
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    const std::uint64_t now = now_ns();
    if (now >= next_progress) {
      const Totals t = add_up(*g_shared, workers, false);
      std::fprintf(
          stderr,
          "{\"event\":\"progress\",\"elapsed_s\":%.1f,\"attempted\":%llu,"
          "\"established\":%llu,\"ok\":%llu,\"failed\":%llu}\n",
          static_cast<double>(now - start) / 1e9, static_cast<unsigned long long>(t.attempted),
          static_cast<unsigned long long>(t.established), static_cast<unsigned long long>(t.ok),
          static_cast<unsigned long long>(t.failed));
      next_progress += static_cast<std::uint64_t>(progress_s * 1e9);
    }
    // A signal (SIGINT, SIGTERM) is passed on by the shared stop flag the workers watch.
    sleep_until_ns(std::min<std::uint64_t>(now + 50'000'000ULL, next_progress));
  }
  std::uint64_t first = UINT64_MAX;
  std::uint64_t last = 0;
  for (int w = 0; w < workers; ++w) {
    const WorkerCounters& c = g_shared->workers[w];
    if (c.started_ns.load() == 0) continue;
    first = std::min(first, c.started_ns.load());
    last = std::max(last, c.finished_ns.load());
  }
  const double elapsed = last > first ? static_cast<double>(last - first) / 1e9 : 0;
  const Totals t = add_up(*g_shared, workers, true);
  std::string failures = "{";
  for (const auto& [what, n] : t.failures) {
    if (failures.size() > 1) failures += ",";
    failures += "\"" + what + "\":" + std::to_string(n);
  }
  failures += "}";
  std::printf(
      "{\"event\":\"summary\",\"shape\":\"%s\",\"family\":\"%s\",\"workers\":%d,"
      "\"rate_cap\":%.1f,\"attempted\":%llu,\"established\":%llu,\"ok\":%llu,\"failed\":%llu,"
      "\"failures\":%s,\"elapsed_s\":%.3f,\"rate\":%.1f,\"max_lag_ms\":%.1f,"
      "\"worker_errors\":%d}\n",
      o.shape == Shape::kFourWay ? "four-way" : "client-first",
      o.server.ss_family == AF_INET6 ? "ipv6" : "ipv4", workers, rate,
      static_cast<unsigned long long>(t.attempted), static_cast<unsigned long long>(t.established),
      static_cast<unsigned long long>(t.ok), static_cast<unsigned long long>(t.failed),
      failures.c_str(), elapsed, elapsed > 0 ? static_cast<double>(t.ok) / elapsed : 0.0,
      static_cast<double>(t.max_lag_us) / 1000.0, worker_errors);
  std::fflush(stdout);
  return t.failed == 0 && worker_errors == 0 ? 0 : 1;
}

// --- Server ------------------------------------------------------------------------------------

std::atomic<bool> g_serving{true};

struct ServerCounters {
  std::uint64_t accepted = 0;
  std::uint64_t eof = 0;    ///< Read to EOF and closed: the normal end.
  std::uint64_t reset = 0;  ///< ECONNRESET while reading.
  std::uint64_t bytes = 0;
  std::map<std::string, std::uint64_t> errors;
};

/// Reads what `fd` has; closes it at EOF or on an error. True when the descriptor is closed.
bool drain(int fd, ServerCounters& counters) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      counters.bytes += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) {
      ++counters.eof;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return false;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == ECONNRESET) {
      ++counters.reset;
    } else {
      ++counters.errors["read " + errno_name(errno)];
    }
    close(fd);
    return true;
  }
}

void serve_thread(int listener, ServerCounters& counters) {
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = listener;
  epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
  std::vector<epoll_event> events(256);
  while (g_serving.load(std::memory_order_relaxed)) {
    const int n = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 100);
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd != listener) {
        drain(fd, counters);
        continue;
      }
      for (;;) {
        const int conn = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == EINTR || errno == ECONNABORTED) continue;
          ++counters.errors["accept " + errno_name(errno)];
          break;
        }
        ++counters.accepted;
        // The client's bytes (and with client-first often its FIN) are usually there already:
        // reading at once saves the epoll registration for most connections.
        if (drain(conn, counters)) continue;
        epoll_event conn_event{};
        conn_event.events = EPOLLIN;
        conn_event.data.fd = conn;
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, conn, &conn_event) != 0) {
          ++counters.errors["epoll_ctl " + errno_name(errno)];
          close(conn);
        }
      }
    }
  }
  // Connections still open at the stop are closed when the program exits.
  close(epoll);
}

int run_server(const std::string& listen_text, std::uint16_t port, int workers, int backlog,
               const std::string& ready_file) {
  sockaddr_storage address{};
  socklen_t length = 0;
  if (!make_address(listen_text, port, address, length)) {
    std::fprintf(stderr, "churn-load: bad listen address %s\n", listen_text.c_str());
    return 2;
  }
  raise_fd_limit();
  // Signals are taken by sigwait() below; every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::vector<int> listeners;
  for (int w = 0; w < workers; ++w) {
    const int listener = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (address.ss_family == AF_INET6) {
      const int zero = 0;
      setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        listen(listener, backlog) != 0) {
      std::fprintf(stderr, "churn-load: cannot listen on %s port %u: %s\n", listen_text.c_str(),
                   unsigned{port}, std::strerror(errno));
      return 1;
    }
    listeners.push_back(listener);
  }
  std::vector<ServerCounters> counters(static_cast<std::size_t>(workers));
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < listeners.size(); ++w) {
    threads.emplace_back(serve_thread, listeners[w], std::ref(counters[w]));
  }
  finwave::bench::write_ready_file(ready_file, std::to_string(port) + "\n");
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  g_serving.store(false);
  for (std::thread& thread : threads) thread.join();
  ServerCounters total;
  for (const ServerCounters& c : counters) {
    total.accepted += c.accepted;
    total.eof += c.eof;
    total.reset += c.reset;
    total.bytes += c.bytes;
    for (const auto& [what, n] : c.errors) total.errors[what] += n;
  }
  std::string errors = "{";
  std::uint64_t error_count = 0;
  for (const auto& [what, n] : total.errors) {
    if (errors.size() > 1) errors += ",";
    errors += "\"" + what + "\":" + std::to_string(n);
    error_count += n;
  }
  errors += "}";
  std::printf(
      "{\"event\":\"server_summary\",\"workers\":%d,\"accepted\":%llu,\"eof\":%llu,"
      "\"reset\":%llu,\"bytes\":%llu,\"errors\":%s}\n",
      workers, static_cast<unsigned long long>(total.accepted),
      static_cast<unsigned long long>(total.eof), static_cast<unsigned long long>(total.reset),
      static_cast<unsigned long long>(total.bytes), errors.c_str());
  std::fflush(stdout);
  return error_count == 0 ? 0 : 1;
}

/// The program; main() only keeps an exception (std::bad_alloc, a CLI11 error) from escaping.
int run_main(int argc, char** argv) {
  CLI::App app{
      "finwave-churn-load: connection churn (connect, send, close) from N worker processes, or "
      "(--listen) the sink server that reads every connection to EOF and closes it"};
  app.footer(kHelpFooter);
  std::string connect_text;
  std::string listen_text;
  std::string bind_text;
  std::string ready_file;
  std::string shape_text = "client-first";
  std::uint16_t port = 0;
  int workers = 4;
  std::uint64_t count = 0;
  double duration_s = 0;
  double rate = 0;
  double progress_s = 0;
  int backlog = 65535;
  ClientOptions o;
  auto* connect_option = app.add_option("--connect", connect_text, "server address (v4 or v6)");
  auto* listen_option =
      app.add_option("--listen", listen_text, "be the sink server on this address (:: is v4 too)");
  connect_option->excludes(listen_option);
  app.add_option("--port", port, "TCP port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--workers", workers,
                 "client: worker processes (each one connection at a time); server: threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--count", count, "client: connections in all (default: no limit)");
  app.add_option("--duration", duration_s, "client: stop after this many seconds")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--rate", rate, "client: at most this many connections per second in all")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--shape", shape_text,
                 "client: client-first (close right after the send) or four-way (half-close, "
                 "read until the server's FIN, close)")
      ->check(CLI::IsMember({"client-first", "four-way"}))
      ->capture_default_str();
  app.add_option("--bytes", o.bytes, "client: bytes sent on each connection")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  app.add_option("--bind", bind_text, "client: source address (port chosen at connect time)");
  app.add_option("--timeout-ms", o.timeout_ms,
                 "client: longest connect, send or wait for the server's FIN")
      ->check(CLI::Range(1, 3'600'000))
      ->capture_default_str();
  app.add_option("--progress", progress_s, "client: a progress line on stderr every S seconds")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--backlog", backlog,
                 "server: listen() backlog of each thread's listener (the kernel caps it at "
                 "net.core.somaxconn)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--ready-file", ready_file, "server: file created once listening");
  CLI11_PARSE(app, argc, argv);

  if (!listen_text.empty()) return run_server(listen_text, port, workers, backlog, ready_file);
  if (connect_text.empty()) {
    std::fprintf(stderr, "churn-load: --connect ADDR or --listen ADDR is required\n");
    return 2;
  }
  if (!make_address(connect_text, port, o.server, o.server_length)) {
    std::fprintf(stderr, "churn-load: bad address %s\n", connect_text.c_str());
    return 2;
  }
  if (!bind_text.empty()) {
    if (!make_address(bind_text, 0, o.bind, o.bind_length) ||
        o.bind.ss_family != o.server.ss_family) {
      std::fprintf(stderr, "churn-load: bad --bind address %s (must match --connect's family)\n",
                   bind_text.c_str());
      return 2;
    }
    o.bind_source = true;
  }
  o.shape = shape_text == "four-way" ? Shape::kFourWay : Shape::kClientFirst;
  if (count == 0 && duration_s == 0) {
    std::fprintf(stderr, "churn-load: give --count, --duration or both\n");
    return 2;
  }
  return run_client(o, workers, count, duration_s, rate, progress_s);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "churn-load: %s\n", error.what());
  } catch (...) {
    std::fprintf(stderr, "churn-load: unknown exception\n");
  }
  return 1;
}
