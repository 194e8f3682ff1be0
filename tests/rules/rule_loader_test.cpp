#include "rules/rule_loader.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "rules/config_error.hpp"
#include "rules/flow_rule_state.hpp"

namespace fr = finwave::rules;
using fr::Action;
using fr::ConfigError;
using fr::Role;

namespace {

// Parses `text` as "t.toml" and returns the error, failing the test if there is none.
ConfigError error_of(const std::string& text) {
  try {
    fr::parse_rules(text, "t.toml");
  } catch (const ConfigError& error) {
    return error;
  }
  FAIL("no error for:\n" << text);
  return ConfigError("unreachable");
}

ConfigError single_rule_error_of(const std::string& text) {
  try {
    fr::parse_single_rule(text, "add");
  } catch (const ConfigError& error) {
    return error;
  }
  FAIL("no error for:\n" << text);
  return ConfigError("unreachable");
}

std::string counted_rules(int count) {
  std::string text;
  for (int i = 1; i <= count; ++i) {
    text += "[[rule]]\nname = \"r" + std::to_string(i) + "\"\nfirst = 1\naction = \"drop\"\n";
  }
  return text;
}

constexpr const char* kAllowedKeys =
    "allowed keys: name, enabled, role, retx, from, ports, client_ports, server_ports, addresses, "
    "client_addresses, server_addresses, nth, first, after, probability, action, delay_ms, "
    "jitter_ms, copies, spacing_ms";

}  // namespace

