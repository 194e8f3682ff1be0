#include "rules/config_error.hpp"

#include <cstdio>
#include <utility>

namespace finwave::rules {
namespace {

std::string format_error(const std::string& file, std::uint32_t line, std::uint32_t column,
                         const std::string& message) {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ':' + std::to_string(line) + ':' + std::to_string(column);
    }
    out += ": ";
  }
  out += message;
  return out;
}

}  // namespace

ConfigError::ConfigError(std::string file_name, std::uint32_t line_number,
                         std::uint32_t column_number, std::string text)
    : std::runtime_error(format_error(file_name, line_number, column_number, text)),
      file(std::move(file_name)),
      line(line_number),
      column(column_number),
      message(std::move(text)) {}

ConfigError::ConfigError(std::string text) : std::runtime_error(text), message(std::move(text)) {}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(byte));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace finwave::rules
