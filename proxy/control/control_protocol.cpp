#include "proxy/control/control_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <vector>

#include "proxy/control/rule_json_toml.hpp"
#include "proxy/report/outcome_json.hpp"
#include "rules/suggest.hpp"

namespace finwave::proxy {
namespace {

constexpr std::uint64_t kMaxLimit = 1'000'000;
constexpr std::size_t kMaxRequestNesting = 32;
constexpr std::uint64_t kDayMs = 24ULL * 3600 * 1000;

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string joined(std::span<const std::string_view> names) {
  std::string out;
  for (const auto name : names) {
    if (!out.empty()) {
      out += ", ";
    }
    out += name;
  }
  return out;
}

ControlError error(ControlErrorCode code, const std::string& message) {
  return ControlError(code, message);
}

}  // namespace

std::vector<std::string_view> control_command_fields(ControlCommand command) {
  switch (command) {
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
    case ControlCommand::kRemove:
      return {"name"};
    case ControlCommand::kAdd:
      return {"toml", "rule", "position", "ttl", "max_hits"};
    case ControlCommand::kFlows:
      return {"limit"};
    case ControlCommand::kOutcomes:
      return {"limit", "since", "rule", "result", "kind", "closer", "flow"};
    case ControlCommand::kSubscribe:
      return {"events", "rule", "result", "kind", "closer", "flow"};
    case ControlCommand::kWait:
      return {"rule", "result", "kind", "closer", "flow", "timeout_ms", "since", "count"};
    case ControlCommand::kStatus:
    case ControlCommand::kRules:
    case ControlCommand::kReload:
    case ControlCommand::kReset:
    case ControlCommand::kUnsubscribe:
    case ControlCommand::kStats:
    case ControlCommand::kMetrics:
    case ControlCommand::kHelp:
      break;
  }
  return {};
}

namespace {

std::string show(const nlohmann::json& value) {
  std::string text = dump_line(value);
  if (text.size() > 80) {
    text.resize(77);
    text += "...";
  }
  return text;
}

std::uint64_t get_uint(const nlohmann::json& object, const char* field, std::uint64_t min,
                       std::uint64_t max) {
  const nlohmann::json& value = object.at(field);
  std::optional<std::uint64_t> number;
  if (value.is_number_unsigned()) {
    number = value.get<std::uint64_t>();
  } else if (value.is_number_float()) {
    const double d = value.get<double>();
    if (d >= 0 && d <= 1e18 && std::floor(d) == d) {
      number = static_cast<std::uint64_t>(d);
    }
  }
  if (!number || *number < min || *number > max) {
    throw error(ControlErrorCode::kBadField, in_quotes(field) + " must be an integer from " +
                                                 std::to_string(min) + " to " +
                                                 std::to_string(max) + "; got " + show(value));
  }
  return *number;
}

// "ttl": seconds, a number above 0 (at least a millisecond) and at most kMaxRuleTtlMs.
std::uint64_t get_ttl_ms(const nlohmann::json& object) {
  const nlohmann::json& value = object.at("ttl");
  const double max_s = static_cast<double>(kMaxRuleTtlMs) / 1000.0;
  if (value.is_number()) {
    const double seconds = value.get<double>();
    if (seconds >= 0.001 && seconds <= max_s) {
      return static_cast<std::uint64_t>(std::llround(seconds * 1000.0));
    }
  }
  throw error(ControlErrorCode::kBadField, "'ttl' must be a number of seconds from 0.001 to " +
                                               std::to_string(static_cast<std::uint64_t>(max_s)) +
                                               " (a day); got " + show(value));
}

std::string get_string(const nlohmann::json& object, const char* field, bool allow_empty) {
  const nlohmann::json& value = object.at(field);
  if (!value.is_string()) {
    throw error(ControlErrorCode::kBadField,
                in_quotes(field) + " must be a string; got " + json_type_name(value));
  }
  std::string text = value.get<std::string>();
  if (!allow_empty && text.empty()) {
    throw error(ControlErrorCode::kBadField, in_quotes(field) + " must not be empty");
  }
  return text;
}

std::string get_choice(const nlohmann::json& object, const char* field,
                       std::span<const std::string_view> choices) {
  std::string text = get_string(object, field, false);
  if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
    std::string message =
        in_quotes(field) + " must be one of " + joined(choices) + "; got " + in_quotes(text);
    if (const auto guess = rules::closest_match(text, choices)) {
      message += " (did you mean " + in_quotes(*guess) + "?)";
    }
    throw error(ControlErrorCode::kBadField, message);
  }
  return text;
}

Since get_since(const nlohmann::json& object) {
  const nlohmann::json& value = object.at("since");
  Since since;
  if (value.is_string()) {
    const std::string text = value.get<std::string>();
    if (text == "rule_change") {
      since.from = Since::From::kRuleChange;
      return since;
    }
    if (text == "now") {
      return since;
    }
  } else if (value.is_number_unsigned()) {
    since.from = Since::From::kSeq;
    since.seq = value.get<std::uint64_t>();
    return since;
  }
  throw error(ControlErrorCode::kBadField,
              "'since' must be an outcome sequence number (an integer from 0), \"rule_change\" "
              "or \"now\"; got " +
                  show(value));
}

void parse_filter(const nlohmann::json& object, OutcomeFilter& filter) {
  if (object.contains("rule")) {
    filter.rule = get_string(object, "rule", false);
  }
  if (object.contains("result")) {
    filter.result = get_choice(object, "result", TeardownResultNames::names());
  }
  if (object.contains("kind")) {
    filter.kind = get_choice(object, "kind", TeardownKindNames::names());
  }
  if (object.contains("closer")) {
    filter.closer = get_choice(object, "closer", CloserNames::names());
  }
  if (object.contains("flow")) {
    const std::string flow = get_string(object, "flow", false);
    if (!filter.set_flow(flow)) {
      throw error(ControlErrorCode::kBadField,
                  "'flow' must be a flow id (17), an endpoint (198.18.1.2:40000, "
                  "[2001:db8:1::2]:40000) or an address (198.18.2.2); got " +
                      in_quotes(flow));
    }
  }
}

std::uint8_t parse_events(const nlohmann::json& object) {
  const nlohmann::json& value = object.at("events");
  std::vector<nlohmann::json> items;
  if (value.is_array()) {
    items.assign(value.begin(), value.end());
  } else {
    items.push_back(value);
  }
  std::uint8_t bits = 0;
  for (const nlohmann::json& item : items) {
    bool known = false;
    if (item.is_string()) {
      const std::string name = item.get<std::string>();
      if (const auto kind = EventKindNames::parse(name)) {
        bits = static_cast<std::uint8_t>(bits | event_bit(*kind));
        known = true;
      }
    }
    if (!known) {
      throw error(ControlErrorCode::kBadField,
                  "'events' must list some of " + EventKindNames::joined() + "; got " + show(item));
    }
  }
  if (bits == 0) {
    throw error(ControlErrorCode::kBadField,
                "'events' must list at least one of " + EventKindNames::joined());
  }
  return bits;
}

// Refuses a field the command does not take: a typo must not be silently ignored.
void check_fields(const nlohmann::json& object, ControlCommand command) {
  const std::vector<std::string_view> allowed = control_command_fields(command);
  for (const auto& item : object.items()) {
    const std::string& key = item.key();
    if (key == "id" || key == "cmd" ||
        std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
      continue;
    }
    std::string message = in_quotes(key) + " is not a field of " + std::string(to_string(command));
    if (const auto guess = rules::closest_match(key, allowed)) {
      message += "; did you mean " + in_quotes(*guess) + "?";
    }
    message += allowed.empty() ? " (it takes none)" : " (it takes " + joined(allowed) + ")";
    throw error(ControlErrorCode::kUnknownField, message);
  }
}

// add: the rule as 'toml' or as 'rule' (exactly one), and where it goes.
void parse_add(const nlohmann::json& object, ControlRequest& request) {
  const bool has_toml = object.contains("toml");
  const bool has_rule = object.contains("rule");
  if (has_toml == has_rule) {
    throw error(has_toml ? ControlErrorCode::kBadField : ControlErrorCode::kMissingField,
                "add takes the rule either as 'toml' (a string) or as 'rule' (an object), "
                "exactly one of them");
  }
  if (has_toml) {
    request.rule_toml = get_string(object, "toml", false);
  } else {
    request.rule_toml = rule_json_to_toml(object.at("rule"));
    request.rule_from_json = true;
  }
  if (object.contains("position")) {
    constexpr std::array<std::string_view, 2> kPositions = {"first", "last"};
    request.add_first = get_choice(object, "position", kPositions) == "first";
  }
  if (object.contains("ttl")) {
    request.ttl_ms = get_ttl_ms(object);
  }
  if (object.contains("max_hits")) {
    request.max_hits = get_uint(object, "max_hits", 1, kMaxRuleHits);
  }
}

void parse_wait(const nlohmann::json& object, ControlRequest& request) {
  parse_filter(object, request.filter);
  if (object.contains("timeout_ms")) {
    request.timeout_ms = get_uint(object, "timeout_ms", 0, kMaxWaitTimeoutMs);
  }
  if (object.contains("since")) {
    request.since = get_since(object);
  }
  if (object.contains("count")) {
    request.count = static_cast<std::uint32_t>(get_uint(object, "count", 1, kMaxWaitCount));
  }
}

void parse_fields(const nlohmann::json& object, ControlRequest& request) {
  check_fields(object, request.command);
  switch (request.command) {
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
    case ControlCommand::kRemove:
      if (!object.contains("name")) {
        throw error(ControlErrorCode::kMissingField, "'name' (the rule's name) is required for " +
                                                         std::string(to_string(request.command)));
      }
      request.name = get_string(object, "name", false);
      break;
    case ControlCommand::kAdd:
      parse_add(object, request);
      break;
    case ControlCommand::kFlows:
    case ControlCommand::kOutcomes:
      if (object.contains("limit")) {
        request.limit = get_uint(object, "limit", 1, kMaxLimit);
      }
      if (request.command == ControlCommand::kOutcomes) {
        if (object.contains("since")) request.since = get_since(object);
        parse_filter(object, request.filter);
      }
      break;
    case ControlCommand::kSubscribe:
      parse_filter(object, request.filter);
      if (object.contains("events")) {
        request.events = parse_events(object);
      }
      break;
    case ControlCommand::kWait:
      parse_wait(object, request);
      break;
    case ControlCommand::kStatus:
    case ControlCommand::kRules:
    case ControlCommand::kReload:
    case ControlCommand::kReset:
    case ControlCommand::kUnsubscribe:
    case ControlCommand::kStats:
    case ControlCommand::kMetrics:
    case ControlCommand::kHelp:
      break;
  }
}

// Deepest nesting of arrays and objects in a JSON text (strings skipped). nlohmann parses
// iteratively but copies and prints recursively: a 64 KiB line of '[' must never get that far.
std::size_t nesting_depth(std::string_view text) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string strip_json_exception_prefix(std::string text) {
  // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
  if (!text.empty() && text[0] == '[') {
    const auto end = text.find("] ");
    if (end != std::string::npos) {
      text.erase(0, end + 2);
    }
  }
  return text;
}

// A TOML basic string. JSON strings arrive as valid UTF-8 (nlohmann checks), which TOML takes as
// is; control characters must be escaped.
}  // namespace

