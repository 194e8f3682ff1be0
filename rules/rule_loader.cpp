#include "rules/rule_loader.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <utility>
#include <vector>

#include "rules/flow_rule_state.hpp"
#include "rules/suggest.hpp"

namespace finwave::rules {
namespace {

// The keys a rule may have. Order is the order error messages list them in.
enum class Key : std::uint8_t {
  kName,
  kEnabled,
  kRole,
  kRetx,
  kFrom,
  kPorts,
  kClientPorts,
  kServerPorts,
  kAddresses,
  kClientAddresses,
  kServerAddresses,
  kNth,
  kFirst,
  kAfter,
  kProbability,
  kAction,
  kDelayMs,
  kJitterMs,
  kCopies,
  kSpacingMs,
};
constexpr std::size_t kKeyCount = static_cast<std::size_t>(Key::kSpacingMs) + 1;

// How a key's value is read, checked and stored (Loader::apply()).
enum class ValueKind : std::uint8_t {
  kName,
  kEnabled,
  kRetx,
  kRole,
  kSender,
  kPorts,
  kAddresses,
  kCounter,  // An integer in `integers`: rule.count, and rule.counter = `counter`.
  kAction,
  kNumber,  // A number in `numbers`, stored in rule.*`number`.
  kCopies,  // An integer in `integers`: rule.copies.
};

// What an out-of-range message adds when a likely mistake explains the value; "" if none does.
using IntegerHint = std::string_view (*)(std::int64_t got);
using NumberHint = std::string_view (*)(double got);

// The range of an integer key: from `min` to `max`, both allowed.
struct IntegerRange {
  std::int64_t min = 0;
  std::int64_t max = 0;
  IntegerHint hint = nullptr;
};

// The range of a number key: above `min` (or from it, if `min_allowed`) up to `max` included,
// and that limit in words for the message (" (10 minutes)").
struct NumberRange {
  double min = 0;
  bool min_allowed = false;
  double max = 0;
  std::string_view max_in_words{};
  NumberHint hint = nullptr;
};

std::string_view nth_hint(std::int64_t got) {
  return got == 0 ? " (the first matching segment is nth = 1)" : "";
}

std::string_view after_hint(std::int64_t got) {
  return got == 0 ? " (to match every segment, remove 'after')" : "";
}

std::string_view probability_hint(double got) {
  if (got == 0.0) return " (to switch a rule off, write enabled = false)";
  if (got >= 2.0 && got <= 100.0 && got == std::floor(got)) {
    return " (a probability, not a percentage: 50% is 0.5)";
  }
  return "";
}

// One key of a rule: its name in rule files, how its value is read, and where it goes.
struct KeySpec {
  Key key;
  std::string_view name;
  ValueKind kind;
  std::vector<std::uint16_t> Rule::*ports = nullptr;  // kPorts
  std::vector<Cidr> Rule::*cidrs = nullptr;           // kAddresses
  Counter counter = Counter::kNone;                   // kCounter
  IntegerRange integers{};                            // kCounter, kCopies
  double Rule::*number = nullptr;                     // kNumber
  NumberRange numbers{};                              // kNumber
};

constexpr IntegerRange kCountRange = {.min = 1, .max = Rule::kMaxCount};

// Every key, in Key order (the order error messages list them in).
constexpr std::array<KeySpec, kKeyCount> kKeySpecs = {{
    {.key = Key::kName, .name = "name", .kind = ValueKind::kName},
    {.key = Key::kEnabled, .name = "enabled", .kind = ValueKind::kEnabled},
    {.key = Key::kRole, .name = "role", .kind = ValueKind::kRole},
    {.key = Key::kRetx, .name = "retx", .kind = ValueKind::kRetx},
    {.key = Key::kFrom, .name = "from", .kind = ValueKind::kSender},
    {.key = Key::kPorts, .name = "ports", .kind = ValueKind::kPorts, .ports = &Rule::ports},
    {.key = Key::kClientPorts,
     .name = "client_ports",
     .kind = ValueKind::kPorts,
     .ports = &Rule::client_ports},
    {.key = Key::kServerPorts,
     .name = "server_ports",
     .kind = ValueKind::kPorts,
     .ports = &Rule::server_ports},
    {.key = Key::kAddresses,
     .name = "addresses",
     .kind = ValueKind::kAddresses,
     .cidrs = &Rule::addresses},
    {.key = Key::kClientAddresses,
     .name = "client_addresses",
     .kind = ValueKind::kAddresses,
     .cidrs = &Rule::client_addresses},
    {.key = Key::kServerAddresses,
     .name = "server_addresses",
     .kind = ValueKind::kAddresses,
     .cidrs = &Rule::server_addresses},
    {.key = Key::kNth,
     .name = "nth",
     .kind = ValueKind::kCounter,
     .counter = Counter::kNth,
     .integers = {.min = kCountRange.min, .max = kCountRange.max, .hint = &nth_hint}},
    {.key = Key::kFirst,
     .name = "first",
     .kind = ValueKind::kCounter,
     .counter = Counter::kFirst,
     .integers = kCountRange},
    {.key = Key::kAfter,
     .name = "after",
     .kind = ValueKind::kCounter,
     .counter = Counter::kAfter,
     .integers = {.min = kCountRange.min, .max = kCountRange.max, .hint = &after_hint}},
    {.key = Key::kProbability,
     .name = "probability",
     .kind = ValueKind::kNumber,
     .number = &Rule::probability,
     .numbers = {.min = 0, .max = 1, .hint = &probability_hint}},
    {.key = Key::kAction, .name = "action", .kind = ValueKind::kAction},
    {.key = Key::kDelayMs,
     .name = "delay_ms",
     .kind = ValueKind::kNumber,
     .number = &Rule::delay_ms,
     .numbers = {.min = 0, .max = Rule::kMaxDelayMs, .max_in_words = " (10 minutes)"}},
    {.key = Key::kJitterMs,
     .name = "jitter_ms",
     .kind = ValueKind::kNumber,
     .number = &Rule::jitter_ms,
     .numbers = {.min = 0, .min_allowed = true, .max = Rule::kMaxDelayMs}},
    {.key = Key::kCopies,
     .name = "copies",
     .kind = ValueKind::kCopies,
     .integers = {.min = 1, .max = Rule::kMaxCopies}},
    {.key = Key::kSpacingMs,
     .name = "spacing_ms",
     .kind = ValueKind::kNumber,
     .number = &Rule::spacing_ms,
     .numbers = {.min = 0,
                 .min_allowed = true,
                 .max = Rule::kMaxSpacingMs,
                 .max_in_words = " (1 minute)"}},
}};

// What apply() relies on: every kind has the fields it reads, and a range check makes its
// narrowing casts safe (rule.count is 32 bits, rule.copies 16).
constexpr bool spec_is_complete(const KeySpec& spec) {
  switch (spec.kind) {
    case ValueKind::kPorts:
      return spec.ports != nullptr;
    case ValueKind::kAddresses:
      return spec.cidrs != nullptr;
    case ValueKind::kCounter:
      return spec.counter != Counter::kNone && spec.integers.min >= 0 &&
             spec.integers.min <= spec.integers.max &&
             spec.integers.max <= std::numeric_limits<std::uint32_t>::max();
    case ValueKind::kCopies:
      return spec.integers.min >= 0 && spec.integers.min <= spec.integers.max &&
             spec.integers.max <= std::numeric_limits<std::uint16_t>::max();
    case ValueKind::kNumber:
      return spec.number != nullptr && spec.numbers.min < spec.numbers.max;
    case ValueKind::kName:
    case ValueKind::kEnabled:
    case ValueKind::kRetx:
    case ValueKind::kRole:
    case ValueKind::kSender:
    case ValueKind::kAction:
      return true;
  }
  return false;
}

constexpr bool specs_in_key_order() {
  for (std::size_t i = 0; i < kKeyCount; ++i) {
    const KeySpec& spec = kKeySpecs[i];
    if (spec.key != static_cast<Key>(i) || spec.name.empty() || !spec_is_complete(spec)) {
      return false;
    }
  }
  return true;
}
static_assert(specs_in_key_order(),
              "kKeySpecs lists every Key once, in Key order, each with what its kind needs");

// The key names alone, for suggestion() and the list of allowed keys.
constexpr std::array<std::string_view, kKeyCount> kKeyNames = [] {
  std::array<std::string_view, kKeyCount> names{};
  for (std::size_t i = 0; i < kKeyCount; ++i) names[i] = kKeySpecs[i].name;
  return names;
}();

const KeySpec& spec_of(Key key) { return kKeySpecs[static_cast<std::size_t>(key)]; }

// The key that sets `counter`: "nth", "first" or "after".
std::string_view counter_key(Counter counter) {
  for (const KeySpec& spec : kKeySpecs) {
    if (spec.kind == ValueKind::kCounter && spec.counter == counter) return spec.name;
  }
  return {};
}

// The counter keys for messages, in Key order: "nth, first, after" or "nth, first or after".
std::string counter_keys(std::string_view last_separator) {
  std::string out;
  std::string_view pending;
  for (const KeySpec& spec : kKeySpecs) {
    if (spec.kind != ValueKind::kCounter) continue;
    if (!pending.empty()) {
      if (!out.empty()) out += ", ";
      out += pending;
    }
    pending = spec.name;
  }
  if (!out.empty()) out += last_separator;
  out += pending;
  return out;
}

constexpr std::array<std::string_view, 1> kRuleTable = {"rule"};
constexpr std::string_view kFromNames =
    "client, server, active (the active closer) or passive (the passive closer)";
constexpr std::uint64_t kMaxFileBytes = 16U << 20U;
// Port 0 is not a port a segment can come from or go to.
constexpr std::int64_t kMinPort = 1;
constexpr std::int64_t kMaxPort = std::numeric_limits<std::uint16_t>::max();

std::string allowed_keys() {
  std::string out;
  for (std::string_view name : kKeyNames) {
    if (!out.empty()) {
      out += ", ";
    }
    out += name;
  }
  return out;
}

std::optional<Key> key_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kKeyCount; ++i) {
    if (kKeyNames[i] == name) {
      return static_cast<Key>(i);
    }
  }
  return std::nullopt;
}

