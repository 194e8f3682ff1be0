// Fuzzes what `finwavectl add FILE` does with the file (proxy/finwavectl/add_request.cpp): the
// input is the file's content. The request finwavectl builds, sent as finwavectl sends it, must
// reach the daemon as a well-formed add request: TOML text unchanged, a JSON object as its
// rule, refused only when it holds values TOML rules never take or nests deeper than requests
// may. What the daemon then makes of the rule is either a rule or a ConfigError.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "proxy/control/add_request.hpp"
#include "proxy/control/control_protocol.hpp"
#include "rules/rule_loader.hpp"

namespace {

using finwave::proxy::ControlCommand;
using finwave::proxy::ControlErrorCode;
using Json = nlohmann::json;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte stands for --first, the rest is the file.
  const bool first = (data[0] & 1) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  Json request = finwave::proxy::ctl::add_request(text, first);
  FUZZ_CHECK(request.at("cmd") == "add", "an add request");
  const bool as_json = request.contains("rule");
  FUZZ_CHECK(as_json != request.contains("toml"), "the rule goes as JSON or as TOML, not both");

  // Connection::call() numbers the request and dumps it. nlohmann refuses to write a string that
  // is not UTF-8; finwavectl reports that exception and exits 2.
  request["id"] = 1;
  std::string line;
  try {
    line = request.dump();
  } catch (const Json::type_error& error) {
    FUZZ_CHECK(error.id == 316 && !as_json, "only TOML text that is not UTF-8 cannot be sent");
    return 0;
  }

  const finwave::proxy::ParsedControlRequest parsed = finwave::proxy::parse_control_request(line);
  if (parsed.error) {
    const ControlErrorCode code = parsed.error->code;
    if (!as_json) {
      // An empty file is refused by the daemon ("'toml' must not be empty"), not by finwavectl.
      FUZZ_CHECK(text.empty() && code == ControlErrorCode::kBadField,
                 "TOML text makes a well-formed request unless it is empty");
    } else {
      FUZZ_CHECK(code == ControlErrorCode::kInvalidRule || code == ControlErrorCode::kBadJson,
                 "a JSON rule is refused only for its values or its nesting");
    }
    FUZZ_CHECK(parsed.request.id == 1, "the refusal carries the id");
    return 0;
  }
  const finwave::proxy::ControlRequest& add = parsed.request;
  FUZZ_CHECK(add.command == ControlCommand::kAdd, "it is read as add");
  FUZZ_CHECK(add.add_first == first, "--first survives");
  FUZZ_CHECK(add.rule_from_json == as_json, "the form survives");
  if (!as_json) FUZZ_CHECK(add.rule_toml == text, "TOML text arrives unchanged");

  try {
    const finwave::rules::Rule rule = finwave::rules::parse_single_rule(add.rule_toml, "add");
    if (as_json) {
      FUZZ_CHECK(request.at("rule").at("name") == rule.name, "a JSON rule keeps its name");
    }
  } catch (const finwave::rules::ConfigError& error) {
    FUZZ_CHECK(!error.message.empty(), "an invalid rule says why");
  } catch (...) {
    FUZZ_CHECK(false, "parse_single_rule() throws nothing but ConfigError");
  }
  return 0;
}
