#pragma once

#include <cstdint>

#include "events.hpp"
#include "net.hpp"
#include "script.hpp"

namespace finwave::peer {

/// Byte i of each direction's stream: (i*7+3) mod 251, so a reader can check integrity.
std::uint8_t pattern_byte(std::uint64_t index);

/// What became of one connection.
struct ConnectionResult {
  bool ok = false;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
};

/// Runs `script` on a connected socket (taking ownership), emitting one event per step and a
/// final "done" event for connection number `conn`. A socket still open at the end is closed.
/// The socket must be non-blocking; every blocking step waits at most io_timeout_ms
/// (< 0: no limit) and then fails with ETIMEDOUT. Runs on the calling thread.
ConnectionResult run_script(Fd socket, int conn, const Script& script, EventLog& log,
                            int io_timeout_ms);

}  // namespace finwave::peer