std::string quote(std::string_view text) { return "'" + printable(text) + "'"; }

// Concatenates message parts in one allocation.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  const std::string_view views[] = {std::string_view(parts)...};
  std::size_t size = 0;
  for (std::string_view view : views) {
    size += view.size();
  }
  std::string out;
  out.reserve(size);
  for (std::string_view view : views) {
    out += view;
  }
  return out;
}

std::string with_article(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// As short as it reads back exactly: "1e+09", "0.5", and "600000.5" rather than the "600000" that
// six significant digits would show next to a limit of 600000.
std::string format_number(double value) {
  std::string text;
  for (int precision = 6; precision <= 17; ++precision) {
    std::ostringstream out;
    out << std::setprecision(precision) << value;
    text = out.str();
    if (std::strtod(text.c_str(), nullptr) == value) break;
  }
  return text;
}

// A range in words, without the limit in words: "between 1 and 100", "more than 0 and at most
// 600000", "at least 0 and at most 60000".
std::string bounds_text(const IntegerRange& range) {
  return cat("between ", std::to_string(range.min), " and ", std::to_string(range.max));
}
std::string bounds_text(const NumberRange& range) {
  return cat(range.min_allowed ? "at least " : "more than ", format_number(range.min),
             " and at most ", format_number(range.max));
}

// Every out-of-range message has this one shape: "'KEY' must be RANGE; got VALUE", then the
// hint if a likely mistake explains the value.
std::string out_of_range(std::string_view key, std::string_view range, std::string_view got,
                         std::string_view hint) {
  return cat("'", key, "' must be ", range, "; got ", got, hint);
}

// How a value reads in a message: short scalars are shown, containers are not.
std::string shown(const toml::node& node) {
  std::string text;
  if (const auto* string = node.as_string()) {
    text = "\"" + printable(string->get()) + "\"";
  } else if (const auto* integer = node.as_integer()) {
    text = std::to_string(integer->get());
  } else if (const auto* floating = node.as_floating_point()) {
    text = format_number(floating->get());
  } else if (const auto* boolean = node.as_boolean()) {
    text = boolean->get() ? "true" : "false";
  } else {
    return with_article(node.type());
  }
  if (text.size() > 40) {
    text = text.substr(0, 37) + "...";
  }
  return with_article(node.type()) + " (" + text + ")";
}

std::string suggestion(std::string_view word, std::span<const std::string_view> candidates) {
  if (auto match = closest_match(word, candidates)) {
    return "did you mean '" + std::string(*match) + "'? ";
  }
  return {};
}

bool before(const toml::source_position& a, const toml::source_position& b) {
  return a.line != b.line ? a.line < b.line : a.column < b.column;
}

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// One key/value of a rule table, in the order they appear in the file.
struct Entry {
  std::optional<Key> key;  // std::nullopt for a key rules do not have.
  const toml::key* name;
  const toml::node* value;
};

// A rule's name and its line, for the message about a second rule of the same name.
struct NameAt {
  std::string_view name;
  std::uint32_t line;
};

// What a key that takes one value or an array of them (ports, addresses) accepts, for messages.
struct ListKind {
  toml::node_type type;
  std::string_view noun;      // "port"
  std::string_view one;       // "a port number"
  std::string_view example;   // "[80, 443]"
  std::string_view elements;  // "port numbers (integers)"
};

// Turns parsed TOML into rules, throwing ConfigError at the first problem in file order.
class Loader {
 public:
  explicit Loader(std::string_view source_name) : source_(source_name) {}

  // parse_single_rule() wraps an inline table as "rule = {...}"; positions on the first line
  // are moved back by the wrapper's length and forward by the whitespace it skipped.
  void shift_positions(std::uint32_t lines, std::int64_t first_line_columns) {
    line_shift_ = lines;
    column_shift_ = first_line_columns;
  }

  [[noreturn]] void fail(toml::source_position at, const std::string& message) const {
    std::uint32_t line = at.line;
    std::int64_t column = at.column;
    if (line == 0) {
      line = 1;
      column = 1;
    }
    if (line == 1) {
      column = std::max<std::int64_t>(1, column + column_shift_);
    }
    throw ConfigError(source_, line + line_shift_, static_cast<std::uint32_t>(column), message);
  }
  [[noreturn]] void fail(const toml::node& node, const std::string& message) const {
    fail(node.source().begin, message);
  }
  [[noreturn]] void fail(const toml::key& key, const std::string& message) const {
    fail(key.source().begin, message);
  }

  toml::table parse(std::string_view text) const {
    try {
      return toml::parse(text, std::string_view(source_));
    } catch (const toml::parse_error& error) {
      std::string description(error.description());
      if (!description.empty()) {
        description[0] =
            static_cast<char>(std::tolower(static_cast<unsigned char>(description[0])));
      }
      // toml++ quotes what it saw as it is, a newline or a NUL included.
      fail(error.source().begin, "invalid TOML: " + printable(description));
    }
  }

  RuleSet rule_set(const toml::table& document) const;
  Rule rule(const toml::table& table) const;

 private:
  std::string_view need_string(const Entry& entry) const;
  bool need_bool(const Entry& entry) const;
  std::int64_t need_integer(const Entry& entry) const;
  double need_number(const Entry& entry) const;
  std::int64_t need_integer_in(const Entry& entry, const IntegerRange& range) const;
  double need_number_in(const Entry& entry, const NumberRange& range) const;
  std::vector<const toml::node*> one_or_many(const Entry& entry, const ListKind& kind) const;
  std::vector<std::uint16_t> need_ports(const Entry& entry) const;
  std::vector<Cidr> need_cidrs(const Entry& entry) const;
  std::string need_name(const Entry& entry) const;
  Role need_role(const Entry& entry) const;
  Sender need_sender(const Entry& entry) const;
  Action need_action(const Entry& entry) const;
  // Reads `entry`'s value into `rule`, as its KeySpec says.
  void apply(const Entry& entry, Rule& rule) const;
  // nth, first and after exclude each other: fails when `counter` comes after another.
  void check_one_counter(const Entry& counter,
                         const std::array<const Entry*, kKeyCount>& seen) const;
  // The checks across keys, once every key is read: name and action present, the action's
  // parameters only with it, delay_ms with delay, jitter within the delay.
  void check_complete(const toml::table& table, const Rule& rule, const std::vector<Entry>& entries,
                      const std::array<const Entry*, kKeyCount>& seen) const;
  void check_action_parameters(const Rule& rule, const std::vector<Entry>& entries) const;
  // The [[rule]] tables of a rule file, given its top-level entry; fails on anything else.
  const toml::array& rule_array(const Entry& entry) const;
  // Fails if an earlier rule in `names` has `rule`'s name; else adds it there.
  void add_unique_name(const toml::table& table, const Rule& rule,
                       std::vector<NameAt>& names) const;
  // FlowRuleState has a slot per counted rule: fails on the counted rule past the last slot.
  void check_counted_limit(const toml::table& table, const Rule& rule, std::size_t counted) const;

  std::string source_;
  std::uint32_t line_shift_ = 0;
  std::int64_t column_shift_ = 0;
};

std::vector<Entry> entries_in_file_order(const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> raw;
  for (auto&& [key, value] : table) {
    raw.emplace_back(&key, &value);
  }
  std::sort(raw.begin(), raw.end(), [](const auto& a, const auto& b) {
    return before(a.first->source().begin, b.first->source().begin);
  });
  std::vector<Entry> entries;
  entries.reserve(raw.size());
  for (const auto& [key, value] : raw) {
    entries.push_back(Entry{key_from_name(key->str()), key, value});
  }
  return entries;
}

std::string_view Loader::need_string(const Entry& entry) const {
  if (const auto* text = entry.value->as_string()) {
    return text->get();
  }
  std::string message = quote(entry.name->str()) + " must be a string, not " + shown(*entry.value);
  if (entry.key == Key::kAction && entry.value->is_array()) {
    message +=
        "; to delay a segment and then duplicate it, write action = \"delay\" with "
        "delay_ms and copies";
  }
  fail(*entry.value, message);
}

bool Loader::need_bool(const Entry& entry) const {
  if (const auto* flag = entry.value->as_boolean()) {
    return flag->get();
  }
  fail(*entry.value,
       quote(entry.name->str()) + " must be true or false, not " + shown(*entry.value));
}

std::int64_t Loader::need_integer(const Entry& entry) const {
  if (const auto* number = entry.value->as_integer()) {
    return number->get();
  }
  fail(*entry.value, quote(entry.name->str()) + " must be an integer, not " + shown(*entry.value));
}

double Loader::need_number(const Entry& entry) const {
  double number = 0;
  if (const auto* integer = entry.value->as_integer()) {
    number = static_cast<double>(integer->get());
  } else if (const auto* floating = entry.value->as_floating_point()) {
    number = floating->get();
  } else {
    fail(*entry.value, quote(entry.name->str()) + " must be a number, not " + shown(*entry.value));
  }
  if (!std::isfinite(number)) {
    fail(*entry.value,
         quote(entry.name->str()) + " must be a finite number, not " + format_number(number));
  }
  return number;
}

std::int64_t Loader::need_integer_in(const Entry& entry, const IntegerRange& range) const {
  const std::int64_t value = need_integer(entry);
  if (value < range.min || value > range.max) {
    fail(*entry.value, out_of_range(entry.name->str(), bounds_text(range), std::to_string(value),
                                    range.hint != nullptr ? range.hint(value) : ""));
  }
  return value;
}

double Loader::need_number_in(const Entry& entry, const NumberRange& range) const {
  const double value = need_number(entry);
  const bool above_min = range.min_allowed ? value >= range.min : value > range.min;
  if (!(above_min && value <= range.max)) {
    fail(*entry.value,
         out_of_range(entry.name->str(), cat(bounds_text(range), range.max_in_words),
                      format_number(value), range.hint != nullptr ? range.hint(value) : ""));
  }
  return value;
}

std::vector<const toml::node*> Loader::one_or_many(const Entry& entry, const ListKind& kind) const {
  const std::string_view key = entry.name->str();
  std::vector<const toml::node*> elements;
  if (const auto* list = entry.value->as_array()) {
    if (list->empty()) {
      fail(*entry.value,
           cat("'", key, "' is empty, so the rule could never match; list at least one ", kind.noun,
               " or remove the key"));
    }
    for (const toml::node& element : *list) {
      if (element.type() != kind.type) {
        fail(element, cat("'", key, "' must list ", kind.elements, ", but this element is ",
                          shown(element)));
      }
      elements.push_back(&element);
    }
  } else if (entry.value->type() == kind.type) {
    elements.push_back(entry.value);
  } else {
    fail(*entry.value, cat("'", key, "' must be ", kind.one, " or an array of them (", key, " = ",
                           kind.example, "), not ", shown(*entry.value)));
  }
  return elements;
}

std::vector<std::uint16_t> Loader::need_ports(const Entry& entry) const {
  static constexpr ListKind kPorts = {toml::node_type::integer, "port", "a port number",
                                      "[80, 443]", "port numbers (integers)"};
  std::vector<std::uint16_t> ports;
  for (const toml::node* element : one_or_many(entry, kPorts)) {
    const std::int64_t port = element->as_integer()->get();
    if (port < kMinPort || port > kMaxPort) {
      fail(*element, cat("port ", std::to_string(port), " is out of range (",
                         std::to_string(kMinPort), "..", std::to_string(kMaxPort), ")"));
    }
    ports.push_back(static_cast<std::uint16_t>(port));
  }
  return ports;
}

std::vector<Cidr> Loader::need_cidrs(const Entry& entry) const {
  static constexpr ListKind kAddresses = {toml::node_type::string, "address",
                                          "an address or prefix string", "[\"198.18.0.0/15\"]",
                                          "addresses as strings (\"198.18.0.0/15\")"};
  std::vector<Cidr> cidrs;
  for (const toml::node* element : one_or_many(entry, kAddresses)) {
    std::string why;
    auto cidr = Cidr::parse(element->as_string()->get(), &why);
    if (!cidr) {
      fail(*element, cat("bad address in '", entry.name->str(), "': ", why));
    }
    cidrs.push_back(*cidr);
  }
  return cidrs;
}

std::string Loader::need_name(const Entry& entry) const {
  const std::string_view name = need_string(entry);
  if (name.empty()) {
    fail(*entry.value, "rule name is empty");
  }
  if (name.size() > Rule::kMaxNameLength) {
    fail(*entry.value, "rule name is " + std::to_string(name.size()) +
                           " characters long; the limit is " +
                           std::to_string(Rule::kMaxNameLength));
  }
  for (char c : name) {
    if (!valid_name_char(c)) {
      const std::string shown_char =
          c == ' ' ? "a space"
          : (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
              ? "a control character"
              : (static_cast<unsigned char>(c) >= 0x80 ? "a non-ASCII character"
                                                       : quote(std::string(1, c)));
      fail(*entry.value, "rule name " + quote(name) + " contains " + shown_char +
                             "; names may use only letters, digits, '_', '.' and '-'");
    }
  }
  return std::string(name);
}

void Loader::check_action_parameters(const Rule& rule, const std::vector<Entry>& entries) const {
  const std::string action = "\"" + std::string(to_string(rule.action)) + "\"";
  const bool has_copies = std::any_of(entries.begin(), entries.end(),
                                      [](const Entry& entry) { return entry.key == Key::kCopies; });
  for (const Entry& entry : entries) {
    const std::string key = quote(entry.name->str());
    switch (entry.key.value_or(Key::kName)) {
      case Key::kDelayMs:
      case Key::kJitterMs:
        if (rule.action == Action::kDuplicate) {
          fail(*entry.name,
               key +
                   " does not apply to action \"duplicate\"; to delay a segment and "
                   "then duplicate it, write action = \"delay\" with delay_ms and copies");
        }
        if (rule.action != Action::kDelay) {
          fail(*entry.name,
               cat(key, " only applies to action \"delay\"; this rule's action is ", action));
        }
        break;
      case Key::kCopies:
        if (rule.action != Action::kDuplicate && rule.action != Action::kDelay) {
          fail(*entry.name, cat(key,
                                " only applies to action \"duplicate\" (or \"delay\", to duplicate "
                                "after the delay); this rule's action is ",
                                action));
        }
        break;
      case Key::kSpacingMs:
        if (rule.action == Action::kDelay && !has_copies) {
          fail(*entry.name, key +
                                " is the gap between copies; with action \"delay\" it needs copies "
                                "= N (to duplicate after the delay), or remove it");
        }
        if (rule.action != Action::kDuplicate && rule.action != Action::kDelay) {
          fail(*entry.name, cat(key,
                                " only applies to action \"duplicate\" (or \"delay\" with copies); "
                                "this rule's action is ",
                                action));
        }
        break;
      default:
        break;
    }
  }
}

Role Loader::need_role(const Entry& entry) const {
  const std::string_view text = need_string(entry);
  const auto role = RoleNames::parse(text);
  if (!role) {
    fail(*entry.value, "unknown role " + quote(text) + "; " + suggestion(text, RoleNames::names()) +
                           "roles: " + RoleNames::joined());
  }
  return *role;
}

Sender Loader::need_sender(const Entry& entry) const {
  const std::string_view text = need_string(entry);
  // "either" is what an absent `from` means; it is not a value to write.
  const auto sender = SenderNames::parse(text);
  if (!sender || *sender == Sender::kEither) {
    fail(*entry.value, "unknown 'from' value " + quote(text) + "; " +
                           suggestion(text, SenderNames::names().subspan(1)) + "use " +
                           std::string(kFromNames));
  }
  return *sender;
}

Action Loader::need_action(const Entry& entry) const {
  const std::string_view text = need_string(entry);
  const auto action = ActionNames::parse(text);
  if (!action) {
    fail(*entry.value, "unknown action " + quote(text) + "; " +
                           suggestion(text, ActionNames::names()) +
                           "actions: " + ActionNames::joined());
  }
  return *action;
}

void Loader::apply(const Entry& entry, Rule& rule) const {
  const KeySpec& spec = spec_of(*entry.key);
  switch (spec.kind) {
    case ValueKind::kName:
      rule.name = need_name(entry);
      return;
    case ValueKind::kEnabled:
      rule.enabled = need_bool(entry);
      return;
    case ValueKind::kRetx:
      rule.retx = need_bool(entry);
      return;
    case ValueKind::kRole:
      rule.role = need_role(entry);
      return;
    case ValueKind::kSender:
      rule.from = need_sender(entry);
      return;
    case ValueKind::kPorts:
      rule.*spec.ports = need_ports(entry);
      return;
    case ValueKind::kAddresses:
      rule.*spec.cidrs = need_cidrs(entry);
      return;
    case ValueKind::kCounter:
      // spec_is_complete() checked that the range fits rule.count.
      rule.count = static_cast<std::uint32_t>(need_integer_in(entry, spec.integers));
      rule.counter = spec.counter;
      return;
    case ValueKind::kAction:
      rule.action = need_action(entry);
      return;
    case ValueKind::kNumber:
      rule.*spec.number = need_number_in(entry, spec.numbers);
      return;
    case ValueKind::kCopies:
      // spec_is_complete() checked that the range fits rule.copies.
      rule.copies = static_cast<std::uint16_t>(need_integer_in(entry, spec.integers));
      return;
  }
}

void Loader::check_one_counter(const Entry& counter,
                               const std::array<const Entry*, kKeyCount>& seen) const {
  for (const KeySpec& other : kKeySpecs) {
    const Entry* earlier = seen[static_cast<std::size_t>(other.key)];
    if (other.kind != ValueKind::kCounter || earlier == nullptr) continue;
    fail(*counter.name, quote(counter.name->str()) + " cannot be combined with " +
                            quote(earlier->name->str()) + " (line " +
                            std::to_string(earlier->name->source().begin.line + line_shift_) +
                            "); a rule has at most one of " + counter_keys(", "));
  }
}

void Loader::check_complete(const toml::table& table, const Rule& rule,
                            const std::vector<Entry>& entries,
                            const std::array<const Entry*, kKeyCount>& seen) const {
  const auto seen_key = [&](Key key) { return seen[static_cast<std::size_t>(key)]; };
  // A [[rule]] table's position is its header line; an inline table's is its '{'.
  const toml::source_position where = table.source().begin;
  if (seen_key(Key::kName) == nullptr) {
    fail(where,
         "this rule has no 'name'; add name = \"...\" (unique; letters, digits, '_', '.', "
         "'-')");
  }
  const Entry* action = seen_key(Key::kAction);
  if (action == nullptr) {
    fail(where, "rule " + quote(rule.name) +
                    " has no 'action'; add action = \"...\" with one of: " + ActionNames::joined());
  }
  check_action_parameters(rule, entries);
  if (rule.action == Action::kDelay && seen_key(Key::kDelayMs) == nullptr) {
    fail(*action->value, cat("action \"delay\" needs 'delay_ms' (milliseconds, ",
                             bounds_text(spec_of(Key::kDelayMs).numbers), ")"));
  }
  if (const Entry* jitter = seen_key(Key::kJitterMs);
      jitter != nullptr && rule.jitter_ms > rule.delay_ms) {
    fail(*jitter->value, cat("'jitter_ms' (", format_ms(rule.jitter_ms),
                             ") must not exceed 'delay_ms' (", format_ms(rule.delay_ms),
                             "): the delay is drawn between delay_ms - jitter_ms and "
                             "delay_ms + jitter_ms"));
  }
}

Rule Loader::rule(const toml::table& table) const {
  const std::vector<Entry> entries = entries_in_file_order(table);
  std::array<const Entry*, kKeyCount> seen{};
  Rule rule;
  for (const Entry& entry : entries) {
    if (!entry.key) {
      fail(*entry.name, "unknown key " + quote(entry.name->str()) + " in rule; " +
                            suggestion(entry.name->str(), kKeyNames) +
                            "allowed keys: " + allowed_keys());
    }
    if (spec_of(*entry.key).kind == ValueKind::kCounter) check_one_counter(entry, seen);
    seen[static_cast<std::size_t>(*entry.key)] = &entry;
    apply(entry, rule);
  }
  check_complete(table, rule, entries, seen);
  if (rule.action == Action::kDuplicate && rule.copies == 0) {
    rule.copies = 1;
  }
  return rule;
}

const toml::array& Loader::rule_array(const Entry& entry) const {
  const std::string_view key = entry.name->str();
  if (key != "rule") {
    if (entry.value->is_table() || entry.value->is_array()) {
      std::string hint = "did you mean [[rule]]? ";
      if (!closest_match(key, kRuleTable)) {
        hint.clear();
      }
      fail(*entry.name,
           "unknown table " + quote(key) + "; " + hint + "a rule file holds only [[rule]] tables");
    }
    fail(*entry.name, "key " + quote(key) +
                          " is outside any rule; every rule starts with a "
                          "[[rule]] line and its keys follow that line");
  }
  const auto* rules = entry.value->as_array();
  if (rules == nullptr) {
    if (entry.value->is_table()) {
      fail(*entry.value,
           "[rule] declares a single table; rules are an array of tables, so "
           "write [[rule]] (double brackets) before each rule");
    }
    fail(*entry.value, "'rule' must be an array of tables ([[rule]]), not " + shown(*entry.value));
  }
  return *rules;
}

void Loader::add_unique_name(const toml::table& table, const Rule& rule,
                             std::vector<NameAt>& names) const {
  const toml::node* name_node = table.get(spec_of(Key::kName).name);
  for (const NameAt& other : names) {
    if (other.name == rule.name) {
      fail(*name_node, cat("duplicate rule name ", quote(rule.name),
                           "; the first rule of that name is at line ", std::to_string(other.line),
                           ", and names must be unique"));
    }
  }
  names.push_back(
      NameAt{name_node->as_string()->get(), name_node->source().begin.line + line_shift_});
}

void Loader::check_counted_limit(const toml::table& table, const Rule& rule,
                                 std::size_t counted) const {
  if (counted <= FlowRuleState::kMaxCountedRules) return;
  fail(*table.get(counter_key(rule.counter)),
       "too many counted rules: at most " + std::to_string(FlowRuleState::kMaxCountedRules) +
           " rules of a rule set may use " + counter_keys(" or ") +
           " (disabled ones included); this is the " + std::to_string(counted) + "th");
}

RuleSet Loader::rule_set(const toml::table& document) const {
  RuleSet set;
  set.source = source_;
  std::vector<NameAt> names;
  std::size_t counted = 0;
  for (const Entry& entry : entries_in_file_order(document)) {
    for (const toml::node& element : rule_array(entry)) {
      const auto* table = element.as_table();
      if (table == nullptr) {
        fail(element, "each rule must be a table, not " + shown(element));
      }
      Rule rule = this->rule(*table);
      add_unique_name(*table, rule, names);
      if (rule.counted()) check_counted_limit(*table, rule, ++counted);
      set.rules.push_back(std::move(rule));
    }
  }
  return set;
}

}  // namespace

RuleSet parse_rules(std::string_view toml_text, std::string_view source_name) {
  const Loader loader(source_name);
  const toml::table document = loader.parse(toml_text);
  return loader.rule_set(document);
}

RuleSet load_rules_file(const std::string& path) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "rb"),
                                                          &std::fclose);
  if (!file) {
    throw ConfigError(path, 0, 0, std::string("cannot read rule file: ") + std::strerror(errno));
  }
  std::string text;
  char buffer[65536];
  while (true) {
    const std::size_t got = std::fread(buffer, 1, sizeof buffer, file.get());
    text.append(buffer, got);
    if (text.size() > kMaxFileBytes) {
      throw ConfigError(path, 0, 0,
                        cat("rule file is larger than ", std::to_string(kMaxFileBytes >> 20U),
                            " MiB; is it the right file?"));
    }
    if (got < sizeof buffer) {
      break;
    }
  }
  if (std::ferror(file.get()) != 0) {
    throw ConfigError(path, 0, 0, std::string("cannot read rule file: ") + std::strerror(errno));
  }
  return parse_rules(text, path);
}

