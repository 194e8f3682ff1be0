#pragma once

#include <uv.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proxy/control/control_protocol.hpp"
#include "proxy/control/line_framer.hpp"
#include "proxy/loop/uv_handle.hpp"
#include "proxy/tracker/outcome.hpp"
#include "proxy/tracker/sinks.hpp"

namespace finwave::proxy {

/// What the control server cannot answer by itself: the commands that read or change the
/// daemon (status, rules, enable, disable, add, remove, reload, flows, stats). Implemented by
/// Daemon; called on the loop thread.
class ControlHandler {
 public:
  /// Carries out one command and returns the reply's body (an object). Throws ControlError
  /// with a stable code (or any std::exception, reported as "internal").
  virtual nlohmann::json on_control_command(const ControlRequest& request,
                                            const std::string& client) = 0;

  /// Someone subscribed to rule_hit events (true), or the last such subscriber left (false).
  virtual void on_rule_hit_interest(bool wanted) noexcept = 0;

 protected:
  ~ControlHandler() = default;
};

/// Counters of the control plane, for `status` and `stats`.
struct ControlCounters {
  std::uint64_t clients = 0;      ///< Connected now.
  std::uint64_t subscribers = 0;  ///< Subscribed now.
  std::uint64_t waits = 0;        ///< Waits pending now.
  std::uint64_t connections = 0;  ///< Accepted since start.
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;           ///< Requests answered with ok:false.
  std::uint64_t refused_clients = 0;  ///< Turned away at the client limit.
  std::uint64_t events_dropped = 0;   ///< Events not sent to lagging subscribers.
  std::uint64_t clients_dropped = 0;  ///< Disconnected for exceeding the hard output limit.
  std::uint64_t outcomes = 0;         ///< Outcomes published (= the last sequence number).
};

/// The control socket: a libuv Unix-socket server speaking control_protocol.hpp's JSON lines.
///
/// It owns the clients, their line framing and bounded output queues, the subscriptions, the
/// pending waits and a ring of the most recent outcomes; it answers `outcomes`, `subscribe`,
/// `unsubscribe`, `wait` and `help` itself and hands every other command to the ControlHandler.
/// Nothing it does blocks the loop: a client that does not read stops being read from once its
/// replies pile up (and is dropped past a hard limit); a subscriber that does not keep up loses
/// events (it is told how many with a "lagged" event) rather than growing memory.
///
/// Loop thread only. publish_*() may be called from any loop callback, the packet callback
/// included (rule hits): they never throw and never re-enter the handler.
class ControlServer final : public RuleHitSink {
 public:
  struct Config {
    std::string path;   ///< Socket path; its directory is created (0755) if missing.
    std::string group;  ///< Empty: mode 0600. Otherwise the socket belongs to it, mode 0660.
    std::size_t history = 1000;  ///< Outcomes kept for `outcomes` and `wait` with `since`.
    bool quiet = false;          ///< Log only errors.
  };

  /// Per-client limits (bytes of pending output).
  static constexpr std::size_t kPauseReadingBytes =
      std::size_t{256} * 1024;  ///< Stop reading requests.
  static constexpr std::size_t kEventLimitBytes =
      std::size_t{1024} * 1024;  ///< Drop events beyond.
  static constexpr std::size_t kHardLimitBytes =
      std::size_t{32} * 1024 * 1024;  ///< Disconnect beyond.
  static constexpr std::size_t kMaxClients = 512;
  static constexpr std::size_t kMaxWaitsPerClient = 64;

  ControlServer(uv_loop_t* loop, ControlHandler& handler, Config config);
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();

  /// Creates the socket and starts listening. Replaces a stale socket file (one nobody listens
  /// on); refuses, with std::runtime_error, a path where a running finwave listens, a path that
  /// is not a socket, or an unknown group.
  void start();

  /// Stops accepting, answers pending waits with shutting_down, tells subscribers
  /// {"event":"shutdown"}, removes the socket file and closes every client once its output is
  /// written (at most ~1 s later). Idempotent; the loop must run on for the handles to close.
  void stop() noexcept;

  /// A new outcome: numbered (1, 2, ...), kept in the ring, matched against waits and sent to
  /// subscribers.
  void publish_outcome(Outcome&& outcome) noexcept;

  /// A rule change (enable, disable, add, remove, reload; `by` is "control" or "sighup"):
  /// remembered as the point `since: "rule_change"` refers to, and sent to subscribers.
  void publish_rule_change(const std::string& change, const std::string& rule,
                           const std::string& by, std::size_t rule_count) noexcept;

