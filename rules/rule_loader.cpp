#include "rules/rule_loader.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

constexpr std::array<std::string_view, kKeyCount> kKeyNames = {
    "name",
    "enabled",
    "role",
    "retx",
    "from",
    "ports",
    "client_ports",
    "server_ports",
    "addresses",
    "client_addresses",
    "server_addresses",
    "nth",
    "first",
    "after",
    "probability",
    "action",
    "delay_ms",
    "jitter_ms",
    "copies",
    "spacing_ms",
};

constexpr std::array<std::string_view, 1> kRuleTable = {"rule"};
constexpr std::string_view kFromNames =
    "client, server, active (the active closer) or passive (the passive closer)";
constexpr std::uint64_t kMaxFileBytes = 16U << 20U;

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

std::string format_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
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
  std::uint32_t need_count(const Entry& entry, std::uint32_t max) const;
  std::vector<const toml::node*> one_or_many(const Entry& entry, const ListKind& kind) const;
  std::vector<std::uint16_t> need_ports(const Entry& entry) const;
  std::vector<Cidr> need_cidrs(const Entry& entry) const;
  std::string need_name(const Entry& entry) const;
  void check_action_parameters(const Rule& rule, const std::vector<Entry>& entries) const;

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

std::uint32_t Loader::need_count(const Entry& entry, std::uint32_t max) const {
  const std::int64_t count = need_integer(entry);
  if (count < 1 || count > max) {
    std::string message = quote(entry.name->str()) + " must be between 1 and " +
                          std::to_string(max) + "; got " + std::to_string(count);
    if (count == 0 && entry.key == Key::kNth) {
      message += " (the first matching segment is nth = 1)";
    }
    if (count == 0 && entry.key == Key::kAfter) {
      message += " (to match every segment, remove 'after')";
    }
    fail(*entry.value, message);
  }
  return static_cast<std::uint32_t>(count);
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
    if (port < 1 || port > 65535) {
      fail(*element, "port " + std::to_string(port) + " is out of range (1..65535)");
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

Rule Loader::rule(const toml::table& table) const {
  const std::vector<Entry> entries = entries_in_file_order(table);
  std::array<const Entry*, kKeyCount> seen{};
  const Entry* first_counter = nullptr;
  Rule rule;

  for (const Entry& entry : entries) {
    const std::string key = quote(entry.name->str());
    if (!entry.key) {
      fail(*entry.name, "unknown key " + key + " in rule; " +
                            suggestion(entry.name->str(), kKeyNames) +
                            "allowed keys: " + allowed_keys());
    }
    seen[static_cast<std::size_t>(*entry.key)] = &entry;
    switch (*entry.key) {
      case Key::kName:
        rule.name = need_name(entry);
        break;
      case Key::kEnabled:
        rule.enabled = need_bool(entry);
        break;
      case Key::kRole: {
        const std::string_view text = need_string(entry);
        const auto role = RoleNames::parse(text);
        if (!role) {
          fail(*entry.value, "unknown role " + quote(text) + "; " +
                                 suggestion(text, RoleNames::names()) +
                                 "roles: " + RoleNames::joined());
        }
        rule.role = *role;
        break;
      }
      case Key::kRetx:
        rule.retx = need_bool(entry);
        break;
      case Key::kFrom: {
        const std::string_view text = need_string(entry);
        // "either" is what an absent `from` means; it is not a value to write.
        const auto sender = SenderNames::parse(text);
        if (!sender || *sender == Sender::kEither) {
          fail(*entry.value, "unknown 'from' value " + quote(text) + "; " +
                                 suggestion(text, SenderNames::names().subspan(1)) + "use " +
                                 std::string(kFromNames));
        }
        rule.from = *sender;
        break;
      }
      case Key::kPorts:
        rule.ports = need_ports(entry);
        break;
      case Key::kClientPorts:
        rule.client_ports = need_ports(entry);
        break;
      case Key::kServerPorts:
        rule.server_ports = need_ports(entry);
        break;
      case Key::kAddresses:
        rule.addresses = need_cidrs(entry);
        break;
      case Key::kClientAddresses:
        rule.client_addresses = need_cidrs(entry);
        break;
      case Key::kServerAddresses:
        rule.server_addresses = need_cidrs(entry);
        break;
      case Key::kNth:
      case Key::kFirst:
      case Key::kAfter: {
        if (first_counter != nullptr) {
          fail(*entry.name,
               key + " cannot be combined with " + quote(first_counter->name->str()) + " (line " +
                   std::to_string(first_counter->name->source().begin.line + line_shift_) +
                   "); a rule has at most one of nth, first, after");
        }
        first_counter = &entry;
        rule.count = need_count(entry, Rule::kMaxCount);
        rule.counter = entry.key == Key::kNth     ? Counter::kNth
                       : entry.key == Key::kFirst ? Counter::kFirst
                                                  : Counter::kAfter;
        break;
      }
      case Key::kProbability: {
        const double p = need_number(entry);
        if (!(p > 0.0 && p <= 1.0)) {
          std::string message =
              "'probability' must be more than 0 and at most 1; got " + format_number(p);
          if (p == 0.0) {
            message += " (to switch a rule off, write enabled = false)";
          }
          if (p >= 2.0 && p <= 100.0 && p == std::floor(p)) {
            message += " (a probability, not a percentage: 50% is 0.5)";
          }
          fail(*entry.value, message);
        }
        rule.probability = p;
        break;
      }
      case Key::kAction: {
        const std::string_view text = need_string(entry);
        const auto action = ActionNames::parse(text);
        if (!action) {
          fail(*entry.value, "unknown action " + quote(text) + "; " +
                                 suggestion(text, ActionNames::names()) +
                                 "actions: " + ActionNames::joined());
        }
        rule.action = *action;
        break;
      }
      case Key::kDelayMs: {
        const double ms = need_number(entry);
        if (!(ms > 0.0 && ms <= Rule::kMaxDelayMs)) {
          fail(*entry.value,
               "'delay_ms' must be more than 0 and at most 600000 (10 minutes); got " +
                   format_number(ms));
        }
        rule.delay_ms = ms;
        break;
      }
      case Key::kJitterMs: {
        const double ms = need_number(entry);
        if (!(ms >= 0.0 && ms <= Rule::kMaxDelayMs)) {
          fail(*entry.value,
               "'jitter_ms' must be at least 0 and at most 600000; got " + format_number(ms));
        }
        rule.jitter_ms = ms;
        break;
      }
      case Key::kCopies: {
        const std::int64_t copies = need_integer(entry);
        if (copies < 1 || copies > Rule::kMaxCopies) {
          fail(*entry.value, "'copies' must be between 1 and 100; got " + std::to_string(copies));
        }
        rule.copies = static_cast<std::uint16_t>(copies);
        break;
      }
      case Key::kSpacingMs: {
        const double ms = need_number(entry);
        if (!(ms >= 0.0 && ms <= Rule::kMaxSpacingMs)) {
          fail(*entry.value, "'spacing_ms' must be at least 0 and at most 60000 (1 minute); got " +
                                 format_number(ms));
        }
        rule.spacing_ms = ms;
        break;
      }
    }
  }

  // A [[rule]] table's position is its header line; an inline table's is its '{'.
  const toml::source_position where = table.source().begin;
  if (seen[static_cast<std::size_t>(Key::kName)] == nullptr) {
    fail(where,
         "this rule has no 'name'; add name = \"...\" (unique; letters, digits, '_', '.', "
         "'-')");
  }
  const Entry* action = seen[static_cast<std::size_t>(Key::kAction)];
  if (action == nullptr) {
    fail(where, "rule " + quote(rule.name) +
                    " has no 'action'; add action = \"...\" with one of: " + ActionNames::joined());
  }
  check_action_parameters(rule, entries);
  if (rule.action == Action::kDelay && seen[static_cast<std::size_t>(Key::kDelayMs)] == nullptr) {
    fail(*action->value,
         "action \"delay\" needs 'delay_ms' (milliseconds, more than 0 and at most "
         "600000)");
  }
  if (const Entry* jitter = seen[static_cast<std::size_t>(Key::kJitterMs)];
      jitter != nullptr && rule.jitter_ms > rule.delay_ms) {
    fail(*jitter->value, cat("'jitter_ms' (", format_ms(rule.jitter_ms),
                             ") must not exceed 'delay_ms' (", format_ms(rule.delay_ms),
                             "): the delay is drawn between delay_ms - jitter_ms and "
                             "delay_ms + jitter_ms"));
  }
  if (rule.action == Action::kDuplicate && rule.copies == 0) {
    rule.copies = 1;
  }
  return rule;
}

RuleSet Loader::rule_set(const toml::table& document) const {
  RuleSet set;
  set.source = source_;
  struct NameAt {
    std::string_view name;
    std::uint32_t line;
  };
  std::vector<NameAt> names;
  std::size_t counted = 0;

  for (const Entry& entry : entries_in_file_order(document)) {
    const std::string_view key = entry.name->str();
    if (key != "rule") {
      if (entry.value->is_table() || entry.value->is_array()) {
        std::string hint = "did you mean [[rule]]? ";
        if (!closest_match(key, kRuleTable)) {
          hint.clear();
        }
        fail(*entry.name, "unknown table " + quote(key) + "; " + hint +
                              "a rule file holds only [[rule]] tables");
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
      fail(*entry.value,
           "'rule' must be an array of tables ([[rule]]), not " + shown(*entry.value));
    }
    for (const toml::node& element : *rules) {
      const auto* table = element.as_table();
      if (table == nullptr) {
        fail(element, "each rule must be a table, not " + shown(element));
      }
      Rule rule = this->rule(*table);

      const toml::node* name_node = table->get("name");
      const std::uint32_t line = name_node->source().begin.line + line_shift_;
      for (const NameAt& other : names) {
        if (other.name == rule.name) {
          fail(*name_node, cat("duplicate rule name ", quote(rule.name),
                               "; the first rule of that name is at line ",
                               std::to_string(other.line), ", and names must be unique"));
        }
      }
      names.push_back(NameAt{name_node->as_string()->get(), line});

      if (rule.counted() && ++counted > FlowRuleState::kMaxCountedRules) {
        const char* counter = rule.counter == Counter::kNth     ? "nth"
                              : rule.counter == Counter::kFirst ? "first"
                                                                : "after";
        fail(*table->get(counter), "too many counted rules: at most " +
                                       std::to_string(FlowRuleState::kMaxCountedRules) +
                                       " rules of a rule set may use nth, first or after "
                                       "(disabled ones included); this is the " +
                                       std::to_string(counted) + "th");
      }
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
      throw ConfigError(path, 0, 0, "rule file is larger than 16 MiB; is it the right file?");
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
