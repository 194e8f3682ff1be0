#include "proxy/finwavectl/render.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>

#include "proxy/report/utf8.hpp"

namespace finwave::proxy::ctl {
namespace {

const nlohmann::json& field(const nlohmann::json& object, const char* key) {
  static const nlohmann::json kNullValue;
  if (!object.is_object()) return kNullValue;
  const auto it = object.find(key);
  return it == object.end() ? kNullValue : *it;
}

std::string str(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "-";
  return value.dump();
}

std::string ms_text(double ms) {
  char buffer[32];
  if (ms >= 10000) {
    std::snprintf(buffer, sizeof buffer, "%.1f s", ms / 1000);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f ms", ms);
  }
  return buffer;
}

std::string pad(const std::string& text, std::size_t width, bool right) {
  const std::size_t visible = visible_width(text);
  if (visible >= width) return text;
  const std::string fill(width - visible, ' ');
  return right ? fill + text : text + fill;
}

}  // namespace

std::string Style::paint(std::string_view text, std::string_view code) const {
  if (!enabled) return std::string(text);
  return "\033[" + std::string(code) + "m" + std::string(text) + "\033[0m";
}

std::string Style::result(std::string_view result) const {
  if (result == "clean") return good(result);
  if (result == "reset") return bad(result);
  return warn(result);
}

Style make_style(std::string_view mode, std::FILE* stream) {
  Style style;
  if (mode == "always") {
    style.enabled = true;
  } else if (mode == "auto") {
    const char* term = std::getenv("TERM");
    style.enabled = ::isatty(::fileno(stream)) != 0 && std::getenv("NO_COLOR") == nullptr &&
                    (term == nullptr || std::string_view(term) != "dumb");
  }
  return style;
}

std::size_t terminal_width(std::FILE* stream, std::size_t minimum) {
  winsize size{};
  const int fd = ::fileno(stream);
  if (fd >= 0 && ::isatty(fd) == 1 && ::ioctl(fd, TIOCGWINSZ, &size) == 0 &&
      size.ws_col >= minimum) {
    return size.ws_col;
  }
  return 80;
}

std::size_t visible_width(std::string_view text) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == 0x1b) {
      // Skip a CSI sequence: ESC [ ... letter.
      while (i < text.size() && !(text[i] >= 'A' && text[i] <= 'z' && text[i] != '[')) ++i;
      continue;
    }
    if (!utf8_continuation(byte)) ++width;
  }
  return width;
}

Table::Table(std::vector<std::string> headers, std::vector<bool> right_aligned)
    : headers_(std::move(headers)), right_(std::move(right_aligned)) {
  right_.resize(headers_.size(), false);
}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

void Table::print(std::FILE* out, const Style& style, bool header) const {
  std::vector<std::size_t> widths(headers_.size());
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    widths[c] = header ? visible_width(headers_[c]) : 0;
    for (const auto& row : rows_) widths[c] = std::max(widths[c], visible_width(row[c]));
  }
  auto line = [&](const std::vector<std::string>& cells, bool is_header) {
    std::string text;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const bool last = c + 1 == cells.size();
      std::string cell = (last && !right_[c]) ? cells[c] : pad(cells[c], widths[c], right_[c]);
      text += is_header ? style.bold(cell) : cell;
      if (!last) text += "  ";
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    std::fprintf(out, "%s\n", text.c_str());
  };
  if (header) line(headers_, true);
  for (const auto& row : rows_) line(row, false);
}

std::string outcome_line(const nlohmann::json& o, const Style& style) {
  std::string line;
  if (o.contains("seq")) line += style.dim("#" + str(field(o, "seq"))) + " ";
  const nlohmann::json flow = o.value("flow", nlohmann::json::object());
  line += str(flow.value("client", nlohmann::json())) + " \u2192 " +
          str(flow.value("server", nlohmann::json()));
  if (!o.value("sides_known", true)) line += " (sides guessed)";
  line += "  " + str(o.value("kind", nlohmann::json()));
  line += "  " + style.result(str(o.value("result", nlohmann::json())));
  line += "  closer=" + str(o.value("closer", nlohmann::json()));
  const nlohmann::json retx = o.value("fin_retransmits", nlohmann::json::object());
  const auto c = retx.value("client", 0);
  const auto s = retx.value("server", 0);
  if (c != 0 || s != 0) {
    line += "  fin_retx c" + std::to_string(c) + " s" + std::to_string(s);
  }
  const nlohmann::json acks = o.value("final_acks", nlohmann::json::object());
  line += "  final_ack " + std::to_string(acks.value("seen", 0)) + " seen/" +
          std::to_string(acks.value("dropped", 0)) + " dropped";
  const nlohmann::json rst = o.value("rst", nlohmann::json());
  if (rst.is_object()) {
    line += "  rst from " + str(rst.value("from", nlohmann::json())) + " in " +
            str(rst.value("stage", nlohmann::json()));
  }
  line += "  " + ms_text(o.value("teardown_ms", 0.0));
  const std::string ended_by = o.value("ended_by", "");
  if (ended_by == "shutdown" || ended_by == "new_syn") line += "  (ended by " + ended_by + ")";
  const nlohmann::json actions = o.value("actions", nlohmann::json::array());
  if (actions.is_array() && !actions.empty()) {
    line += "  [";
    bool first = true;
    for (const auto& a : actions) {
      if (!first) line += ", ";
      first = false;
      line += str(a.value("rule", nlohmann::json())) + " " +
              str(a.value("action", nlohmann::json())) + " " +
              str(a.value("role", nlohmann::json())) + " \u00d7" + str(a.value("count", 0));
    }
    line += "]";
  }
  return line;
}

