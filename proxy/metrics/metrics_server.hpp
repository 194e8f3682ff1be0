#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "netfilter/unique_fd.hpp"
#include "proxy/metrics/metrics_snapshot.hpp"
#include "rules/segment_facts.hpp"

struct MHD_Daemon;
struct MHD_Connection;

namespace finwave::proxy {

/// The --metrics endpoint: `GET /metrics` (and HEAD) over HTTP/1.1, served by libmicrohttpd on
/// a thread of its own with one epoll loop for every connection, so a slow or stuck client
/// costs a connection slot, never a thread, and nothing it does reaches the data path. Each
/// request renders the snapshot the control thread last published (publish()); no request
/// reads the daemon's own state.
class MetricsServer {
 public:
  /// Connections served at once; past it new ones are closed at once (each is a descriptor).
  static constexpr unsigned kMaxConnections = 1024;
  /// A request's line and headers must fit in this (a larger one gets 431 and is closed).
  static constexpr std::size_t kMaxRequestBytes = 16 * 1024;
  /// A connection that sends nothing for this long is closed.
  static constexpr unsigned kIdleTimeoutS = 10;

  /// Binds `address` (an IPv4 or IPv6 address and a port other than 0) and listens; start()
  /// serves. Throws std::runtime_error("cannot serve metrics on ADDRESS: why").
  explicit MetricsServer(const rules::Endpoint& address);
  /// Starts the thread that serves (connections wait in the listen queue until then). Apart
  /// from the binding so that the socket can be bound in one network namespace and the thread
  /// started after finwave's capabilities are dropped. Throws std::runtime_error.
  void start();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  /// Stops the thread; requests in flight are cut off.
  ~MetricsServer();

  /// Any thread: what requests from now on render.
  void publish(std::shared_ptr<const MetricsSnapshot> snapshot) noexcept;

 private:
  struct Reply;
  Reply answer(const std::string& method, const std::string& url) const;
  /// The reply to a request whose headers (and body, if any) are in; libmicrohttpd's
  /// MHD_Result as an int (the enum cannot be declared here).
  int respond(MHD_Connection* connection, const char* url, const char* method) const noexcept;
  friend struct MetricsRequests;

  std::string name_;  // "198.18.0.2:9100", for messages
  bool ipv6_ = false;
  nf::UniqueFd listen_fd_;  // until start() hands it to libmicrohttpd
  std::atomic<std::shared_ptr<const MetricsSnapshot>> snapshot_;
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace finwave::proxy
