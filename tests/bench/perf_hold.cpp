// Holds many TCP connections open at once, so that finwave has that many flows to track (the
// memory benchmark). One thread, epoll, non-blocking connects; the finwave-peer's thread per
// connection does not scale to 100 000.
//
//   finwave-perf-hold server --port P [--ports K] [--listen ADDR] [--ready-file PATH]
//   finwave-perf-hold client --connect ADDR --port P [--ports K] --count N [--inflight M]
//                            [--ready-file PATH]
//
// The server listens on ports P .. P+K-1 and keeps every connection it accepts. The client
// spreads N connections over those ports (each port gives a client address about 64 000
// ephemeral ports once ip_local_port_range is widened), at most M handshakes in flight, then
// writes "<established> <failed>" to the ready file and keeps the connections until SIGTERM.
// Both print one JSON summary line on stdout when they stop. Each holds one descriptor per
// connection: where the hard RLIMIT_NOFILE cannot be raised, run several of each.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "ready_file.hpp"
#include "socket_address.hpp"

namespace {

using finwave::bench::make_address;

void set_port(sockaddr_storage& address, std::uint16_t port) {
  if (address.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&address)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = htons(port);
  }
}

/// Room for `fds` descriptors (root may raise the hard limit up to fs.nr_open).
void raise_fd_limit(std::size_t fds) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur >= fds) return;
  limit.rlim_cur = fds;
  if (limit.rlim_max < fds) limit.rlim_max = fds;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    std::fprintf(stderr, "perf-hold: cannot raise RLIMIT_NOFILE to %zu: %s\n", fds,
                 std::strerror(errno));
  }
}

/// A signalfd for SIGTERM and SIGINT (blocked for the whole process).
int stop_signal_fd() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  return signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
}

int serve(const std::string& listen_text, std::uint16_t port, int ports,
          const std::string& ready_file) {
  raise_fd_limit(400000);
  const int stop_fd = stop_signal_fd();
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = stop_fd;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, stop_fd, &event);
  for (int i = 0; i < ports; ++i) {
    sockaddr_storage address{};
    socklen_t length = 0;
    const auto this_port = static_cast<std::uint16_t>(port + i);
    if (!make_address(listen_text, this_port, address, length)) {
      std::fprintf(stderr, "perf-hold: bad listen address %s\n", listen_text.c_str());
      return 2;
    }
    const int listener = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (address.ss_family == AF_INET6) {
      const int zero = 0;
      setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        listen(listener, 4096) != 0) {
      std::fprintf(stderr, "perf-hold: cannot listen on port %u: %s\n", unsigned{this_port},
                   std::strerror(errno));
      return 1;
    }
    event.data.fd = listener;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event);
  }
  finwave::bench::write_ready_file(ready_file, std::to_string(port) + "\n");

  std::vector<int> held;
  std::uint64_t accept_errors = 0;
  epoll_event events[64];
  for (bool running = true; running;) {
    const int ready = epoll_wait(epoll_fd, events, 64, -1);
    for (int i = 0; i < ready; ++i) {
      if (events[i].data.fd == stop_fd) {
        running = false;
        continue;
      }
      for (;;) {
        const int fd = accept4(events[i].data.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
          held.push_back(fd);
          continue;
        }
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: stop listening rather than spin on a listener that stays
          // readable. Connections the kernel completed stay in the backlog, unaccepted.
          std::fprintf(stderr, "perf-hold: out of descriptors after %zu connections: %s\n",
                       held.size(), std::strerror(errno));
          epoll_ctl(epoll_fd, EPOLL_CTL_DEL, events[i].data.fd, nullptr);
          ++accept_errors;
        } else if (errno != EAGAIN && errno != EINTR) {
          ++accept_errors;
        }
        break;
      }
    }
  }
  std::printf("{\"event\":\"summary\",\"role\":\"server\",\"held\":%zu,\"accept_errors\":%llu}\n",
              held.size(), static_cast<unsigned long long>(accept_errors));
  return 0;
}

