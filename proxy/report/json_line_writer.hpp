#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace finwave::proxy {

/// Writes one JSON object as a single line straight into a string, in the order the fields are
/// given. For the per-outcome output line, where building an nlohmann DOM first cost about a
/// tenth of finwave's CPU in connection churn (one allocation per key, per value, per node).
///
///   JsonLineWriter w(line);
///   w.begin_object();
///   w.key("event"); w.string("outcome");
///   w.key("flow"); w.begin_object(); ... w.end_object();
///   w.end_object();
///
/// Commas are placed by the writer. String values are escaped as JSON requires; bytes that are
/// not valid UTF-8 become U+FFFD, as nlohmann's dump does with error_handler_t::replace. Keys are
/// not escaped: they are the caller's own field names, printable ASCII without `"` or `\`
/// (escaping some 80 of them per outcome showed in the churn profile). Doubles are written with
/// up to `decimals` digits after the point and trailing zeros trimmed (one kept). No checks of
/// nesting: the caller writes a well-formed object (the tests parse every line).
class JsonLineWriter {
 public:
  explicit JsonLineWriter(std::string& out) noexcept : out_(out) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }

  /// `name` is written as it is (see above).
  void key(std::string_view name);
  void string(std::string_view value);
  void boolean(bool value);
  void null();
  void number(std::uint64_t value);
  void number(std::int64_t value);
  void number(std::uint32_t value) { number(std::uint64_t{value}); }
  void number(double value, int decimals);

 private:
  void open(char bracket);
  void close(char bracket);
  void separate();
  void escape(std::string_view text);

  std::string& out_;
  bool first_ = true;       ///< Nothing written yet in the innermost object or array.
  bool after_key_ = false;  ///< The next value follows a key: no comma.
};

}  // namespace finwave::proxy
