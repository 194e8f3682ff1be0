#include "proxy/report/utf8.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string_view>

namespace finwave::proxy::test {
namespace {

using namespace std::string_view_literals;

}  // namespace

TEST_SUITE("utf8") {
  TEST_CASE("utf8: every kind of valid and invalid sequence has its length") {
    struct Case {
      std::string_view text;
      std::size_t length;      // Of the sequence at byte 0; 0: invalid there.
      std::uint32_t code = 0;  // Its code point, when valid.
    };
    const Case cases[] = {
        {"A", 1, 0x41},
        {"\x7f", 1, 0x7f},
        {"\0"sv, 1, 0},
        {"\xc2\x80", 2, 0x80},              // The smallest two-byte form.
        {"\xc3\xa9", 2, 0xe9},              // é
        {"\xdf\xbf", 2, 0x7ff},             // The largest two-byte form.
        {"\xe0\xa0\x80", 3, 0x800},         // The smallest three-byte form.
        {"\xe2\x86\x92", 3, 0x2192},        // →
        {"\xed\x9f\xbf", 3, 0xd7ff},        // Just below the surrogates.
        {"\xee\x80\x80", 3, 0xe000},        // Just above them.
        {"\xef\xbf\xbd", 3, 0xfffd},        // U+FFFD
        {"\xef\xbf\xbf", 3, 0xffff},        // A noncharacter, but valid UTF-8.
        {"\xf0\x90\x80\x80", 4, 0x10000},   // The smallest four-byte form.
        {"\xf4\x8f\xbf\xbf", 4, 0x10ffff},  // The largest code point.
        {"\x80", 0},                        // A lone continuation byte.
        {"\xbf", 0},
        {"\xc0\x80", 0},      // Overlong NUL.
        {"\xc1\xbf", 0},      // Overlong.
        {"\xe0\x80\x80", 0},  // Overlong three-byte form.
        {"\xe0\x9f\xbf", 0},
        {"\xf0\x80\x80\x80", 0},  // Overlong four-byte form.
        {"\xf0\x8f\xbf\xbf", 0},
        {"\xed\xa0\x80", 0},      // A surrogate (U+D800).
        {"\xed\xbf\xbf", 0},      // U+DFFF
        {"\xf4\x90\x80\x80", 0},  // U+110000, past the last code point.
        {"\xf5\x80\x80\x80", 0},  // Leads that never start a sequence.
        {"\xff", 0},
        {"\xc3", 0},  // Truncated.
        {"\xe2\x86", 0},
        {"\xf0\x90\x80", 0},
        {"\xc3\x41", 0},  // A continuation byte missing.
        {"\xe2\x41\x92", 0},
        {"\xf0\x90\x41\x80", 0},
    };
    for (const Case& c : cases) {
      CAPTURE(c.text);
      const std::size_t length = utf8_sequence_length(c.text, 0);
      CHECK(length == c.length);
      if (length != 0) CHECK(utf8_code_point(c.text, 0, length) == c.code);
    }
    CHECK(utf8_sequence_length("ab", 2) == 0);  // Past the end.
    CHECK(utf8_sequence_length("a\xc3\xa9", 1) == 2);
  }

  TEST_CASE("utf8: columns count code points, and prefixes end on their boundaries") {
    CHECK(utf8_columns("") == 0);
    CHECK(utf8_columns("fin1") == 4);
    CHECK(utf8_columns("\xe2\x94\x80\xe2\x94\x80>") == 3);  // ──>
    CHECK(utf8_columns("caf\xc3\xa9") == 4);
    CHECK(utf8_columns("\xf0\x9f\x98\x80!") == 2);
    // Invalid bytes each take a column (they are printed as one replacement each).
    CHECK(utf8_columns("\xff\xfe") == 2);
    const std::string_view arrow = "\xe2\x86\x92\xe2\x86\x92x";  // →→x
    CHECK(utf8_prefix_bytes(arrow, 0) == 0);
    CHECK(utf8_prefix_bytes(arrow, 1) == 3);
    CHECK(utf8_prefix_bytes(arrow, 2) == 6);
    CHECK(utf8_prefix_bytes(arrow, 3) == 7);
    CHECK(utf8_prefix_bytes(arrow, 10) == 7);
    CHECK(utf8_continuation(0x80));
    CHECK(utf8_continuation(0xbf));
    CHECK_FALSE(utf8_continuation(0xc0));
    CHECK_FALSE(utf8_continuation('a'));
  }
}

}  // namespace finwave::proxy::test
