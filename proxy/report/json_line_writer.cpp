#include "proxy/report/json_line_writer.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>

#include "proxy/report/utf8.hpp"

namespace finwave::proxy {
void JsonLineWriter::open(char bracket) {
  separate();
  out_ += bracket;
  first_ = true;
}

void JsonLineWriter::close(char bracket) {
  out_ += bracket;
  first_ = false;
}

void JsonLineWriter::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_) out_ += ',';
  first_ = false;
}

void JsonLineWriter::key(std::string_view name) {
  assert(std::all_of(name.begin(), name.end(),
                     [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }));
  separate();
  // One resize and a copy rather than three appends: a key is written some 80 times per
  // outcome, and each append checks the capacity again.
  const std::size_t at = out_.size();
  out_.resize(at + name.size() + 3);
  char* to = out_.data() + at;
  *to++ = '"';
  std::memcpy(to, name.data(), name.size());
  to += name.size();
  *to++ = '"';
  *to = ':';
  after_key_ = true;
}

void JsonLineWriter::string(std::string_view value) {
  separate();
  escape(value);
}

void JsonLineWriter::boolean(bool value) {
  separate();
  out_ += value ? "true" : "false";
}

void JsonLineWriter::null() {
  separate();
  out_ += "null";
}

void JsonLineWriter::number(std::uint64_t value) {
  separate();
  std::array<char, 24> digits{};
  const auto result = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out_.append(digits.data(), result.ptr);
}

void JsonLineWriter::number(std::int64_t value) {
  separate();
  std::array<char, 24> digits{};
  const auto result = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out_.append(digits.data(), result.ptr);
}

void JsonLineWriter::number(double value, int decimals) {
  separate();
  if (!std::isfinite(value)) {
    out_ += "null";  // What nlohmann writes for NaN and infinities.
    return;
  }
  // to_chars, not snprintf: the same correctly rounded digits without the locale and format
  // machinery, which showed in the churn profile (one call per timeline entry).
  std::array<char, 352> text{};  // DBL_MAX in fixed notation is 309 digits
  const auto result = std::to_chars(text.data(), text.data() + text.size(), value,
                                    std::chars_format::fixed, decimals);
  if (result.ec != std::errc{}) {
    out_ += "null";
    return;
  }
  auto length = static_cast<std::size_t>(result.ptr - text.data());
  // "12.500" -> "12.5", "3.000" -> "3.0": a number that reads as a float stays one.
  if (std::string_view(text.data(), length).find('.') != std::string_view::npos) {
    while (text[length - 1] == '0' && text[length - 2] != '.') --length;
  }
  out_.append(text.data(), length);
}

void JsonLineWriter::escape(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out_ += '"';
  // Runs of characters that need no escaping (nearly all of an outcome's text) are appended
  // whole: one outcome line per connection is written, and byte-by-byte appends showed in the
  // churn profile.
  std::size_t run = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    out_.append(text.substr(run, i - run));
    if (c >= 0x80) {
      const std::size_t length = utf8_sequence_length(text, i);
      if (length == 0) {
        out_ += "\xEF\xBF\xBD";  // U+FFFD for one invalid byte
        ++i;
      } else {
        out_.append(text.substr(i, length));
        i += length;
      }
      run = i;
      continue;
    }
    switch (c) {
      case '"':
        out_ += "\\\"";
        break;
      case '\\':
        out_ += "\\\\";
        break;
      case '\n':
        out_ += "\\n";
        break;
      case '\r':
        out_ += "\\r";
        break;
      case '\t':
        out_ += "\\t";
        break;
      case '\b':
        out_ += "\\b";
        break;
      case '\f':
        out_ += "\\f";
        break;
      default:
        out_ += "\\u00";
        out_ += kHex[c >> 4];
        out_ += kHex[c & 0xF];
    }
    run = ++i;
  }
  out_.append(text.substr(run));
  out_ += '"';
}

}  // namespace finwave::proxy
