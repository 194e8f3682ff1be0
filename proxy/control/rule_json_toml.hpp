#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace finwave::proxy {

/// Converts a JSON rule object ({"name":"x","role":"fin1","action":"drop"}) into a TOML inline
/// table ("{ action = \"drop\", name = \"x\", role = \"fin1\" }"). Throws ControlError
/// (invalid_rule) for values TOML rules never take (objects, null, nested arrays).
std::string rule_json_to_toml(const nlohmann::json& rule);

}  // namespace finwave::proxy
