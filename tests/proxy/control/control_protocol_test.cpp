#include "proxy/control/control_protocol.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rules/config_error.hpp"
#include "rules/rule_loader.hpp"

namespace finwave::proxy::test {
namespace {

using Json = nlohmann::json;

struct BadRequest {
  std::string line;
  ControlErrorCode code;
  std::string message_part;  // A piece of the message that must be there.
  Json id = nullptr;         // The id the error must echo.
};

// Every malformed request the tests can think of, with the code it must get.
const std::vector<BadRequest> kBadRequests = {
    // Not JSON at all.
    {"hello", ControlErrorCode::kBadJson, "not a JSON line"},
    {"{", ControlErrorCode::kBadJson, "not a JSON line"},
    {R"({"id":1,"cmd":"status")", ControlErrorCode::kBadJson, "not a JSON line"},
    {R"({"id":1,"cmd":"status"} trailing)", ControlErrorCode::kBadJson, "not a JSON line"},
    {R"({'id':1,'cmd':'status'})", ControlErrorCode::kBadJson, "not a JSON line"},
    {R"({"id":1e400,"cmd":"status"})", ControlErrorCode::kBadJson, "not a JSON line"},
    {R"({"id":1,"cmd":"status",})", ControlErrorCode::kBadJson, "not a JSON line"},
    {"{\"cmd\":\"st\xff\xfe\"}", ControlErrorCode::kBadJson, "not a JSON line"},
    {std::string("{\"cmd\":\"status\"}\0", 17), ControlErrorCode::kBadJson, "not a JSON line"},
    {"\x1b[A", ControlErrorCode::kBadJson, "not a JSON line"},
    // JSON, but not an object.
    {"[]", ControlErrorCode::kNotAnObject, "got an array"},
    {R"("status")", ControlErrorCode::kNotAnObject, "got a string"},
    {"42", ControlErrorCode::kNotAnObject, "got an integer"},
    {"null", ControlErrorCode::kNotAnObject, "got null"},
    {"true", ControlErrorCode::kNotAnObject, "got a boolean"},
    {R"([{"cmd":"status"}])", ControlErrorCode::kNotAnObject, "JSON object"},
    // The command.
    {"{}", ControlErrorCode::kMissingField, "'cmd' is required"},
    {R"({"id":7})", ControlErrorCode::kMissingField, "'cmd' is required", 7},
    {R"({"id":"a","cmd":null})", ControlErrorCode::kBadField, "'cmd' must be a string", "a"},
    {R"({"id":1,"cmd":5})", ControlErrorCode::kBadField, "got an integer", 1},
    {R"({"id":1,"cmd":["status"]})", ControlErrorCode::kBadField, "got an array", 1},
    {R"({"id":1,"cmd":""})", ControlErrorCode::kUnknownCommand, "unknown command ''", 1},
    {R"({"id":1,"cmd":"statuss"})", ControlErrorCode::kUnknownCommand, "did you mean 'status'?", 1},
    {R"({"id":1,"cmd":"STATUS"})", ControlErrorCode::kUnknownCommand, "did you mean 'status'?", 1},
    {R"({"id":1,"cmd":"shutdown"})", ControlErrorCode::kUnknownCommand, "commands: status", 1},
    // Fields a command does not take.
    {R"({"id":1,"cmd":"status","verbose":true})", ControlErrorCode::kUnknownField,
     "'verbose' is not a field of status (it takes none)", 1},
    {R"({"id":1,"cmd":"wait","timout_ms":5})", ControlErrorCode::kUnknownField,
     "did you mean 'timeout_ms'?", 1},
    {R"({"id":1,"cmd":"enable","rule":"x"})", ControlErrorCode::kUnknownField,
     "'rule' is not a field of enable (it takes name)", 1},
    // reset takes no name: it puts back every rule at once.
    {R"({"id":1,"cmd":"reset","name":"x"})", ControlErrorCode::kUnknownField,
     "'name' is not a field of reset (it takes none)", 1},
    {R"({"id":1,"cmd":"rest"})", ControlErrorCode::kUnknownCommand, "did you mean 'reset'?", 1},
    // enable / disable / remove.
    {R"({"id":1,"cmd":"enable"})", ControlErrorCode::kMissingField, "'name'", 1},
    {R"({"id":1,"cmd":"disable"})", ControlErrorCode::kMissingField, "required for disable", 1},
    {R"({"id":1,"cmd":"remove"})", ControlErrorCode::kMissingField, "required for remove", 1},
    {R"({"id":1,"cmd":"enable","name":""})", ControlErrorCode::kBadField, "must not be empty", 1},
    {R"({"id":1,"cmd":"enable","name":7})", ControlErrorCode::kBadField, "must be a string", 1},
    {R"({"id":1,"cmd":"enable","name":null})", ControlErrorCode::kBadField, "got null", 1},
    // add.
    {R"({"id":1,"cmd":"add"})", ControlErrorCode::kMissingField, "exactly one of them", 1},
    {R"({"id":1,"cmd":"add","toml":"x = 1","rule":{}})", ControlErrorCode::kBadField,
     "exactly one of them", 1},
    {R"({"id":1,"cmd":"add","toml":""})", ControlErrorCode::kBadField, "must not be empty", 1},
    {R"({"id":1,"cmd":"add","toml":5})", ControlErrorCode::kBadField, "must be a string", 1},
    {R"({"id":1,"cmd":"add","rule":"name = 'x'"})", ControlErrorCode::kBadField,
     "'rule' must be an object", 1},
    {R"({"id":1,"cmd":"add","rule":{"name":"x","ports":{"a":1}}})", ControlErrorCode::kInvalidRule,
     "rule key 'ports' cannot be an object", 1},
    {R"({"id":1,"cmd":"add","rule":{"name":null}})", ControlErrorCode::kInvalidRule,
     "cannot be null", 1},
    {R"({"id":1,"cmd":"add","rule":{"ports":[[1]]}})", ControlErrorCode::kInvalidRule,
     "inside an array", 1},
    // add's lifetimes: ttl in seconds above 0 up to a day, max_hits an integer from 1.
    {R"({"id":1,"cmd":"add","toml":"x","ttl":0})", ControlErrorCode::kBadField,
     "'ttl' must be a number of seconds from 0.001 to 86400 (a day); got 0", 1},
    {R"({"id":1,"cmd":"add","toml":"x","ttl":-5})", ControlErrorCode::kBadField, "got -5", 1},
    {R"({"id":1,"cmd":"add","toml":"x","ttl":0.0001})", ControlErrorCode::kBadField,
     "'ttl' must be a number of seconds", 1},
    {R"({"id":1,"cmd":"add","toml":"x","ttl":86401})", ControlErrorCode::kBadField, "got 86401", 1},
    {R"({"id":1,"cmd":"add","toml":"x","ttl":"5s"})", ControlErrorCode::kBadField, "got \"5s\"", 1},
    {R"({"id":1,"cmd":"add","toml":"x","ttl":true})", ControlErrorCode::kBadField, "got true", 1},
    {R"({"id":1,"cmd":"add","toml":"x","ttl":null})", ControlErrorCode::kBadField, "got null", 1},
    {R"({"id":1,"cmd":"add","toml":"x","max_hits":0})", ControlErrorCode::kBadField,
     "'max_hits' must be an integer from 1 to 1000000000; got 0", 1},
    {R"({"id":1,"cmd":"add","toml":"x","max_hits":-1})", ControlErrorCode::kBadField, "got -1", 1},
    {R"({"id":1,"cmd":"add","toml":"x","max_hits":1.5})", ControlErrorCode::kBadField, "got 1.5",
     1},
    {R"({"id":1,"cmd":"add","toml":"x","max_hits":"3"})", ControlErrorCode::kBadField, "got \"3\"",
     1},
    {R"({"id":1,"cmd":"add","toml":"x","max_hits":1000000001})", ControlErrorCode::kBadField,
     "got 1000000001", 1},
    {R"({"id":1,"cmd":"remove","name":"x","ttl":5})", ControlErrorCode::kUnknownField,
     "'ttl' is not a field of remove", 1},
    {R"({"id":1,"cmd":"add","toml":"x","position":"middle"})", ControlErrorCode::kBadField,
     "'position' must be one of first, last", 1},
    // flows / outcomes.
    {R"({"id":1,"cmd":"flows","limit":0})", ControlErrorCode::kBadField, "from 1 to", 1},
    {R"({"id":1,"cmd":"flows","limit":-5})", ControlErrorCode::kBadField, "got -5", 1},
    {R"({"id":1,"cmd":"flows","limit":1.5})", ControlErrorCode::kBadField, "got 1.5", 1},
    {R"({"id":1,"cmd":"flows","limit":"10"})", ControlErrorCode::kBadField, "got \"10\"", 1},
    {R"({"id":1,"cmd":"outcomes","limit":99999999999})", ControlErrorCode::kBadField,
     "from 1 to 1000000", 1},
    {R"({"id":1,"cmd":"outcomes","since":-1})", ControlErrorCode::kBadField, "'since' must be", 1},
    {R"({"id":1,"cmd":"outcomes","since":"yesterday"})", ControlErrorCode::kBadField,
     "\"rule_change\"", 1},
    {R"({"id":1,"cmd":"outcomes","flow":"198.18.1.2:"})", ControlErrorCode::kBadField,
     "'flow' must be a flow id (17)", 1},
    {R"({"id":1,"cmd":"outcomes","kind":"five_way"})", ControlErrorCode::kBadField,
     "'kind' must be one of", 1},
    {R"({"id":1,"cmd":"outcomes","events":"outcome"})", ControlErrorCode::kUnknownField,
     "(it takes limit, since, rule, result, kind, closer, flow)", 1},
    // wait.
    {R"({"id":1,"cmd":"wait","result":"lost"})", ControlErrorCode::kBadField,
     "'result' must be one of clean, reset, timeout; got 'lost'", 1},
    {R"({"id":1,"cmd":"wait","result":"clen"})", ControlErrorCode::kBadField,
     "did you mean 'clean'?", 1},
    {R"({"id":1,"cmd":"wait","kind":"4way"})", ControlErrorCode::kBadField, "'kind' must be", 1},
    {R"({"id":1,"cmd":"wait","closer":"us"})", ControlErrorCode::kBadField, "'closer' must", 1},
    {R"({"id":1,"cmd":"wait","rule":""})", ControlErrorCode::kBadField, "must not be empty", 1},
    {R"({"id":1,"cmd":"wait","flow":"example.com"})", ControlErrorCode::kBadField,
     "'flow' must be a flow id", 1},
    {R"({"id":1,"cmd":"wait","flow":"198.18.1.2:0"})", ControlErrorCode::kBadField,
     "'flow' must be", 1},
    {R"({"id":1,"cmd":"wait","flow":"198.18.1.2:70000"})", ControlErrorCode::kBadField,
     "'flow' must be", 1},
    {R"({"id":1,"cmd":"wait","flow":"2001:db8::2:5000x"})", ControlErrorCode::kBadField,
     "'flow' must be", 1},
    {R"({"id":1,"cmd":"wait","flow":"[198.18.1.2]:5000"})", ControlErrorCode::kBadField,
     "'flow' must be", 1},
    {R"({"id":1,"cmd":"wait","timeout_ms":-1})", ControlErrorCode::kBadField, "timeout_ms", 1},
    {R"({"id":1,"cmd":"wait","timeout_ms":"5s"})", ControlErrorCode::kBadField, "timeout_ms", 1},
    {R"({"id":1,"cmd":"wait","timeout_ms":86400001})", ControlErrorCode::kBadField,
     "from 0 to 86400000", 1},
    {R"({"id":1,"cmd":"wait","count":0})", ControlErrorCode::kBadField, "'count'", 1},
    {R"({"id":1,"cmd":"wait","since":true})", ControlErrorCode::kBadField, "'since'", 1},
    // subscribe.
    {R"({"id":1,"cmd":"subscribe","events":[]})", ControlErrorCode::kBadField, "at least one", 1},
    {R"({"id":1,"cmd":"subscribe","events":["outcome","packets"]})", ControlErrorCode::kBadField,
     "got \"packets\"", 1},
    {R"({"id":1,"cmd":"subscribe","events":[1]})", ControlErrorCode::kBadField, "got 1", 1},
    {R"({"id":1,"cmd":"subscribe","timeout_ms":5})", ControlErrorCode::kUnknownField,
     "not a field of subscribe", 1},
    // Ids of every JSON type are echoed.
    {R"({"id":{"a":[1,2]},"cmd":"nope"})", ControlErrorCode::kUnknownCommand, "nope",
     Json{{"a", {1, 2}}}},
    {R"({"id":[1],"cmd":"nope"})", ControlErrorCode::kUnknownCommand, "nope", Json::array({1})},
    {R"({"id":-3.5,"cmd":"nope"})", ControlErrorCode::kUnknownCommand, "nope", -3.5},
};

TEST_SUITE("control_protocol") {
  TEST_CASE("control_protocol: every malformed request gets its error code and the id") {
    for (const BadRequest& bad : kBadRequests) {
      CAPTURE(bad.line);
      const ParsedControlRequest parsed = parse_control_request(bad.line);
      REQUIRE(parsed.error.has_value());
      CHECK(to_string(parsed.error->code) == to_string(bad.code));
      CHECK(std::string(parsed.error->what()).find(bad.message_part) != std::string::npos);
      CHECK(parsed.request.id == bad.id);
      // The reply to it is one JSON line of the documented shape.
      const std::string reply =
          format_control_error(parsed.request.id, parsed.error->code, parsed.error->what());
      CHECK(reply.find('\n') == std::string::npos);
      const Json j = Json::parse(reply);
      CHECK(j.at("ok") == false);
      CHECK(j.at("id") == bad.id);
      CHECK(j.at("error").at("code") == to_string(bad.code));
      CHECK(j.at("error").at("message").is_string());
    }
  }

  TEST_CASE("control_protocol: deeply nested JSON is refused without exhausting the stack") {
    // 32 levels are fine; 33 are refused before nlohmann (whose copies recurse) sees them.
    auto nested = [](std::size_t levels) {
      return "{\"cmd\":\"status\",\"id\":" + std::string(levels - 1, '[') +
             std::string(levels - 1, ']') + "}";
    };
    CHECK_FALSE(parse_control_request(nested(32)).error.has_value());
    const ParsedControlRequest too_deep = parse_control_request(nested(33));
    REQUIRE(too_deep.error.has_value());
    CHECK(too_deep.error->code == ControlErrorCode::kBadJson);
    CHECK(std::string(too_deep.error->what()).find("nested deeper than 32") != std::string::npos);
    const std::string deep =
        std::string(kMaxRequestLineBytes / 2, '[') + std::string(kMaxRequestLineBytes / 2, ']');
    CHECK(parse_control_request(deep).error->code == ControlErrorCode::kBadJson);
    // Brackets inside strings do not count, escaped quotes do not end a string.
    const std::string in_string =
        R"({"cmd":"enable","name":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["})";
    const ParsedControlRequest quoted = parse_control_request(in_string);
    CHECK_FALSE(quoted.error.has_value());
  }

