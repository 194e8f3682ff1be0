// Fuzzes the control socket's request parsing (proxy/control_protocol.cpp): the input is what a
// client writes. As one line it goes to parse_control_request(), which never throws and yields
// either a request within the protocol's limits or an error code from its table; the reply
// written for either must parse back with the request's id. The same bytes also go through
// LineFramer, whose lines must be the input split at '\n' (a trailing '\r' dropped, lines over
// the limit reported as too long), each of which is parsed as a request again.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "proxy/control/control_protocol.hpp"
#include "proxy/control/line_framer.hpp"
#include "rules/rule_loader.hpp"

namespace {

using finwave::proxy::ControlCommand;
using finwave::proxy::ControlErrorCode;
using finwave::proxy::LineFramer;
using Json = nlohmann::json;

// What parse_control_request() may answer; the other codes belong to the server and the daemon.
bool parse_error_code(ControlErrorCode code) {
  switch (code) {
    case ControlErrorCode::kBadJson:
    case ControlErrorCode::kNotAnObject:
    case ControlErrorCode::kMissingField:
    case ControlErrorCode::kBadField:
    case ControlErrorCode::kUnknownField:
    case ControlErrorCode::kUnknownCommand:
    case ControlErrorCode::kInvalidRule:
      return true;
    default:
      return false;
  }
}

Json parse_reply(const std::string& line) {
  FUZZ_CHECK(line.find('\n') == std::string::npos, "a reply is one line");
  Json reply = Json::parse(line, nullptr, false);
  FUZZ_CHECK(reply.is_object(), "a reply is a JSON object");
  return reply;
}

void check_request(std::string_view line) {
  finwave::proxy::ParsedControlRequest parsed;
  try {
    parsed = finwave::proxy::parse_control_request(line);
  } catch (...) {
    FUZZ_CHECK(false, "parse_control_request() never throws");
  }
  const finwave::proxy::ControlRequest& request = parsed.request;

  if (parsed.error) {
    const auto code = static_cast<std::size_t>(parsed.error->code);
    FUZZ_CHECK(code < finwave::proxy::ControlErrorCodeNames::kSize, "a code from the table");
    FUZZ_CHECK(parse_error_code(parsed.error->code), "a code parsing can give");
    FUZZ_CHECK(*parsed.error->what() != '\0', "every error has a message");
    const Json reply =
        parse_reply(format_control_error(request.id, parsed.error->code, parsed.error->what()));
    FUZZ_CHECK(reply.value("ok", true) == false, "an error reply says ok:false");
    FUZZ_CHECK(reply.at("error").at("code") == to_string(parsed.error->code),
               "an error reply carries its code");
    FUZZ_CHECK(reply.at("id") == request.id, "an error reply carries the request's id");
    return;
  }

  const std::string_view name = to_string(request.command);
  FUZZ_CHECK(finwave::proxy::ControlCommandNames::parse(name) == request.command,
             "command names round-trip");
  switch (request.command) {
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
    case ControlCommand::kRemove:
      FUZZ_CHECK(!request.name.empty(), "enable/disable/remove name a rule");
      break;
    case ControlCommand::kAdd:
      // What the daemon does next: the rule either validates or is a ConfigError.
      try {
        const finwave::rules::Rule rule =
            finwave::rules::parse_single_rule(request.rule_toml, "add");
        FUZZ_CHECK(!rule.name.empty(), "an added rule has a name");
        if (request.rule_from_json) {
          const Json object = Json::parse(line);
          FUZZ_CHECK(object.at("rule").at("name") == rule.name,
                     "a JSON rule keeps its name through TOML");
        }
      } catch (const finwave::rules::ConfigError& error) {
        FUZZ_CHECK(!error.message.empty(), "an invalid rule says why");
      } catch (...) {
        FUZZ_CHECK(false, "parse_single_rule() throws nothing but ConfigError");
      }
      break;
    case ControlCommand::kWait:
      FUZZ_CHECK(request.timeout_ms <= finwave::proxy::kMaxWaitTimeoutMs, "wait timeout in range");
      FUZZ_CHECK(request.count >= 1 && request.count <= finwave::proxy::kMaxWaitCount,
                 "wait count in range");
      break;
    case ControlCommand::kSubscribe:
      FUZZ_CHECK(request.events != 0 && (request.events & ~finwave::proxy::kEventAll) == 0,
                 "subscribe to a non-empty set of known events");
      break;
    default:
      break;
  }
  const Json filter = request.filter.to_json();
  FUZZ_CHECK(filter.is_object(), "a filter echoes as an object");
  const Json reply =
      parse_reply(finwave::proxy::format_control_reply(request.id, {{"filter", filter}}));
  FUZZ_CHECK(reply.value("ok", false) == true, "a reply says ok:true");
  FUZZ_CHECK(reply.at("id") == request.id, "a reply carries the request's id");
}

struct Framed {
  bool too_long = false;
  std::string line;
};

// The lines LineFramer must give for `bytes`, computed the obvious way.
std::vector<Framed> expected_lines(std::string_view bytes, std::size_t max_line) {
  std::vector<Framed> lines;
  while (!bytes.empty()) {
    const std::size_t newline = bytes.find('\n');
    std::string_view line = bytes.substr(0, newline);
    bytes.remove_prefix(newline == std::string_view::npos ? bytes.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line) {
      lines.push_back({true, {}});
    } else {
      lines.push_back({false, std::string(line)});
    }
  }
  return lines;
}

constexpr std::size_t kParsedLines = 8;

void check_framer(std::string_view bytes) {
  if (bytes.empty()) return;
  // Chunk size and line limit from the input, so that the fuzzer explores both.
  const std::size_t chunk = 1 + static_cast<unsigned char>(bytes.front()) % 13;
  const std::size_t max_line = 4 + static_cast<unsigned char>(bytes.back()) % 60;
  LineFramer framer(max_line);
  std::vector<Framed> got;
  std::string line;
  auto drain = [&] {
    for (;;) {
      const LineFramer::Next next = framer.next(line);
      if (next == LineFramer::Next::kNone) break;
      got.push_back({next == LineFramer::Next::kTooLong,
                     next == LineFramer::Next::kLine ? line : std::string()});
    }
    FUZZ_CHECK(framer.buffered() <= max_line + 1, "the framer holds at most one line");
  };
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    framer.append(bytes.substr(at, chunk));
    drain();
  }
  framer.finish();
  drain();

  const std::vector<Framed> want = expected_lines(bytes, max_line);
  FUZZ_CHECK(got.size() == want.size(), "one line or one too-long per newline");
  for (std::size_t i = 0; i < got.size(); ++i) {
    FUZZ_CHECK(got[i].too_long == want[i].too_long && got[i].line == want[i].line,
               "the framed lines are the input's lines");
    // The first lines only: a 4 KiB input of newlines would spend its time throwing bad_json.
    if (!got[i].too_long && i < kParsedLines) check_request(got[i].line);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_request(bytes);
  check_framer(bytes);
  return 0;
}
