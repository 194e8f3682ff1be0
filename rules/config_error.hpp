#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace finwave::rules {

/// A rule file, rule text or rule command that cannot be accepted, with where it went wrong.
///
/// Thrown only on the control plane (start-up, reload, control commands); `main` prints what()
/// and exits 2, a failed reload keeps the old rules. what() reads "FILE:LINE:COL: message" like
/// a compiler diagnostic, "FILE: message" when there is no position (an unreadable file), and
/// just "message" when there is no file either (a control command naming an unknown rule).
struct ConfigError : std::runtime_error {
  /// An error at a position in a named source; line and column are 1-based (0 = unknown).
  ConfigError(std::string file_name, std::uint32_t line_number, std::uint32_t column_number,
              std::string text);

  /// An error that has no source position (engine commands such as remove/enable).
  explicit ConfigError(std::string text);

  std::string file;          ///< File path or source name ("control", "<string>"); may be empty.
  std::uint32_t line = 0;    ///< 1-based; 0 when the error has no position.
  std::uint32_t column = 0;  ///< 1-based; 0 when the error has no position.
  std::string message;       ///< The message without the "FILE:LINE:COL: " prefix.
};

/// User text as error messages show it: control characters (a NUL would cut what() short, a
/// newline or an escape sequence would garble a terminal) written as TOML escapes them, \u0000.
std::string printable(std::string_view text);

}  // namespace finwave::rules
