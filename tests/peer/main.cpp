// finwave-peer: a scripted TCP client/server for teardown tests. Each side runs a small script
// (send, read, shutdown, close, abort, wait for RST...) on every connection and reports every
// step as a JSON line. See script_help() or --help for the steps.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connection.hpp"
#include "events.hpp"
#include "net.hpp"
#include "script.hpp"

namespace finwave::peer {
namespace {

constexpr const char* kDefaultServerScript = "read-eof,close";
constexpr const char* kDefaultClientScript = "send:1000,shutdown,read-eof,close";
constexpr int kUsageError = 2;

struct Options {
  std::string address;  // --listen or --connect
  int port = 0;
  int connections = 0;
  int parallel = 1;
  std::string bind_address;  // client --bind
  int bind_port = -1;        // client --bind-port; -1: none
  bool reuse = false;
  std::string script_text;
  bool quiet = false;
  std::string ready_file;
  int timeout_ms = 10000;
  int io_timeout_ms = 60000;
};

/// Totals over all connections of one run.
struct Totals {
  std::mutex mutex;
  int connections = 0;
  int ok = 0;
  int failed = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;

  void add(const ConnectionResult& r) {
    const std::lock_guard lock(mutex);
    ++connections;
    (r.ok ? ok : failed) += 1;
    bytes_sent += r.bytes_sent;
    bytes_received += r.bytes_received;
  }

  Fields summary() {
    const std::lock_guard lock(mutex);
    return Fields{{"connections", connections},
                  {"ok", ok},
                  {"failed", failed},
                  {"bytes_sent", bytes_sent},
                  {"bytes_received", bytes_received}};
  }
};

int io_timeout(const Options& o) { return o.io_timeout_ms > 0 ? o.io_timeout_ms : -1; }

/// Reports a failure that ends the run (also on stderr, which --quiet leaves alone); returns 1.
int fatal(EventLog& log, std::string_view event, const std::string& what, int error) {
  Fields fields = failure(error);
  fields["what"] = what;
  log.emit(-1, event, fields);
  std::fprintf(stderr, "finwave-peer: %s: %s\n", what.c_str(), std::strerror(error));
  return 1;
}

/// Writes the listening port to `path` atomically (temporary file, then rename).
bool write_ready_file(const std::string& path, int port) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << port << '\n';
    if (!out) {
      return false;
    }
  }
  return std::rename(temporary.c_str(), path.c_str()) == 0;
}

// ---------------------------------------------------------------------------------------------
// Server

/// One connection's thread; `finished` lets the accept loop join it without blocking.
struct Worker {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> finished;
};

void reap(std::list<Worker>& workers, bool wait_all) {
  for (auto it = workers.begin(); it != workers.end();) {
    if (wait_all || it->finished->load()) {
      it->thread.join();
      it = workers.erase(it);
    } else {
      ++it;
    }
  }
}