  /// RuleHitSink: a rule decided a segment; sent to rule_hit subscribers.
  void on_rule_hit(const RuleHit& hit) noexcept override;

  std::uint64_t last_outcome_seq() const noexcept { return next_seq_ - 1; }
  std::uint64_t rule_change_seq() const noexcept { return rule_change_seq_; }
  const ControlCounters& counters() const noexcept { return counters_; }
  const std::string& path() const noexcept { return config_.path; }

 private:
  friend class ControlServerEntry;

  struct Subscription {
    std::uint8_t events = kEventAll;
    OutcomeFilter filter;
  };
  struct Wait {
    nlohmann::json id;
    OutcomeFilter filter;
    std::uint64_t deadline_us = 0;
    std::uint32_t wanted = 1;
    nlohmann::json matched = nlohmann::json::array();
  };
  struct Client {
    std::uint64_t id = 0;
    ControlServer* server = nullptr;
    UvHandle<uv_pipe_t> pipe;
    LineFramer framer;
    std::string who;                                         ///< "pid 123 uid 0", for logs.
    std::deque<std::shared_ptr<const std::string>> pending;  ///< Not yet handed to uv_write.
    std::size_t queued_bytes = 0;                            ///< Pending plus in flight.
    bool writing = false;
    bool reading = false;
    bool eof = false;  ///< The peer closed its side.
    bool close_when_flushed = false;
    bool dead = false;                 ///< Closed; erased at the next reap().
    std::uint64_t events_dropped = 0;  ///< Since the last "lagged" event.
    std::unique_ptr<Subscription> subscription;
    std::vector<Wait> waits;
  };
  struct RingEntry {
    std::uint64_t seq = 0;
    Outcome outcome;
  };

  static void on_connection(uv_stream_t* listener, int status) noexcept;
  static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* request, int status) noexcept;
  static void on_timer(uv_timer_t* timer) noexcept;
  static void on_grace(uv_timer_t* timer) noexcept;

  void accept_one() noexcept;
  void read(Client& client, ssize_t nread) noexcept;
  void process(Client& client) noexcept;
  void handle_line(Client& client, const std::string& line);
  void handle_request(Client& client, ControlRequest& request);
  void handle_wait(Client& client, ControlRequest& request);
  void handle_subscribe(Client& client, const ControlRequest& request);
  nlohmann::json outcomes_reply(const ControlRequest& request) const;
  std::uint64_t resolve_since(const Since& since) const noexcept;

  void send(Client& client, std::string line) noexcept;
  void send_shared(Client& client, const std::shared_ptr<const std::string>& line) noexcept;
  void send_event(Client& client, const std::shared_ptr<const std::string>& line) noexcept;
  void flush(Client& client) noexcept;
  void written(Client& client, int status) noexcept;
  void update_reading(Client& client) noexcept;
  void close_client(Client& client) noexcept;
  void maybe_finish(Client& client) noexcept;
  void reap() noexcept;
  void check_deadlines() noexcept;
  void update_rule_hit_interest() noexcept;
  /// Checks the socket path and makes it free: its directory created, a stale socket file (its
  /// finwave gone) removed; throws for a path in use or not a socket.
  void prepare_path(const std::string& path);
  void unlink_socket() noexcept;
  std::uint64_t now_us() const noexcept;
  void log(const std::string& message) const noexcept;

  uv_loop_t* loop_;
  ControlHandler& handler_;
  Config config_;
  bool started_ = false;
  bool stopping_ = false;
  bool rule_hit_interest_ = false;
  UvHandle<uv_pipe_t> listener_;
  UvHandle<uv_timer_t> timer_;  ///< Wait deadlines, 50 ms.
  UvHandle<uv_timer_t> grace_;  ///< After stop(): closes clients that have not drained.
  std::map<std::uint64_t, std::unique_ptr<Client>> clients_;
  std::uint64_t next_client_id_ = 1;
  std::deque<RingEntry> ring_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t rule_change_seq_ = 0;
  std::uint64_t socket_inode_ = 0;  ///< Of the socket file we created: unlinked only if unchanged.
  std::uint64_t socket_device_ = 0;
  ControlCounters counters_;
  std::array<char, std::size_t{64} * 1024>
      read_buffer_{};  ///< Shared: reads are handled one at a time.
};

}  // namespace finwave::proxy
