#include "script.hpp"

#include <doctest/doctest.h>

#include <string>

namespace fp = finwave::peer;
using fp::ScriptError;
using fp::ShutdownHow;
using fp::StepKind;

namespace {

// Parses `text` and returns the error message, failing the test if there is none.
std::string error_of(const std::string& text) {
  try {
    fp::parse_script(text);
  } catch (const ScriptError& error) {
    return error.what();
  }
  FAIL("no error for: '" << text << "'");
  return "";
}

}  // namespace

TEST_SUITE("peer") {
  TEST_CASE("script: every step and its argument") {
    const fp::Script script = fp::parse_script(
        "send:1000, read:10,read-eof,shutdown,shutdown:rd,shutdown:rdwr,sleep:5,hold:20,"
        "at:1700000000123,wait-rst,read-until-error,at-next:250,wait-file:/tmp/a:b go,abort");
    REQUIRE(script.size() == 14);
    CHECK(script[0].kind == StepKind::kSend);
    CHECK(script[0].count == 1000);
    CHECK(script[0].text == "send:1000");
    CHECK(script[1].kind == StepKind::kRead);
    CHECK(script[1].count == 10);
    CHECK(script[2].kind == StepKind::kReadEof);
    CHECK(script[3].kind == StepKind::kShutdown);
    CHECK(script[3].how == ShutdownHow::kWrite);
    CHECK(script[4].how == ShutdownHow::kRead);
    CHECK(script[5].how == ShutdownHow::kBoth);
    CHECK(script[6].kind == StepKind::kSleep);
    CHECK(script[6].count == 5);
    CHECK(script[7].kind == StepKind::kHold);
    CHECK(script[7].count == 20);
    CHECK(script[8].kind == StepKind::kAt);
    CHECK(script[8].count == 1700000000123ULL);
    CHECK(script[9].kind == StepKind::kWaitRst);
    CHECK(script[10].kind == StepKind::kReadUntilError);
    CHECK(script[11].kind == StepKind::kAtNext);
    CHECK(script[11].count == 250);
    CHECK(script[12].kind == StepKind::kWaitFile);
    CHECK(script[12].path == "/tmp/a:b go");
    CHECK(script[13].kind == StepKind::kAbort);
  }

  TEST_CASE("script: underscores stand for dashes and blanks around steps are ignored") {
    const fp::Script script = fp::parse_script(" read_eof ,\twait_rst, shutdown: wr ");
    REQUIRE(script.size() == 3);
    CHECK(script[0].kind == StepKind::kReadEof);
    CHECK(script[1].kind == StepKind::kWaitRst);
    CHECK(script[2].how == ShutdownHow::kWrite);
  }

  TEST_CASE("script: the waits (sleep, at, at-next, wait-file) may follow close and abort") {
    const fp::Script script = fp::parse_script("close,sleep:10,at:1,sleep:0,at_next:100");
    REQUIRE(script.size() == 5);
    CHECK(script[2].kind == StepKind::kAt);
    CHECK(script[4].kind == StepKind::kAtNext);
    CHECK(fp::parse_script("abort,at:5,wait-file:/tmp/go").size() == 3);
  }

  TEST_CASE("script: event names") {
    CHECK(fp::event_name(StepKind::kReadEof) == "read_eof");
    CHECK(fp::event_name(StepKind::kAt) == "at");
    CHECK(fp::event_name(StepKind::kAtNext) == "at_next");
    CHECK(fp::event_name(StepKind::kWaitFile) == "wait_file");
    CHECK(fp::event_name(StepKind::kWaitRst) == "wait_rst");
    CHECK(fp::event_name(StepKind::kReadUntilError) == "read_until_error");
  }

  TEST_CASE("script: the help names every step") {
    const std::string help = fp::script_help();
    for (const char* step : {"send:N", "read:N", "read-eof", "shutdown[:wr|rd|rdwr]", "sleep:MS",
                             "at:EPOCH_MS", "at-next:PERIOD_MS", "hold:MS", "wait-file:PATH",
                             "close", "abort", "wait-rst", "read-until-error"}) {
      CAPTURE(step);
      CHECK(help.find(step) != std::string::npos);
    }
  }

  TEST_CASE("script: malformed scripts give precise errors") {
    struct Case {
      const char* text;
      const char* error;
    };
    const Case cases[] = {
        {"", "the script is empty"},
        {" \t ", "the script is empty"},
        {"frobnicate", "step 1 'frobnicate': unknown step 'frobnicate'"},
        {"send:100,frobnicate,close", "step 2 'frobnicate': unknown step 'frobnicate'"},
        {"Send:1", "step 1 'Send:1': unknown step 'Send'"},
        {":5", "step 1 ':5': unknown step ''"},
        {"send", "step 1 'send': 'send' needs a byte count (send:N)"},
        {"send:", "step 1 'send:': '' is not a byte count"},
        {"send:-1", "step 1 'send:-1': '-1' is not a byte count"},
        {"send:1e3", "step 1 'send:1e3': '1e3' is not a byte count"},
        {"send:0x10", "step 1 'send:0x10': '0x10' is not a byte count"},
        {"send:99999999999999999999",
         "step 1 'send:99999999999999999999': "
         "'99999999999999999999' is not a byte count"},
        {"read:12x", "step 1 'read:12x': '12x' is not a byte count"},
        {"sleep", "step 1 'sleep': 'sleep' needs milliseconds (sleep:N)"},
        {"hold:soon", "step 1 'hold:soon': 'soon' is not milliseconds"},
        {"at", "step 1 'at': 'at' needs milliseconds since the epoch (at:EPOCH_MS)"},
        {"at:now", "step 1 'at:now': 'now' is not milliseconds since the epoch"},
        {"at:+500", "step 1 'at:+500': '+500' is not milliseconds since the epoch"},
        {"at:1.5", "step 1 'at:1.5': '1.5' is not milliseconds since the epoch"},
        {"at-next", "step 1 'at-next': 'at-next' needs milliseconds (at-next:N)"},
        {"at-next:0", "step 1 'at-next:0': 'at-next' needs a period of at least 1 ms"},
        {"at_next:1s", "step 1 'at_next:1s': '1s' is not milliseconds"},
        {"wait-file", "step 1 'wait-file': 'wait-file' needs a path (wait-file:PATH)"},
        {"wait-file: ", "step 1 'wait-file:': 'wait-file' needs a path (wait-file:PATH)"},
        {"read-eof:3", "step 1 'read-eof:3': 'read-eof' takes no argument"},
        {"close:", "step 1 'close:': 'close' takes no argument"},
        {"abort:now", "step 1 'abort:now': 'abort' takes no argument"},
        {"shutdown:up", "step 1 'shutdown:up': shutdown takes wr, rd or rdwr, not 'up'"},
        {"shutdown:", "step 1 'shutdown:': shutdown takes wr, rd or rdwr, not ''"},
        {"send:1,,close", "step 2 is empty"},
        {"send:1,", "step 2 is empty"},
        {",send:1", "step 1 is empty"},
        {"close,send:1", "step 2 'send:1': comes after the socket was closed by step 1"},
        {"send:1,abort,sleep:5,hold:5",
         "step 4 'hold:5': comes after the socket was closed by step 2"},
        {"close,at:1,shutdown", "step 3 'shutdown': comes after the socket was closed by step 1"},
        {"close,close", "step 2 'close': comes after the socket was closed by step 1"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.text);
      CHECK(error_of(c.text) == c.error);
    }
  }
}
