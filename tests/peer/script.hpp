#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace finwave::peer {

/// What one step of a connection script does to the connected socket.
enum class StepKind {
  kSend,            ///< `send:N` — write N bytes of the pattern.
  kRead,            ///< `read:N` — read exactly N bytes, verifying the pattern.
  kReadEof,         ///< `read-eof` — read until EOF, verifying the pattern.
  kShutdown,        ///< `shutdown[:wr|rd|rdwr]` — shutdown(2), SHUT_WR by default (half-close).
  kSleep,           ///< `sleep:MS` — pause; allowed after the socket is closed.
  kAt,              ///< `at:EPOCH_MS` — wait until that wall-clock time; allowed after close.
  kAtNext,          ///< `at-next:PERIOD_MS` — wait until the next wall-clock multiple of the
                    ///< period at least half a period away; allowed after close.
  kHold,            ///< `hold:MS` — keep the socket open doing nothing.
  kWaitFile,        ///< `wait-file:PATH` — wait until PATH exists (a go signal from a test).
  kClose,           ///< `close` — close(2): FIN, or RST if unread data is pending.
  kAbort,           ///< `abort` — SO_LINGER {1, 0} then close(2): RST.
  kWaitRst,         ///< `wait-rst` — read until an error; succeeds only on ECONNRESET.
  kReadUntilError,  ///< `read-until-error` — read until EOF or any error; reports which.
};

/// Which direction `shutdown` closes.
enum class ShutdownHow { kWrite, kRead, kBoth };

/// One parsed step. `count` is bytes for send/read, milliseconds for sleep/hold/at-next and
/// milliseconds since the epoch (CLOCK_REALTIME) for at.
struct Step {
  StepKind kind = StepKind::kClose;
  std::uint64_t count = 0;
  ShutdownHow how = ShutdownHow::kWrite;
  std::string path;  ///< For wait-file.
  std::string text;  ///< The step as written, for messages.
};

using Script = std::vector<Step>;

/// A malformed script: the message names the offending step (1-based) as written.
class ScriptError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses a comma-separated script such as "send:1000,shutdown,read-eof,close".
/// Step names accept '_' for '-'. Throws ScriptError on an unknown step, a missing, extra or
/// malformed argument (`at-next` needs a period of at least 1 ms), an empty step, or a socket
/// step after `close`/`abort` (only `sleep`, `at`, `at-next` and `wait-file` may follow those).
Script parse_script(std::string_view text);

/// Event name reported for a step: "send", "read", "read_eof", "wait_rst", ...
std::string_view event_name(StepKind kind);

/// Help text listing every step, for --help.
std::string script_help();

}  // namespace finwave::peer
