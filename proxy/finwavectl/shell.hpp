#pragma once

#include "proxy/finwavectl/commands.hpp"

namespace finwave::proxy::ctl {

/// `finwavectl shell`: reads commands line by line (with line editing, history in
/// ~/.finwavectl_history and completion of commands, options and rule names on a terminal;
/// plainly from a pipe) and runs each like a finwavectl subcommand. Returns 0 on a terminal;
/// from a pipe, the status of the last command that failed (0 if none did).
int run_shell(const Options& globals);

}  // namespace finwave::proxy::ctl
