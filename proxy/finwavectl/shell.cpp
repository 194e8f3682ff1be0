#include "proxy/finwavectl/shell.hpp"

#include <editline/readline.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/finwavectl/commands.hpp"
#include "proxy/finwavectl/connection.hpp"

namespace finwave::proxy::ctl {
namespace {

// Completion state: libedit's callbacks are plain functions, so it lives here.
std::vector<std::string> g_rule_names;
std::vector<std::string> g_flow_names;  // Client endpoints of recent outcomes, newest first.
std::vector<std::string> g_candidates;
std::size_t g_next_candidate = 0;

const std::vector<std::string> kShellWords = {"help", "quit", "exit"};

// The shell's commands as define_commands() declares them: completion reads its subcommands
// and their options, so a command or option added there completes without a second list.
struct ShellCommands {
  Options options;  // define_commands() binds to it; completion and help never parse.
  CLI::App app;
  ShellCommands() { define_commands(app, options, true); }
};

const CLI::App& shell_commands() {
  static const ShellCommands kCommands;
  return kCommands.app;
}

std::vector<const CLI::App*> subcommands() {
  return shell_commands().get_subcommands([](const CLI::App*) { return true; });
}

std::vector<std::string> long_options(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
  }
  return names;
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const CLI::App* sub : subcommands()) names.push_back(sub->get_name());
  return names;
}

// The options `command` takes, the shell's own (--json, --help) included; none for a word that
// is no command.
std::vector<std::string> options_of(const std::string& command) {
  const CLI::App& app = shell_commands();
  std::vector<std::string> options = long_options(app);
  for (const CLI::App* sub : subcommands()) {
    if (sub->get_name() != command) continue;
    const std::vector<std::string> own = long_options(*sub);
    options.insert(options.end(), own.begin(), own.end());
    return options;
  }
  return {};
}

std::vector<std::string> values_of(const std::string& option) {
  if (option == "--rule") return g_rule_names;
  if (option == "--flow") return g_flow_names;
  return option_values(option);
}

std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

char* next_candidate(const char* text, int state) {
  if (state == 0) g_next_candidate = 0;
  const std::size_t length = std::strlen(text);
  while (g_next_candidate < g_candidates.size()) {
    const std::string& candidate = g_candidates[g_next_candidate++];
    if (candidate.compare(0, length, text) == 0) return ::strdup(candidate.c_str());
  }
  return nullptr;
}

}  // namespace

std::vector<std::string> completion_candidates(const std::vector<std::string>& before,
                                               const std::string& text, bool in_shell) {
  std::vector<std::string> candidates;
  if (before.empty()) {
    candidates = command_names();
    if (in_shell) {
      candidates.insert(candidates.end(), kShellWords.begin(), kShellWords.end());
    } else {
      candidates.emplace_back("shell");
    }
  } else if (const auto values = values_of(before.back()); !values.empty()) {
    candidates = values;
  } else if (!text.empty() && text[0] == '-') {
    candidates = options_of(before.front());
  } else if (before.front() == "enable" || before.front() == "disable" ||
             before.front() == "remove") {
    candidates = g_rule_names;
  } else if (before.front() == "show" && before.size() == 1) {
    candidates = g_flow_names;
  }
  return candidates;
}

namespace {

char** complete(const char* text, int start, int /*end*/) {
  const std::vector<std::string> before =
      split_words(std::string(rl_line_buffer, static_cast<std::size_t>(std::max(start, 0))));
  g_candidates = completion_candidates(before, text, true);
  rl_attempted_completion_over = 1;  // No file-name completion as a fallback.
  return rl_completion_matches(text, &next_candidate);
}

// Rule names and the flows of recent outcomes, for completion.
void refresh_names(const Options& globals) {
  try {
    Connection connection = Connection::open(globals.control);
    const nlohmann::json rules = connection.call({{"cmd", "rules"}}, 2000);
    std::vector<std::string> names;
    for (const auto& rule : rules.value("rules", nlohmann::json::array())) {
      names.push_back(rule.value("name", ""));
    }
    g_rule_names = std::move(names);
    const nlohmann::json outcomes = connection.call({{"cmd", "outcomes"}, {"limit", 50}}, 2000);
    std::vector<std::string> flows;
    const nlohmann::json list = outcomes.value("outcomes", nlohmann::json::array());
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      const std::string client =
          it->value("flow", nlohmann::json::object()).value("client", std::string());
      if (!client.empty() && std::find(flows.begin(), flows.end(), client) == flows.end()) {
        flows.push_back(client);
      }
    }
    g_flow_names = std::move(flows);
  } catch (const std::exception&) {
    // Completion without rule or flow names is still completion.
  }
}

void print_help() {
  std::printf("Commands (as for finwavectl, without its global options):\n");
  for (const CLI::App* sub : subcommands()) {
    std::printf("  %-9s %s\n", sub->get_name().c_str(), sub->get_description().c_str());
  }
  std::printf(
      "  help      This list\n"
      "  quit      Leave the shell (also exit, Ctrl-D)\n"
      "Tab completes commands, options, their values, rule names and recent flows; COMMAND\n"
      "--help explains.\n");
}

// Runs one line; returns its exit status.
int run_line(const std::string& line, const Options& globals) {
  Options options;
  options.control = globals.control;
  options.color = globals.color;
  CLI::App app{"finwave shell command"};
  app.name("");
  define_commands(app, options, true);
  options.json = globals.json;
  return parse_and_run(app, options, [&] { app.parse(line, false); });
}

std::string trimmed(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  const auto end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

}  // namespace

void load_completion_names(const Options& globals) { refresh_names(globals); }

int run_shell(const Options& globals) {
  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  // Ctrl-C interrupts the running command (a wait, a watch), not the shell.
  struct sigaction action {};
  action.sa_handler = &note_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);

  std::string history_file;
  if (interactive) {
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      history_file = std::string(home) + "/.finwavectl_history";
    }
    using_history();
    stifle_history(1000);
    if (!history_file.empty()) read_history(history_file.c_str());
    rl_attempted_completion_function = &complete;
    rl_completion_append_character = ' ';
    refresh_names(globals);
    std::printf("finwave shell on %s; 'help' lists commands, Tab completes, Ctrl-D leaves\n",
                globals.control.c_str());
  }

  int status = kExitOk;
  for (;;) {
    std::string line;
    if (interactive) {
      clear_interrupt();
      char* raw = readline("finwave> ");
      if (raw == nullptr) {
        if (interrupted()) {
          std::printf("\n");
          continue;
        }
        std::printf("\n");
        break;
      }
      line = raw;
      std::free(raw);
    } else if (!std::getline(std::cin, line)) {
      break;
    }
    line = trimmed(line);
    if (line.empty() || line[0] == '#') continue;
    if (interactive) {
      add_history(line.c_str());
      if (!history_file.empty()) write_history(history_file.c_str());
    }
    if (line == "quit" || line == "exit") break;
    if (line == "help" || line == "?") {
      print_help();
      continue;
    }
    clear_interrupt();
    const int result = run_line(line, globals);
    if (result != kExitOk) status = result;
    if (interactive) refresh_names(globals);
  }
  return interactive ? kExitOk : status;
}

}  // namespace finwave::proxy::ctl