int run_server(const Options& o, const Script& script) {
  EventLog log("server", o.quiet);
  const auto local = parse_endpoint(o.address, static_cast<std::uint16_t>(o.port));

  // Non-blocking: the accept loop below takes connections until the backlog is empty.
  Fd listener(::socket(local->family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener.valid()) {
    return fatal(log, "listen", "socket", errno);
  }
  const int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener.get(), local->addr(), local->length) != 0) {
    return fatal(log, "listen", "bind " + format_endpoint(local->addr(), local->length), errno);
  }
  if (::listen(listener.get(), SOMAXCONN) != 0) {
    return fatal(log, "listen", "listen", errno);
  }

  // SIGINT/SIGTERM arrive through a signalfd polled with the listener; blocking them before
  // any thread starts keeps them away from the connection threads.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  Fd signals(::signalfd(-1, &stop_signals, SFD_CLOEXEC));
  if (!signals.valid()) {
    return fatal(log, "listen", "signalfd", errno);
  }

  const std::string bound = local_of(listener.get());
  const int port = std::stoi(bound.substr(bound.rfind(':') + 1));
  log.emit(-1, "listen", Fields{{"ok", true}, {"local", bound}, {"port", port}});
  if (!o.ready_file.empty() && !write_ready_file(o.ready_file, port)) {
    return fatal(log, "listen", "ready file " + o.ready_file, errno);
  }

  Totals totals;
  std::list<Worker> workers;
  std::atomic<int> active{0};
  int accepted = 0;
  bool interrupted = false;
  while (o.connections == 0 || accepted < o.connections) {
    std::array<pollfd, 2> fds{pollfd{listener.get(), POLLIN, 0}, pollfd{signals.get(), POLLIN, 0}};
    // Wake up now and then to join finished connection threads.
    const int rc = ::poll(fds.data(), fds.size(), 200);
    reap(workers, false);
    if (rc < 0 && errno != EINTR) {
      return fatal(log, "accept", "poll", errno);
    }
    if (rc <= 0) {
      continue;
    }
    if (fds[1].revents != 0) {
      interrupted = true;
      break;
    }
    // Everything in the backlog, not one per wake-up: under churn a backlog that grows leaves
    // connections waiting in CLOSE_WAIT, and new connections that reuse their 4-tuples are
    // answered with challenge ACKs instead of SYN-ACKs.
    while (o.connections == 0 || accepted < o.connections) {
      Fd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!conn.valid()) {
        // The peer may reset a connection while it waits in the backlog; keep serving.
        const int error = errno;
        if (error == ECONNABORTED || error == EINTR) continue;
        if (error != EAGAIN) {
          Fields fields = failure(error);
          log.emit(-1, "accept", fields);
        }
        break;
      }
      const int index = accepted++;
      log.emit(
          index, "accept",
          Fields{{"ok", true}, {"local", local_of(conn.get())}, {"remote", remote_of(conn.get())}});
      auto finished = std::make_shared<std::atomic<bool>>(false);
      ++active;
      std::thread thread([&, index, finished, fd = std::move(conn)]() mutable {
        totals.add(run_script(std::move(fd), index, script, log, io_timeout(o)));
        --active;
        finished->store(true);
      });
      workers.push_back(Worker{std::move(thread), std::move(finished)});
    }
  }

  if (!interrupted) {
    listener.close();
    reap(workers, true);
    const Fields summary = totals.summary();
    log.emit_always(-1, "summary", summary);
    return summary["failed"].get<int>() == 0 ? 0 : 1;
  }

  // Stopped by a signal: report what finished and leave without waiting for connections
  // still running their scripts (they may be holding or waiting for a peer forever).
  Fields summary = totals.summary();
  summary["interrupted"] = active.load();
  log.emit_always(-1, "summary", summary);
  const bool ok = summary["failed"].get<int>() == 0 &&
                  (o.connections == 0 || summary["connections"].get<int>() == o.connections);
  std::fflush(stdout);
  // Detached work is still running: skip static destructors (the log is in use).
  ::_exit(ok ? 0 : 1);
}

// ---------------------------------------------------------------------------------------------
// Client

ConnectionResult run_client_connection(const Options& o, const Script& script, EventLog& log,
                                       int index) {
  const auto remote = parse_endpoint(o.address, static_cast<std::uint16_t>(o.port));
  const std::string remote_text = format_endpoint(remote->addr(), remote->length);
  auto fail = [&](const std::string& stage, int error) {
    Fields fields = failure(error);
    fields["stage"] = stage;
    fields["remote"] = remote_text;
    log.emit(index, "connect", fields);
    log.emit(
        index, "done",
        Fields{
            {"ok", false}, {"bytes_sent", 0}, {"bytes_received", 0}, {"failed_step", "connect"}});
    return ConnectionResult{};
  };

  Fd socket(::socket(remote->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket.valid()) {
    return fail("socket", errno);
  }
  if (o.reuse) {
    const int one = 1;
    if (::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
      return fail("reuse", errno);
    }
  }
  if (!o.bind_address.empty() || o.bind_port >= 0) {
    const auto port = static_cast<std::uint16_t>(o.bind_port >= 0 ? o.bind_port : 0);
    const Endpoint local = o.bind_address.empty() ? any_endpoint(remote->family(), port)
                                                  : *parse_endpoint(o.bind_address, port);
    if (::bind(socket.get(), local.addr(), local.length) != 0) {
      return fail("bind", errno);
    }
  }
  const auto start = std::chrono::steady_clock::now();
  if (const int error = connect_with_timeout(socket.get(), *remote, o.timeout_ms); error != 0) {
    return fail("connect", error);
  }
  const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
  log.emit(index, "connect",
           Fields{{"ok", true},
                  {"local", local_of(socket.get())},
                  {"remote", remote_of(socket.get())},
                  {"ms", std::round(took.count() * 10.0) / 10.0}});
  return run_script(std::move(socket), index, script, log, io_timeout(o));
}

int run_client(const Options& o, const Script& script) {
  EventLog log("client", o.quiet);
  Totals totals;
  std::atomic<int> next{0};
  auto worker = [&] {
    for (int index = next++; index < o.connections; index = next++) {
      totals.add(run_client_connection(o, script, log, index));
    }
  };
  std::vector<std::thread> threads;
  const int count = std::max(1, std::min(o.parallel, o.connections));
  for (int i = 1; i < count; ++i) {
    threads.emplace_back(worker);
  }
  worker();
  for (auto& t : threads) {
    t.join();
  }
  const Fields summary = totals.summary();
  log.emit_always(-1, "summary", summary);
  return summary["failed"].get<int>() == 0 && summary["ok"].get<int>() == o.connections ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Command line

CLI::Validator numeric_address() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        return parse_endpoint(value, 0) ? "" : "'" + value + "' is not a numeric IPv4/IPv6 address";
      },
      "ADDR");
}

