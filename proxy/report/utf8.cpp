#include "proxy/report/utf8.hpp"

namespace finwave::proxy {

std::size_t utf8_sequence_length(std::string_view text, std::size_t at) noexcept {
  if (at >= text.size()) return 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  // The second byte's range is narrower after some leads (Unicode's table 3-7): that is where
  // overlong forms, surrogates and code points past U+10FFFF are refused.
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (length > text.size() - at) return 0;
  if (byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (!utf8_continuation(byte(at + k))) return 0;
  }
  return length;
}

std::uint32_t utf8_code_point(std::string_view text, std::size_t at, std::size_t length) noexcept {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (length <= 1) return lead;
  // The lead keeps 7 - length bits; every continuation byte adds 6.
  std::uint32_t code = lead & (0x7FU >> length);
  for (std::size_t k = 1; k < length; ++k) {
    code = (code << 6U) | (static_cast<unsigned char>(text[at + k]) & 0x3FU);
  }
  return code;
}

std::size_t utf8_columns(std::string_view text) noexcept {
  std::size_t count = 0;
  for (const char c : text) {
    if (!utf8_continuation(static_cast<unsigned char>(c))) ++count;
  }
  return count;
}

std::size_t utf8_prefix_bytes(std::string_view text, std::size_t columns) noexcept {
  std::size_t count = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!utf8_continuation(static_cast<unsigned char>(text[i])) && count++ == columns) return i;
  }
  return text.size();
}

}  // namespace finwave::proxy
