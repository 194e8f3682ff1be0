#include "proxy/control/rule_json_toml.hpp"

#include <algorithm>
#include <cstdio>

#include "proxy/control/control_protocol.hpp"

namespace finwave::proxy {
namespace {

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
  throw ControlError(ControlErrorCode::kInvalidRule,
                     "rule key '" + key + "' cannot be " + json_type_name(value) +
                         (in_array ? " inside an array" : "") +
                         "; rule values are strings, numbers, booleans or arrays of them");
}

}  // namespace

std::string rule_json_to_toml(const nlohmann::json& rule) {
  if (!rule.is_object()) {
    throw ControlError(ControlErrorCode::kBadField,
                       "'rule' must be an object such as {\"name\":\"x\",\"role\":\"fin1\","
                       "\"action\":\"drop\"}; got " +
                           json_type_name(rule));
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

}  // namespace finwave::proxy