std::string json_type_name(const nlohmann::json& value) {
  if (value.is_number_integer() || value.is_number_unsigned()) {
    return "an integer";
  }
  if (value.is_number_float()) {
    return "a number with a fraction";
  }
  if (value.is_string()) {
    return "a string";
  }
  if (value.is_boolean()) {
    return "a boolean";
  }
  if (value.is_null()) {
    return "null";
  }
  if (value.is_array()) {
    return "an array";
  }
  return "an object";
}

ParsedControlRequest parse_control_request(std::string_view line) {
  ParsedControlRequest parsed;
  ControlRequest& request = parsed.request;
  try {
    nlohmann::json object;
    if (line.find('\0') != std::string_view::npos) {
      // nlohmann's parser stops at a NUL; the rest of the line must not pass unseen.
      throw error(ControlErrorCode::kBadJson, "not a JSON line: it contains a NUL byte");
    }
    if (nesting_depth(line) > kMaxRequestNesting) {
      throw error(ControlErrorCode::kBadJson, "not a JSON line: nested deeper than " +
                                                  std::to_string(kMaxRequestNesting) + " levels");
    }
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      // Not only parse_error: a number beyond a double ("1e400") is out_of_range.406.
      throw error(ControlErrorCode::kBadJson,
                  "not a JSON line: " + strip_json_exception_prefix(e.what()));
    }
    if (!object.is_object()) {
      throw error(ControlErrorCode::kNotAnObject,
                  "a request is a JSON object such as {\"id\":1,\"cmd\":\"status\"}; got " +
                      json_type_name(object));
    }
    if (const auto id = object.find("id"); id != object.end()) {
      request.id = *id;
    }
    const auto cmd = object.find("cmd");
    if (cmd == object.end()) {
      throw error(ControlErrorCode::kMissingField,
                  "'cmd' is required (one of " + ControlCommandNames::joined() + ")");
    }
    if (!cmd->is_string()) {
      throw error(ControlErrorCode::kBadField,
                  "'cmd' must be a string; got " + json_type_name(*cmd));
    }
    const std::string name = cmd->get<std::string>();
    const auto command = ControlCommandNames::parse(name);
    if (!command) {
      std::string message = "unknown command " + in_quotes(name);
      if (const auto guess = rules::closest_match(name, ControlCommandNames::names())) {
        message += "; did you mean " + in_quotes(*guess) + "?";
      }
      message += " (commands: " + ControlCommandNames::joined() + ")";
      throw error(ControlErrorCode::kUnknownCommand, message);
    }
    request.command = *command;
    parse_fields(object, request);
  } catch (const ControlError& e) {
    parsed.error = e;
  } catch (const std::exception& e) {
    parsed.error = error(ControlErrorCode::kInternal, e.what());
  }
  return parsed;
}

