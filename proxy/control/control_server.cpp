// The control server's own life: construction, stop (waits answered, subscribers told,
// clients drained) and the erasure of closed clients.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "proxy/control/control_server_entry.hpp"

namespace finwave::proxy {
namespace {

constexpr std::uint64_t kGraceMs = 1000;

}  // namespace

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

std::uint64_t ControlServer::now_us() const noexcept { return uv_hrtime() / 1000; }

void ControlServer::log(const std::string& message) const noexcept {
  if (!config_.quiet) std::fprintf(stderr, "finwave: control: %s\n", message.c_str());
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

}  // namespace finwave::proxy
