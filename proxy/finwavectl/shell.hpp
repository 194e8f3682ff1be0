#pragma once

#include <string>
#include <vector>

#include "proxy/finwavectl/commands.hpp"

namespace finwave::proxy::ctl {

/// `finwavectl shell`: reads commands line by line (with line editing, history in
/// ~/.finwavectl_history and completion of commands, options and rule names on a terminal;
/// plainly from a pipe) and runs each like a finwavectl subcommand. Returns 0 on a terminal;
/// from a pipe, the status of the last command that failed (0 if none did).
int run_shell(const Options& globals);

/// What completes the word `text` after the words `before` (the command first, without the
/// global options): commands, options, their values, rule names and recent flows (those of
/// load_completion_names()). `in_shell`: the shell's own words (help, quit) rather than
/// `shell`. The shell's Tab and `finwavectl __complete` (bash completion) both use it.
std::vector<std::string> completion_candidates(const std::vector<std::string>& before,
                                               const std::string& text, bool in_shell);

/// Asks the daemon for its rule names and recent flows, for completion; quietly none when it
/// cannot be reached.
void load_completion_names(const Options& globals);

}  // namespace finwave::proxy::ctl
