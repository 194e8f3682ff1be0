#include <arpa/inet.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "netfilter/packet.hpp"
#include "proxy/report/outcome_json.hpp"

namespace finwave::proxy {
namespace {

using Json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::invalid_argument(path + ": " + problem);
}

// A user's text quoted for an error message, cut short so one bad field cannot flood a terminal.
std::string shown(std::string_view text) {
  constexpr std::size_t kMax = 60;
  const bool cut = text.size() > kMax;
  std::string shown =
      Json(std::string(text.substr(0, kMax))).dump(-1, ' ', false, Json::error_handler_t::replace);
  return cut ? shown + "..." : shown;
}

// "a string", "an object": what the value is, for "expected X, got Y".
std::string kind_of(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_float:
      return "the number " + value.dump();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "the integer " + value.dump();
    default:
      return "a " + std::string(value.type_name());
  }
}

[[noreturn]] void wrong_type(const std::string& path, std::string_view expected,
                             const Json& value) {
  fail(path, "expected " + std::string(expected) + ", got " + kind_of(value));
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

const Json& object_at(const Json& value, const std::string& path) {
  if (!value.is_object()) wrong_type(path, "an object", value);
  return value;
}

// `object` has been checked to be an object.
const Json& member(const Json& object, const std::string& path, std::string_view key) {
  const auto it = object.find(key);
  if (it == object.end()) fail(join(path, key), "missing");
  return *it;
}

const Json* optional_member(const Json& object, std::string_view key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::uint64_t get_unsigned(const Json& value, const std::string& path, std::uint64_t max) {
  std::uint64_t number = 0;
  if (value.is_number_unsigned()) {
    number = value.get<std::uint64_t>();
  } else if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    // Built in code rather than parsed, a non-negative integer may be stored signed.
    number = static_cast<std::uint64_t>(value.get<std::int64_t>());
  } else {
    wrong_type(path, "an unsigned integer", value);
  }
  if (number > max) fail(path, "out of range: " + value.dump() + " > " + std::to_string(max));
  return number;
}

std::uint32_t get_u32(const Json& value, const std::string& path) {
  return static_cast<std::uint32_t>(
      get_unsigned(value, path, std::numeric_limits<std::uint32_t>::max()));
}

bool get_bool(const Json& value, const std::string& path) {
  if (!value.is_boolean()) wrong_type(path, "a boolean", value);
  return value.get<bool>();
}

const std::string& get_string(const Json& value, const std::string& path) {
  if (!value.is_string()) wrong_type(path, "a string", value);
  return value.get_ref<const std::string&>();
}

// Milliseconds with microsecond precision, as to_json() writes them, back to microseconds.
std::int64_t get_ms_as_us(const Json& value, const std::string& path) {
  if (!value.is_number()) wrong_type(path, "a number of milliseconds", value);
  const double ms = value.get<double>();
  // About 31 years: far beyond any linger window, and well inside int64 microseconds.
  constexpr double kMaxMs = 1e12;
  if (!std::isfinite(ms) || std::fabs(ms) > kMaxMs) {
    fail(path, "out of range: " + value.dump() + " ms");
  }
  return std::llround(ms * 1000.0);
}

// `Names` is the enum's vocabulary (rules/vocabulary.hpp): the names to_json() writes.
template <class Names>
auto get_enum(const Json& value, const std::string& path) {
  const std::string& text = get_string(value, path);
  const auto parsed = Names::parse(text);
  if (!parsed) {
    fail(path, "unknown value " + shown(text) + " (expected one of " + Names::joined() + ")");
  }
  return *parsed;
}

rules::Role get_role(const Json& value, const std::string& path, bool any_allowed) {
  const std::string& text = get_string(value, path);
  const std::optional<rules::Role> role = rules::RoleNames::parse(text);
  if (!role || (*role == rules::Role::kAny && !any_allowed)) {
    fail(path,
         "unknown role " + shown(text) + " (expected one of " + rules::RoleNames::joined() + ")");
  }
  return *role;
}

rules::Endpoint get_endpoint(const Json& value, const std::string& path) {
  const std::string& text = get_string(value, path);
  const std::optional<rules::Endpoint> endpoint = endpoint_from_string(text);
  if (!endpoint) {
    fail(path, "expected \"address:port\" or \"[IPv6 address]:port\", got " + shown(text));
  }
  return *endpoint;
}

// tcpdump's letters as nf::flags_to_string() writes them ("F.", "R", "none").
std::uint8_t get_flags(const Json& value, const std::string& path) {
  const std::string& text = get_string(value, path);
  if (text.empty()) fail(path, "empty (no flags is written \"none\")");
  const std::optional<std::uint8_t> flags = nf::flags_from_string(text);
  if (!flags) {
    // Name the first letter that is not a flag.
    std::string letter;
    for (const char c : text) {
      if (!nf::flags_from_string(std::string_view(&c, 1))) {
        letter.assign(1, c);
        break;
      }
    }
    fail(path, "unknown flag letter " + shown(letter) + " in " + shown(text) +
                   " (expected letters of FSRPUEW.)");
  }
  return *flags;
}

bool optional_bool(const Json& object, const std::string& path, std::string_view key,
                   bool fallback) {
  const Json* value = optional_member(object, key);
  return value == nullptr ? fallback : get_bool(*value, join(path, key));
}

std::uint32_t optional_u32(const Json& object, const std::string& path, std::string_view key,
                           std::uint32_t fallback) {
  const Json* value = optional_member(object, key);
  return value == nullptr ? fallback : get_u32(*value, join(path, key));
}

std::uint32_t u32_at(const Json& object, const std::string& path, std::string_view key) {
  return get_u32(member(object, path, key), join(path, key));
}

TimelineEntry get_timeline_entry(const Json& value, const std::string& path) {
  const Json& j = object_at(value, path);
  TimelineEntry e;
  e.t_us = get_ms_as_us(member(j, path, "t_ms"), join(path, "t_ms"));
  e.from = get_enum<rules::SideNames>(member(j, path, "from"), join(path, "from"));
  e.role = get_role(member(j, path, "role"), join(path, "role"), false);
  e.retx = get_bool(member(j, path, "retx"), join(path, "retx"));
  e.dup_ack = optional_bool(j, path, "dup_ack", false);
  e.bogus = optional_bool(j, path, "bogus", false);
  e.flags = get_flags(member(j, path, "flags"), join(path, "flags"));
  e.seq = u32_at(j, path, "seq");
  e.ack = u32_at(j, path, "ack");
  e.len = u32_at(j, path, "len");
  e.verdict = get_enum<VerdictNames>(member(j, path, "verdict"), join(path, "verdict"));
  if (const Json* hold = optional_member(j, "hold_ms")) {
    e.hold_ms = get_u32(*hold, join(path, "hold_ms"));
  }
  // `released` qualifies `hold_ms` and to_json() writes it only with it; alone it says nothing,
  // and keeping it would make an outcome that does not survive a write and a read.
  const bool released = optional_bool(j, path, "released", false);
  e.released = e.hold_ms.has_value() && released;
  if (const Json* copies = optional_member(j, "copies")) {
    e.copies = static_cast<std::uint16_t>(
        get_unsigned(*copies, join(path, "copies"), std::numeric_limits<std::uint16_t>::max()));
  }
  return e;
}

ActionRecord get_action(const Json& value, const std::string& path) {
  const Json& j = object_at(value, path);
  ActionRecord a;
  a.rule = get_string(member(j, path, "rule"), join(path, "rule"));
  a.role = get_role(member(j, path, "role"), join(path, "role"), true);
  a.action = get_enum<VerdictNames>(member(j, path, "action"), join(path, "action"));
  a.count = u32_at(j, path, "count");
  return a;
}

const Json& array_at(const Json& object, const std::string& path, std::string_view key) {
  const Json& value = member(object, path, key);
  if (!value.is_array()) wrong_type(join(path, key), "an array", value);
  return value;
}

std::string indexed(std::string_view key, std::size_t i) {
  return std::string(key) + "[" + std::to_string(i) + "]";
}

}  // namespace