Rule parse_single_rule(std::string_view toml_text, std::string_view source_name) {
  Loader loader(source_name);
  std::size_t start = 0;
  std::uint32_t skipped_lines = 0;
  std::int64_t column = 1;
  while (start < toml_text.size() && (toml_text[start] == ' ' || toml_text[start] == '\t' ||
                                      toml_text[start] == '\n' || toml_text[start] == '\r')) {
    if (toml_text[start] == '\n') {
      ++skipped_lines;
      column = 1;
    } else if (toml_text[start] != '\r') {
      ++column;
    }
    ++start;
  }

  if (start < toml_text.size() && toml_text[start] == '{') {
    // An inline table is not a TOML document by itself; give it a key to hang on.
    constexpr std::string_view kWrapper = "rule = ";
    loader.shift_positions(skipped_lines, column - 1 - static_cast<std::int64_t>(kWrapper.size()));
    const std::string wrapped = std::string(kWrapper) + std::string(toml_text.substr(start));
    const toml::table document = loader.parse(wrapped);
    for (auto&& [key, value] : document) {
      if (key.str() != "rule") {
        loader.fail(key.source().begin, "unexpected " + quote(key.str()) +
                                            " after the inline table; give the rule either as "
                                            "one { ... } or as key = value lines");
      }
    }
    return loader.rule(*document.get("rule")->as_table());
  }

  const toml::table document = loader.parse(toml_text);
  if (document.size() == 1 && document.contains("rule")) {
    const toml::node& node = *document.get("rule");
    if (const auto* table = node.as_table()) {
      return loader.rule(*table);
    }
    if (const auto* rules = node.as_array()) {
      if (rules->size() != 1) {
        loader.fail(node, "expected exactly one rule, found " + std::to_string(rules->size()));
      }
      if (const auto* table = rules->get(0)->as_table()) {
        return loader.rule(*table);
      }
      loader.fail(*rules->get(0), "a rule must be a table, not " + shown(*rules->get(0)));
    }
  }
  return loader.rule(document);
}

}  // namespace finwave::rules
