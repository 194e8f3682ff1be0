// The --metrics endpoint on libmicrohttpd: binding with a clear error, and the request handler.
#include "proxy/metrics/metrics_server.hpp"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "netfilter/unique_fd.hpp"
#include "proxy/metrics/metric_families.hpp"
#include "proxy/tracker/teardown.hpp"

namespace finwave::proxy {
namespace {

// libmicrohttpd's own messages (a failed accept, a client that broke the protocol) go to the
// log like finwave's other messages, one line each. Any client can make it say one per request,
// so at most kLogBurst lines go out per kLogWindow; the next line says how many were left out.
constexpr unsigned kLogBurst = 5;
constexpr auto kLogWindow = std::chrono::seconds(10);

void log_mhd(void* /*cls*/, const char* format, va_list args) {
  static std::mutex mutex;
  static std::chrono::steady_clock::time_point window_start;
  static unsigned lines = 0;
  static std::uint64_t left_out = 0;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto now = std::chrono::steady_clock::now();
  if (now - window_start >= kLogWindow) {
    window_start = now;
    lines = 0;
  }
  if (lines >= kLogBurst) {
    ++left_out;
    return;
  }
  ++lines;
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  std::size_t length = std::strlen(line);
  while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) line[--length] = 0;
  if (left_out != 0) {
    std::fprintf(stderr, "finwave: metrics: (%llu more messages of libmicrohttpd left out)\n",
                 static_cast<unsigned long long>(std::exchange(left_out, 0)));
  }
  std::fprintf(stderr, "finwave: metrics: %s\n", line);
}

// A listening socket on `address`, bound here rather than by libmicrohttpd so that a failure
// names its reason (address in use, not this host's address, no permission).
nf::UniqueFd listen_on(const rules::Endpoint& address, const std::string& name) {
  const auto fail = [&](const char* what) {
    throw std::runtime_error("cannot serve metrics on " + name + ": " + what + ": " +
                             std::strerror(errno));
  };
  const int family = address.family == 6 ? AF_INET6 : AF_INET;
  nf::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) fail("socket");
  const int on = 1;
  // A restarted finwave rebinds at once, whatever connections of the last one are in TIME_WAIT.
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) fail("SO_REUSEADDR");
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (family == AF_INET6) {
    // [::]:PORT means IPv6 only; 0.0.0.0:PORT is the way to ask for IPv4.
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) fail("IPV6_V6ONLY");
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    std::memcpy(&in6->sin6_addr, address.address.data(), 16);
    length = sizeof *in6;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&storage);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(address.port);
    std::memcpy(&in4->sin_addr, address.address.data(), 4);
    length = sizeof *in4;
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0) fail("bind");
  if (::listen(fd.get(), static_cast<int>(MetricsServer::kMaxConnections)) != 0) fail("listen");
  return fd;
}

// While alive, the calling thread runs at the normal scheduler. A thread inherits its creator's
// scheduling: with --realtime-priority, libmicrohttpd's thread would otherwise run at SCHED_FIFO
// and a flood of scrapes could keep the verdicts waiting.
class NormalScheduling {
 public:
  NormalScheduling() noexcept {
    if (pthread_getschedparam(pthread_self(), &policy_, &param_) != 0 || policy_ == SCHED_OTHER) {
      return;
    }
    const sched_param normal{};
    lowered_ = pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal) == 0;
  }
  NormalScheduling(const NormalScheduling&) = delete;
  NormalScheduling& operator=(const NormalScheduling&) = delete;
  ~NormalScheduling() {
    // Raising it back needs what set it first (CAP_SYS_NICE), which the thread still has.
    if (lowered_ && pthread_setschedparam(pthread_self(), policy_, &param_) != 0) {
      std::fprintf(stderr, "finwave: metrics: cannot return to the real-time scheduler: %s\n",
                   std::strerror(errno));
    }
  }

 private:
  int policy_ = SCHED_OTHER;
  sched_param param_{};
  bool lowered_ = false;
};

}  // namespace

