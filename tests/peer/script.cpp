#include "script.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>

namespace finwave::peer {
namespace {

enum class Arg { kNone, kCount, kMillis, kEpochMillis, kHow, kPath };

struct StepSpec {
  std::string_view name;
  StepKind kind;
  Arg arg;
  bool needs_socket;  // false for the waits (sleep, at, at-next, wait-file): allowed after close
};

constexpr std::array kSpecs{
    StepSpec{"send", StepKind::kSend, Arg::kCount, true},
    StepSpec{"read", StepKind::kRead, Arg::kCount, true},
    StepSpec{"read-eof", StepKind::kReadEof, Arg::kNone, true},
    StepSpec{"shutdown", StepKind::kShutdown, Arg::kHow, true},
    StepSpec{"sleep", StepKind::kSleep, Arg::kMillis, false},
    StepSpec{"at", StepKind::kAt, Arg::kEpochMillis, false},
    StepSpec{"at-next", StepKind::kAtNext, Arg::kMillis, false},
    StepSpec{"hold", StepKind::kHold, Arg::kMillis, true},
    StepSpec{"wait-file", StepKind::kWaitFile, Arg::kPath, false},
    StepSpec{"close", StepKind::kClose, Arg::kNone, true},
    StepSpec{"abort", StepKind::kAbort, Arg::kNone, true},
    StepSpec{"wait-rst", StepKind::kWaitRst, Arg::kNone, true},
    StepSpec{"read-until-error", StepKind::kReadUntilError, Arg::kNone, true},
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  std::uint64_t value = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc{} || ptr != end) {
    return std::nullopt;
  }
  return value;
}

ScriptError step_error(std::size_t index, std::string_view text, const std::string& why) {
  return ScriptError("step " + std::to_string(index) + " '" + std::string(text) + "': " + why);
}

const StepSpec& spec_of(StepKind kind) {
  return *std::find_if(kSpecs.begin(), kSpecs.end(),
                       [&](const StepSpec& s) { return s.kind == kind; });
}

Step parse_step(std::size_t index, std::string_view text) {
  const auto colon = text.find(':');
  std::string name(trim(text.substr(0, colon)));
  std::replace(name.begin(), name.end(), '_', '-');
  const bool has_arg = colon != std::string_view::npos;
  const std::string_view arg = has_arg ? trim(text.substr(colon + 1)) : std::string_view{};

  const auto* spec =
      std::find_if(kSpecs.begin(), kSpecs.end(), [&](const StepSpec& s) { return s.name == name; });
  if (spec == kSpecs.end()) {
    throw step_error(index, text, "unknown step '" + name + "'");
  }

  Step step;
  step.kind = spec->kind;
  step.text = std::string(text);
  switch (spec->arg) {
    case Arg::kNone:
      if (has_arg) {
        throw step_error(index, text, "'" + name + "' takes no argument");
      }
      break;
    case Arg::kCount:
    case Arg::kMillis:
    case Arg::kEpochMillis: {
      const char* unit = spec->arg == Arg::kCount    ? "a byte count"
                         : spec->arg == Arg::kMillis ? "milliseconds"
                                                     : "milliseconds since the epoch";
      if (!has_arg) {
        const char* placeholder = spec->arg == Arg::kEpochMillis ? "EPOCH_MS" : "N";
        throw step_error(index, text,
                         "'" + name + "' needs " + unit + " (" + name + ":" + placeholder + ")");
      }
      const auto value = parse_number(arg);
      if (!value) {
        throw step_error(index, text, "'" + std::string(arg) + "' is not " + unit);
      }
      if (spec->kind == StepKind::kAtNext && *value == 0) {
        throw step_error(index, text, "'at-next' needs a period of at least 1 ms");
      }
      step.count = *value;
      break;
    }
    case Arg::kPath:
      if (arg.empty()) {
        throw step_error(index, text, "'" + name + "' needs a path (" + name + ":PATH)");
      }
      step.path = std::string(arg);
      break;
    case Arg::kHow:
      if (!has_arg || arg == "wr") {
        step.how = ShutdownHow::kWrite;
      } else if (arg == "rd") {
        step.how = ShutdownHow::kRead;
      } else if (arg == "rdwr") {
        step.how = ShutdownHow::kBoth;
      } else {
        throw step_error(index, text,
                         "shutdown takes wr, rd or rdwr, not '" + std::string(arg) + "'");
      }
      break;
  }
  return step;
}

}  // namespace

