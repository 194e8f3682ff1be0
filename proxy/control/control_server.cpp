#include "proxy/control/control_server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "netfilter/unique_fd.hpp"

namespace finwave::proxy {
namespace {

constexpr std::uint64_t kDeadlineTickMs = 50;
constexpr std::uint64_t kGraceMs = 1000;
constexpr std::size_t kMaxBuffersPerWrite = 64;
constexpr std::uint64_t kDefaultOutcomeLimit = 20;

// A write in flight: libuv needs the bytes until its callback.
struct WriteRequest {
  uv_write_t req{};
  std::vector<std::shared_ptr<const std::string>> lines;
  std::vector<uv_buf_t> buffers;
  std::size_t bytes = 0;
};

std::string errno_text(int error) { return std::strerror(error); }

// mkdir -p with mode 0755 for the directories that do not exist yet.
void make_parent_directories(const std::string& path) {
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string directory = path.substr(0, slash);
    if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) {
      throw std::runtime_error("cannot create the control socket's directory " + directory + ": " +
                               errno_text(errno));
    }
  }
}

// What is at `path`: nothing, a socket someone listens on, a stale socket, or something else.
enum class PathState { kFree, kLive, kStale, kNotSocket };

PathState probe_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return PathState::kFree;
  if (!S_ISSOCK(st.st_mode)) return PathState::kNotSocket;
  const nf::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw std::runtime_error("socket(AF_UNIX): " + errno_text(errno));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  const int result =
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int error = errno;
  if (result == 0) return PathState::kLive;
  // A full backlog (EAGAIN) still means someone listens. ECONNREFUSED is a socket file whose
  // owner is gone: the file outlives a crashed (or kill -9'd) daemon.
  if (error == ECONNREFUSED) return PathState::kStale;
  if (error == EAGAIN) return PathState::kLive;
  throw std::runtime_error("cannot probe the existing control socket " + path + ": " +
                           errno_text(error));
}

gid_t lookup_group(const std::string& name) {
  gid_t numeric = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), numeric);
  if (ec == std::errc() && end == name.data() + name.size()) return numeric;
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  const int error = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (error != 0 || found == nullptr) {
    throw std::runtime_error("--control-group: no group named '" + name + "'");
  }
  return found->gr_gid;
}

std::string peer_credentials(uv_pipe_t* pipe) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(pipe), &fd) != 0) return "unknown peer";
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    return "unknown peer";
  }
  return "pid " + std::to_string(credentials.pid) + " uid " + std::to_string(credentials.uid);
}

// After EOF: has the peer closed its socket (rather than only shut down its writing side)?
// Linux marks our end of a Unix stream socket fully shut down (POLLHUP) when the peer closes.
bool peer_closed(uv_pipe_t* pipe) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(pipe), &fd) != 0) return true;
  pollfd p{fd, POLLOUT, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

bool blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

std::shared_ptr<const std::string> shared_line(std::string line) {
  line += '\n';
  return std::make_shared<const std::string>(std::move(line));
}

}  // namespace

// Every entry point from libuv or the daemon holds one of these: clients that were closed
// during the call are erased only when the outermost call returns, so that no code up the
// stack is left holding a reference to a destroyed Client.
class ControlServerEntry {
 public:
  explicit ControlServerEntry(ControlServer& server) noexcept : server_(server) { ++depth(); }
  ~ControlServerEntry() {
    if (--depth() == 0) server_.reap();
  }
  ControlServerEntry(const ControlServerEntry&) = delete;
  ControlServerEntry& operator=(const ControlServerEntry&) = delete;

 private:
  // One loop thread: one depth for every server.
  static int& depth() noexcept {
    static int value = 0;
    return value;
  }

  ControlServer& server_;
};

ControlServer::ControlServer(uv_loop_t* loop, ControlHandler& handler, Config config)
    : loop_(loop), handler_(handler), config_(std::move(config)) {}

ControlServer::~ControlServer() {
  // The daemon stops the server and runs the loop before this; anything still open is closed
  // without telling the handler, which may be half destroyed by now.
  for (auto& [id, client] : clients_) client->pipe.close();
  clients_.clear();
  listener_.close();
  timer_.close();
  grace_.close();
  unlink_socket();
}

