// Tests of JsonLineWriter (proxy/json_line_writer.cpp): every line it writes parses as the JSON
// that was meant, strings and numbers included.

#include "proxy/report/json_line_writer.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

using finwave::proxy::JsonLineWriter;

namespace {

std::string string_line(std::string_view value) {
  std::string line;
  JsonLineWriter w(line);
  w.begin_object();
  w.key("s");
  w.string(value);
  w.end_object();
  return line;
}

std::string decoded(std::string_view value) {
  return nlohmann::json::parse(string_line(value)).at("s").get<std::string>();
}

std::string number_line(double value, int decimals) {
  std::string line;
  JsonLineWriter w(line);
  w.begin_array();
  w.number(value, decimals);
  w.end_array();
  return line;
}

}  // namespace

TEST_SUITE("json_line_writer") {
  TEST_CASE("json_line_writer: nested objects and arrays get their commas") {
    std::string line;
    JsonLineWriter w(line);
    w.begin_object();
    w.key("event");
    w.string("outcome");
    w.key("flow");
    w.begin_object();
    w.key("client");
    w.string("198.18.1.2:40000");
    w.key("server");
    w.string("[2001:db8:2::2]:5000");
    w.end_object();
    w.key("empty");
    w.begin_array();
    w.end_array();
    w.key("list");
    w.begin_array();
    w.begin_object();
    w.key("a");
    w.number(std::uint64_t{1});
    w.end_object();
    w.begin_object();
    w.key("b");
    w.boolean(false);
    w.key("c");
    w.null();
    w.end_object();
    w.end_array();
    w.key("n");
    w.number(std::int64_t{-7});
    w.end_object();
    CHECK(
        line ==
        R"({"event":"outcome","flow":{"client":"198.18.1.2:40000","server":"[2001:db8:2::2]:5000"},)"
        R"("empty":[],"list":[{"a":1},{"b":false,"c":null}],"n":-7})");
    CHECK(nlohmann::json::parse(line).is_object());
  }

  TEST_CASE("json_line_writer: integers at their limits") {
    std::string line;
    JsonLineWriter w(line);
    w.begin_array();
    w.number(std::numeric_limits<std::uint64_t>::max());
    w.number(std::numeric_limits<std::int64_t>::min());
    w.number(std::uint32_t{0});
    w.end_array();
    const auto j = nlohmann::json::parse(line);
    CHECK(j[0].get<std::uint64_t>() == std::numeric_limits<std::uint64_t>::max());
    CHECK(j[1].get<std::int64_t>() == std::numeric_limits<std::int64_t>::min());
    CHECK(j[2].get<std::uint32_t>() == 0);
  }

  TEST_CASE("json_line_writer: doubles keep their decimals and stay floats") {
    CHECK(number_line(312.4, 3) == "[312.4]");
    CHECK(number_line(3.0, 3) == "[3.0]");
    CHECK(number_line(0.001, 3) == "[0.001]");
    CHECK(number_line(-1.25, 3) == "[-1.25]");
    CHECK(number_line(1234567.891, 3) == "[1234567.891]");
    CHECK(number_line(std::numeric_limits<double>::quiet_NaN(), 3) == "[null]");
    CHECK(number_line(std::numeric_limits<double>::infinity(), 3) == "[null]");
    // Microseconds as milliseconds read back as the same double the DOM would hold.
    for (const std::int64_t us : {0LL, 1LL, 999LL, 1001LL, 123456789LL}) {
      const double ms = static_cast<double>(us) / 1000.0;
      CHECK(nlohmann::json::parse(number_line(ms, 3))[0].get<double>() == ms);
    }
  }

  TEST_CASE("json_line_writer: doubles have printf's %.3f digits, however large") {
    // to_chars and printf both round the exact binary value: the digits must be the same.
    for (const double value : {0.0005, 0.0015, 2.0005, 1e-9, 0.1, 2.675, 1234.5675, 999999.9995,
                               -0.0004, 4294967.295, 9007199254740.993}) {
      std::array<char, 64> expected{};
      std::snprintf(expected.data(), expected.size(), "%.3f", value);
      std::string digits = expected.data();
      while (digits.back() == '0' && digits[digits.size() - 2] != '.') digits.pop_back();
      CHECK_MESSAGE(number_line(value, 3) == "[" + digits + "]", "value ", value);
    }
    // Wider than a printf buffer of 64 would have held: still a number, and the same one.
    const double huge = 1e300;
    CHECK(nlohmann::json::parse(number_line(huge, 3))[0].get<double>() == huge);
    CHECK(nlohmann::json::parse(number_line(-std::numeric_limits<double>::max(), 3))[0]
              .get<double>() == -std::numeric_limits<double>::max());
  }

  TEST_CASE("json_line_writer: strings are escaped") {
    CHECK(string_line("a\"b\\c") == R"({"s":"a\"b\\c"})");
    CHECK(string_line("\n\r\t\b\f") == R"({"s":"\n\r\t\b\f"})");
    CHECK(string_line(std::string("\x01\x1f", 2)) == R"({"s":"\u0001\u001f"})");
    CHECK(decoded(std::string("nul\0inside", 10)) == std::string("nul\0inside", 10));
    CHECK(decoded("/ is fine") == "/ is fine");
  }

  TEST_CASE("json_line_writer: valid UTF-8 passes, invalid bytes become U+FFFD") {
    CHECK(decoded("caf\xC3\xA9 \xE2\x86\x92 \xF0\x9D\x84\x9E") ==
          "caf\xC3\xA9 \xE2\x86\x92 \xF0\x9D\x84\x9E");
    const std::string replacement = "\xEF\xBF\xBD";
    CHECK(decoded("\xFF") == replacement);
    CHECK(decoded("a\xC0\x80z") == "a" + replacement + replacement + "z");      // overlong
    CHECK(decoded("\xED\xA0\x80") == replacement + replacement + replacement);  // surrogate
    CHECK(decoded("\xF4\x90\x80\x80") == replacement + replacement + replacement + replacement);
    CHECK(decoded("end\xE2\x82") == "end" + replacement + replacement);  // truncated
    CHECK(decoded("\x80") == replacement);                               // stray
  }
}
