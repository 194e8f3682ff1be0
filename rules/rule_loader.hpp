#pragma once

#include <string>
#include <string_view>

#include "rules/config_error.hpp"
#include "rules/rule.hpp"

namespace finwave::rules {

// Rule files are TOML: an array of tables, one [[rule]] per rule, tried in file order.
//
//   [[rule]]
//   name   = "lose-first-final-ack"   # required, unique, [A-Za-z0-9_.-], at most 64 characters
//   role   = "final_ack"              # default "any"
//   from   = "client"                 # client | server | active | passive; default either
//   first  = 1                        # nth | first | after: per connection, per rule
//   action = "drop"                   # drop | delay | duplicate | reset | pass
//
// The full reference (every key, its range, and the matching semantics) is rules/README.md.
// All functions here run on the control plane and throw ConfigError, whose what() is
// "SOURCE:LINE:COL: message" pointing at the offending key or value.

/// Reads and parses the rule file at `path`. An unreadable file is a ConfigError carrying the
/// OS error ("rules.toml: cannot read rule file: No such file or directory").
RuleSet load_rules_file(const std::string& path);

/// Parses rule-file text; `source_name` is what error messages and RuleSet::source call it.
RuleSet parse_rules(std::string_view toml_text, std::string_view source_name);

/// Parses one rule given as its keys (for the control socket's `add`), in any of three forms:
///   - the keys at top level:            name = "x"\nrole = "fin1"\naction = "drop"
///   - an inline table on one line:      { name = "x", role = "fin1", action = "drop" }
///   - a rule file holding exactly one [[rule]].
/// Set-level checks (unique names, counter slots) are the engine's, at Engine::add().
Rule parse_single_rule(std::string_view toml_text, std::string_view source_name);

}  // namespace finwave::rules
