#pragma once

// What the control server's sources share: private to finwave_control (control_server.cpp,
// control_socket_file.cpp, control_client.cpp, control_dispatch.cpp, control_fanout.cpp).

#include <cstring>
#include <memory>
#include <string>

#include "proxy/control/control_server.hpp"

namespace finwave::proxy {

inline std::string errno_text(int error) { return std::strerror(error); }

/// A line (a newline is added) shared by every client it is sent to.
inline std::shared_ptr<const std::string> shared_line(std::string line) {
  line += '\n';
  return std::make_shared<const std::string>(std::move(line));
}

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

}  // namespace finwave::proxy