void ControlServer::unlink_socket() noexcept {
  if (socket_inode_ == 0) return;
  // Only our own socket: a finwave started after us with the same path owns a new file.
  struct stat st {};
  if (::lstat(config_.path.c_str(), &st) == 0 && st.st_ino == socket_inode_ &&
      st.st_dev == socket_device_) {
    ::unlink(config_.path.c_str());
  }
  socket_inode_ = 0;
}

std::uint64_t ControlServer::now_us() const noexcept { return uv_hrtime() / 1000; }

void ControlServer::log(const std::string& message) const noexcept {
  if (!config_.quiet) std::fprintf(stderr, "finwave: control: %s\n", message.c_str());
}

void ControlServer::start() {
  const std::string& path = config_.path;
  if (path.empty()) throw std::runtime_error("--control: empty path");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    throw std::runtime_error("--control: the path " + path + " is longer than " +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                             " bytes, the limit of a Unix socket address");
  }
  const bool with_group = !config_.group.empty();
  const gid_t gid = with_group ? lookup_group(config_.group) : 0;
  make_parent_directories(path);
  switch (probe_path(path)) {
    case PathState::kFree:
      break;
    case PathState::kLive:
      throw std::runtime_error("another finwave is already listening on the control socket " +
                               path + "; stop it first, or give this one --control PATH");
    case PathState::kNotSocket:
      throw std::runtime_error("--control: " + path +
                               " exists and is not a socket; not touching it");
    case PathState::kStale:
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        throw std::runtime_error("cannot remove the stale control socket " + path + ": " +
                                 errno_text(errno));
      }
      log("replaced the stale socket " + path + " (left by a finwave that is gone)");
      break;
  }

  auto check = [](int error, const std::string& what) {
    if (error != 0) throw std::runtime_error(what + ": " + uv_strerror(error));
  };
  check(listener_.init(uv_pipe_init, loop_, this, 0), "cannot create the control socket");
  // The socket file is created by bind(): the umask keeps it from ever being reachable by
  // others, even for the moment before the chmod below.
  const mode_t old_mask = ::umask(0177);
  const int bound = uv_pipe_bind(listener_.get(), path.c_str());
  ::umask(old_mask);
  check(bound, "cannot bind the control socket " + path);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    socket_inode_ = st.st_ino;
    socket_device_ = st.st_dev;
  }
  if (with_group) {
    if (::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0 ||
        ::chmod(path.c_str(), 0660) != 0) {
      throw std::runtime_error("cannot give the control socket to group " + config_.group + ": " +
                               errno_text(errno));
    }
  } else if (::chmod(path.c_str(), 0600) != 0) {
    throw std::runtime_error("cannot chmod the control socket: " + errno_text(errno));
  }
  check(uv_listen(reinterpret_cast<uv_stream_t*>(listener_.get()), 128,
                  &ControlServer::on_connection),
        "cannot listen on the control socket " + path);
  check(timer_.init(uv_timer_init, loop_, this), "cannot create a timer");
  check(uv_timer_start(timer_.get(), &ControlServer::on_timer, kDeadlineTickMs, kDeadlineTickMs),
        "cannot start a timer");
  started_ = true;
  log("listening on " + path +
      (with_group ? " (group " + config_.group + ", mode 0660)" : " (mode 0600)"));
}

void ControlServer::stop() noexcept {
  if (stopping_) return;
  ControlServerEntry entry(*this);
  stopping_ = true;
  listener_.close();
  timer_.close();
  unlink_socket();
  std::shared_ptr<const std::string> shutdown_event;
  for (auto& [id, client] : clients_) {
    if (client->dead) continue;
    for (Wait& wait : client->waits) {
      send(*client, format_control_error(wait.id, ControlErrorCode::kShuttingDown,
                                         "finwave is shutting down", {{"outcomes", wait.matched}}));
    }
    counters_.waits -= client->waits.size();
    client->waits.clear();
    if (client->subscription) {
      if (!shutdown_event) shutdown_event = shared_line(R"({"event":"shutdown"})");
      send_shared(*client, shutdown_event);
    }
    client->close_when_flushed = true;
    update_reading(*client);
    if (client->queued_bytes == 0) close_client(*client);
  }
  const bool draining = std::any_of(clients_.begin(), clients_.end(),
                                    [](const auto& item) { return !item.second->dead; });
  if (draining && grace_.init(uv_timer_init, loop_, this) == 0) {
    uv_timer_start(grace_.get(), &ControlServer::on_grace, kGraceMs, 0);
  }
}