  TEST_CASE("control_protocol: valid requests fill their fields") {
    ParsedControlRequest p = parse_control_request(R"({"id":"x","cmd":"status"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.command == ControlCommand::kStatus);
    CHECK(p.request.id == "x");

    p = parse_control_request(R"({"cmd":"rules"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.id.is_null());

    p = parse_control_request(R"({"id":2,"cmd":"disable","name":"lose-final-ack"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.command == ControlCommand::kDisable);
    CHECK(p.request.name == "lose-final-ack");

    p = parse_control_request(
        R"({"id":3,"cmd":"wait","rule":"r","result":"timeout","kind":"three_way",)"
        R"("closer":"client","flow":"198.18.1.2:40000","timeout_ms":2500,"since":17,"count":3})");
    REQUIRE_FALSE(p.error.has_value());
    const ControlRequest& w = p.request;
    CHECK(w.filter.rule == "r");
    CHECK(w.filter.result == "timeout");
    CHECK(w.filter.kind == "three_way");
    CHECK(w.filter.closer == "client");
    CHECK(w.filter.flow == "198.18.1.2:40000");
    CHECK(w.timeout_ms == 2500);
    CHECK(w.since.from == Since::From::kSeq);
    CHECK(w.since.seq == 17);
    CHECK(w.count == 3);
    CHECK(w.filter.to_json() == Json{{"rule", "r"},
                                     {"result", "timeout"},
                                     {"kind", "three_way"},
                                     {"closer", "client"},
                                     {"flow", "198.18.1.2:40000"}});

    p = parse_control_request(R"({"cmd":"wait"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.timeout_ms == 5000);
    CHECK(p.request.since.from == Since::From::kNow);
    CHECK(p.request.filter.empty());

    p = parse_control_request(R"({"cmd":"wait","since":"rule_change","timeout_ms":0})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.since.from == Since::From::kRuleChange);
    CHECK(p.request.timeout_ms == 0);

    p = parse_control_request(R"({"cmd":"subscribe","events":"rule_hit","rule":"x"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.events == kEventRuleHit);
    p = parse_control_request(R"({"cmd":"subscribe"})");
    CHECK(p.request.events == kEventAll);

    p = parse_control_request(R"({"cmd":"outcomes","limit":5,"since":"now"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.limit == 5U);
    CHECK(p.request.since.from == Since::From::kNow);
    CHECK(p.request.filter.empty());

    p = parse_control_request(
        R"({"cmd":"outcomes","limit":1,"flow":"198.18.1.2:40000","result":"timeout"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.filter.flow == "198.18.1.2:40000");
    CHECK(p.request.filter.result == "timeout");

    p = parse_control_request(R"({"cmd":"add","toml":"name = \"x\"","position":"first"})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.rule_toml == "name = \"x\"");
    CHECK(p.request.add_first);
    CHECK_FALSE(p.request.rule_from_json);
    CHECK_FALSE(p.request.ttl_ms.has_value());
    CHECK_FALSE(p.request.max_hits.has_value());

    p = parse_control_request(R"({"cmd":"add","toml":"x","ttl":1.5,"max_hits":3})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.ttl_ms == 1500);
    CHECK(p.request.max_hits == 3);
    p = parse_control_request(R"({"cmd":"add","toml":"x","ttl":86400,"max_hits":1000000000})");
    REQUIRE_FALSE(p.error.has_value());
    CHECK(p.request.ttl_ms == 86400000);
    CHECK(p.request.max_hits == 1000000000);
  }

  TEST_CASE("control_protocol: every command name round-trips and help lists its fields") {
    const std::vector<std::string_view> expected = {
        "status", "rules",    "enable",    "disable",     "add",  "remove", "reload",  "reset",
        "flows",  "outcomes", "subscribe", "unsubscribe", "wait", "stats",  "metrics", "help"};
    const auto names = ControlCommandNames::names();
    CHECK(std::vector<std::string_view>(names.begin(), names.end()) == expected);
    for (const auto name : names) {
      const auto command = ControlCommandNames::parse(name);
      REQUIRE(command.has_value());
      CHECK(to_string(*command) == name);
    }
    CHECK(control_command_fields(ControlCommand::kStatus).empty());
    CHECK(control_command_fields(ControlCommand::kEnable) == std::vector<std::string_view>{"name"});
    CHECK_FALSE(ControlCommandNames::parse("Status").has_value());
  }

  TEST_CASE("control_protocol: replies put id and ok first and keep the body") {
    CHECK(format_control_reply(7, Json::object()) == R"({"id":7,"ok":true})");
    CHECK(format_control_reply(nullptr, {{"b", 1}, {"a", "x"}}) ==
          R"({"id":null,"ok":true,"a":"x","b":1})");
    CHECK(format_control_reply("q", {{"rules", Json::array()}}) ==
          R"({"id":"q","ok":true,"rules":[]})");
    CHECK(format_control_error(1, ControlErrorCode::kUnknownRule, "no rule named 'x'") ==
          R"({"id":1,"ok":false,"error":{"code":"unknown_rule","message":"no rule named 'x'"}})");
    CHECK(format_control_error(2, ControlErrorCode::kTimeout, "timed out",
                               {{"outcomes", Json::array()}}) ==
          R"({"id":2,"ok":false,"error":{"code":"timeout","message":"timed out"},"outcomes":[]})");
    // An id that is itself "ok":true text does not confuse the splice.
    const Json tricky = R"(,"ok":true)";
    CHECK(Json::parse(format_control_error(tricky, ControlErrorCode::kInternal, "m")).at("ok") ==
          false);
    // Invalid UTF-8 in a message is replaced, not thrown about.
    const std::string bad_utf8 = "rule \xff";
    CHECK_NOTHROW(Json::parse(format_control_error(1, ControlErrorCode::kUnknownRule, bad_utf8)));
    CHECK(format_lagged_event(12) ==
          R"({"dropped":12,"event":"lagged","message":"lagged, 12 events dropped"})");
  }

  TEST_CASE("control_protocol: every error code has its stable name") {
    const std::vector<std::string_view> expected = {
        "bad_json",        "not_an_object", "missing_field", "bad_field",        "unknown_field",
        "unknown_command", "line_too_long", "unknown_rule",  "rule_exists",      "invalid_rule",
        "no_rule_file",    "reload_failed", "timeout",       "too_many_clients", "too_many_waits",
        "shutting_down",   "internal"};
    const auto names = ControlErrorCodeNames::names();
    CHECK(std::vector<std::string_view>(names.begin(), names.end()) == expected);
    CHECK(to_string(ControlErrorCode::kLineTooLong) == "line_too_long");
    CHECK(ControlErrorCodeNames::parse("internal") == ControlErrorCode::kInternal);
  }

  TEST_CASE("control_protocol: event names and their bits") {
    CHECK(EventKindNames::joined() == "outcome, rule_hit, rule_change");
    CHECK(kEventOutcome == 1);
    CHECK(kEventRuleHit == 2);
    CHECK(kEventRuleChange == 4);
    CHECK(kEventAll == 7);
  }

  TEST_CASE("control_protocol: durations") {
    struct Case {
      const char* text;
      std::optional<std::uint64_t> ms;
    };
    const Case cases[] = {
        {"5s", 5000},
        {"5", 5000},
        {"500ms", 500},
        {"1.5s", 1500},
        {"2m", 120000},
        {"2min", 120000},
        {"1h", 3600000},
        {"0", 0},
        {"0.0001s", 1},
        {"24h", 86400000},
        {"", std::nullopt},
        {"s", std::nullopt},
        {"-1s", std::nullopt},
        {"5 s", std::nullopt},
        {"5sec", std::nullopt},
        {"25h", std::nullopt},
        {"nan", std::nullopt},
        {"inf", std::nullopt},
        {"1e400", std::nullopt},
    };
    for (const Case& c : cases) {
      CAPTURE(c.text);
      CHECK(parse_duration_ms(c.text) == c.ms);
    }
  }

  TEST_CASE("control_protocol: outcome events carry seq and the outcome fields") {
    Outcome o;
    o.id = 3;
    const Json event = outcome_event_json(41, o);
    CHECK(event.at("event") == "outcome");
    CHECK(event.at("seq") == 41);
    CHECK(event.at("id") == 3);
    CHECK(event.contains("timeline"));
  }
}

}  // namespace
}  // namespace finwave::proxy::test
