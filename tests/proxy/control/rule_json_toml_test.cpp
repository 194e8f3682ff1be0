#include "proxy/control/rule_json_toml.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "proxy/control/control_protocol.hpp"
#include "rules/config_error.hpp"
#include "rules/rule_loader.hpp"

namespace finwave::proxy::test {
namespace {

using Json = nlohmann::json;

}  // namespace

TEST_SUITE("rule_json_toml") {
  TEST_CASE("rule_json_toml: a JSON rule becomes TOML that the rule loader validates") {
    const Json rule = {{"name", "lose-fin2"}, {"role", "fin2"},        {"action", "delay"},
                       {"delay_ms", 250.5},   {"ports", {5000, 5001}}, {"retx", false},
                       {"enabled", false}};
    const std::string toml = rule_json_to_toml(rule);
    CHECK(toml.front() == '{');
    const rules::Rule parsed = rules::parse_single_rule(toml, "add");
    CHECK(parsed.name == "lose-fin2");
    CHECK(parsed.role == rules::Role::kFin2);
    CHECK(parsed.action == rules::Action::kDelay);
    CHECK(parsed.delay_ms == doctest::Approx(250.5));
    CHECK(parsed.ports == std::vector<std::uint16_t>{5000, 5001});
    CHECK(parsed.retx == std::optional<bool>(false));
    CHECK_FALSE(parsed.enabled);

    // Strings with quotes, backslashes and control characters survive; the loader then judges.
    const Json odd = {{"name", "a\"b\\c\n"}, {"action", "drop"}};
    CHECK_THROWS_AS(rules::parse_single_rule(rule_json_to_toml(odd), "add"), rules::ConfigError);
    // Mistakes are the loader's, with its message.
    try {
      rules::parse_single_rule(rule_json_to_toml({{"name", "x"}, {"acton", "drop"}}), "add");
      FAIL("accepted a misspelt key");
    } catch (const rules::ConfigError& error) {
      CHECK(error.message.find("did you mean 'action'") != std::string::npos);
    }
    CHECK(rule_json_to_toml(Json::object()) == "{ }");
    CHECK(rule_json_to_toml({{"odd key", 1}}) == R"({ "odd key" = 1 })");
  }
}

}  // namespace finwave::proxy::test