void ControlServer::on_grace(uv_timer_t* timer) noexcept {
  auto* self = static_cast<ControlServer*>(timer->data);
  if (self == nullptr) return;
  ControlServerEntry entry(*self);
  for (auto& [id, client] : self->clients_) {
    if (!client->dead) {
      self->log("closing " + client->who + " with " + std::to_string(client->queued_bytes) +
                " bytes unsent at shutdown");
      self->close_client(*client);
    }
  }
  self->grace_.close();
}

void ControlServer::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* self = static_cast<ControlServer*>(listener->data);
  if (self == nullptr) return;
  ControlServerEntry entry(*self);
  if (status < 0) {
    self->log(std::string("accept failed: ") + uv_strerror(status));
    return;
  }
  self->accept_one();
}

void ControlServer::accept_one() noexcept {
  std::unique_ptr<Client> owned;
  try {
    owned = std::make_unique<Client>();
  } catch (...) {
    return;
  }
  Client& client = *owned;
  client.id = next_client_id_++;
  client.server = this;
  if (client.pipe.init(uv_pipe_init, loop_, &client, 0) != 0) return;
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_.get()),
                reinterpret_cast<uv_stream_t*>(client.pipe.get())) != 0) {
    return;
  }
  client.who = peer_credentials(client.pipe.get());
  try {
    clients_.emplace(client.id, std::move(owned));
  } catch (...) {
    return;
  }
  ++counters_.connections;
  const std::size_t live = static_cast<std::size_t>(std::count_if(
      clients_.begin(), clients_.end(), [](const auto& item) { return !item.second->dead; }));
  counters_.clients = live;
  if (live > kMaxClients) {
    ++counters_.refused_clients;
    send(client, format_control_error(nullptr, ControlErrorCode::kTooManyClients,
                                      "finwave already serves " + std::to_string(kMaxClients) +
                                          " control clients; try again later"));
    client.close_when_flushed = true;
    return;
  }
  update_reading(client);
}

void ControlServer::on_alloc(uv_handle_t* handle, std::size_t /*suggested*/,
                             uv_buf_t* buf) noexcept {
  auto* client = static_cast<Client*>(handle->data);
  if (client == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  auto& buffer = client->server->read_buffer_;
  *buf = uv_buf_init(buffer.data(), static_cast<unsigned>(buffer.size()));
}

void ControlServer::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* client = static_cast<Client*>(stream->data);
  if (client == nullptr) return;
  ControlServer& self = *client->server;
  ControlServerEntry entry(self);
  if (nread > 0) {
    try {
      client->framer.append(std::string_view(buf->base, static_cast<std::size_t>(nread)));
    } catch (...) {
      self.close_client(*client);
      return;
    }
  }
  self.read(*client, nread);
}

void ControlServer::read(Client& client, ssize_t nread) noexcept {
  if (nread == UV_EOF) {
    if (peer_closed(client.pipe.get())) {
      // Closed, not half-closed: its waits and subscription have no one to answer.
      close_client(client);
      return;
    }
    client.eof = true;
    client.framer.finish();
  } else if (nread < 0) {
    close_client(client);
    return;
  }
  process(client);
  maybe_finish(client);
}

void ControlServer::process(Client& client) noexcept {
  std::string line;
  while (!client.dead && !client.close_when_flushed && client.queued_bytes < kPauseReadingBytes) {
    LineFramer::Next next = LineFramer::Next::kNone;
    try {
      next = client.framer.next(line);
    } catch (...) {
      close_client(client);
      return;
    }
    if (next == LineFramer::Next::kNone) break;
    ++counters_.requests;
    if (next == LineFramer::Next::kTooLong) {
      ++counters_.errors;
      send(client,
           format_control_error(nullptr, ControlErrorCode::kLineTooLong,
                                "request line longer than " + std::to_string(kMaxRequestLineBytes) +
                                    " bytes; skipped up to its newline"));
      continue;
    }
    if (blank(line)) {
      --counters_.requests;
      continue;
    }
    try {
      handle_line(client, line);
    } catch (const std::exception& error) {
      ++counters_.errors;
      send(client, format_control_error(nullptr, ControlErrorCode::kInternal, error.what()));
    }
  }
  update_reading(client);
}

