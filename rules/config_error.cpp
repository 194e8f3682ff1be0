#include "rules/config_error.hpp"

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

}  // namespace finwave::rules
