// One client's connection: accepting it, reading and framing its lines, and its bounded
// output stream (queued lines, writes in flight, slow readers dropped), closing it.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "proxy/control/control_server_entry.hpp"

namespace finwave::proxy {
namespace {

constexpr std::size_t kMaxBuffersPerWrite = 64;

// A write in flight: libuv needs the bytes until its callback.
struct WriteRequest {
  uv_write_t req{};
  std::vector<std::shared_ptr<const std::string>> lines;
  std::vector<uv_buf_t> buffers;
  std::size_t bytes = 0;
};

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

}  // namespace

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

}  // namespace finwave::proxy