void ControlServer::handle_line(Client& client, const std::string& line) {
  ParsedControlRequest parsed = parse_control_request(line);
  if (parsed.error) {
    ++counters_.errors;
    send(client, format_control_error(parsed.request.id, parsed.error->code, parsed.error->what()));
    return;
  }
  try {
    handle_request(client, parsed.request);
  } catch (const ControlError& error) {
    ++counters_.errors;
    send(client, format_control_error(parsed.request.id, error.code, error.what()));
  } catch (const std::exception& error) {
    ++counters_.errors;
    send(client,
         format_control_error(parsed.request.id, ControlErrorCode::kInternal, error.what()));
  }
}

void ControlServer::handle_request(Client& client, ControlRequest& request) {
  switch (request.command) {
    case ControlCommand::kOutcomes:
      send(client, format_control_reply(request.id, outcomes_reply(request)));
      return;
    case ControlCommand::kSubscribe:
      handle_subscribe(client, request);
      return;
    case ControlCommand::kUnsubscribe: {
      const bool was = client.subscription != nullptr;
      if (was) --counters_.subscribers;
      client.subscription.reset();
      update_rule_hit_interest();
      send(client,
           format_control_reply(request.id, {{"subscribed", false}, {"was_subscribed", was}}));
      return;
    }
    case ControlCommand::kWait:
      handle_wait(client, request);
      return;
    case ControlCommand::kHelp: {
      nlohmann::json commands = nlohmann::json::array();
      for (const auto name : ControlCommandNames::names()) {
        nlohmann::json fields = nlohmann::json::array();
        for (const auto field : control_command_fields(*ControlCommandNames::parse(name))) {
          fields.push_back(field);
        }
        commands.push_back({{"cmd", name}, {"fields", fields}});
      }
      nlohmann::json errors = nlohmann::json::array();
      for (const auto name : ControlErrorCodeNames::names()) errors.push_back(name);
      send(client, format_control_reply(request.id, {{"commands", commands}, {"errors", errors}}));
      return;
    }
    default:
      break;
  }
  const nlohmann::json body = handler_.on_control_command(request, client.who);
  send(client, format_control_reply(request.id, body));
}

std::uint64_t ControlServer::resolve_since(const Since& since) const noexcept {
  switch (since.from) {
    case Since::From::kNow:
      return last_outcome_seq();
    case Since::From::kSeq:
      return since.seq;
    case Since::From::kRuleChange:
      return rule_change_seq_;
  }
  return last_outcome_seq();
}

nlohmann::json ControlServer::outcomes_reply(const ControlRequest& request) const {
  const std::uint64_t limit = request.limit.value_or(kDefaultOutcomeLimit);
  nlohmann::json list = nlohmann::json::array();
  bool more = false;
  const OutcomeFilter& filter = request.filter;
  if (request.since.from == Since::From::kNow) {
    // The most recent `limit` that match, oldest first.
    std::vector<const RingEntry*> newest;
    for (auto it = ring_.rbegin(); it != ring_.rend(); ++it) {
      if (!filter.matches(it->outcome)) continue;
      if (newest.size() >= limit) {
        more = true;
        break;
      }
      newest.push_back(&*it);
    }
    for (auto it = newest.rbegin(); it != newest.rend(); ++it) {
      list.push_back(outcome_event_json((*it)->seq, (*it)->outcome));
    }
  } else {
    // The first `limit` that match after `since`, for paging: ask again with since = the last
    // seq.
    const std::uint64_t since = resolve_since(request.since);
    for (const RingEntry& entry : ring_) {
      if (entry.seq <= since || !filter.matches(entry.outcome)) continue;
      if (list.size() >= limit) {
        more = true;
        break;
      }
      list.push_back(outcome_event_json(entry.seq, entry.outcome));
    }
  }
  nlohmann::json reply = {
      {"outcomes", std::move(list)},
      {"last_seq", last_outcome_seq()},
      {"oldest_seq", ring_.empty() ? nlohmann::json(nullptr) : nlohmann::json(ring_.front().seq)},
      {"more", more},
      {"history", config_.history}};
  if (!filter.empty()) reply["filter"] = filter.to_json();
  return reply;
}

