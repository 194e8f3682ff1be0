#include "proxy/control/line_framer.hpp"

#include <doctest/doctest.h>

#include <string>

namespace finwave::proxy::test {
namespace {}  // namespace

TEST_SUITE("line_framer") {
  TEST_CASE(
      "line_framer: lines in pieces with CRLF and blank lines and a last line without newline") {
    LineFramer framer(16);
    std::string line;
    framer.append("{\"a\":1}\n{\"b\"");
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line == "{\"a\":1}");
    CHECK(framer.next(line) == LineFramer::Next::kNone);
    framer.append(":2}\r\n\nlast");
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line == "{\"b\":2}");
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line.empty());
    CHECK(framer.next(line) == LineFramer::Next::kNone);
    framer.finish();
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line == "last");
    CHECK(framer.next(line) == LineFramer::Next::kNone);
    CHECK(framer.buffered() == 0);
  }

  TEST_CASE("line_framer: a line over the limit is reported once and skipped to its newline") {
    LineFramer framer(8);
    std::string line;
    framer.append("12345678\n");  // Exactly the limit: fine.
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line == "12345678");
    framer.append("12345678\r\n");  // The limit plus CR: fine.
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line == "12345678");
    framer.append("123456789\nok\n");  // One over, in one piece.
    CHECK(framer.next(line) == LineFramer::Next::kTooLong);
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line == "ok");
    // Over the limit across many appends: reported once, memory stays bounded.
    framer.append("aaaaaa");
    CHECK(framer.next(line) == LineFramer::Next::kNone);
    framer.append("aaaaaa");
    CHECK(framer.next(line) == LineFramer::Next::kTooLong);
    for (int i = 0; i < 1000; ++i) {
      framer.append("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
      CHECK(framer.next(line) == LineFramer::Next::kNone);
      CHECK(framer.buffered() == 0);
    }
    framer.append("aaa\nnext\n");
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line == "next");
    CHECK(framer.next(line) == LineFramer::Next::kNone);
  }

  TEST_CASE("line_framer: the default limit is 64 KiB") {
    LineFramer framer;
    std::string line;
    framer.append(std::string(kMaxRequestLineBytes, 'x') + "\n");
    CHECK(framer.next(line) == LineFramer::Next::kLine);
    CHECK(line.size() == kMaxRequestLineBytes);
    framer.append(std::string(kMaxRequestLineBytes + 1, 'x') + "\n");
    CHECK(framer.next(line) == LineFramer::Next::kTooLong);
    CHECK(framer.next(line) == LineFramer::Next::kNone);
  }
}

}  // namespace finwave::proxy::test