struct MetricsServer::Reply {
  unsigned status = MHD_HTTP_OK;
  std::string body;
  const char* content_type = "text/plain; charset=utf-8";
  const char* allow = nullptr;  // with 405
};

// libmicrohttpd's access handler. Its first call for a request sees only the headers; a body
// (which /metrics never takes) is read and thrown away by returning MHD_YES until it is all in,
// then the reply goes.
struct MetricsRequests {
  static MHD_Result on_request(void* self, MHD_Connection* connection, const char* url,
                               const char* method, const char* /*version*/,
                               const char* /*upload_data*/, std::size_t* upload_data_size,
                               void** request_state) noexcept {
    static int headers_seen = 0;
    if (*request_state == nullptr) {
      *request_state = &headers_seen;
      return MHD_YES;
    }
    if (*upload_data_size != 0) {
      *upload_data_size = 0;
      return MHD_YES;
    }
    return static_cast<MHD_Result>(
        static_cast<const MetricsServer*>(self)->respond(connection, url, method));
  }
};

MetricsServer::MetricsServer(const rules::Endpoint& address)
    : name_(to_string(address)), ipv6_(address.family == 6) {
  if (address.port == 0) throw std::runtime_error("cannot serve metrics on " + name_ + ": port 0");
  listen_fd_ = listen_on(address, name_);
}

void MetricsServer::start() {
  if (daemon_ != nullptr || !listen_fd_) return;
  const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                         (ipv6_ ? MHD_USE_IPv6 : 0);
  const NormalScheduling normal;
  daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &MetricsRequests::on_request, this,
                             MHD_OPTION_EXTERNAL_LOGGER, &log_mhd, nullptr,  //
                             MHD_OPTION_LISTEN_SOCKET, listen_fd_.get(),     //
                             MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,   //
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, kMaxRequestBytes,
                             MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutS,  //
                             MHD_OPTION_END);
  if (daemon_ == nullptr) {
    throw std::runtime_error("cannot serve metrics on " + name_ +
                             ": libmicrohttpd could not start (see its message above)");
  }
  (void)listen_fd_.release();  // libmicrohttpd owns and closes it now
}

MetricsServer::~MetricsServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

void MetricsServer::publish(std::shared_ptr<const MetricsSnapshot> snapshot) noexcept {
  snapshot_.store(std::move(snapshot));
}

MetricsServer::Reply MetricsServer::answer(const std::string& method,
                                           const std::string& url) const {
  if (url != "/metrics") {
    return {MHD_HTTP_NOT_FOUND, "finwave serves its metrics at /metrics only\n"};
  }
  if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD) {
    return {MHD_HTTP_METHOD_NOT_ALLOWED, "/metrics takes GET or HEAD\n",
            "text/plain; charset=utf-8", "GET, HEAD"};
  }
  const std::shared_ptr<const MetricsSnapshot> snapshot = snapshot_.load();
  if (!snapshot) {
    return {MHD_HTTP_SERVICE_UNAVAILABLE, "finwave is still starting: no metrics yet\n"};
  }
  return {MHD_HTTP_OK, metrics_text(*snapshot), kMetricsContentType};
}

int MetricsServer::respond(MHD_Connection* connection, const char* url,
                           const char* method) const noexcept {
  Reply reply;
  try {
    reply = answer(method, url);
  } catch (const std::exception& error) {
    reply = {MHD_HTTP_INTERNAL_SERVER_ERROR,
             std::string("cannot render metrics: ") + error.what() + "\n"};
  }
  MHD_Response* response =
      MHD_create_response_from_buffer(reply.body.size(), reply.body.data(), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type);
  if (reply.allow != nullptr) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, reply.allow);
  const MHD_Result queued = MHD_queue_response(connection, reply.status, response);
  MHD_destroy_response(response);
  return queued;
}

}  // namespace finwave::proxy