void ControlServer::handle_subscribe(Client& client, const ControlRequest& request) {
  if (!client.subscription) {
    client.subscription = std::make_unique<Subscription>();
    ++counters_.subscribers;
  }
  client.subscription->events = request.events;
  client.subscription->filter = request.filter;
  nlohmann::json events = nlohmann::json::array();
  for (std::size_t i = 0; i < EventKindNames::kSize; ++i) {
    const auto kind = static_cast<EventKind>(i);
    if ((request.events & event_bit(kind)) != 0) events.push_back(to_string(kind));
  }
  send(client, format_control_reply(request.id, {{"subscribed", true},
                                                 {"events", events},
                                                 {"filter", request.filter.to_json()},
                                                 {"last_seq", last_outcome_seq()}}));
  update_rule_hit_interest();
}

void ControlServer::handle_wait(Client& client, ControlRequest& request) {
  if (client.waits.size() >= kMaxWaitsPerClient) {
    throw ControlError(
        ControlErrorCode::kTooManyWaits,
        "this connection already has " + std::to_string(kMaxWaitsPerClient) + " waits pending");
  }
  Wait wait;
  wait.id = request.id;
  wait.filter = request.filter;
  wait.wanted = request.count;
  const std::uint64_t since = resolve_since(request.since);
  for (const RingEntry& entry : ring_) {
    if (entry.seq > since && wait.filter.matches(entry.outcome)) {
      wait.matched.push_back(outcome_event_json(entry.seq, entry.outcome));
      if (wait.matched.size() >= wait.wanted) break;
    }
  }
  if (wait.matched.size() >= wait.wanted) {
    send(client, format_control_reply(wait.id, {{"outcomes", std::move(wait.matched)},
                                                {"since", since},
                                                {"last_seq", last_outcome_seq()}}));
    return;
  }
  if (request.timeout_ms == 0) {
    ++counters_.errors;
    send(client, format_control_error(wait.id, ControlErrorCode::kTimeout,
                                      "no matching outcome yet (timeout 0)",
                                      {{"outcomes", std::move(wait.matched)}, {"since", since}}));
    return;
  }
  wait.deadline_us = now_us() + request.timeout_ms * 1000;
  client.waits.push_back(std::move(wait));
  ++counters_.waits;
}

void ControlServer::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<ControlServer*>(timer->data);
  if (self == nullptr) return;
  ControlServerEntry entry(*self);
  self->check_deadlines();
}

void ControlServer::check_deadlines() noexcept {
  if (counters_.waits == 0) return;
  const std::uint64_t now = now_us();
  for (auto& [id, client] : clients_) {
    if (client->dead || client->waits.empty()) continue;
    auto& waits = client->waits;
    for (auto it = waits.begin(); it != waits.end();) {
      if (it->deadline_us > now) {
        ++it;
        continue;
      }
      ++counters_.errors;
      try {
        const std::size_t got = it->matched.size();
        send(*client, format_control_error(it->id, ControlErrorCode::kTimeout,
                                           "timed out: " + std::to_string(got) + " of " +
                                               std::to_string(it->wanted) + " matching outcome(s)",
                                           {{"outcomes", std::move(it->matched)},
                                            {"last_seq", last_outcome_seq()}}));
      } catch (...) {
      }
      it = waits.erase(it);
      --counters_.waits;
    }
    maybe_finish(*client);
  }
}

void ControlServer::publish_outcome(Outcome&& outcome) noexcept {
  ControlServerEntry entry(*this);
  const std::uint64_t seq = next_seq_++;
  counters_.outcomes = seq;
  try {
    // Formatted once, only if someone wants it.
    std::optional<nlohmann::json> event;
    std::shared_ptr<const std::string> line;
    for (auto& [id, client] : clients_) {
      if (client->dead) continue;
      for (auto it = client->waits.begin(); it != client->waits.end();) {
        if (!it->filter.matches(outcome)) {
          ++it;
          continue;
        }
        if (!event) event = outcome_event_json(seq, outcome);
        it->matched.push_back(*event);
        if (it->matched.size() < it->wanted) {
          ++it;
          continue;
        }
        send(*client, format_control_reply(
                          it->id, {{"outcomes", std::move(it->matched)}, {"last_seq", seq}}));
        it = client->waits.erase(it);
        --counters_.waits;
      }
      const Subscription* subscription = client->subscription.get();
      if (subscription != nullptr && (subscription->events & kEventOutcome) != 0 &&
          subscription->filter.matches(outcome)) {
        if (!event) event = outcome_event_json(seq, outcome);
        if (!line) line = shared_line(dump_line(*event));
        send_event(*client, line);
      }
      maybe_finish(*client);
    }
    ring_.push_back(RingEntry{seq, std::move(outcome)});
    while (ring_.size() > config_.history) ring_.pop_front();
  } catch (const std::exception& error) {
    log(std::string("cannot publish an outcome: ") + error.what());
  }
}

