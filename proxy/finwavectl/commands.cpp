#include "proxy/finwavectl/commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proxy/control/add_request.hpp"
#include "proxy/control/control_protocol.hpp"
#include "proxy/finwavectl/connection.hpp"
#include "proxy/finwavectl/render.hpp"
#include "proxy/finwavectl/shell.hpp"
#include "proxy/report/ladder.hpp"
#include "proxy/report/outcome_json.hpp"
#include "proxy/tracker/teardown.hpp"

namespace finwave::proxy::ctl {
namespace {

constexpr std::uint64_t kReplyTimeoutMs = 10000;

template <class Names>
std::vector<std::string> names_of() {
  const auto names = Names::names();
  return {names.begin(), names.end()};
}

void print_line(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// Prints an ok:false reply's error and returns the exit status it means.
int report_error(const nlohmann::json& reply, const Options& o, const Style& err_style) {
  const nlohmann::json error = reply.value("error", nlohmann::json::object());
  const std::string code = error.value("code", "unknown");
  const std::string message = error.value("message", "(no message)");
  if (o.json) print_line(reply.dump());
  std::fprintf(stderr, "finwavectl: %s %s\n", err_style.bad(message).c_str(),
               err_style.dim("[" + code + "]").c_str());
  return code == "timeout" ? kExitTimeout : kExitUsage;
}

nlohmann::json since_field(const std::string& since) {
  if (since == "change" || since == "rule_change") return "rule_change";
  if (since == "now") return "now";
  char* end = nullptr;
  const unsigned long long seq = std::strtoull(since.c_str(), &end, 10);
  if (since.empty() || *end != '\0' || since[0] == '-') {
    throw CtlError(kExitUsage,
                   "--since takes an outcome sequence number, 'change' (the last "
                   "rule change) or 'now'; got '" +
                       since + "'");
  }
  return static_cast<std::uint64_t>(seq);
}

void add_filter(nlohmann::json& request, const Options& o) {
  if (!o.result.empty()) request["result"] = o.result;
  if (!o.kind.empty()) request["kind"] = o.kind;
  if (!o.closer.empty()) request["closer"] = o.closer;
  if (!o.rule.empty()) request["rule"] = o.rule;
  if (!o.flow.empty()) request["flow"] = o.flow;
}

std::string filter_text(const Options& o) {
  std::string text;
  auto add = [&](const char* key, const std::string& value) {
    if (!value.empty()) text += std::string(text.empty() ? "" : " ") + key + "=" + value;
  };
  add("result", o.result);
  add("kind", o.kind);
  add("closer", o.closer);
  add("rule", o.rule);
  add("flow", o.flow);
  return text;
}

std::string read_rule_text(const std::string& file) {
  if (file == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw CtlError(kExitUsage, "cannot read " + file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// One request/reply command. Human output comes from `render`; --json prints the reply.
template <class Render>
int simple(const Options& o, nlohmann::json request, Render render) {
  const Style style = make_style(o.color, stdout);
  const Style err_style = make_style(o.color, stderr);
  Connection connection = Connection::open(o.control);
  const nlohmann::json reply = connection.call(std::move(request), kReplyTimeoutMs);
  if (!reply.value("ok", false)) return report_error(reply, o, err_style);
  if (o.json) {
    print_line(reply.dump());
  } else {
    render(reply, style);
    std::fflush(stdout);
  }
  return kExitOk;
}

int run_wait(const Options& o) {
  const auto timeout_ms = parse_duration_ms(o.timeout);
  if (!timeout_ms) {
    throw CtlError(kExitUsage,
                   "--timeout takes a duration such as 5s, 500ms, 2m; got '" + o.timeout + "'");
  }
  nlohmann::json request = {{"cmd", "wait"}, {"timeout_ms", *timeout_ms}, {"count", o.count}};
  add_filter(request, o);
  if (!o.since.empty()) request["since"] = since_field(o.since);
  const Style style = make_style(o.color, stdout);
  const Style err_style = make_style(o.color, stderr);
  Connection connection = Connection::open(o.control);
  const nlohmann::json reply = connection.call(request, *timeout_ms + kReplyTimeoutMs);
  if (!reply.value("ok", false)) {
    const nlohmann::json error = reply.value("error", nlohmann::json::object());
    if (error.value("code", "") == "timeout") {
      if (o.json) print_line(reply.dump());
      std::fprintf(
          stderr, "finwavectl: wait timed out after %s: %s (%s)\n", o.timeout.c_str(),
          err_style
              .warn(filter_text(o).empty() ? "no outcome" : "no outcome with " + filter_text(o))
              .c_str(),
          error.value("message", "").c_str());
      return kExitTimeout;
    }
    return report_error(reply, o, err_style);
  }
  if (o.json) {
    print_line(reply.dump());
  } else {
    for (const auto& outcome : reply.value("outcomes", nlohmann::json::array())) {
      print_line(outcome_line(outcome, style));
    }
  }
  return kExitOk;
}

int run_watch(const Options& o) {
  nlohmann::json request = {{"cmd", "subscribe"}};
  add_filter(request, o);
  if (!o.events.empty()) request["events"] = o.events;
  const Style style = make_style(o.color, stdout);
  const Style err_style = make_style(o.color, stderr);
  Connection connection = Connection::open(o.control);
  const nlohmann::json reply = connection.call(request, kReplyTimeoutMs);
  if (!reply.value("ok", false)) return report_error(reply, o, err_style);
  if (!o.json && ::isatty(STDOUT_FILENO) != 0) {
    const std::string filter = filter_text(o);
    std::fprintf(stderr, "watching %s (Ctrl-C to stop)\n",
                 filter.empty() ? "everything" : filter.c_str());
  }
  // Ctrl-C ends the watch cleanly (status 0) rather than killing the process mid-line.
  struct sigaction action {};
  struct sigaction previous {};
  action.sa_handler = &note_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &previous);
  clear_interrupt();
  std::uint32_t outcomes = 0;
  int status = kExitOk;
  try {
    while (!interrupted()) {
      const std::optional<std::string> line = connection.next_line(1000);
      if (!line) continue;
      nlohmann::json event;
      try {
        event = nlohmann::json::parse(*line);
      } catch (const nlohmann::json::parse_error&) {
        continue;
      }
      print_line(o.json ? *line : event_line(event, style));
      const std::string kind = event.value("event", "");
      if (kind == "shutdown") break;
      if (kind == "outcome" && o.watch_count != 0 && ++outcomes >= o.watch_count) break;
    }
  } catch (const CtlError& error) {
    std::fprintf(stderr, "finwavectl: %s\n", error.what());
    status = error.exit_code;
  }
  sigaction(SIGINT, &previous, nullptr);
  clear_interrupt();
  return status;
}

// Why `show` found no outcome for the flow: a live flow that matches has not finished its
// teardown yet; otherwise the flow is unknown or its outcome has left the daemon's history.
std::string no_outcome_reason(Connection& connection, const Options& o, const OutcomeFilter& filter,
                              const nlohmann::json& outcomes_reply) {
  const nlohmann::json flows = connection.call({{"cmd", "flows"}}, kReplyTimeoutMs);
  for (const auto& flow : flows.value("flows", nlohmann::json::array())) {
    const auto client = endpoint_from_string(flow.value("client", ""));
    const auto server = endpoint_from_string(flow.value("server", ""));
    if (!client || !server ||
        !filter.matches_flow(flow.value("id", std::uint64_t{0}), *client, *server)) {
      continue;
    }
    return "flow " + o.flow + " (id " + flow.value("id", nlohmann::json()).dump() + ", stage " +
           flow.value("stage", "?") +
           ") has not finished its teardown: no outcome yet (`finwavectl wait --flow " + o.flow +
           "` waits for it)";
  }
  return "no outcome for flow " + o.flow + " among the " +
         outcomes_reply.value("history", nlohmann::json()).dump() +
         " most recent ones the daemon keeps, and no live flow matches";
}

// show: the ladder of the most recent outcome of one flow, fetched from the daemon.
int run_show(const Options& o) {
  OutcomeFilter filter;
  if (!filter.set_flow(o.flow)) {
    throw CtlError(kExitUsage,
                   "FLOW must be a flow id (17), an endpoint (198.18.1.2:40000, "
                   "[2001:db8:1::2]:40000) or an address (198.18.2.2); got '" +
                       o.flow + "'");
  }
  const Style err_style = make_style(o.color, stderr);
  Connection connection = Connection::open(o.control);
  const nlohmann::json reply =
      connection.call({{"cmd", "outcomes"}, {"flow", o.flow}, {"limit", 1}}, kReplyTimeoutMs);
  if (!reply.value("ok", false)) return report_error(reply, o, err_style);
  const nlohmann::json list = reply.value("outcomes", nlohmann::json::array());
  if (list.empty()) throw CtlError(kExitUsage, no_outcome_reason(connection, o, filter, reply));
  const nlohmann::json& event = list.back();
  Outcome outcome;
  try {
    outcome = outcome_from_json(event);
  } catch (const std::invalid_argument& error) {
    throw CtlError(kExitUsage, std::string("the daemon sent an outcome finwavectl cannot read: ") +
                                   error.what());
  }
  if (!o.svg.empty()) {
    std::ofstream svg(o.svg, std::ios::binary | std::ios::trunc);
    svg << render_ladder_svg(outcome);
    svg.close();
    if (!svg) throw CtlError(kExitUsage, "cannot write " + o.svg);
    std::fprintf(stderr, "finwavectl: wrote %s (flow %llu, client %s)\n", o.svg.c_str(),
                 static_cast<unsigned long long>(outcome.id), to_string(outcome.client).c_str());
  }
  if (o.json) {
    print_line(event.dump());
  } else if (!o.quiet) {
    LadderOptions options;
    options.width = o.width != 0 ? o.width : terminal_width(stdout, kMinLadderWidth);
    options.unicode = o.unicode;
    const std::string ladder = render_ladder(outcome, options);
    std::fwrite(ladder.data(), 1, ladder.size(), stdout);
    std::fflush(stdout);
  }
  return kExitOk;
}

int run_raw(const Options& o) {
  Connection connection = Connection::open(o.control);
  int status = kExitOk;
  for (const std::string& line : o.lines) {
    connection.send_line(line);
    const std::optional<std::string> reply = connection.next_line(kReplyTimeoutMs);
    if (!reply) throw CtlError(kExitUnreachable, "no reply from finwave within 10 s");
    print_line(*reply);
    try {
      if (!nlohmann::json::parse(*reply).value("ok", false)) status = kExitUsage;
    } catch (const std::exception&) {
      status = kExitUsage;
    }
  }
  return status;
}

int run_rule_change(const Options& o, const std::string& command) {
  int status = kExitOk;
  for (const std::string& name : o.names) {
    const int one =
        simple(o, {{"cmd", command}, {"name", name}},
               [&](const nlohmann::json& reply, const Style& style) {
                 const std::string shown = style.bold(name);
                 if (command == "remove") {
                   std::printf("removed %s (%s rules left)\n", shown.c_str(),
                               reply.value("rules", nlohmann::json()).dump().c_str());
                 } else if (!reply.value("changed", true)) {
                   std::printf("%s was already %sd\n", shown.c_str(), command.c_str());
                 } else {
                   std::printf("%sd %s (outcome seq %s)\n", command.c_str(), shown.c_str(),
                               reply.value("outcome_seq", nlohmann::json()).dump().c_str());
                 }
               });
    if (one != kExitOk) status = one;
  }
  return status;
}

// "a, b": the names of a JSON array of strings.
std::string joined_names(const nlohmann::json& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name.is_string() ? name.get<std::string>() : name.dump();
  }
  return out;
}

int run_reset(const Options& o) {
  return simple(o, {{"cmd", "reset"}}, [](const nlohmann::json& reply, const Style&) {
    const nlohmann::json removed = reply.value("removed", nlohmann::json::array());
    const nlohmann::json restored = reply.value("restored", nlohmann::json::array());
    std::printf("reset to %s rules as loaded (outcome seq %s)\n",
                reply.value("rules", nlohmann::json()).dump().c_str(),
                reply.value("outcome_seq", nlohmann::json()).dump().c_str());
    if (!removed.empty()) std::printf("  removed: %s\n", joined_names(removed).c_str());
    if (!restored.empty()) std::printf("  restored: %s\n", joined_names(restored).c_str());
  });
}

}  // namespace

std::string default_control_path() {
  const char* env = std::getenv("FINWAVE_CONTROL");
  return env != nullptr && *env != '\0' ? env : "/run/finwave/control.sock";
}

std::vector<std::string> option_values(std::string_view option) {
  if (option == "--result") return names_of<TeardownResultNames>();
  if (option == "--kind") return names_of<TeardownKindNames>();
  if (option == "--closer") return names_of<CloserNames>();
  if (option == "--events") return names_of<EventKindNames>();
  if (option == "--since") return {"change", "now"};
  if (option == "--color") return {"auto", "always", "never"};
  return {};
}

void define_commands(CLI::App& app, Options& o, bool in_shell) {
  app.require_subcommand(1);
  app.fallthrough();
  if (!in_shell) {
    app.add_option("-c,--control", o.control,
                   "Control socket (default $FINWAVE_CONTROL, else "
                   "/run/finwave/control.sock)");
    app.add_flag("--json", o.json, "Print the daemon's JSON replies and events, one per line");
    app.add_option("--color", o.color, "Colours: auto (on a terminal), always, never")
        ->check(CLI::IsMember(option_values("--color")));
  } else {
    app.add_flag("--json", o.json, "Print JSON");
  }

  app.add_subcommand("status", "Version, mode, uptime, rule file, counters");
  app.add_subcommand("rules", "The rules in priority order, enabled or not, with hit counts");
  app.add_subcommand("enable", "Enable rules by name (from the next segment on)")
      ->add_option("NAME", o.names, "Rule name(s)")
      ->required();
  app.add_subcommand("disable", "Disable rules by name")
      ->add_option("NAME", o.names, "Rule name(s)")
      ->required();
  auto* add = app.add_subcommand(
      "add",
      "Add one rule from a file or stdin (-): TOML keys, an inline table, one [[rule]], "
      "or a JSON object");
  add->add_option("FILE", o.file, "File with one rule, or - for stdin")->required();
  add->add_flag("--first", o.first, "Put it first (highest priority) instead of last");
  add->add_option("--ttl", o.ttl, "Remove it this long after adding it: 30s, 500ms, 2m")
      ->type_name("DURATION");
  add->add_option("--max-hits", o.max_hits,
                  "Remove it once it has decided N segments (over every connection)")
      ->check(CLI::Range(std::uint64_t{1}, kMaxRuleHits));
  app.add_subcommand("remove", "Remove rules by name")
      ->add_option("NAME", o.names, "Rule name(s)")
      ->required();
  app.add_subcommand("reload", "Re-read the rule file (rules added with `add` are dropped)");
  app.add_subcommand("reset",
                     "Put back the rule file's rules as loaded, with their enabled states; rules "
                     "added with `add` are dropped (between tests)");
  app.add_subcommand("flows", "Live flows and their teardown stage")
      ->add_option("--limit", o.limit, "At most this many (default 1000)");
  auto filters = [&](CLI::App* sub) {
    sub->add_option("--result", o.result, TeardownResultNames::joined(" | "))
        ->check(CLI::IsMember(option_values("--result")));
    sub->add_option("--kind", o.kind, TeardownKindNames::joined(" | "))
        ->check(CLI::IsMember(option_values("--kind")));
    sub->add_option("--closer", o.closer, CloserNames::joined(" | "))
        ->check(CLI::IsMember(option_values("--closer")));
    sub->add_option("--rule", o.rule, "A rule that acted on the connection");
    sub->add_option("--flow", o.flow,
                    "Flow id, endpoint (198.18.1.2:40000, [2001:db8::2]:5000) or address");
  };
  auto* outcomes = app.add_subcommand("outcomes", "The most recent outcomes (kept: 1000)");
  outcomes->add_option("--limit", o.limit, "How many (default 20)");
  outcomes->add_option("--since", o.since, "Only those after this outcome seq (or 'change')");
  filters(outcomes);
  auto* show = app.add_subcommand(
      "show", "Draw a flow's teardown (its most recent outcome) as a ladder diagram");
  show->add_option("FLOW", o.flow,
                   "Flow id, endpoint (198.18.1.2:40000, [2001:db8::2]:5000) or address")
      ->required();
  show->add_option("--svg", o.svg, "Also write the diagram as SVG to FILE")->type_name("FILE");
  show->add_option("--width", o.width, "Columns of the ASCII ladder (default: the terminal's)")
      ->check(CLI::Range(kMinLadderWidth, std::size_t{1000}));
  show->add_flag("--unicode", o.unicode, "Box-drawing lines and arrows instead of ASCII");
  show->add_flag("-q,--quiet", o.quiet, "Do not print the ASCII ladder (with --svg)");
  auto* watch = app.add_subcommand("watch",
                                   "Stream events live: outcomes, rule hits, rule "
                                   "changes (Ctrl-C to stop)");
  filters(watch);
  watch->add_option("--events", o.events, "Only these: " + EventKindNames::joined())
      ->check(CLI::IsMember(option_values("--events")))
      ->delimiter(',');
  watch->add_option("--count", o.watch_count, "Stop after this many outcomes (default: never)");
  auto* wait = app.add_subcommand(
      "wait", "Block until an outcome matching the filters arrives; exit 1 on timeout");
  filters(wait);
  wait->add_option("--timeout", o.timeout, "How long to wait: 5s, 500ms, 2m (default 5s)");
  wait->add_option("--since", o.since,
                   "Also match outcomes already reported after this point: an outcome seq "
                   "(as printed by enable/status), 'change' (the last rule change) or 'now' "
                   "(default)");
  wait->add_option("--count", o.count, "Wait for this many matching outcomes (default 1)")
      ->check(CLI::Range(1U, kMaxWaitCount));
  app.add_subcommand("stats", "Every counter, the kernel's queue counters included");
  app.add_subcommand("metrics",
                     "The Prometheus metrics, as --metrics serves them (for node_exporter's "
                     "textfile collector)");
  app.add_subcommand("raw", "Send request lines as they are and print the replies")
      ->add_option("LINE", o.lines, "JSON request line(s), e.g. '{\"cmd\":\"status\"}'")
      ->required();
  if (!in_shell) {
    app.add_subcommand("shell", "Interactive prompt with history and completion");
  }
}

int run_parsed(const CLI::App& app, Options& o) {
  const auto subcommands = app.get_subcommands();
  if (subcommands.empty()) throw CtlError(kExitUsage, "no command given (see --help)");
  const std::string command = subcommands.front()->get_name();
  if (command == "status") {
    return simple(o, {{"cmd", "status"}}, [](const nlohmann::json& reply, const Style& style) {
      print_status(reply, style, stdout);
    });
  }
  if (command == "rules") {
    return simple(o, {{"cmd", "rules"}}, [](const nlohmann::json& reply, const Style& style) {
      print_rules(reply, style, stdout);
    });
  }
  if (command == "enable" || command == "disable" || command == "remove") {
    return run_rule_change(o, command);
  }
  if (command == "add") {
    nlohmann::json request = add_request(read_rule_text(o.file), o.first);
    if (!o.ttl.empty()) {
      const auto ttl_ms = parse_duration_ms(o.ttl);
      if (!ttl_ms || *ttl_ms == 0 || *ttl_ms > kMaxRuleTtlMs) {
        throw CtlError(kExitUsage,
                       "--ttl takes a duration from 1ms to 24h, such as 30s; got '" + o.ttl + "'");
      }
      request["ttl"] = static_cast<double>(*ttl_ms) / 1000.0;
    }
    if (o.max_hits != 0) request["max_hits"] = o.max_hits;
    return simple(o, request, [](const nlohmann::json& reply, const Style& style) {
      const nlohmann::json rule = reply.value("rule", nlohmann::json::object());
      std::string lifetime;
      if (rule.contains("expires_in_s")) {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.3g", rule.value("expires_in_s", 0.0));
        lifetime = std::string(" (for ") + seconds + " s)";
      }
      std::printf("added %s at position %s: %s%s\n", style.bold(rule.value("name", "")).c_str(),
                  rule.value("position", nlohmann::json()).dump().c_str(),
                  rule.value("summary", "").c_str(), lifetime.c_str());
    });
  }
  if (command == "reload") {
    return simple(o, {{"cmd", "reload"}}, [](const nlohmann::json& reply, const Style&) {
      std::printf("reloaded %s rules from %s\n",
                  reply.value("rules", nlohmann::json()).dump().c_str(),
                  reply.value("source", "").c_str());
    });
  }
  if (command == "reset") return run_reset(o);
  if (command == "flows") {
    nlohmann::json request = {{"cmd", "flows"}};
    if (o.limit != 0) request["limit"] = o.limit;
    return simple(o, request, [](const nlohmann::json& reply, const Style& style) {
      print_flows(reply, style, stdout);
    });
  }
  if (command == "outcomes") {
    nlohmann::json request = {{"cmd", "outcomes"}};
    if (o.limit != 0) request["limit"] = o.limit;
    if (!o.since.empty()) request["since"] = since_field(o.since);
    add_filter(request, o);
    return simple(o, request, [](const nlohmann::json& reply, const Style& style) {
      const nlohmann::json list = reply.value("outcomes", nlohmann::json::array());
      if (list.empty()) std::printf("no outcomes yet\n");
      for (const auto& outcome : list) print_line(outcome_line(outcome, style));
    });
  }
  if (command == "show") return run_show(o);
  if (command == "watch") return run_watch(o);
  if (command == "wait") return run_wait(o);
  if (command == "stats") {
    return simple(o, {{"cmd", "stats"}}, [](const nlohmann::json& reply, const Style&) {
      nlohmann::json body = reply;
      body.erase("id");
      body.erase("ok");
      body.erase("event");
      print_flat(body, stdout);
    });
  }
  if (command == "metrics") {
    return simple(o, {{"cmd", "metrics"}}, [](const nlohmann::json& reply, const Style&) {
      const std::string text = reply.value("text", "");
      std::fwrite(text.data(), 1, text.size(), stdout);
    });
  }
  if (command == "raw") return run_raw(o);
  if (command == "shell") return run_shell(o);
  throw CtlError(kExitUsage, "unknown command " + command);
}

int parse_and_run(CLI::App& app, Options& options, const std::function<void()>& parse) {
  try {
    parse();
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    return run_parsed(app, options);
  } catch (const CtlError& error) {
    std::fprintf(stderr, "finwavectl: %s\n", error.what());
    return error.exit_code;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwavectl: %s\n", error.what());
    return kExitUsage;
  }
}

// `finwavectl __complete WORD... -- CURRENT`: the words that complete CURRENT after WORD...,
// one per line (deploy/completion/finwavectl, bash's completion, calls it). The global
// options before the command are skipped; --control names the daemon asked for rule names.
int run_complete(Options o, const std::vector<std::string>& words) {
  // The completion script always ends with "-- CURRENT" (CURRENT may be empty, or "--").
  std::vector<std::string> before = words;
  std::string text;
  if (before.size() >= 2 && before[before.size() - 2] == "--") {
    text = before.back();
    before.resize(before.size() - 2);
  } else if (!before.empty() && before.back() == "--") {
    before.pop_back();
  }
  std::size_t first = 0;
  while (first < before.size() && before[first].rfind('-', 0) == 0) {
    const std::string& option = before[first];
    const bool takes_value = option == "--control" || option == "-c" || option == "--color";
    if (takes_value && first + 1 < before.size()) {
      if (option != "--color") o.control = before[first + 1];
      first += 2;
      continue;
    }
    if (option.rfind("--control=", 0) == 0) o.control = option.substr(10);
    ++first;
  }
  before.erase(before.begin(), before.begin() + static_cast<std::ptrdiff_t>(first));
  load_completion_names(o);
  for (const std::string& candidate : completion_candidates(before, text, false)) {
    if (candidate.compare(0, text.size(), text) == 0) std::printf("%s\n", candidate.c_str());
  }
  return kExitOk;
}

}  // namespace finwave::proxy::ctl
