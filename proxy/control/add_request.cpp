#include "proxy/control/add_request.hpp"

#include <string>
#include <utility>

namespace finwave::proxy::ctl {

nlohmann::json add_request(std::string_view rule_text, bool first) {
  nlohmann::json request = {{"cmd", "add"}};
  // A JSON object is sent as "rule"; anything else is TOML.
  nlohmann::json parsed = nlohmann::json::parse(rule_text, nullptr, false);
  if (parsed.is_object()) {
    request["rule"] = std::move(parsed);
  } else {
    request["toml"] = std::string(rule_text);
  }
  if (first) request["position"] = "first";
  return request;
}

}  // namespace finwave::proxy::ctl
