#include "proxy/control/control_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <vector>

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
      return {"toml", "rule", "position"};
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
    case ControlCommand::kUnsubscribe:
    case ControlCommand::kStats:
    case ControlCommand::kHelp:
      break;
  }
  return {};
}

namespace {

std::string type_name(const nlohmann::json& value) {
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

std::string get_string(const nlohmann::json& object, const char* field, bool allow_empty) {
  const nlohmann::json& value = object.at(field);
  if (!value.is_string()) {
    throw error(ControlErrorCode::kBadField,
                in_quotes(field) + " must be a string; got " + type_name(value));
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

void parse_fields(const nlohmann::json& object, ControlRequest& request) {
  const std::vector<std::string_view> allowed = control_command_fields(request.command);
  for (const auto& item : object.items()) {
    const std::string& key = item.key();
    if (key == "id" || key == "cmd" ||
        std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
      continue;
    }
    std::string message =
        in_quotes(key) + " is not a field of " + std::string(to_string(request.command));
    if (const auto guess = rules::closest_match(key, allowed)) {
      message += "; did you mean " + in_quotes(*guess) + "?";
    }
    message += allowed.empty() ? " (it takes none)" : " (it takes " + joined(allowed) + ")";
    throw error(ControlErrorCode::kUnknownField, message);
  }

  const std::string command_name(to_string(request.command));
  switch (request.command) {
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
    case ControlCommand::kRemove:
      if (!object.contains("name")) {
        throw error(ControlErrorCode::kMissingField,
                    "'name' (the rule's name) is required for " + command_name);
      }
      request.name = get_string(object, "name", false);
      break;
    case ControlCommand::kAdd: {
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
      break;
    }
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
      break;
    case ControlCommand::kStatus:
    case ControlCommand::kRules:
    case ControlCommand::kReload:
    case ControlCommand::kUnsubscribe:
    case ControlCommand::kStats:
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
std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(byte));
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string toml_key(const std::string& key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return bare ? key : toml_string(key);
}

std::string toml_scalar(const std::string& key, const nlohmann::json& value, bool in_array) {
  if (value.is_string()) {
    return toml_string(value.get<std::string>());
  }
  if (value.is_boolean()) {
    return value.get<bool>() ? "true" : "false";
  }
  if (value.is_number()) {
    // nlohmann prints integers without a point and floats with one (or an exponent), which is
    // what TOML needs to tell them apart.
    return value.dump();
  }
  throw error(ControlErrorCode::kInvalidRule,
              "rule key " + in_quotes(key) + " cannot be " + type_name(value) +
                  (in_array ? " inside an array" : "") +
                  "; rule values are strings, numbers, booleans or arrays of them");
}

bool same_address(const rules::Endpoint& a, const rules::Endpoint& b) {
  return a.family == b.family && a.address == b.address;
}

}  // namespace

bool OutcomeFilter::empty() const noexcept {
  return rule.empty() && result.empty() && kind.empty() && closer.empty() && flow.empty();
}

bool OutcomeFilter::set_flow(std::string_view text) {
  if (text.empty()) {
    flow_id_.reset();
    flow_port_ = 0;
    flow.clear();
    return true;
  }
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec == std::errc() && end == text.data() + text.size()) {
    flow_id_ = id;
    flow_port_ = 0;
    flow = std::string(text);
    return true;
  }
  // An address matches either side; an endpoint needs a connection's port, never 0.
  std::optional<rules::Endpoint> endpoint = address_from_string(text);
  if (!endpoint) {
    endpoint = endpoint_from_string(text);
    if (!endpoint || endpoint->port == 0) return false;
  }
  flow_id_.reset();
  flow_address_ = *endpoint;
  flow_port_ = endpoint->port;
  flow = std::string(text);
  return true;
}

bool OutcomeFilter::matches_flow(std::uint64_t flow_id, const rules::Endpoint& client,
                                 const rules::Endpoint& server) const {
  if (flow.empty()) {
    return true;
  }
  if (flow_id_) {
    return *flow_id_ == flow_id;
  }
  for (const rules::Endpoint* side : {&client, &server}) {
    if (same_address(*side, flow_address_) && (flow_port_ == 0 || side->port == flow_port_)) {
      return true;
    }
  }
  return false;
}

bool OutcomeFilter::matches(const Outcome& outcome) const {
  if (!result.empty() && to_string(outcome.result) != result) {
    return false;
  }
  if (!kind.empty() && to_string(outcome.kind) != kind) {
    return false;
  }
  if (!closer.empty() && to_string(outcome.closer) != closer) {
    return false;
  }
  if (!rule.empty() && std::none_of(outcome.actions.begin(), outcome.actions.end(),
                                    [&](const ActionRecord& a) { return a.rule == rule; })) {
    return false;
  }
  return matches_flow(outcome.id, outcome.client, outcome.server);
}

nlohmann::json OutcomeFilter::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  const std::pair<const char*, const std::string*> fields[] = {
      {"rule", &rule}, {"result", &result}, {"kind", &kind}, {"closer", &closer}, {"flow", &flow}};
  for (const auto& [key, value] : fields) {
    if (!value->empty()) {
      out[key] = *value;
    }
  }
  return out;
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
                      type_name(object));
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
      throw error(ControlErrorCode::kBadField, "'cmd' must be a string; got " + type_name(*cmd));
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

std::string rule_json_to_toml(const nlohmann::json& rule) {
  if (!rule.is_object()) {
    throw error(ControlErrorCode::kBadField,
                "'rule' must be an object such as {\"name\":\"x\",\"role\":\"fin1\","
                "\"action\":\"drop\"}; got " +
                    type_name(rule));
  }
  std::string out = "{ ";
  bool first = true;
  for (const auto& item : rule.items()) {
    if (!first) {
      out += ", ";
    }
    first = false;
    out += toml_key(item.key());
    out += " = ";
    const nlohmann::json& value = item.value();
    if (value.is_array()) {
      out += '[';
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i != 0) {
          out += ", ";
        }
        out += toml_scalar(item.key(), value[i], true);
      }
      out += ']';
    } else {
      out += toml_scalar(item.key(), value, false);
    }
  }
  out += first ? "}" : " }";
  return out;
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

void LineFramer::append(std::string_view bytes) {
  if (discarding_) {
    const auto newline = bytes.find('\n');
    if (newline == bytes.npos) {
      return;
    }
    discarding_ = false;
    bytes.remove_prefix(newline + 1);
  }
  if (start_ > 0 && start_ >= buffer_.size() / 2) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(bytes);
}

LineFramer::Next LineFramer::next(std::string& line) {
  const std::size_t pending = buffer_.size() - start_;
  const auto newline = buffer_.find('\n', start_ + scan_);
  if (newline == std::string::npos) {
    scan_ = pending;
    // A trailing '\r' may still be followed by its '\n'.
    if (pending > max_line_ + 1 || (pending > max_line_ && buffer_.back() != '\r')) {
      buffer_.clear();
      start_ = 0;
      scan_ = 0;
      discarding_ = !finished_;
      return Next::kTooLong;
    }
    if (finished_ && pending > 0) {
      std::size_t length = pending;
      if (buffer_.back() == '\r') {
        --length;
      }
      line.assign(buffer_, start_, length);
      buffer_.clear();
      start_ = 0;
      scan_ = 0;
      return Next::kLine;
    }
    return Next::kNone;
  }
  std::size_t length = newline - start_;
  if (length > 0 && buffer_[newline - 1] == '\r') {
    --length;
  }
  const std::size_t begin = start_;
  start_ = newline + 1;
  scan_ = 0;
  if (length > max_line_) {
    return Next::kTooLong;
  }
  line.assign(buffer_, begin, length);
  return Next::kLine;
}

}  // namespace finwave::proxy