void add_common(CLI::App& cmd, Options& o, const char* default_script, int default_connections) {
  o.connections = default_connections;
  o.script_text = default_script;
  cmd.add_option("--port,-p", o.port, "TCP port")->required()->check(CLI::Range(0, 65535));
  cmd.add_option("--connections,-n", o.connections,
                 std::string("number of connections") +
                     (default_connections == 0 ? " (0: until SIGINT/SIGTERM)" : ""))
      ->capture_default_str()
      ->check(default_connections == 0 ? CLI::Validator(CLI::NonNegativeNumber)
                                       : CLI::Validator(CLI::PositiveNumber));
  cmd.add_option("--script,-s", o.script_text, "comma-separated steps (see below)")
      ->capture_default_str();
  cmd.add_option("--io-timeout", o.io_timeout_ms,
                 "longest wait of one blocking step in ms, then ETIMEDOUT (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_flag("--quiet,-q", o.quiet, "print only the summary line");
  cmd.footer(script_help());
}

}  // namespace

int run(int argc, char** argv) {
  // Writing to a reset connection must report EPIPE, not kill the process.
  ::signal(SIGPIPE, SIG_IGN);

  CLI::App app("finwave-peer: scripted TCP client/server for teardown tests", "finwave-peer");
  app.require_subcommand(1);
  app.footer(
      "Run 'finwave-peer server --help' or 'finwave-peer client --help' for options and\n"
      "the script steps.\n");

  Options server_options;
  auto* server = app.add_subcommand("server", "accept connections and run the script on each");
  server->add_option("--listen,-l", server_options.address, "address to listen on (v4 or v6)")
      ->required()
      ->check(numeric_address());
  server->add_option("--ready-file", server_options.ready_file,
                     "file created (holding the port) once listening");
  add_common(*server, server_options, kDefaultServerScript, 0);

  Options client_options;
  auto* client = app.add_subcommand("client", "make connections and run the script on each");
  client->add_option("--connect,-c", client_options.address, "server address (v4 or v6)")
      ->required()
      ->check(numeric_address());
  client->add_option("--parallel,-k", client_options.parallel, "connections at a time")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  client->add_option("--bind", client_options.bind_address, "local address to bind")
      ->check(numeric_address());
  client->add_option("--bind-port", client_options.bind_port, "local port to bind")
      ->check(CLI::Range(0, 65535));
  client->add_flag("--reuse", client_options.reuse, "set SO_REUSEADDR before binding");
  client->add_option("--timeout", client_options.timeout_ms, "connect timeout in ms")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  add_common(*client, client_options, kDefaultClientScript, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kUsageError;
  }

  const bool is_server = server->parsed();
  Options& o = is_server ? server_options : client_options;
  Script script;
  try {
    script = parse_script(o.script_text);
  } catch (const ScriptError& e) {
    std::fprintf(stderr, "finwave-peer: bad --script '%s': %s\n", o.script_text.c_str(), e.what());
    return kUsageError;
  }
  if (!is_server) {
    if (o.port == 0) {
      std::fprintf(stderr, "finwave-peer: client --port must be 1..65535\n");
      return kUsageError;
    }
    const auto remote = parse_endpoint(o.address, 0);
    const auto local = parse_endpoint(o.bind_address, 0);
    if (local && local->family() != remote->family()) {
      std::fprintf(stderr, "finwave-peer: --bind and --connect are of different families\n");
      return kUsageError;
    }
    return run_client(o, script);
  }
  return run_server(o, script);
}

}  // namespace finwave::peer

int main(int argc, char** argv) {
  try {
    return finwave::peer::run(argc, argv);
  } catch (const std::exception& e) {
    // Only allocation failures and thread creation can get here.
    std::fprintf(stderr, "finwave-peer: %s\n", e.what());
    return 1;
  }
}