Script parse_script(std::string_view text) {
  if (trim(text).empty()) {
    throw ScriptError("the script is empty");
  }
  Script script;
  std::optional<std::size_t> closed_at;
  std::size_t index = 0;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    auto end = text.find(',', begin);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string_view raw = trim(text.substr(begin, end - begin));
    ++index;
    if (raw.empty()) {
      throw ScriptError("step " + std::to_string(index) + " is empty");
    }
    Step step = parse_step(index, raw);
    const bool needs_socket = spec_of(step.kind).needs_socket;
    if (closed_at && needs_socket) {
      throw step_error(index, raw,
                       "comes after the socket was closed by step " + std::to_string(*closed_at));
    }
    if (step.kind == StepKind::kClose || step.kind == StepKind::kAbort) {
      closed_at = index;
    }
    script.push_back(std::move(step));
    begin = end + 1;
  }
  return script;
}

std::string_view event_name(StepKind kind) {
  switch (kind) {
    case StepKind::kSend:
      return "send";
    case StepKind::kRead:
      return "read";
    case StepKind::kReadEof:
      return "read_eof";
    case StepKind::kShutdown:
      return "shutdown";
    case StepKind::kSleep:
      return "sleep";
    case StepKind::kAt:
      return "at";
    case StepKind::kAtNext:
      return "at_next";
    case StepKind::kHold:
      return "hold";
    case StepKind::kWaitFile:
      return "wait_file";
    case StepKind::kClose:
      return "close";
    case StepKind::kAbort:
      return "abort";
    case StepKind::kWaitRst:
      return "wait_rst";
    case StepKind::kReadUntilError:
      return "read_until_error";
  }
  return "unknown";
}

std::string script_help() {
  return R"(Script steps (--script, comma-separated, run in order on each connected socket):
  send:N               write N bytes; byte i of a stream is (i*7+3) mod 251
  read:N               read exactly N bytes and verify them (fails on EOF or error)
  read-eof             read until EOF, verifying the pattern (reports bytes, intact)
  shutdown[:wr|rd|rdwr]  shutdown(2), SHUT_WR by default: half-close, sends FIN
  sleep:MS             pause MS milliseconds (also allowed after close/abort)
  at:EPOCH_MS          wait until this wall-clock time, in ms since the epoch (CLOCK_REALTIME),
                       to within a few microseconds (also allowed after close/abort); two peers
                       given the same time act together, e.g. "at:T,shutdown" on both ends for
                       a simultaneous close. Reports late_us (how late it woke; large if the
                       time had already passed)
  at-next:PERIOD_MS    like at, for the next wall-clock multiple of PERIOD_MS that is at least
                       PERIOD_MS/2 away: peers that reach this step within a few ms of each
                       other (both ends of a new connection) act together, connection after
                       connection (they part only if they straddle a half-period mark)
  hold:MS              keep the socket open doing nothing for MS milliseconds
  wait-file:PATH       wait until PATH exists: a test's go signal to every peer at once, e.g.
                       "once finwave runs, close" (fails after --io-timeout; also allowed
                       after close/abort; PATH may not contain ',')
  close                close(2)
  abort                SO_LINGER {1,0} then close(2): the kernel sends RST
  wait-rst             read until the peer resets; ok only on ECONNRESET
  read-until-error     read until EOF or any error; reports which (ok unless timeout)
A socket still open when the script ends is closed. A failed step ends the script.
Defaults: server "read-eof,close"; client "send:1000,shutdown,read-eof,close".
Output: one JSON object per line per event, then a "summary" line (only that with --quiet).
Exit status: 0 when every connection's script succeeded, 1 otherwise, 2 on a usage error.
)";
}

}  // namespace finwave::peer