void ControlServer::publish_rule_change(const std::string& change, const std::string& rule,
                                        const std::string& by, std::size_t rule_count) noexcept {
  ControlServerEntry entry(*this);
  rule_change_seq_ = last_outcome_seq();
  try {
    std::shared_ptr<const std::string> line;
    for (auto& [id, client] : clients_) {
      const Subscription* subscription = client->subscription.get();
      if (client->dead || subscription == nullptr ||
          (subscription->events & kEventRuleChange) == 0) {
        continue;
      }
      if (!subscription->filter.rule.empty() && !rule.empty() &&
          subscription->filter.rule != rule) {
        continue;
      }
      if (!line) {
        nlohmann::json event = {{"event", to_string(EventKind::kRuleChange)},
                                {"change", change},
                                {"by", by},
                                {"rules", rule_count},
                                {"seq", rule_change_seq_}};
        if (!rule.empty()) event["rule"] = rule;
        line = shared_line(dump_line(event));
      }
      send_event(*client, line);
    }
  } catch (const std::exception& error) {
    log(std::string("cannot publish a rule change: ") + error.what());
  }
}

void ControlServer::on_rule_hit(const RuleHit& hit) noexcept {
  ControlServerEntry entry(*this);
  try {
    std::shared_ptr<const std::string> line;
    for (auto& [id, client] : clients_) {
      const Subscription* subscription = client->subscription.get();
      if (client->dead || subscription == nullptr || (subscription->events & kEventRuleHit) == 0) {
        continue;
      }
      if (!subscription->filter.rule.empty() && subscription->filter.rule != hit.rule) continue;
      if (!subscription->filter.matches_flow(hit.flow_id, hit.facts.client, hit.facts.server)) {
        continue;
      }
      if (!line) {
        const nlohmann::json event = {
            {"event", to_string(EventKind::kRuleHit)},
            {"rule", std::string(hit.rule)},
            {"role", std::string(rules::to_string(hit.facts.role))},
            {"from", std::string(rules::to_string(hit.facts.from))},
            {"retx", hit.facts.retx},
            {"verdict", std::string(to_string(hit.verdict))},
            {"flow_id", hit.flow_id},
            {"flow",
             {{"client", to_string(hit.facts.client)}, {"server", to_string(hit.facts.server)}}},
            {"last_seq", last_outcome_seq()}};
        line = shared_line(dump_line(event));
      }
      send_event(*client, line);
    }
  } catch (...) {
    // Data plane: an event that cannot be built is not worth a log line per packet.
  }
}

void ControlServer::send(Client& client, std::string line) noexcept {
  if (client.dead) return;
  try {
    send_shared(client, shared_line(std::move(line)));
  } catch (...) {
    close_client(client);
  }
}

void ControlServer::send_shared(Client& client,
                                const std::shared_ptr<const std::string>& line) noexcept {
  if (client.dead) return;
  try {
    client.pending.push_back(line);
  } catch (...) {
    close_client(client);
    return;
  }
  client.queued_bytes += line->size();
  if (client.queued_bytes > kHardLimitBytes) {
    ++counters_.clients_dropped;
    log("dropping " + client.who + ": " + std::to_string(client.queued_bytes) +
        " bytes of replies unread");
    close_client(client);
    return;
  }
  flush(client);
}

void ControlServer::send_event(Client& client,
                               const std::shared_ptr<const std::string>& line) noexcept {
  if (client.dead) return;
  if (client.events_dropped > 0 && client.queued_bytes < kEventLimitBytes / 2) {
    const std::uint64_t dropped = client.events_dropped;
    client.events_dropped = 0;
    try {
      send_shared(client, shared_line(format_lagged_event(dropped)));
    } catch (...) {
    }
  }
  if (client.events_dropped > 0 || client.queued_bytes + line->size() > kEventLimitBytes) {
    ++client.events_dropped;
    ++counters_.events_dropped;
    return;
  }
  send_shared(client, line);
}

