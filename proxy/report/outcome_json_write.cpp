#include <cstdio>
#include <nlohmann/json.hpp>

#include "netfilter/packet.hpp"
#include "proxy/report/json_line_writer.hpp"
#include "proxy/report/outcome_json.hpp"

namespace finwave::proxy {
namespace {

double to_ms(std::int64_t us) { return static_cast<double>(us) / 1000.0; }

std::string str(std::string_view view) { return std::string(view); }

// The outcome as a JSON value, for the control plane to embed in replies and events (nlohmann's
// object keeps its keys sorted). Output lines are written by to_json_line() below instead, in
// the README's field order; the tests check that both give the same JSON.
template <class Json>
Json build(const Outcome& o) {
  Json j;
  j["event"] = "outcome";
  j["id"] = o.id;
  j["flow"] = Json{{"client", to_string(o.client)}, {"server", to_string(o.server)}};
  j["sides_known"] = o.sides_known;
  j["closer"] = str(to_string(o.closer));
  j["kind"] = str(to_string(o.kind));
  j["result"] = str(to_string(o.result));
  j["ended_by"] = str(to_string(o.ended_by));
  j["fin_retransmits"] =
      Json{{"client", o.fin_retransmits_client}, {"server", o.fin_retransmits_server}};
  j["final_acks"] = Json{{"seen", o.final_acks_seen}, {"dropped", o.final_acks_dropped}};
  if (o.rst) {
    j["rst"] = Json{{"from", str(to_string(o.rst->from))},
                    {"stage", str(to_string(o.rst->stage))},
                    {"answers_fin_retransmit", o.rst->answers_fin_retransmit}};
  } else {
    j["rst"] = nullptr;
  }
  j["teardown_ms"] = to_ms(o.teardown_us);
  j["data_after_fin"] = Json{{"bytes", o.data_after_fin_bytes}};
  j["dup_acks"] = o.dup_acks;
  j["segments"] = o.segments;
  Json actions = Json::array();
  for (const ActionRecord& a : o.actions) {
    Json action;
    action["rule"] = a.rule;
    action["role"] = str(rules::to_string(a.role));
    action["action"] = str(to_string(a.action));
    action["count"] = a.count;
    actions.push_back(std::move(action));
  }
  j["actions"] = std::move(actions);
  j["actions_dropped"] = o.actions_dropped;
  j["incomplete"] = o.incomplete;
  Json timeline = Json::array();
  for (const TimelineEntry& e : o.timeline) {
    Json entry;
    entry["t_ms"] = to_ms(e.t_us);
    entry["from"] = str(rules::to_string(e.from));
    entry["role"] = str(rules::to_string(e.role));
    entry["retx"] = e.retx;
    entry["dup_ack"] = e.dup_ack;
    entry["bogus"] = e.bogus;
    entry["flags"] = nf::flags_to_string(e.flags);
    entry["seq"] = e.seq;
    entry["ack"] = e.ack;
    entry["len"] = e.len;
    entry["verdict"] = str(to_string(e.verdict));
    // Only where they say something: a delay's hold, copies behind a segment.
    if (e.hold_ms) {
      entry["hold_ms"] = *e.hold_ms;
      entry["released"] = e.released;
    }
    if (e.copies != 0) entry["copies"] = e.copies;
    timeline.push_back(std::move(entry));
  }
  j["timeline"] = std::move(timeline);
  j["timeline_dropped"] = o.timeline_dropped;
  return j;
}

}  // namespace

nlohmann::json to_json(const Outcome& outcome) { return build<nlohmann::json>(outcome); }

std::string to_json_line(const Outcome& o) {
  std::string line;
  append_json_line(line, o);
  return line;
}

void append_json_line(std::string& line, const Outcome& o) {
  // The same object as build(), written directly: this runs once per connection on the data
  // path's thread, where the DOM's allocations showed in the churn profile. The tests check
  // that both give the same JSON.
  constexpr int kMsDecimals = 3;  // microseconds
  line.reserve(line.size() + 512 + 160 * o.timeline.size());
  JsonLineWriter w(line);
  w.begin_object();
  w.key("event");
  w.string("outcome");
  w.key("id");
  w.number(o.id);
  w.key("flow");
  w.begin_object();
  w.key("client");
  w.string(to_string(o.client));
  w.key("server");
  w.string(to_string(o.server));
  w.end_object();
  w.key("sides_known");
  w.boolean(o.sides_known);
  w.key("closer");
  w.string(to_string(o.closer));
  w.key("kind");
  w.string(to_string(o.kind));
  w.key("result");
  w.string(to_string(o.result));
  w.key("ended_by");
  w.string(to_string(o.ended_by));
  w.key("fin_retransmits");
  w.begin_object();
  w.key("client");
  w.number(o.fin_retransmits_client);
  w.key("server");
  w.number(o.fin_retransmits_server);
  w.end_object();
  w.key("final_acks");
  w.begin_object();
  w.key("seen");
  w.number(o.final_acks_seen);
  w.key("dropped");
  w.number(o.final_acks_dropped);
  w.end_object();
  w.key("rst");
  if (o.rst) {
    w.begin_object();
    w.key("from");
    w.string(rules::to_string(o.rst->from));
    w.key("stage");
    w.string(to_string(o.rst->stage));
    w.key("answers_fin_retransmit");
    w.boolean(o.rst->answers_fin_retransmit);
    w.end_object();
  } else {
    w.null();
  }
  w.key("teardown_ms");
  w.number(to_ms(o.teardown_us), kMsDecimals);
  w.key("data_after_fin");
  w.begin_object();
  w.key("bytes");
  w.number(o.data_after_fin_bytes);
  w.end_object();
  w.key("dup_acks");
  w.number(o.dup_acks);
  w.key("segments");
  w.number(o.segments);
  w.key("actions");
  w.begin_array();
  for (const ActionRecord& a : o.actions) {
    w.begin_object();
    w.key("rule");
    w.string(a.rule);
    w.key("role");
    w.string(rules::to_string(a.role));
    w.key("action");
    w.string(to_string(a.action));
    w.key("count");
    w.number(a.count);
    w.end_object();
  }
  w.end_array();
  w.key("actions_dropped");
  w.number(o.actions_dropped);
  w.key("incomplete");
  w.boolean(o.incomplete);
  w.key("timeline");
  w.begin_array();
  for (const TimelineEntry& e : o.timeline) {
    w.begin_object();
    w.key("t_ms");
    w.number(to_ms(e.t_us), kMsDecimals);
    w.key("from");
    w.string(rules::to_string(e.from));
    w.key("role");
    w.string(rules::to_string(e.role));
    w.key("retx");
    w.boolean(e.retx);
    w.key("dup_ack");
    w.boolean(e.dup_ack);
    w.key("bogus");
    w.boolean(e.bogus);
    w.key("flags");
    w.string(nf::flags_to_string(e.flags));
    w.key("seq");
    w.number(e.seq);
    w.key("ack");
    w.number(e.ack);
    w.key("len");
    w.number(e.len);
    w.key("verdict");
    w.string(to_string(e.verdict));
    if (e.hold_ms) {
      w.key("hold_ms");
      w.number(*e.hold_ms);
      w.key("released");
      w.boolean(e.released);
    }
    if (e.copies != 0) {
      w.key("copies");
      w.number(std::uint32_t{e.copies});
    }
    w.end_object();
  }
  w.end_array();
  w.key("timeline_dropped");
  w.number(o.timeline_dropped);
  w.end_object();
}

}  // namespace finwave::proxy
