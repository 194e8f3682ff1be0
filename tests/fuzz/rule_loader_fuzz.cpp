// Fuzzes the rule file loader (rules/rule_loader.cpp) with TOML text: parse_rules(), as for a
// rule file, and parse_single_rule(), as for the control socket's `add`. Either yields rules
// within the ranges rules/rule.hpp documents (the engine trusts them unchecked) or throws a
// ConfigError whose position lies within the text; no other exception, no leak.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "rules/rule_loader.hpp"

namespace {

using finwave::rules::Action;
using finwave::rules::ConfigError;
using finwave::rules::Rule;

constexpr std::string_view kSource = "fuzz.toml";

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > Rule::kMaxNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

void check_rule(const Rule& rule) {
  FUZZ_CHECK(valid_name(rule.name), "a rule name is [A-Za-z0-9_.-], 1..64 characters");
  FUZZ_CHECK(!rule.counted() || (rule.count >= 1 && rule.count <= Rule::kMaxCount),
             "nth/first/after N in 1..65534");
  FUZZ_CHECK(rule.probability > 0.0 && rule.probability <= 1.0, "probability in (0, 1]");
  if (rule.action == Action::kDelay) {
    FUZZ_CHECK(rule.delay_ms > 0.0 && rule.delay_ms <= Rule::kMaxDelayMs, "delay in (0, 600000]");
    FUZZ_CHECK(rule.jitter_ms >= 0.0 && rule.jitter_ms <= rule.delay_ms, "jitter in [0, delay]");
    FUZZ_CHECK(rule.copies <= Rule::kMaxCopies, "a delay's copies in 0..100");
  }
  if (rule.action == Action::kDuplicate) {
    FUZZ_CHECK(rule.copies >= 1 && rule.copies <= Rule::kMaxCopies, "copies in 1..100");
  }
  FUZZ_CHECK(rule.spacing_ms >= 0.0 && rule.spacing_ms <= Rule::kMaxSpacingMs,
             "spacing in [0, 60000]");
  FUZZ_CHECK(!describe(rule).empty(), "every rule has a summary");
}

void check_error(const ConfigError& error, std::string_view text, std::string_view source) {
  FUZZ_CHECK(error.file == source, "the error names the source");
  FUZZ_CHECK(!error.message.empty(), "the error says what is wrong");
  FUZZ_CHECK(std::none_of(error.message.begin(), error.message.end(),
                          [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }),
             "the message shows user text without control characters");
  const auto lines = static_cast<std::uint32_t>(std::count(text.begin(), text.end(), '\n') + 1);
  FUZZ_CHECK(error.line >= 1 && error.line <= lines, "the error line lies within the text");
  FUZZ_CHECK(error.column >= 1, "the error has a column");
  const std::string prefix = std::string(source) + ":" + std::to_string(error.line) + ":" +
                             std::to_string(error.column) + ": ";
  FUZZ_CHECK(std::string_view(error.what()) == prefix + error.message,
             "what() reads FILE:LINE:COL: message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const finwave::rules::RuleSet set = finwave::rules::parse_rules(text, kSource);
    FUZZ_CHECK(set.source == kSource, "the rule set names its source");
    std::set<std::string> names;
    for (const Rule& rule : set.rules) {
      check_rule(rule);
      FUZZ_CHECK(names.insert(rule.name).second, "rule names are unique in a file");
    }
  } catch (const ConfigError& error) {
    check_error(error, text, kSource);
  } catch (...) {
    FUZZ_CHECK(false, "parse_rules() throws nothing but ConfigError");
  }

  try {
    check_rule(finwave::rules::parse_single_rule(text, "add"));
  } catch (const ConfigError& error) {
    check_error(error, text, "add");
  } catch (...) {
    FUZZ_CHECK(false, "parse_single_rule() throws nothing but ConfigError");
  }
  return 0;
}
