#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/control/outcome_filter.hpp"
#include "proxy/tracker/outcome.hpp"
#include "rules/vocabulary.hpp"

namespace finwave::proxy {

// The control socket's wire protocol, pure: no I/O, no clock. The server (control_server.hpp)
// and finwavectl share it. The reference for users is README.md, "Control socket and
// finwavectl"; every malformed request and its error code is in
// tests/proxy/control_protocol_test.cpp.
//
// One request per line, a JSON object: {"id": any, "cmd": "status", ...}. Exactly one reply
// per request, {"id": <the same>, "ok": true, ...} or {"id": ..., "ok": false, "error":
// {"code": "...", "message": "..."}}. Subscribers also receive event lines, which carry
// "event" and never "ok".

/// Longest request line the server reads (without its newline). Longer lines are answered with
/// line_too_long and skipped up to their newline.
inline constexpr std::size_t kMaxRequestLineBytes = std::size_t{64} * 1024;

/// The commands of the protocol, by their wire names.
enum class ControlCommand : std::uint8_t {
  kStatus,       ///< "status": version, mode, uptime, rule file, counters.
  kRules,        ///< "rules": the rules in priority order with hit counts.
  kEnable,       ///< "enable" {name}.
  kDisable,      ///< "disable" {name}.
  kAdd,          ///< "add" {toml | rule, position?}.
  kRemove,       ///< "remove" {name}.
  kReload,       ///< "reload": re-read the rule file.
  kReset,        ///< "reset": the rule file's rules as loaded; the rules added over the socket go.
  kFlows,        ///< "flows" {limit?}: live flows and their teardown stage.
  kOutcomes,     ///< "outcomes" {limit?, since?, filter fields}: the most recent outcomes.
  kSubscribe,    ///< "subscribe" {events?, filter fields}: a stream of events.
  kUnsubscribe,  ///< "unsubscribe".
  kWait,         ///< "wait" {filter fields, timeout_ms?, since?, count?}.
  kStats,        ///< "stats": every counter, the kernel's queue counters included.
  kMetrics,      ///< "metrics": the Prometheus text that --metrics serves.
  kHelp,         ///< "help": the commands and their fields.
};

/// The command's wire name ("status", ...): the one table of command names
/// (rules/vocabulary.hpp); "" for a value that is no command.
constexpr std::string_view to_string(ControlCommand command) noexcept {
  switch (command) {
    case ControlCommand::kStatus:
      return "status";
    case ControlCommand::kRules:
      return "rules";
    case ControlCommand::kEnable:
      return "enable";
    case ControlCommand::kDisable:
      return "disable";
    case ControlCommand::kAdd:
      return "add";
    case ControlCommand::kRemove:
      return "remove";
    case ControlCommand::kReload:
      return "reload";
    case ControlCommand::kReset:
      return "reset";
    case ControlCommand::kFlows:
      return "flows";
    case ControlCommand::kOutcomes:
      return "outcomes";
    case ControlCommand::kSubscribe:
      return "subscribe";
    case ControlCommand::kUnsubscribe:
      return "unsubscribe";
    case ControlCommand::kWait:
      return "wait";
    case ControlCommand::kStats:
      return "stats";
    case ControlCommand::kMetrics:
      return "metrics";
    case ControlCommand::kHelp:
      return "help";
  }
  return "";
}
/// Parsing, the list for help and completion.
using ControlCommandNames = rules::Vocabulary<ControlCommand, ControlCommand::kHelp>;
/// The fields `command` takes besides "id" and "cmd".
std::vector<std::string_view> control_command_fields(ControlCommand command);

/// Stable error codes; scripts may rely on them.
enum class ControlErrorCode : std::uint8_t {
  kBadJson,         ///< The line is not valid JSON (or not valid UTF-8).
  kNotAnObject,     ///< Valid JSON, but not an object.
  kMissingField,    ///< A required field is absent ("cmd", "name", ...).
  kBadField,        ///< A field has the wrong type or an out-of-range value.
  kUnknownField,    ///< A field the command does not take (typos are not silently ignored).
  kUnknownCommand,  ///< "cmd" names no command.
  kLineTooLong,     ///< The request line exceeds kMaxRequestLineBytes.
  kUnknownRule,     ///< enable/disable/remove: no rule has that name.
  kRuleExists,      ///< add: the name is taken.
  kInvalidRule,     ///< add: the rule does not validate (message says where and why).
  kNoRuleFile,      ///< reload: finwave was started without --rules.
  kReloadFailed,    ///< reload: the file does not validate; the running rules are kept.
  kTimeout,         ///< wait: nothing matched in time.
  kTooManyClients,  ///< The server is at its client limit; the connection is closed.
  kTooManyWaits,    ///< One client has too many waits in flight.
  kShuttingDown,    ///< finwave is stopping; pending waits end with this.
  kInternal,        ///< A bug or out of memory; the message says what.
};

/// The code's wire name ("bad_json", ...): the one table of error codes
/// (rules/vocabulary.hpp); "" for a value that is no code.
constexpr std::string_view to_string(ControlErrorCode code) noexcept {
  switch (code) {
    case ControlErrorCode::kBadJson:
      return "bad_json";
    case ControlErrorCode::kNotAnObject:
      return "not_an_object";
    case ControlErrorCode::kMissingField:
      return "missing_field";
    case ControlErrorCode::kBadField:
      return "bad_field";
    case ControlErrorCode::kUnknownField:
      return "unknown_field";
    case ControlErrorCode::kUnknownCommand:
      return "unknown_command";
    case ControlErrorCode::kLineTooLong:
      return "line_too_long";
    case ControlErrorCode::kUnknownRule:
      return "unknown_rule";
    case ControlErrorCode::kRuleExists:
      return "rule_exists";
    case ControlErrorCode::kInvalidRule:
      return "invalid_rule";
    case ControlErrorCode::kNoRuleFile:
      return "no_rule_file";
    case ControlErrorCode::kReloadFailed:
      return "reload_failed";
    case ControlErrorCode::kTimeout:
      return "timeout";
    case ControlErrorCode::kTooManyClients:
      return "too_many_clients";
    case ControlErrorCode::kTooManyWaits:
      return "too_many_waits";
    case ControlErrorCode::kShuttingDown:
      return "shutting_down";
    case ControlErrorCode::kInternal:
      return "internal";
  }
  return "";
}
using ControlErrorCodeNames = rules::Vocabulary<ControlErrorCode, ControlErrorCode::kInternal>;

/// An error to be sent back as {"ok": false, "error": {...}}. Thrown by command handlers on the
/// control plane; never crosses a libuv callback.
struct ControlError : std::runtime_error {
  ControlError(ControlErrorCode error_code, const std::string& text)
      : std::runtime_error(text), code(error_code) {}
  ControlErrorCode code;
};

/// What `since` asks for: outcomes with a sequence number above `seq`, or above the sequence
/// number current at the last rule change.
struct Since {
  enum class From : std::uint8_t { kNow, kSeq, kRuleChange };
  From from = From::kNow;
  std::uint64_t seq = 0;
};

/// The events a subscriber can ask for, by the wire name an event line carries in "event".
enum class EventKind : std::uint8_t { kOutcome, kRuleHit, kRuleChange };

/// "outcome", "rule_hit", "rule_change": the one table of event names (rules/vocabulary.hpp).
constexpr std::string_view to_string(EventKind kind) noexcept {
  switch (kind) {
    case EventKind::kOutcome:
      return "outcome";
    case EventKind::kRuleHit:
      return "rule_hit";
    case EventKind::kRuleChange:
      return "rule_change";
  }
  return "";
}
using EventKindNames = rules::Vocabulary<EventKind, EventKind::kRuleChange>;

/// A subscription's events as a bit set: bit i is EventKind i.
constexpr std::uint8_t event_bit(EventKind kind) noexcept {
  return static_cast<std::uint8_t>(1U << static_cast<unsigned>(kind));
}
inline constexpr std::uint8_t kEventOutcome = event_bit(EventKind::kOutcome);
inline constexpr std::uint8_t kEventRuleHit = event_bit(EventKind::kRuleHit);
inline constexpr std::uint8_t kEventRuleChange = event_bit(EventKind::kRuleChange);
inline constexpr std::uint8_t kEventAll = kEventOutcome | kEventRuleHit | kEventRuleChange;

/// A parsed and validated request. Only the fields of its command are set.
struct ControlRequest {
  nlohmann::json id;  ///< Whatever the client sent as "id"; null when absent.
  ControlCommand command = ControlCommand::kStatus;
  std::string name;  ///< enable, disable, remove.
  /// add: the rule as TOML text; a JSON "rule" object is converted to an inline TOML table so
  /// that both go through the rule file's validation (rules::parse_single_rule).
  std::string rule_toml;
  bool rule_from_json = false;  ///< add: the rule came as JSON (error positions are omitted).
  bool add_first = false;       ///< add: "position": "first" (default "last").
  /// add: "ttl" (seconds): the rule goes away this long after it was added.
  std::optional<std::uint64_t> ttl_ms;
  /// add: "max_hits": the rule goes away once it has decided this many segments, over every
  /// connection (and every queue).
  std::optional<std::uint64_t> max_hits;
  std::optional<std::uint64_t> limit;  ///< flows, outcomes.
  Since since;                         ///< outcomes, wait.
  OutcomeFilter filter;                ///< outcomes, wait, subscribe.
  std::uint64_t timeout_ms = 5000;     ///< wait.
  std::uint32_t count = 1;             ///< wait: outcomes to match before replying.
  std::uint8_t events = kEventAll;     ///< subscribe.
};

/// Limits of request fields.
inline constexpr std::uint64_t kMaxWaitTimeoutMs = 24ULL * 3600 * 1000;
inline constexpr std::uint32_t kMaxWaitCount = 100000;
inline constexpr std::uint64_t kMaxRuleTtlMs = 24ULL * 3600 * 1000;
inline constexpr std::uint64_t kMaxRuleHits = 1'000'000'000;

/// The result of parse_control_request(): a request, or the error to send back (with the id,
/// when the line got far enough to have one).
struct ParsedControlRequest {
  ControlRequest request;
  std::optional<ControlError> error;
};

/// Parses one request line (without its newline). Never throws.
ParsedControlRequest parse_control_request(std::string_view line);

/// {"id": id, "ok": true, ...body}; the keys of `body` follow "id" and "ok". One line, no
/// newline; invalid UTF-8 in strings is replaced, never thrown about.
std::string format_control_reply(const nlohmann::json& id, const nlohmann::json& body);

/// {"id": id, "ok": false, "error": {"code": ..., "message": ...}, ...extra}.
std::string format_control_error(const nlohmann::json& id, ControlErrorCode code,
                                 std::string_view message,
                                 const nlohmann::json& extra = nlohmann::json::object());

/// An outcome event: to_json(outcome) with "seq" added.
nlohmann::json outcome_event_json(std::uint64_t seq, const Outcome& outcome);

/// {"event":"lagged","dropped":N,"message":"lagged, N events dropped"}.
std::string format_lagged_event(std::uint64_t dropped);

/// "an integer", "a string", "an object"...: what a value is, for error messages.
std::string json_type_name(const nlohmann::json& value);

/// Any JSON value as one line (no newline), invalid UTF-8 replaced.
std::string dump_line(const nlohmann::json& value);

/// Parses a duration as finwavectl takes it: "5s", "500ms", "1.5s", "2m", "1h", or a bare
/// number of seconds ("10"). Returns milliseconds, or std::nullopt (negative, malformed, over
/// a day).
std::optional<std::uint64_t> parse_duration_ms(std::string_view text);

}  // namespace finwave::proxy
