// Requests: parsing each line, answering what the server answers itself (outcomes,
// subscribe, wait, help) and handing the rest to the daemon; waits and their deadlines.
#include <algorithm>
#include <string>
#include <utility>

#include "proxy/control/control_server_entry.hpp"

namespace finwave::proxy {
namespace {

constexpr std::uint64_t kDefaultOutcomeLimit = 20;

}  // namespace

void ControlServer::handle_line(Client& client, const std::string& line) {
  ParsedControlRequest parsed = parse_control_request(line);
  if (parsed.error) {
    ++counters_.errors;
    send(client, format_control_error(parsed.request.id, parsed.error->code, parsed.error->what()));
    return;
  }
  try {
    handle_request(client, parsed.request);
  } catch (const ControlError& error) {
    ++counters_.errors;
    send(client, format_control_error(parsed.request.id, error.code, error.what()));
  } catch (const std::exception& error) {
    ++counters_.errors;
    send(client,
         format_control_error(parsed.request.id, ControlErrorCode::kInternal, error.what()));
  }
}

void ControlServer::handle_request(Client& client, ControlRequest& request) {
  switch (request.command) {
    case ControlCommand::kOutcomes:
      send(client, format_control_reply(request.id, outcomes_reply(request)));
      return;
    case ControlCommand::kSubscribe:
      handle_subscribe(client, request);
      return;
    case ControlCommand::kUnsubscribe: {
      const bool was = client.subscription != nullptr;
      if (was) --counters_.subscribers;
      client.subscription.reset();
      update_rule_hit_interest();
      send(client,
           format_control_reply(request.id, {{"subscribed", false}, {"was_subscribed", was}}));
      return;
    }
    case ControlCommand::kWait:
      handle_wait(client, request);
      return;
    case ControlCommand::kHelp: {
      nlohmann::json commands = nlohmann::json::array();
      for (const auto name : ControlCommandNames::names()) {
        nlohmann::json fields = nlohmann::json::array();
        for (const auto field : control_command_fields(*ControlCommandNames::parse(name))) {
          fields.push_back(field);
        }
        commands.push_back({{"cmd", name}, {"fields", fields}});
      }
      nlohmann::json errors = nlohmann::json::array();
      for (const auto name : ControlErrorCodeNames::names()) errors.push_back(name);
      send(client, format_control_reply(request.id, {{"commands", commands}, {"errors", errors}}));
      return;
    }
    default:
      break;
  }
  const nlohmann::json body = handler_.on_control_command(request, client.who);
  send(client, format_control_reply(request.id, body));
}

std::uint64_t ControlServer::resolve_since(const Since& since) const noexcept {
  switch (since.from) {
    case Since::From::kNow:
      return last_outcome_seq();
    case Since::From::kSeq:
      return since.seq;
    case Since::From::kRuleChange:
      return rule_change_seq_;
  }
  return last_outcome_seq();
}

nlohmann::json ControlServer::outcomes_reply(const ControlRequest& request) const {
  const std::uint64_t limit = request.limit.value_or(kDefaultOutcomeLimit);
  nlohmann::json list = nlohmann::json::array();
  bool more = false;
  const OutcomeFilter& filter = request.filter;
  if (request.since.from == Since::From::kNow) {
    // The most recent `limit` that match, oldest first.
    std::vector<const RingEntry*> newest;
    for (auto it = ring_.rbegin(); it != ring_.rend(); ++it) {
      if (!filter.matches(it->outcome)) continue;
      if (newest.size() >= limit) {
        more = true;
        break;
      }
      newest.push_back(&*it);
    }
    for (auto it = newest.rbegin(); it != newest.rend(); ++it) {
      list.push_back(outcome_event_json((*it)->seq, (*it)->outcome));
    }
  } else {
    // The first `limit` that match after `since`, for paging: ask again with since = the last
    // seq.
    const std::uint64_t since = resolve_since(request.since);
    for (const RingEntry& entry : ring_) {
      if (entry.seq <= since || !filter.matches(entry.outcome)) continue;
      if (list.size() >= limit) {
        more = true;
        break;
      }
      list.push_back(outcome_event_json(entry.seq, entry.outcome));
    }
  }
  nlohmann::json reply = {
      {"outcomes", std::move(list)},
      {"last_seq", last_outcome_seq()},
      {"oldest_seq", ring_.empty() ? nlohmann::json(nullptr) : nlohmann::json(ring_.front().seq)},
      {"more", more},
      {"history", config_.history}};
  if (!filter.empty()) reply["filter"] = filter.to_json();
  return reply;
}

void ControlServer::handle_subscribe(Client& client, const ControlRequest& request) {
  if (!client.subscription) {
    client.subscription = std::make_unique<Subscription>();
    ++counters_.subscribers;
  }
  client.subscription->events = request.events;
  client.subscription->filter = request.filter;
  nlohmann::json events = nlohmann::json::array();
  for (std::size_t i = 0; i < EventKindNames::kSize; ++i) {
    const auto kind = static_cast<EventKind>(i);
    if ((request.events & event_bit(kind)) != 0) events.push_back(to_string(kind));
  }
  send(client, format_control_reply(request.id, {{"subscribed", true},
                                                 {"events", events},
                                                 {"filter", request.filter.to_json()},
                                                 {"last_seq", last_outcome_seq()}}));
  update_rule_hit_interest();
}

void ControlServer::handle_wait(Client& client, ControlRequest& request) {
  if (client.waits.size() >= kMaxWaitsPerClient) {
    throw ControlError(
        ControlErrorCode::kTooManyWaits,
        "this connection already has " + std::to_string(kMaxWaitsPerClient) + " waits pending");
  }
  Wait wait;
  wait.id = request.id;
  wait.filter = request.filter;
  wait.wanted = request.count;
  const std::uint64_t since = resolve_since(request.since);
  for (const RingEntry& entry : ring_) {
    if (entry.seq > since && wait.filter.matches(entry.outcome)) {
      wait.matched.push_back(outcome_event_json(entry.seq, entry.outcome));
      if (wait.matched.size() >= wait.wanted) break;
    }
  }
  if (wait.matched.size() >= wait.wanted) {
    send(client, format_control_reply(wait.id, {{"outcomes", std::move(wait.matched)},
                                                {"since", since},
                                                {"last_seq", last_outcome_seq()}}));
    return;
  }
  if (request.timeout_ms == 0) {
    ++counters_.errors;
    send(client, format_control_error(wait.id, ControlErrorCode::kTimeout,
                                      "no matching outcome yet (timeout 0)",
                                      {{"outcomes", std::move(wait.matched)}, {"since", since}}));
    return;
  }
  wait.deadline_us = now_us() + request.timeout_ms * 1000;
  client.waits.push_back(std::move(wait));
  ++counters_.waits;
}

void ControlServer::on_timer(uv_timer_t* timer) noexcept {
  auto* self = static_cast<ControlServer*>(timer->data);
  if (self == nullptr) return;
  ControlServerEntry entry(*self);
  self->check_deadlines();
}

void ControlServer::check_deadlines() noexcept {
  if (counters_.waits == 0) return;
  const std::uint64_t now = now_us();
  for (auto& [id, client] : clients_) {
    if (client->dead || client->waits.empty()) continue;
    auto& waits = client->waits;
    for (auto it = waits.begin(); it != waits.end();) {
      if (it->deadline_us > now) {
        ++it;
        continue;
      }
      ++counters_.errors;
      try {
        const std::size_t got = it->matched.size();
        send(*client, format_control_error(it->id, ControlErrorCode::kTimeout,
                                           "timed out: " + std::to_string(got) + " of " +
                                               std::to_string(it->wanted) + " matching outcome(s)",
                                           {{"outcomes", std::move(it->matched)},
                                            {"last_seq", last_outcome_seq()}}));
      } catch (...) {
      }
      it = waits.erase(it);
      --counters_.waits;
    }
    maybe_finish(*client);
  }
}

}  // namespace finwave::proxy