Outcome outcome_from_json(const Json& json) {
  const std::string root;
  if (!json.is_object()) wrong_type("outcome", "a JSON object", json);
  const std::string& event = get_string(member(json, root, "event"), "event");
  if (event != "outcome") fail("event", "expected \"outcome\", got " + shown(event));

  Outcome o;
  if (const Json* id = optional_member(json, "id")) {
    o.id = get_unsigned(*id, "id", std::numeric_limits<std::uint64_t>::max());
  }
  const Json& flow = object_at(member(json, root, "flow"), "flow");
  o.client = get_endpoint(member(flow, "flow", "client"), "flow.client");
  o.server = get_endpoint(member(flow, "flow", "server"), "flow.server");
  o.sides_known = optional_bool(json, root, "sides_known", true);
  o.closer = get_enum<CloserNames>(member(json, root, "closer"), "closer");
  o.kind = get_enum<TeardownKindNames>(member(json, root, "kind"), "kind");
  o.result = get_enum<TeardownResultNames>(member(json, root, "result"), "result");
  if (const Json* ended_by = optional_member(json, "ended_by")) {
    o.ended_by = get_enum<EndReasonNames>(*ended_by, "ended_by");
  }

  const Json& fin_retx = object_at(member(json, root, "fin_retransmits"), "fin_retransmits");
  o.fin_retransmits_client = u32_at(fin_retx, "fin_retransmits", "client");
  o.fin_retransmits_server = u32_at(fin_retx, "fin_retransmits", "server");
  const Json& final_acks = object_at(member(json, root, "final_acks"), "final_acks");
  o.final_acks_seen = u32_at(final_acks, "final_acks", "seen");
  o.final_acks_dropped = u32_at(final_acks, "final_acks", "dropped");

  const Json& rst = member(json, root, "rst");
  if (!rst.is_null()) {
    if (!rst.is_object()) wrong_type("rst", "null or an object", rst);
    RstInfo info;
    info.from = get_enum<rules::SideNames>(member(rst, "rst", "from"), "rst.from");
    info.stage = get_enum<StageNames>(member(rst, "rst", "stage"), "rst.stage");
    info.answers_fin_retransmit = optional_bool(rst, "rst", "answers_fin_retransmit", false);
    o.rst = info;
  }

  o.teardown_us = get_ms_as_us(member(json, root, "teardown_ms"), "teardown_ms");
  if (const Json* data = optional_member(json, "data_after_fin")) {
    object_at(*data, "data_after_fin");
    o.data_after_fin_bytes =
        get_unsigned(member(*data, "data_after_fin", "bytes"), "data_after_fin.bytes",
                     std::numeric_limits<std::uint64_t>::max());
  }
  o.dup_acks = optional_u32(json, root, "dup_acks", 0);
  o.segments = optional_u32(json, root, "segments", 0);

  const Json& actions = array_at(json, root, "actions");
  o.actions.reserve(actions.size());
  for (std::size_t i = 0; i < actions.size(); ++i) {
    o.actions.push_back(get_action(actions[i], indexed("actions", i)));
  }
  o.actions_dropped = optional_u32(json, root, "actions_dropped", 0);
  o.incomplete = optional_bool(json, root, "incomplete", false);

  const Json& timeline = array_at(json, root, "timeline");
  o.timeline.reserve(timeline.size());
  for (std::size_t i = 0; i < timeline.size(); ++i) {
    o.timeline.push_back(get_timeline_entry(timeline[i], indexed("timeline", i)));
  }
  o.timeline_dropped = optional_u32(json, root, "timeline_dropped", 0);
  return o;
}

Outcome outcome_from_json_line(std::string_view json_line) {
  Json json;
  try {
    json = Json::parse(json_line);
  } catch (const Json::exception& error) {
    // Mostly parse_error; a number beyond double ("1e400") is out_of_range.406, also not JSON
    // we can read. nlohmann prefixes "[json.exception.parse_error.101] "; the rest is the
    // useful part.
    std::string what = error.what();
    const std::size_t bracket = what.find("] ");
    if (!what.empty() && what.front() == '[' && bracket != std::string::npos) {
      what.erase(0, bracket + 2);
    }
    throw std::invalid_argument("not JSON: " + what);
  }
  return outcome_from_json(json);
}

}  // namespace finwave::proxy