int run_client(const std::string& connect_text, std::uint16_t port, int ports, int count,
               int inflight, const std::string& ready_file) {
  sockaddr_storage address{};
  socklen_t length = 0;
  if (!make_address(connect_text, port, address, length)) {
    std::fprintf(stderr, "perf-hold: bad address %s\n", connect_text.c_str());
    return 2;
  }
  raise_fd_limit(static_cast<std::size_t>(count) + 1024);
  const int stop_fd = stop_signal_fd();
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = stop_fd;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, stop_fd, &event);

  std::vector<int> held;
  held.reserve(static_cast<std::size_t>(count));
  int started = 0;
  int pending = 0;
  int failed = 0;
  std::string first_error;
  bool stopped = false;
  auto note_failure = [&](const char* what, int error) {
    ++failed;
    if (first_error.empty()) first_error = std::string(what) + ": " + std::strerror(error);
  };
  epoll_event events[256];
  while (!stopped && (started < count || pending > 0)) {
    while (started < count && pending < inflight) {
      set_port(address, static_cast<std::uint16_t>(port + started % ports));
      ++started;
      const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        note_failure("socket", errno);
        continue;
      }
      if (connect(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0) {
        held.push_back(fd);
        continue;
      }
      if (errno != EINPROGRESS) {
        note_failure("connect", errno);
        close(fd);
        continue;
      }
      event.events = EPOLLOUT;
      event.data.fd = fd;
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
      ++pending;
    }
    const int ready = epoll_wait(epoll_fd, events, 256, 1000);
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_fd) {
        stopped = true;
        continue;
      }
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
      --pending;
      int error = 0;
      socklen_t error_length = sizeof error;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length);
      if (error != 0) {
        note_failure("connect", error);
        close(fd);
      } else {
        held.push_back(fd);
      }
    }
  }
  finwave::bench::write_ready_file(
      ready_file, std::to_string(held.size()) + " " + std::to_string(failed) + "\n");
  if (!stopped) {
    epoll_event stop{};
    while (epoll_wait(epoll_fd, &stop, 1, -1) < 0 && errno == EINTR) {
    }
  }
  std::printf(
      "{\"event\":\"summary\",\"role\":\"client\",\"held\":%zu,\"failed\":%d,"
      "\"first_error\":\"%s\"}\n",
      held.size(), failed, first_error.c_str());
  return failed == 0 ? 0 : 1;
}

}  // namespace

int parse_and_run(int argc, char** argv) {
  CLI::App app{"finwave-perf-hold: open many TCP connections and keep them open"};
  app.require_subcommand(1);
  std::string listen_text = "::";
  std::string connect_text;
  std::string ready_file;
  std::uint16_t port = 0;
  int ports = 1;
  int count = 1000;
  int inflight = 256;
  CLI::App* server = app.add_subcommand("server", "accept and keep connections");
  server->add_option("--listen", listen_text, "address to listen on");
  server->add_option("--port", port, "first TCP port")->required();
  server->add_option("--ports", ports, "ports P .. P+K-1")->check(CLI::Range(1, 64));
  server->add_option("--ready-file", ready_file, "file created once listening");
  CLI::App* client = app.add_subcommand("client", "open connections and keep them");
  client->add_option("--connect", connect_text, "server address")->required();
  client->add_option("--port", port, "first TCP port")->required();
  client->add_option("--ports", ports, "ports P .. P+K-1")->check(CLI::Range(1, 64));
  client->add_option("--count", count, "connections")->check(CLI::PositiveNumber);
  client->add_option("--inflight", inflight, "handshakes at a time")->check(CLI::PositiveNumber);
  client->add_option("--ready-file", ready_file,
                     "file written (\"<established> <failed>\") once every connect finished");
  CLI11_PARSE(app, argc, argv);
  if (server->parsed()) return serve(listen_text, port, ports, ready_file);
  return run_client(connect_text, port, ports, count, inflight, ready_file);
}

int main(int argc, char** argv) {
  // A benchmark tool that fails says why and exits 1, rather than terminating on an exception.
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwave-perf-hold: %s\n", error.what());
    return 1;
  }
}
