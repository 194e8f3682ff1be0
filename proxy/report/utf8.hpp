#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace finwave::proxy {

// UTF-8, once for every writer and renderer: the JSON line writer and the SVG ladder replace
// what is not valid UTF-8, the ASCII ladder and finwavectl's tables count columns. Rule names,
// interface names and error messages reach them from rule files and the kernel, so nothing here
// assumes its input is valid.

/// Is `byte` a continuation byte (10xxxxxx), one that never starts a code point?
constexpr bool utf8_continuation(unsigned char byte) noexcept { return (byte & 0xC0U) == 0x80U; }

/// Length of the valid UTF-8 sequence that starts at text[at]: 1 for ASCII, 2 to 4 otherwise;
/// 0 when the bytes there are not one (a continuation byte, a truncated sequence, an overlong
/// form, a surrogate, a code point past U+10FFFF) or `at` is past the end.
std::size_t utf8_sequence_length(std::string_view text, std::size_t at) noexcept;

/// The code point of the valid sequence of `length` bytes at text[at] (as utf8_sequence_length()
/// gave it).
std::uint32_t utf8_code_point(std::string_view text, std::size_t at, std::size_t length) noexcept;

/// The columns `text` takes in a terminal, one per code point (every byte that is not a
/// continuation byte): what the glyphs finwave prints take.
std::size_t utf8_columns(std::string_view text) noexcept;

/// Bytes of `text` that fill at most `columns` columns, cut at a code point boundary.
std::size_t utf8_prefix_bytes(std::string_view text, std::size_t columns) noexcept;

}  // namespace finwave::proxy