std::string dump_line(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string format_control_reply(const nlohmann::json& id, const nlohmann::json& body) {
  // Spliced by hand so that "id" and "ok" come first (nlohmann::json sorts keys).
  std::string line = "{\"id\":" + dump_line(id) + ",\"ok\":true";
  if (body.is_object() && !body.empty()) {
    const std::string rest = dump_line(body);
    line += ',';
    line.append(rest, 1, std::string::npos);  // Without its '{', with its '}'.
  } else {
    line += '}';
  }
  return line;
}

std::string format_control_error(const nlohmann::json& id, ControlErrorCode code,
                                 std::string_view message, const nlohmann::json& extra) {
  nlohmann::json body = extra.is_object() ? extra : nlohmann::json::object();
  body["error"] = {{"code", to_string(code)}, {"message", message}};
  std::string line = format_control_reply(id, body);
  // "ok":true -> "ok":false; the prefix is fixed, so this is the first occurrence.
  const std::string id_part = "{\"id\":" + dump_line(id) + ",\"ok\":";
  line.replace(id_part.size(), 4, "false");
  return line;
}

nlohmann::json outcome_event_json(std::uint64_t seq, const Outcome& outcome) {
  nlohmann::json event = to_json(outcome);
  event["seq"] = seq;
  return event;
}

std::string format_lagged_event(std::uint64_t dropped) {
  return dump_line({{"event", "lagged"},
                    {"dropped", dropped},
                    {"message", "lagged, " + std::to_string(dropped) + " events dropped"}});
}

std::optional<std::uint64_t> parse_duration_ms(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data() || !std::isfinite(value) || value < 0) {
    return std::nullopt;
  }
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  double scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m" || unit == "min") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else {
    return std::nullopt;
  }
  const double ms = std::ceil(value * scale);
  if (ms > static_cast<double>(kDayMs)) {
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(ms);
}

}  // namespace finwave::proxy