TEST_SUITE("rules") {
  TEST_CASE("loader: the smallest rule") {
    const fr::RuleSet set = fr::parse_rules(
        "[[rule]]\nname = \"lose-final-ack\"\nrole = \"final_ack\"\naction = \"drop\"\n", "t.toml");
    CHECK(set.source == "t.toml");
    REQUIRE(set.rules.size() == 1);
    const fr::Rule& rule = set.rules[0];
    CHECK(rule.name == "lose-final-ack");
    CHECK(rule.enabled);
    CHECK(rule.role == Role::kFinalAck);
    CHECK_FALSE(rule.retx.has_value());
    CHECK(rule.from == fr::Sender::kEither);
    CHECK(rule.ports.empty());
    CHECK(rule.addresses.empty());
    CHECK(rule.counter == fr::Counter::kNone);
    CHECK(rule.probability == 1.0);
    CHECK(rule.action == Action::kDrop);
    CHECK(rule.copies == 0);
  }

  TEST_CASE("loader: empty files and comment-only files and empty rule arrays have no rules") {
    CHECK(fr::parse_rules("", "t.toml").rules.empty());
    CHECK(fr::parse_rules("# nothing here\n\n   # still nothing\n", "t.toml").rules.empty());
    CHECK(fr::parse_rules("rule = []\n", "t.toml").rules.empty());
  }

  TEST_CASE("loader: every key is read") {
    const fr::RuleSet set = fr::parse_rules(R"(
[[rule]]
name = "everything"
enabled = false
role = "fin2"
retx = true
from = "passive"
ports = [80, 443]
client_ports = 40000
server_ports = [5432]
addresses = ["198.18.0.0/15", "2001:db8::/32"]
client_addresses = "198.18.1.2"
server_addresses = ["198.18.2.0/24"]
nth = 2
probability = 0.75
action = "delay"
delay_ms = 12.5
jitter_ms = 2
copies = 3
spacing_ms = 1.5
)",
                                            "t.toml");
    REQUIRE(set.rules.size() == 1);
    const fr::Rule& rule = set.rules[0];
    CHECK(rule.name == "everything");
    CHECK_FALSE(rule.enabled);
    CHECK(rule.role == Role::kFin2);
    CHECK(rule.retx == true);
    CHECK(rule.from == fr::Sender::kPassiveCloser);
    CHECK(rule.ports == std::vector<std::uint16_t>{80, 443});
    CHECK(rule.client_ports == std::vector<std::uint16_t>{40000});
    CHECK(rule.server_ports == std::vector<std::uint16_t>{5432});
    REQUIRE(rule.addresses.size() == 2);
    CHECK(fr::to_string(rule.addresses[1]) == "2001:db8::/32");
    REQUIRE(rule.client_addresses.size() == 1);
    CHECK(fr::to_string(rule.client_addresses[0]) == "198.18.1.2/32");
    REQUIRE(rule.server_addresses.size() == 1);
    CHECK(rule.counter == fr::Counter::kNth);
    CHECK(rule.count == 2);
    CHECK(rule.probability == 0.75);
    CHECK(rule.action == Action::kDelay);
    CHECK(rule.delay_ms == 12.5);
    CHECK(rule.jitter_ms == 2.0);
    CHECK(rule.copies == 3);
    CHECK(rule.spacing_ms == 1.5);
  }

  TEST_CASE("loader: rules keep file order and inline tables work like array tables") {
    const fr::RuleSet set = fr::parse_rules(
        "rule = [ { name = \"b\", action = \"pass\" }, { name = \"a\", action = \"drop\" } ]\n",
        "t.toml");
    REQUIRE(set.rules.size() == 2);
    CHECK(set.rules[0].name == "b");
    CHECK(set.rules[1].name == "a");
  }

  TEST_CASE("loader: duplicate defaults to one copy and delay to none") {
    const fr::RuleSet set = fr::parse_rules(
        "[[rule]]\nname = \"d\"\naction = \"duplicate\"\n"
        "[[rule]]\nname = \"w\"\naction = \"delay\"\ndelay_ms = 1\n",
        "t.toml");
    CHECK(set.rules[0].copies == 1);
    CHECK(set.rules[1].copies == 0);
  }

  TEST_CASE("loader: limits are inclusive") {
    const fr::RuleSet set = fr::parse_rules(R"(
[[rule]]
name = "max"
ports = [1, 65535]
nth = 65534
probability = 1
action = "delay"
delay_ms = 600000
jitter_ms = 600000
copies = 100
spacing_ms = 60000
[[rule]]
name = "min.value_1"
after = 1
probability = 1e-9
action = "duplicate"
copies = 1
spacing_ms = 0
)",
                                            "t.toml");
    CHECK(set.rules.size() == 2);
  }

  TEST_CASE("loader: the lower limits of the ranges are as documented") {
    // delay_ms must be above 0, however little; jitter_ms and spacing_ms may be 0.
    const fr::RuleSet set = fr::parse_rules(R"(
[[rule]]
name = "min"
action = "delay"
delay_ms = 0.001
jitter_ms = 0
copies = 1
spacing_ms = 0
)",
                                            "t.toml");
    REQUIRE(set.rules.size() == 1);
    CHECK(set.rules[0].delay_ms == 0.001);
    CHECK(set.rules[0].jitter_ms == 0.0);
    CHECK(set.rules[0].copies == 1);
    CHECK(set.rules[0].spacing_ms == 0.0);
  }

  TEST_CASE("loader: 16 counted rules are fine whether disabled or not") {
    std::string text = counted_rules(16);
    text += "[[rule]]\nname = \"uncounted\"\naction = \"pass\"\n";
    CHECK(fr::parse_rules(text, "t.toml").rules.size() == 17);
  }

  // Every malformed rule file we could think of, with the exact error a user sees.
  TEST_CASE("loader: malformed rule files give precise errors") {
    struct Case {
      const char* what;
      std::string text;
      std::string error;
    };
    const std::string rule = "[[rule]]\nname = \"a\"\n";  // Lines 1-2 of most cases.
    const Case cases[] = {
        // TOML syntax.
        {"truncated key/value", rule + "action =",
         "t.toml:3:9: invalid TOML: error while parsing key-value pair: encountered end-of-file"},
        {"duplicate key", rule + "name = \"b\"\naction = \"drop\"",
         "t.toml:3:8: invalid TOML: error while parsing key-value pair: cannot redefine existing "
         "string 'name'"},
        {"unterminated string", "[[rule]]\nname = \"a\naction = \"drop\"\n",
         "t.toml:2:10: invalid TOML: error while parsing string: unescaped control characters "
         "other than TAB (U+0009) are explicitly prohibited"},
        // Found by tests/fuzz (regressions/rule_loader/newline_in_toml_error.toml): toml++
        // quotes what it saw with the newline in it.
        {"truncated boolean", rule + "enabled = fals\naction = \"drop\"\n",
         "t.toml:3:15: invalid TOML: error while parsing boolean: expected 'false', saw "
         "'fals\\u000a'"},
        {"unclosed header", "[[rule]\nname = \"a\"\n",
         "t.toml:1:8: invalid TOML: error while parsing table header: expected ']', saw '\\n'"},
        // Top level.
        {"[rule] instead of [[rule]]", "[rule]\nname = \"a\"\naction = \"drop\"\n",
         "t.toml:1:1: [rule] declares a single table; rules are an array of tables, so write "
         "[[rule]] (double brackets) before each rule"},
        {"stray key before the first rule", "name = \"a\"\n[[rule]]\nname = \"b\"\n",
         "t.toml:1:1: key 'name' is outside any rule; every rule starts with a [[rule]] line and "
         "its keys follow that line"},
        {"misspelt table", "[[rules]]\nname = \"a\"\naction = \"drop\"\n",
         "t.toml:1:3: unknown table 'rules'; did you mean [[rule]]? a rule file holds only "
         "[[rule]] tables"},
        {"unrelated table", "[server]\nport = 80\n",
         "t.toml:1:2: unknown table 'server'; a rule file holds only [[rule]] tables"},
        {"rule as a scalar", "rule = 5\n",
         "t.toml:1:8: 'rule' must be an array of tables ([[rule]]), not an integer (5)"},
        {"rule array of strings", "rule = [\"drop\"]\n",
         "t.toml:1:9: each rule must be a table, not a string (\"drop\")"},
        // Keys.
        {"unknown key with a typo", rule + "acton = \"drop\"\n",
         std::string("t.toml:3:1: unknown key 'acton' in rule; did you mean 'action'? ") +
             kAllowedKeys},
        {"unknown key without a near miss", rule + "colour = \"red\"\n",
         std::string("t.toml:3:1: unknown key 'colour' in rule; ") + kAllowedKeys},
        {"sub-table inside a rule", rule + "action = \"drop\"\n[rule.match]\nrole = \"fin1\"\n",
         std::string("t.toml:4:7: unknown key 'match' in rule; ") + kAllowedKeys},
        // Types.
        {"enabled as a string", rule + "enabled = \"yes\"\naction = \"drop\"\n",
         "t.toml:3:11: 'enabled' must be true or false, not a string (\"yes\")"},
        {"retx as an integer", rule + "retx = 1\naction = \"drop\"\n",
         "t.toml:3:8: 'retx' must be true or false, not an integer (1)"},
        {"name as an integer", "[[rule]]\nname = 7\naction = \"drop\"\n",
         "t.toml:2:8: 'name' must be a string, not an integer (7)"},
        {"role as an array", rule + "role = [\"fin1\", \"fin2\"]\naction = \"drop\"\n",
         "t.toml:3:8: 'role' must be a string, not an array"},
        {"action as an array", rule + "action = [\"delay\", \"duplicate\"]\n",
         "t.toml:3:10: 'action' must be a string, not an array; to delay a segment and then "
         "duplicate it, write action = \"delay\" with delay_ms and copies"},
        {"copies as a float", rule + "action = \"duplicate\"\ncopies = 2.0\n",
         "t.toml:4:10: 'copies' must be an integer, not a floating-point number (2)"},
        {"delay_ms as a string", rule + "action = \"delay\"\ndelay_ms = \"400ms\"\n",
         "t.toml:4:12: 'delay_ms' must be a number, not a string (\"400ms\")"},
        {"delay_ms infinite", rule + "action = \"delay\"\ndelay_ms = inf\n",
         "t.toml:4:12: 'delay_ms' must be a finite number, not inf"},
        {"probability nan", rule + "action = \"drop\"\nprobability = nan\n",
         "t.toml:4:15: 'probability' must be a finite number, not nan"},
        {"ports as a string", rule + "ports = \"80\"\naction = \"drop\"\n",
         "t.toml:3:9: 'ports' must be a port number or an array of them (ports = [80, 443]), not "
         "a string (\"80\")"},
        {"port list with a string", rule + "ports = [80, \"443\"]\naction = \"drop\"\n",
         "t.toml:3:14: 'ports' must list port numbers (integers), but this element is a string "
         "(\"443\")"},
        {"addresses as an integer", rule + "addresses = 10\naction = \"drop\"\n",
         "t.toml:3:13: 'addresses' must be an address or prefix string or an array of them "
         "(addresses = [\"198.18.0.0/15\"]), not an integer (10)"},
        {"address list with an integer",
         rule + "client_addresses = [\"198.18.1.2\", 4]\n"
                "action = \"drop\"\n",
         "t.toml:3:35: 'client_addresses' must list addresses as strings (\"198.18.0.0/15\"), but "
         "this element is an integer (4)"},
        // Missing keys.
        {"missing name", "[[rule]]\nrole = \"fin1\"\naction = \"drop\"\n",
         "t.toml:1:1: this rule has no 'name'; add name = \"...\" (unique; letters, digits, '_', "
         "'.', '-')"},
        {"missing name in the second rule",
         rule + "action = \"drop\"\n\n[[rule]]\naction = \"drop\"\n",
         "t.toml:5:1: this rule has no 'name'; add name = \"...\" (unique; letters, digits, '_', "
         "'.', '-')"},
        {"missing action", rule + "role = \"fin1\"\n",
         "t.toml:1:1: rule 'a' has no 'action'; add action = \"...\" with one of: pass, drop, "
         "delay, duplicate, reset"},
        {"delay without delay_ms", rule + "action = \"delay\"\n",
         "t.toml:3:10: action \"delay\" needs 'delay_ms' (milliseconds, more than 0 and at most "
         "600000)"},
        // Names.
        {"duplicate name",
         rule + "action = \"drop\"\n\n[[rule]]\nname = \"a\"\naction = \"pass\"\n",
         "t.toml:6:8: duplicate rule name 'a'; the first rule of that name is at line 2, and "
         "names must be unique"},
        {"empty name", "[[rule]]\nname = \"\"\naction = \"drop\"\n",
         "t.toml:2:8: rule name is empty"},
        {"name with a space", "[[rule]]\nname = \"lose final ack\"\naction = \"drop\"\n",
         "t.toml:2:8: rule name 'lose final ack' contains a space; names may use only letters, "
         "digits, '_', '.' and '-'"},
        {"name with a slash", "[[rule]]\nname = \"a/b\"\naction = \"drop\"\n",
         "t.toml:2:8: rule name 'a/b' contains '/'; names may use only letters, digits, '_', "
         "'.' and '-'"},
        {"name with non-ASCII", "[[rule]]\nname = \"perdu-é\"\naction = \"drop\"\n",
         "t.toml:2:8: rule name 'perdu-é' contains a non-ASCII character; names may use only "
         "letters, digits, '_', '.' and '-'"},
        // Found by tests/fuzz (regressions/rule_loader/nul_in_rule_name.toml): a NUL in the
        // name used to cut what() short, a newline to garble the terminal.
        {"name with a NUL", "[[rule]]\nname = \"a\\u0000b\"\naction = \"drop\"\n",
         "t.toml:2:8: rule name 'a\\u0000b' contains a control character; names may use only "
         "letters, digits, '_', '.' and '-'"},
        {"name with a newline", "[[rule]]\nname = \"a\\nb\"\naction = \"drop\"\n",
         "t.toml:2:8: rule name 'a\\u000ab' contains a control character; names may use only "
         "letters, digits, '_', '.' and '-'"},
        {"name too long", "[[rule]]\nname = \"" + std::string(65, 'x') + "\"\naction = \"drop\"\n",
         "t.toml:2:8: rule name is 65 characters long; the limit is 64"},
        // Enumerations.
        {"unknown role with a typo", rule + "role = \"final-ack\"\naction = \"drop\"\n",
         "t.toml:3:8: unknown role 'final-ack'; did you mean 'final_ack'? roles: syn, syn_ack, "
         "fin1, ack1, fin2, final_ack, data_after_fin, rst, ack, any"},
        {"unknown role", rule + "role = \"teardown\"\naction = \"drop\"\n",
         "t.toml:3:8: unknown role 'teardown'; roles: syn, syn_ack, fin1, ack1, fin2, final_ack, "
         "data_after_fin, rst, ack, any"},
        {"role in capitals", rule + "role = \"FIN1\"\naction = \"drop\"\n",
         "t.toml:3:8: unknown role 'FIN1'; did you mean 'fin1'? roles: syn, syn_ack, fin1, ack1, "
         "fin2, final_ack, data_after_fin, rst, ack, any"},
        {"unknown action", rule + "action = \"dorp\"\n",
         "t.toml:3:10: unknown action 'dorp'; did you mean 'drop'? actions: pass, drop, "
         "delay, duplicate, reset"},
        {"unknown action rst", rule + "action = \"rst\"\n",
         "t.toml:3:10: unknown action 'rst'; did you mean 'reset'? actions: pass, drop, "
         "delay, duplicate, reset"},
        {"unknown from", rule + "from = \"clinet\"\naction = \"drop\"\n",
         "t.toml:3:8: unknown 'from' value 'clinet'; did you mean 'client'? use client, server, "
         "active (the active closer) or passive (the passive closer)"},
        {"from both", rule + "from = \"both\"\naction = \"drop\"\n",
         "t.toml:3:8: unknown 'from' value 'both'; use client, server, active (the active "
         "closer) or passive (the passive closer)"},
        // Values.
        {"negative delay", rule + "action = \"delay\"\ndelay_ms = -1\n",
         "t.toml:4:12: 'delay_ms' must be more than 0 and at most 600000 (10 minutes); got -1"},
        {"zero delay", rule + "action = \"delay\"\ndelay_ms = 0\n",
         "t.toml:4:12: 'delay_ms' must be more than 0 and at most 600000 (10 minutes); got 0"},
        {"absurd delay", rule + "action = \"delay\"\ndelay_ms = 1e9\n",
         "t.toml:4:12: 'delay_ms' must be more than 0 and at most 600000 (10 minutes); got 1e+09"},
        // Just past each limit (the limits themselves are accepted above, in "max").
        {"delay just past the limit", rule + "action = \"delay\"\ndelay_ms = 600000.5\n",
         "t.toml:4:12: 'delay_ms' must be more than 0 and at most 600000 (10 minutes); got "
         "600000.5"},
        {"jitter just past the limit",
         rule + "action = \"delay\"\ndelay_ms = 10\njitter_ms = 600001\n",
         "t.toml:5:13: 'jitter_ms' must be at least 0 and at most 600000; got 600001"},
        {"spacing just past the limit", rule + "action = \"duplicate\"\nspacing_ms = 60000.25\n",
         "t.toml:4:14: 'spacing_ms' must be at least 0 and at most 60000 (1 minute); got 60000.25"},
        {"delay one past the limit", rule + "action = \"delay\"\ndelay_ms = 600001\n",
         "t.toml:4:12: 'delay_ms' must be more than 0 and at most 600000 (10 minutes); got "
         "600001"},
        {"spacing one past the limit", rule + "action = \"duplicate\"\nspacing_ms = 60001\n",
         "t.toml:4:14: 'spacing_ms' must be at least 0 and at most 60000 (1 minute); got 60001"},
        // Seven significant digits: six would show "got 1" next to "at most 1".
        {"probability just past the limit", rule + "action = \"drop\"\nprobability = 1.0000001\n",
         "t.toml:4:15: 'probability' must be more than 0 and at most 1; got 1.0000001"},
        {"negative probability", rule + "action = \"drop\"\nprobability = -0.5\n",
         "t.toml:4:15: 'probability' must be more than 0 and at most 1; got -0.5"},
        {"negative copies", rule + "action = \"duplicate\"\ncopies = -1\n",
         "t.toml:4:10: 'copies' must be between 1 and 100; got -1"},
        {"first just past the limit", rule + "action = \"drop\"\nfirst = 65535\n",
         "t.toml:4:9: 'first' must be between 1 and 65534; got 65535"},
        {"after just past the limit", rule + "action = \"drop\"\nafter = 65535\n",
         "t.toml:4:9: 'after' must be between 1 and 65534; got 65535"},
        {"port just past the limit", rule + "ports = 65536\naction = \"drop\"\n",
         "t.toml:3:9: port 65536 is out of range (1..65535)"},
        {"negative jitter", rule + "action = \"delay\"\ndelay_ms = 10\njitter_ms = -0.5\n",
         "t.toml:5:13: 'jitter_ms' must be at least 0 and at most 600000; got -0.5"},
        {"jitter above the delay", rule + "action = \"delay\"\ndelay_ms = 50\njitter_ms = 60\n",
         "t.toml:5:13: 'jitter_ms' (60) must not exceed 'delay_ms' (50): the delay is drawn "
         "between delay_ms - jitter_ms and delay_ms + jitter_ms"},
        {"zero copies", rule + "action = \"duplicate\"\ncopies = 0\n",
         "t.toml:4:10: 'copies' must be between 1 and 100; got 0"},
        {"too many copies", rule + "action = \"duplicate\"\ncopies = 101\n",
         "t.toml:4:10: 'copies' must be between 1 and 100; got 101"},
        {"negative spacing", rule + "action = \"duplicate\"\nspacing_ms = -1\n",
         "t.toml:4:14: 'spacing_ms' must be at least 0 and at most 60000 (1 minute); got -1"},
        {"absurd spacing", rule + "action = \"duplicate\"\nspacing_ms = 86400000\n",
         "t.toml:4:14: 'spacing_ms' must be at least 0 and at most 60000 (1 minute); got "
         "8.64e+07"},
        {"probability above 1", rule + "action = \"drop\"\nprobability = 1.5\n",
         "t.toml:4:15: 'probability' must be more than 0 and at most 1; got 1.5"},
        {"probability as a percentage", rule + "action = \"drop\"\nprobability = 50\n",
         "t.toml:4:15: 'probability' must be more than 0 and at most 1; got 50 (a probability, "
         "not a percentage: 50% is 0.5)"},
        {"probability zero", rule + "action = \"drop\"\nprobability = 0\n",
         "t.toml:4:15: 'probability' must be more than 0 and at most 1; got 0 (to switch a rule "
         "off, write enabled = false)"},
        {"port out of range", rule + "ports = [80, 70000]\naction = \"drop\"\n",
         "t.toml:3:14: port 70000 is out of range (1..65535)"},
        {"port zero", rule + "server_ports = 0\naction = \"drop\"\n",
         "t.toml:3:16: port 0 is out of range (1..65535)"},
        {"negative port", rule + "client_ports = [-80]\naction = \"drop\"\n",
         "t.toml:3:17: port -80 is out of range (1..65535)"},
        {"empty port list", rule + "ports = []\naction = \"drop\"\n",
         "t.toml:3:9: 'ports' is empty, so the rule could never match; list at least one port or "
         "remove the key"},
        {"bad prefix length", rule + "addresses = [\"198.18.0.0/33\"]\naction = \"drop\"\n",
         "t.toml:3:14: bad address in 'addresses': '198.18.0.0/33': prefix length /33 is too "
         "long for IPv4 (0..32)"},
        {"bad IPv6 address", rule + "server_addresses = \"2001:db8::g/64\"\naction = \"drop\"\n",
         "t.toml:3:20: bad address in 'server_addresses': '2001:db8::g/64': '2001:db8::g' is "
         "not an IPv6 address"},
        {"empty address list", rule + "addresses = []\naction = \"drop\"\n",
         "t.toml:3:13: 'addresses' is empty, so the rule could never match; list at least one "
         "address or remove the key"},
        // Counters.
        {"nth zero", rule + "nth = 0\naction = \"drop\"\n",
         "t.toml:3:7: 'nth' must be between 1 and 65534; got 0 (the first matching segment is "
         "nth = 1)"},
        {"first zero", rule + "first = 0\naction = \"drop\"\n",
         "t.toml:3:9: 'first' must be between 1 and 65534; got 0"},
        {"after zero", rule + "after = 0\naction = \"drop\"\n",
         "t.toml:3:9: 'after' must be between 1 and 65534; got 0 (to match every segment, "
         "remove 'after')"},
        {"nth too large", rule + "nth = 65535\naction = \"drop\"\n",
         "t.toml:3:7: 'nth' must be between 1 and 65534; got 65535"},
        {"nth with first", rule + "nth = 2\nfirst = 1\naction = \"drop\"\n",
         "t.toml:4:1: 'first' cannot be combined with 'nth' (line 3); a rule has at most one of "
         "nth, first, after"},
        {"after with nth, reported in file order", rule + "after = 2\nnth = 3\naction = \"drop\"\n",
         "t.toml:4:1: 'nth' cannot be combined with 'after' (line 3); a rule has at most one of "
         "nth, first, after"},
        {"17 counted rules", counted_rules(17),
         "t.toml:67:9: too many counted rules: at most 16 rules of a rule set may use nth, first "
         "or after (disabled ones included); this is the 17th"},
        // The error points at whichever counter key the 17th counted rule uses.
        {"17 counted rules, the last with nth",
         counted_rules(16) + "[[rule]]\nname = \"r17\"\nnth = 3\naction = \"drop\"\n",
         "t.toml:67:7: too many counted rules: at most 16 rules of a rule set may use nth, first "
         "or after (disabled ones included); this is the 17th"},
        {"17 counted rules, the last with after",
         counted_rules(16) + "[[rule]]\nname = \"r17\"\naction = \"drop\"\nafter = 3\n",
         "t.toml:68:9: too many counted rules: at most 16 rules of a rule set may use nth, first "
         "or after (disabled ones included); this is the 17th"},
        // Parameters that belong to another action.
        {"copies with drop", rule + "action = \"drop\"\ncopies = 2\n",
         "t.toml:4:1: 'copies' only applies to action \"duplicate\" (or \"delay\", to duplicate "
         "after the delay); this rule's action is \"drop\""},
        {"delay_ms with reset", rule + "delay_ms = 10\naction = \"reset\"\n",
         "t.toml:3:1: 'delay_ms' only applies to action \"delay\"; this rule's action is "
         "\"reset\""},
        {"jitter_ms with pass", rule + "action = \"pass\"\njitter_ms = 1\n",
         "t.toml:4:1: 'jitter_ms' only applies to action \"delay\"; this rule's action is "
         "\"pass\""},
        {"delay_ms with duplicate", rule + "action = \"duplicate\"\ndelay_ms = 10\n",
         "t.toml:4:1: 'delay_ms' does not apply to action \"duplicate\"; to delay a segment and "
         "then duplicate it, write action = \"delay\" with delay_ms and copies"},
        {"spacing_ms with drop", rule + "action = \"drop\"\nspacing_ms = 5\n",
         "t.toml:4:1: 'spacing_ms' only applies to action \"duplicate\" (or \"delay\" with "
         "copies); this rule's action is \"drop\""},
        {"spacing_ms with delay but no copies",
         rule + "action = \"delay\"\ndelay_ms = 5\nspacing_ms = 5\n",
         "t.toml:5:1: 'spacing_ms' is the gap between copies; with action \"delay\" it needs "
         "copies = N (to duplicate after the delay), or remove it"},
    };
    for (const Case& c : cases) {
      INFO(std::string(c.what));
      const ConfigError error = error_of(c.text);
      CHECK(std::string(error.what()) == c.error);
      CHECK(error.file == "t.toml");
      CHECK(error.line > 0);
      CHECK(error.column > 0);
    }
  }

  TEST_CASE("loader: the error carries file and line and column separately") {
    const ConfigError error =
        error_of("[[rule]]\nname = \"a\"\naction = \"drop\"\nprobability = 2\n");
    CHECK(error.file == "t.toml");
    CHECK(error.line == 4);
    CHECK(error.column == 15);
    CHECK(error.message ==
          "'probability' must be more than 0 and at most 1; got 2 (a probability, "
          "not a percentage: 50% is 0.5)");
  }

  TEST_CASE("loader: the first error in file order is reported") {
    // toml++ keeps keys sorted by name; the loader must still report line 3 before line 4.
    const ConfigError error = error_of("[[rule]]\nname = \"a\"\nzzz = 1\naction = \"dorp\"\n");
    CHECK(error.line == 3);
  }

  TEST_CASE("loader: unreadable files report the OS error") {
    const ConfigError missing = [] {
      try {
        fr::load_rules_file("/nonexistent/finwave/rules.toml");
      } catch (const ConfigError& error) {
        return error;
      }
      FAIL("no error");
      return ConfigError("unreachable");
    }();
    CHECK(std::string(missing.what()) ==
          "/nonexistent/finwave/rules.toml: cannot read rule file: No such file or directory");
    CHECK(missing.line == 0);

    const ConfigError directory = [] {
      try {
        fr::load_rules_file("/");
      } catch (const ConfigError& error) {
        return error;
      }
      FAIL("no error");
      return ConfigError("unreachable");
    }();
    CHECK(std::string(directory.what()) == "/: cannot read rule file: Is a directory");
  }

  TEST_CASE("loader: load_rules_file names the file in its errors") {
    const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                       ("finwave-rules-test-" + std::to_string(getpid()) + ".toml");
    {
      std::ofstream out(path);
      out << "[[rule]]\nname = \"x\"\naction = \"explode\"\n";
    }
    try {
      fr::load_rules_file(path.string());
      FAIL("no error");
    } catch (const ConfigError& error) {
      CHECK(error.file == path.string());
      CHECK(error.line == 3);
      CHECK(error.column == 10);
    }
    std::filesystem::remove(path);
  }

  TEST_CASE("loader: parse_single_rule accepts keys or an inline table or one array table") {
    const fr::Rule keys =
        fr::parse_single_rule("name = \"k\"\nrole = \"fin1\"\naction = \"drop\"\n", "add");
    CHECK(keys.name == "k");
    CHECK(keys.role == Role::kFin1);

    const fr::Rule inline_table = fr::parse_single_rule(
        "  { name = \"i\", role = \"fin2\", action = \"duplicate\", copies = 2 }", "add");
    CHECK(inline_table.name == "i");
    CHECK(inline_table.copies == 2);

    const fr::Rule array =
        fr::parse_single_rule("[[rule]]\nname = \"r\"\naction = \"reset\"\n", "add");
    CHECK(array.action == Action::kReset);
  }

  TEST_CASE("loader: parse_single_rule errors point into the text as given") {
    struct Case {
      const char* what;
      std::string text;
      std::string error;
    };
    const Case cases[] = {
        {"inline table, bad value", "{ name = \"i\", action = \"drop\", probability = 2.5 }",
         "add:1:46: 'probability' must be more than 0 and at most 1; got 2.5"},
        {"inline table after blank lines and spaces", "\n\n   { name = \"i\", action = \"dorp\" }",
         "add:3:27: unknown action 'dorp'; did you mean 'drop'? actions: pass, drop, delay, "
         "duplicate, reset"},
        {"inline table without a name", "{ action = \"drop\" }",
         "add:1:1: this rule has no 'name'; add name = \"...\" (unique; letters, digits, '_', "
         "'.', '-')"},
        {"inline table then more keys", "{ name = \"i\", action = \"drop\" }\nrole = \"fin1\"\n",
         "add:2:1: unexpected 'role' after the inline table; give the rule either as one "
         "{ ... } or as key = value lines"},
        {"keys, unknown key", "name = \"k\"\nactoin = \"drop\"\n",
         std::string("add:2:1: unknown key 'actoin' in rule; did you mean 'action'? ") +
             kAllowedKeys},
        {"keys, missing action", "name = \"k\"\n",
         "add:1:1: rule 'k' has no 'action'; add action = \"...\" with one of: pass, drop, "
         "delay, duplicate, reset"},
        {"empty text", "",
         "add:1:1: this rule has no 'name'; add name = \"...\" (unique; letters, digits, '_', "
         "'.', '-')"},
        {"two rules",
         "[[rule]]\nname = \"a\"\naction = \"drop\"\n[[rule]]\nname = \"b\"\n"
         "action = \"drop\"\n",
         "add:1:1: expected exactly one rule, found 2"},
    };
    for (const Case& c : cases) {
      INFO(std::string(c.what));
      CHECK(std::string(single_rule_error_of(c.text).what()) == c.error);
    }
  }
}