std::string event_line(const nlohmann::json& event, const Style& style) {
  const std::string kind = event.value("event", "");
  if (kind == "outcome") return outcome_line(event, style);
  if (kind == "rule_hit") {
    const nlohmann::json flow = event.value("flow", nlohmann::json::object());
    return style.dim("hit") + " " + style.bold(str(field(event, "rule"))) + " " +
           str(field(event, "verdict")) + " " + str(field(event, "role")) + " from " +
           str(field(event, "from")) + (event.value("retx", false) ? " (retx)" : "") + "  " +
           str(flow.value("client", nlohmann::json())) + " \u2192 " +
           str(flow.value("server", nlohmann::json())) + "  flow " + str(field(event, "flow_id"));
  }
  if (kind == "rule_change") {
    std::string line = style.warn("rule " + str(field(event, "change")));
    if (event.contains("rule")) line += " " + style.bold(str(field(event, "rule")));
    line += " by " + str(field(event, "by")) + " (" + str(field(event, "rules")) + " rules)";
    return line;
  }
  if (kind == "lagged") {
    return style.bad("lagged: " + str(field(event, "dropped")) +
                     " events dropped (this terminal did not keep up)");
  }
  if (kind == "shutdown") return style.warn("finwave is shutting down");
  return event.dump();
}

void print_status(const nlohmann::json& r, const Style& style, std::FILE* out) {
  std::string ports;
  for (const auto& port : r.value("ports", nlohmann::json::array())) {
    ports += (ports.empty() ? "" : ",") + str(port);
  }
  // "queue 0", or "queues 4-7" with --queues 4.
  std::string queues = "queue " + str(field(r, "queue"));
  const nlohmann::json& count = field(r, "queue_count");
  if (count.is_number_unsigned() && count.get<std::uint64_t>() > 1 &&
      field(r, "queue").is_number_unsigned()) {
    const std::uint64_t first = field(r, "queue").get<std::uint64_t>();
    queues = "queues " + std::to_string(first) + "-" +
             std::to_string(first + count.get<std::uint64_t>() - 1);
  }
  std::fprintf(out, "%s %s, pid %s, %s mode, %s, %s\n", style.bold("finwave").c_str(),
               str(field(r, "version")).c_str(), str(field(r, "pid")).c_str(),
               str(field(r, "mode")).c_str(), queues.c_str(),
               ports.empty() ? "all ports" : ("ports " + ports).c_str());
  Table table({"", ""});
  char uptime[64];
  std::snprintf(uptime, sizeof uptime, "%.1f s (since %s)", r.value("uptime_s", 0.0),
                str(r.value("started", nlohmann::json())).c_str());
  table.add({"up", uptime});
  table.add(
      {"rules", str(field(r, "rules")) + " (" + str(field(r, "rules_enabled")) + " enabled) from " +
                    (field(r, "rules_file").is_null() ? "no file" : str(field(r, "rules_file")))});
  const nlohmann::json flows = r.value("flows", nlohmann::json::object());
  table.add({"flows", str(flows.value("tracked", 0)) + " tracked, " +
                          str(flows.value("outcomes", 0)) + " outcomes (last seq " +
                          str(r.value("last_outcome_seq", 0)) + ")"});
  if (r.contains("segments")) {
    const nlohmann::json q = r.value("queue_counters", nlohmann::json::object());
    table.add({"segments", str(field(r, "segments")) + " queued, " +
                               str(r.value("logged", nlohmann::json(0))) + " logged (rule hits " +
                               str(field(r, "rule_hits")) + ", held now " +
                               str(q.value("held", 0)) + ")"});
  }
  if (r.contains("classes") && r["classes"].is_object()) {
    // Which classes of segment wait for a verdict, and which go on with a copy to finwave.
    const auto names = [](const nlohmann::json& list) {
      std::string text;
      for (const auto& name : list.is_array() ? list : nlohmann::json::array()) {
        text += (text.empty() ? "" : ", ") + str(name);
      }
      return text.empty() ? std::string("none") : text;
    };
    const nlohmann::json& classes = r["classes"];
    // A narrowed class: "ack (dport 5000)", the rest of its segments logged.
    std::string queued;
    std::string partly_logged;
    const nlohmann::json only = classes.value("queued_only", nlohmann::json::object());
    for (const auto& name : classes.value("queued", nlohmann::json::array())) {
      queued += (queued.empty() ? "" : ", ") + str(name);
      if (!name.is_string() || !only.is_object() || !only.contains(name.get<std::string>())) {
        continue;
      }
      queued += " (" + names(only[name.get<std::string>()]) + ")";
      partly_logged += ", the rest of " + str(name);
    }
    std::string logged = names(classes.value("logged", nlohmann::json::array()));
    if (!partly_logged.empty()) {
      logged = (logged == "none" ? partly_logged.substr(2) : logged + partly_logged);
    }
    std::string paths =
        "queued " + (queued.empty() ? std::string("none") : queued) + "; logged " + logged;
    if (classes.contains("delivery") && classes["delivery"].is_string()) {
      paths += " (" + classes["delivery"].get<std::string>() + ")";
    }
    table.add({"paths", paths});
  }
  if (r.contains("control")) {
    const nlohmann::json c = field(r, "control");
    table.add({"control", str(field(c, "path")) + ", " + str(field(c, "clients")) + " clients, " +
                              str(field(c, "subscribers")) + " subscribers, " +
                              str(field(c, "waits")) + " waits"});
  }
  char windows[64];
  std::snprintf(windows, sizeof windows, "settle %g s, linger %g s", r.value("settle_s", 0.0),
                r.value("linger_s", 0.0));
  table.add({"windows", windows});
  table.print(out, style, false);
}