void ControlServer::flush(Client& client) noexcept {
  if (client.dead || client.writing || client.pending.empty()) return;
  auto* request = new (std::nothrow) WriteRequest;
  if (request == nullptr) {
    close_client(client);
    return;
  }
  try {
    while (!client.pending.empty() && request->lines.size() < kMaxBuffersPerWrite) {
      std::shared_ptr<const std::string>& line = client.pending.front();
      request->buffers.push_back(
          uv_buf_init(const_cast<char*>(line->data()), static_cast<unsigned>(line->size())));
      request->bytes += line->size();
      request->lines.push_back(std::move(line));
      client.pending.pop_front();
    }
  } catch (...) {
    delete request;
    close_client(client);
    return;
  }
  request->req.data = request;
  const int result = uv_write(
      &request->req, reinterpret_cast<uv_stream_t*>(client.pipe.get()), request->buffers.data(),
      static_cast<unsigned>(request->buffers.size()), &ControlServer::on_write);
  if (result != 0) {
    client.queued_bytes -= std::min(client.queued_bytes, request->bytes);
    delete request;
    close_client(client);
    return;
  }
  client.writing = true;
}

void ControlServer::on_write(uv_write_t* req, int status) noexcept {
  auto* request = static_cast<WriteRequest*>(req->data);
  auto* client = static_cast<Client*>(req->handle->data);
  const std::size_t bytes = request->bytes;
  delete request;
  // A closed client's handle has data == nullptr: its writes end here with UV_ECANCELED.
  if (client == nullptr) return;
  ControlServer& self = *client->server;
  ControlServerEntry entry(self);
  client->queued_bytes -= std::min(client->queued_bytes, bytes);
  self.written(*client, status);
}

void ControlServer::written(Client& client, int status) noexcept {
  client.writing = false;
  if (status < 0) {
    close_client(client);
    return;
  }
  if (client.events_dropped > 0 && client.queued_bytes < kEventLimitBytes / 2) {
    const std::uint64_t dropped = client.events_dropped;
    client.events_dropped = 0;
    send(client, format_lagged_event(dropped));
  }
  flush(client);
  // Requests left in the framer while output was piled up can go on now.
  process(client);
  maybe_finish(client);
}

void ControlServer::update_reading(Client& client) noexcept {
  const bool wanted = !client.dead && !client.eof && !client.close_when_flushed && !stopping_ &&
                      client.queued_bytes < kPauseReadingBytes;
  if (wanted == client.reading) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(client.pipe.get());
  if (wanted) {
    if (uv_read_start(stream, &ControlServer::on_alloc, &ControlServer::on_read) == 0) {
      client.reading = true;
    }
  } else {
    uv_read_stop(stream);
    client.reading = false;
  }
}

void ControlServer::maybe_finish(Client& client) noexcept {
  if (client.dead || client.queued_bytes != 0) return;
  if (client.close_when_flushed) {
    close_client(client);
    return;
  }
  // A peer that closed its side is served until nothing is left to answer; a subscription
  // keeps it open (it may read events after shutting down its writing side).
  if (client.eof && client.framer.buffered() == 0 && client.waits.empty() &&
      client.subscription == nullptr) {
    close_client(client);
  }
}

void ControlServer::close_client(Client& client) noexcept {
  if (client.dead) return;
  client.dead = true;
  counters_.waits -= client.waits.size();
  client.waits.clear();
  if (client.subscription) {
    --counters_.subscribers;
    client.subscription.reset();
  }
  client.pending.clear();
  client.reading = false;
  client.pipe.close();
  if (counters_.clients > 0) --counters_.clients;
  update_rule_hit_interest();
}

void ControlServer::reap() noexcept {
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second->dead) {
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
  if (stopping_ && clients_.empty()) grace_.close();
}

void ControlServer::update_rule_hit_interest() noexcept {
  const bool wanted = std::any_of(clients_.begin(), clients_.end(), [](const auto& item) {
    const Client& client = *item.second;
    return !client.dead && client.subscription != nullptr &&
           (client.subscription->events & kEventRuleHit) != 0;
  });
  if (wanted == rule_hit_interest_) return;
  rule_hit_interest_ = wanted;
  handler_.on_rule_hit_interest(wanted);
}

}  // namespace finwave::proxy
