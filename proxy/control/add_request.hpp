#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace finwave::proxy::ctl {

/// The control request `finwavectl add` sends for the rule text it read (a file or stdin): a
/// JSON object goes as "rule", anything else as "toml" text for the daemon to parse;
/// `first` asks for the highest priority. Pure: no I/O; the caller sets "id" and sends it.
/// Kept apart from commands.cpp so that the fuzz target tests/fuzz/ctl_add_fuzz.cpp can link it.
nlohmann::json add_request(std::string_view rule_text, bool first);

}  // namespace finwave::proxy::ctl