void print_rules(const nlohmann::json& reply, const Style& style, std::FILE* out) {
  const nlohmann::json rules = reply.value("rules", nlohmann::json::array());
  if (rules.empty()) {
    std::fprintf(out, "no rules%s\n",
                 field(reply, "source").is_null()
                     ? ""
                     : (" (file " + str(field(reply, "source")) + ")").c_str());
    return;
  }
  Table table({"#", "NAME", "STATE", "HITS", "FROM", "RULE"}, {true, false, false, true});
  for (const auto& rule : rules) {
    const bool enabled = rule.value("enabled", false);
    table.add({str(field(rule, "position")), style.bold(str(field(rule, "name"))),
               enabled ? style.good("enabled") : style.dim("disabled"), str(field(rule, "hits")),
               str(field(rule, "origin")), str(field(rule, "summary"))});
  }
  table.print(out, style);
}

void print_flows(const nlohmann::json& reply, const Style& style, std::FILE* out) {
  const nlohmann::json flows = reply.value("flows", nlohmann::json::array());
  if (flows.empty()) {
    std::fprintf(out, "no flows tracked\n");
    return;
  }
  Table table({"ID", "CLIENT", "SERVER", "STAGE", "CLOSER", "SEGS", "AGE", "IDLE"},
              {true, false, false, false, false, true, true, true});
  for (const auto& flow : flows) {
    const std::string stage = str(field(flow, "stage"));
    table.add({str(field(flow, "id")),
               str(field(flow, "client")) + (flow.value("sides_known", true) ? "" : "?"),
               str(field(flow, "server")), stage == "reset" ? style.bad(stage) : stage,
               str(field(flow, "closer")), str(field(flow, "segments")),
               ms_text(flow.value("age_ms", 0.0)), ms_text(flow.value("idle_ms", 0.0))});
  }
  table.print(out, style);
  if (reply.value("truncated", false)) {
    std::fprintf(out, "(%s flows in all; showing the first %zu, see --limit)\n",
                 str(field(reply, "count")).c_str(), flows.size());
  }
}

void print_flat(const nlohmann::json& value, std::FILE* out) {
  std::vector<std::pair<std::string, std::string>> lines;
  std::function<void(const std::string&, const nlohmann::json&)> walk =
      [&](const std::string& prefix, const nlohmann::json& v) {
        if (v.is_object()) {
          for (const auto& item : v.items()) {
            walk(prefix.empty() ? item.key() : prefix + "." + item.key(), item.value());
          }
        } else {
          lines.emplace_back(prefix, str(v));
        }
      };
  walk("", value);
  std::size_t width = 0;
  for (const auto& [key, text] : lines) width = std::max(width, key.size());
  for (const auto& [key, text] : lines) {
    std::fprintf(out, "%-*s  %s\n", static_cast<int>(width), key.c_str(), text.c_str());
  }
}

}  // namespace finwave::proxy::ctl
