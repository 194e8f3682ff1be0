#include "rules/engine.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rules/config_error.hpp"
#include "rules/rule_loader.hpp"

namespace fr = finwave::rules;
using fr::Action;
using fr::Decision;
using fr::Engine;
using fr::FlowRuleState;
using fr::Rng;
using fr::Role;
using fr::SegmentFacts;
using fr::Side;

namespace {

fr::Endpoint v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                std::uint16_t port) {
  fr::Endpoint endpoint;
  endpoint.family = 4;
  endpoint.address = {a, b, c, d};
  endpoint.port = port;
  return endpoint;
}

fr::Endpoint v6_lab(std::uint8_t subnet, std::uint8_t host, std::uint16_t port) {
  fr::Endpoint endpoint;  // 2001:db8:SUBNET::HOST, the lab's addressing.
  endpoint.family = 6;
  endpoint.address = {0x20, 0x01, 0x0d, 0xb8, 0, subnet, 0, 0, 0, 0, 0, 0, 0, 0, 0, host};
  endpoint.port = port;
  return endpoint;
}

// A segment between the lab's client 198.18.1.2:40000 and server 198.18.2.2:80, in a connection
// the client closes first.
SegmentFacts segment(Role role, Side from = Side::kClient, bool retx = false) {
  SegmentFacts facts;
  facts.role = role;
  facts.retx = retx;
  facts.from = from;
  facts.active_closer = Side::kClient;
  facts.client = v4(198, 18, 1, 2, 40000);
  facts.server = v4(198, 18, 2, 2, 80);
  return facts;
}

Engine engine_of(const std::string& toml) { return Engine(fr::parse_rules(toml, "test")); }

// A rule file with one rule: the keys given plus a name.
Engine one_rule(const std::string& keys) {
  return engine_of("[[rule]]\nname = \"r\"\n" + keys + "\n");
}

// Decides `facts` in a fresh connection.
Decision decide_fresh(Engine& engine, const SegmentFacts& facts) {
  FlowRuleState flow;
  Rng rng(1);
  return engine.decide(facts, flow, rng);
}

bool dropped(Engine& engine, const SegmentFacts& facts) {
  return decide_fresh(engine, facts).action == Action::kDrop;
}

// Feeds `count` identical segments into one connection and returns which were dropped.
std::vector<bool> drops_in_one_connection(Engine& engine, const SegmentFacts& facts, int count) {
  FlowRuleState flow;
  Rng rng(1);
  std::vector<bool> out;
  out.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    out.push_back(engine.decide(facts, flow, rng).action == Action::kDrop);
  }
  return out;
}

}  // namespace

TEST_SUITE("rules") {
  TEST_CASE("engine: a hit budget lets a rule decide that many times over every engine") {
    // Two engines with the same rule, as two queues' workers hold it after one `add`: the
    // budget is the rule's, shared by its copies, so the two together decide exactly 3 times.
    fr::Rule limited =
        fr::parse_single_rule(R"({ name = "limited", role = "fin1", action = "drop" })", "t");
    limited.max_hits = 3;
    limited.hit_budget = std::make_shared<std::atomic<std::int64_t>>(3);
    fr::Rule fallback =
        fr::parse_single_rule(R"({ name = "fallback", action = "delay", delay_ms = 1 })", "t");
    Engine first;
    Engine second;
    for (Engine* engine : {&first, &second}) {
      engine->add(limited);
      engine->add(fallback);
    }
    CHECK(fr::describe(limited) == "drop fin1, 3 times in all");
    std::vector<std::string> deciders;
    for (int i = 0; i < 6; ++i) {
      Engine& engine = i % 2 == 0 ? first : second;
      deciders.emplace_back(decide_fresh(engine, segment(Role::kFin1)).rule_name);
    }
    CHECK(deciders == std::vector<std::string>{"limited", "limited", "limited", "fallback",
                                               "fallback", "fallback"});
    // Segments the rule does not match leave the budget alone.
    fr::Rule other = limited;
    other.hit_budget = std::make_shared<std::atomic<std::int64_t>>(1);
    Engine third;
    third.add(other);
    CHECK_FALSE(dropped(third, segment(Role::kFin2)));
    CHECK(other.hit_budget->load() == 1);
    CHECK(dropped(third, segment(Role::kFin1)));
    CHECK_FALSE(dropped(third, segment(Role::kFin1)));
    // Without a budget, a rule decides for ever.
    Engine unlimited = one_rule("role = \"fin1\"\naction = \"drop\"");
    for (int i = 0; i < 100; ++i) REQUIRE(dropped(unlimited, segment(Role::kFin1)));
  }

  TEST_CASE("engine: with no rules every segment passes unattributed") {
    Engine engine;
    const Decision decision = decide_fresh(engine, segment(Role::kFinalAck));
    CHECK(decision.action == Action::kPass);
    CHECK_FALSE(decision.matched());
    CHECK(decision.rule_index == -1);
    CHECK(decision.rule_name.empty());
    CHECK(decision.delay_us == 0);
    CHECK(decision.copies == 0);
  }

  TEST_CASE("engine: role matches only that role and any matches all") {
    Engine final_ack = one_rule("role = \"final_ack\"\naction = \"drop\"");
    CHECK(dropped(final_ack, segment(Role::kFinalAck)));
    for (Role other : {Role::kSyn, Role::kSynAck, Role::kFin1, Role::kAck1, Role::kFin2,
                       Role::kDataAfterFin, Role::kRst, Role::kAck}) {
      INFO(std::string(fr::to_string(other)));
      CHECK_FALSE(dropped(final_ack, segment(other)));
    }
    Engine any = one_rule("action = \"drop\"");
    for (int role = 0; role < fr::kSegmentRoleCount; ++role) {
      CHECK(dropped(any, segment(static_cast<Role>(role))));
    }
  }

  TEST_CASE("engine: retx selects retransmissions or first transmissions") {
    Engine retx = one_rule("role = \"fin1\"\nretx = true\naction = \"drop\"");
    CHECK(dropped(retx, segment(Role::kFin1, Side::kClient, true)));
    CHECK_FALSE(dropped(retx, segment(Role::kFin1, Side::kClient, false)));
    Engine first = one_rule("role = \"fin1\"\nretx = false\naction = \"drop\"");
    CHECK_FALSE(dropped(first, segment(Role::kFin1, Side::kClient, true)));
    CHECK(dropped(first, segment(Role::kFin1, Side::kClient, false)));
    Engine both = one_rule("role = \"fin1\"\naction = \"drop\"");
    CHECK(dropped(both, segment(Role::kFin1, Side::kClient, true)));
    CHECK(dropped(both, segment(Role::kFin1, Side::kClient, false)));
  }

  TEST_CASE("engine: from client and from server") {
    Engine client = one_rule("from = \"client\"\naction = \"drop\"");
    CHECK(dropped(client, segment(Role::kAck, Side::kClient)));
    CHECK_FALSE(dropped(client, segment(Role::kAck, Side::kServer)));
    Engine server = one_rule("from = \"server\"\naction = \"drop\"");
    CHECK_FALSE(dropped(server, segment(Role::kAck, Side::kClient)));
    CHECK(dropped(server, segment(Role::kAck, Side::kServer)));
  }

  TEST_CASE("engine: from active and passive follow the active closer") {
    Engine active = one_rule("from = \"active\"\naction = \"drop\"");
    Engine passive = one_rule("from = \"passive\"\naction = \"drop\"");

    SegmentFacts client_closes = segment(Role::kFin1, Side::kClient);
    CHECK(dropped(active, client_closes));
    CHECK_FALSE(dropped(passive, client_closes));

    SegmentFacts server_answers = segment(Role::kFin2, Side::kServer);
    CHECK_FALSE(dropped(active, server_answers));
    CHECK(dropped(passive, server_answers));

    // The server closes first: roles of the sides swap.
    SegmentFacts server_closes = segment(Role::kFin1, Side::kServer);
    server_closes.active_closer = Side::kServer;
    CHECK(dropped(active, server_closes));
    CHECK_FALSE(dropped(passive, server_closes));
    SegmentFacts client_final_ack = segment(Role::kFinalAck, Side::kClient);
    client_final_ack.active_closer = Side::kServer;
    CHECK(dropped(passive, client_final_ack));

    // Before any FIN there is no active closer: neither matches.
    SegmentFacts syn = segment(Role::kSyn, Side::kClient);
    syn.active_closer.reset();
    CHECK_FALSE(dropped(active, syn));
    CHECK_FALSE(dropped(passive, syn));
  }

  TEST_CASE("engine: ports match either endpoint and client_ports or server_ports one side") {
    Engine either = one_rule("ports = [443, 80]\naction = \"drop\"");
    CHECK(dropped(either, segment(Role::kFin1)));  // Server port 80.
    SegmentFacts other = segment(Role::kFin1);
    other.server.port = 8080;
    CHECK_FALSE(dropped(either, other));
    other.client.port = 443;  // The client's port counts too.
    CHECK(dropped(either, other));

    Engine server = one_rule("server_ports = 80\naction = \"drop\"");
    CHECK(dropped(server, segment(Role::kFin1)));
    SegmentFacts reversed = segment(Role::kFin1);
    reversed.client.port = 80;
    reversed.server.port = 40000;
    CHECK_FALSE(dropped(server, reversed));

    Engine client = one_rule("client_ports = [40000]\naction = \"drop\"");
    CHECK(dropped(client, segment(Role::kFin1)));
    CHECK_FALSE(dropped(client, reversed));
  }

  TEST_CASE("engine: addresses match IPv4 and IPv6 prefixes") {
    Engine v4_lab = one_rule("addresses = \"198.18.0.0/15\"\naction = \"drop\"");
    CHECK(dropped(v4_lab, segment(Role::kFin1)));
    SegmentFacts elsewhere = segment(Role::kFin1);
    elsewhere.client = v4(10, 0, 0, 1, 40000);
    elsewhere.server = v4(10, 0, 0, 2, 80);
    CHECK_FALSE(dropped(v4_lab, elsewhere));
    elsewhere.server = v4(198, 19, 0, 1, 80);  // Either endpoint will do.
    CHECK(dropped(v4_lab, elsewhere));

    SegmentFacts six = segment(Role::kFin1);
    six.client = v6_lab(1, 2, 40000);
    six.server = v6_lab(2, 2, 80);
    CHECK_FALSE(dropped(v4_lab, six));  // An IPv4 prefix never matches an IPv6 endpoint.

    Engine v6_rule =
        one_rule("addresses = [\"192.0.2.0/24\", \"2001:db8::/32\"]\naction = \"drop\"");
    CHECK(dropped(v6_rule, six));
    CHECK_FALSE(dropped(v6_rule, segment(Role::kFin1)));

    Engine server_only = one_rule("server_addresses = \"2001:db8:2::/48\"\naction = \"drop\"");
    CHECK(dropped(server_only, six));
    SegmentFacts swapped = six;
    std::swap(swapped.client, swapped.server);
    CHECK_FALSE(dropped(server_only, swapped));

    Engine client_only = one_rule("client_addresses = \"198.18.1.2\"\naction = \"drop\"");
    CHECK(dropped(client_only, segment(Role::kFin1)));
    SegmentFacts other_client = segment(Role::kFin1);
    other_client.client = v4(198, 18, 1, 3, 40000);
    CHECK_FALSE(dropped(client_only, other_client));
  }

  TEST_CASE("engine: all match keys must hold at once") {
    Engine engine = one_rule(
        "role = \"final_ack\"\nfrom = \"client\"\nserver_ports = 80\nretx = false\n"
        "action = \"drop\"");
    CHECK(dropped(engine, segment(Role::kFinalAck, Side::kClient, false)));
    CHECK_FALSE(dropped(engine, segment(Role::kFinalAck, Side::kClient, true)));
    CHECK_FALSE(dropped(engine, segment(Role::kFinalAck, Side::kServer, false)));
    CHECK_FALSE(dropped(engine, segment(Role::kFin1, Side::kClient, false)));
  }

  TEST_CASE("engine: nth matches only the second final_ack") {
    Engine engine = one_rule("role = \"final_ack\"\nnth = 2\naction = \"drop\"");
    CHECK(drops_in_one_connection(engine, segment(Role::kFinalAck), 5) ==
          std::vector<bool>{false, true, false, false, false});
  }

  TEST_CASE("engine: first matches only the first N") {
    Engine engine = one_rule("role = \"final_ack\"\nfirst = 2\naction = \"drop\"");
    CHECK(drops_in_one_connection(engine, segment(Role::kFinalAck), 4) ==
          std::vector<bool>{true, true, false, false});
  }

  TEST_CASE("engine: after matches only after the first N") {
    Engine engine = one_rule("role = \"final_ack\"\nafter = 2\naction = \"drop\"");
    CHECK(drops_in_one_connection(engine, segment(Role::kFinalAck), 5) ==
          std::vector<bool>{false, false, true, true, true});
  }

  TEST_CASE("engine: counters count only segments that match the rule") {
    Engine engine = one_rule("role = \"final_ack\"\nnth = 2\naction = \"drop\"");
    FlowRuleState flow;
    Rng rng(1);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kPass);
    CHECK(engine.decide(segment(Role::kFin2, Side::kServer), flow, rng).action == Action::kPass);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kDrop);
  }

  TEST_CASE("engine: counters are per connection") {
    Engine engine = one_rule("role = \"final_ack\"\nfirst = 1\naction = \"drop\"");
    FlowRuleState one;
    FlowRuleState two;
    Rng rng(1);
    CHECK(engine.decide(segment(Role::kFinalAck), one, rng).action == Action::kDrop);
    CHECK(engine.decide(segment(Role::kFinalAck), one, rng).action == Action::kPass);
    CHECK(engine.decide(segment(Role::kFinalAck), two, rng).action == Action::kDrop);
    CHECK(engine.decide(segment(Role::kFinalAck), two, rng).action == Action::kPass);
  }

  TEST_CASE("engine: counters saturate instead of wrapping") {
    Engine nth = one_rule("nth = 65534\naction = \"drop\"");
    FlowRuleState flow;
    flow.generation = nth.generation();
    flow.matches[0] = 65533;
    Rng rng(1);
    CHECK(nth.decide(segment(Role::kAck), flow, rng).action == Action::kDrop);  // 65534th.
    for (int i = 0; i < 3; ++i) {
      CHECK(nth.decide(segment(Role::kAck), flow, rng).action == Action::kPass);
    }
    CHECK(flow.matches[0] == 65535);

    Engine after = one_rule("after = 65534\naction = \"drop\"");
    FlowRuleState late;
    late.generation = after.generation();
    late.matches[0] = 65534;
    for (int i = 0; i < 3; ++i) {
      CHECK(after.decide(segment(Role::kAck), late, rng).action == Action::kDrop);
    }
  }

  TEST_CASE("engine: probability with the same seed gives the same decisions") {
    Engine engine = one_rule("role = \"final_ack\"\nprobability = 0.3\naction = \"drop\"");
    auto run = [&](std::uint64_t seed) {
      Rng rng(seed);
      std::vector<bool> drops;
      for (int connection = 0; connection < 1000; ++connection) {
        FlowRuleState flow;
        drops.push_back(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kDrop);
      }
      return drops;
    };
    const std::vector<bool> first = run(99);
    CHECK(run(99) == first);
    CHECK(run(100) != first);
    const auto dropped_count = std::count(first.begin(), first.end(), true);
    CHECK(dropped_count > 250);
    CHECK(dropped_count < 350);
  }

  TEST_CASE("engine: probability is drawn after the counters") {
    // first = 1 with p = 0.5: only a connection's first final_ack can be dropped, half the time.
    Engine engine =
        one_rule("role = \"final_ack\"\nfirst = 1\nprobability = 0.5\naction = \"drop\"");
    Rng rng(5);
    int first_dropped = 0;
    for (int connection = 0; connection < 1000; ++connection) {
      FlowRuleState flow;
      first_dropped += engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kDrop;
      for (int retx = 0; retx < 3; ++retx) {
        CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kPass);
      }
    }
    CHECK(first_dropped > 430);
    CHECK(first_dropped < 570);
  }

  TEST_CASE("engine: rules that never reach their probability draw consume no randomness") {
    // A non-matching probabilistic rule must not shift the rng for the next connection.
    Engine engine = one_rule("role = \"rst\"\nprobability = 0.5\naction = \"drop\"");
    Rng used(3);
    Rng untouched(3);
    FlowRuleState flow;
    engine.decide(segment(Role::kFinalAck), flow, used);
    CHECK(used.next() == untouched.next());
  }

  TEST_CASE("engine: the first matching rule wins") {
    Engine engine = engine_of(R"(
[[rule]]
name = "spare-port-22"
ports = 22
action = "pass"
[[rule]]
name = "delay-fin1"
role = "fin1"
action = "delay"
delay_ms = 10
[[rule]]
name = "drop-everything"
action = "drop"
)");
    SegmentFacts ssh = segment(Role::kFin1);
    ssh.server.port = 22;
    Decision spared = decide_fresh(engine, ssh);
    CHECK(spared.action == Action::kPass);
    CHECK(spared.rule_index == 0);
    CHECK(spared.rule_name == "spare-port-22");

    Decision delayed = decide_fresh(engine, segment(Role::kFin1));
    CHECK(delayed.action == Action::kDelay);
    CHECK(delayed.rule_name == "delay-fin1");

    Decision dropped_ack = decide_fresh(engine, segment(Role::kFinalAck));
    CHECK(dropped_ack.action == Action::kDrop);
    CHECK(dropped_ack.rule_index == 2);
  }

  TEST_CASE("engine: a rule whose counter says no lets the segment fall through") {
    Engine engine = engine_of(R"(
[[rule]]
name = "lose-first"
role = "final_ack"
first = 1
action = "drop"
[[rule]]
name = "delay-the-rest"
role = "final_ack"
action = "delay"
delay_ms = 100
)");
    FlowRuleState flow;
    Rng rng(1);
    Decision first = engine.decide(segment(Role::kFinalAck), flow, rng);
    CHECK(first.action == Action::kDrop);
    CHECK(first.rule_name == "lose-first");
    Decision second = engine.decide(segment(Role::kFinalAck), flow, rng);
    CHECK(second.action == Action::kDelay);
    CHECK(second.rule_name == "delay-the-rest");
    CHECK(second.delay_us == 100000);
  }

  TEST_CASE("engine: a rule whose probability says no lets the segment fall through") {
    Engine engine = engine_of(R"(
[[rule]]
name = "sometimes"
role = "fin2"
probability = 0.5
action = "reset"
[[rule]]
name = "otherwise"
role = "fin2"
action = "drop"
)");
    Rng rng(11);
    int resets = 0;
    int drops = 0;
    for (int i = 0; i < 1000; ++i) {
      FlowRuleState flow;
      const Decision decision = engine.decide(segment(Role::kFin2, Side::kServer), flow, rng);
      resets += decision.action == Action::kReset;
      drops += decision.action == Action::kDrop;
    }
    CHECK(resets + drops == 1000);
    CHECK(resets > 430);
    CHECK(drops > 430);
  }

  TEST_CASE("engine: counted rules count segments an earlier rule decided") {
    // nth = 2 means the connection's second final_ack even though the first rule took the first.
    Engine engine = engine_of(R"(
[[rule]]
name = "lose-first"
role = "final_ack"
first = 1
action = "drop"
[[rule]]
name = "delay-second"
role = "final_ack"
nth = 2
action = "delay"
delay_ms = 5
)");
    FlowRuleState flow;
    Rng rng(1);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).rule_name == "lose-first");
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).rule_name == "delay-second");
    CHECK_FALSE(engine.decide(segment(Role::kFinalAck), flow, rng).matched());
  }

  TEST_CASE("engine: disabled rules are skipped and do not count") {
    Engine engine = engine_of(R"(
[[rule]]
name = "off"
role = "final_ack"
enabled = false
action = "drop"
[[rule]]
name = "second-only"
role = "final_ack"
nth = 2
enabled = false
action = "reset"
[[rule]]
name = "on"
role = "final_ack"
action = "delay"
delay_ms = 1
)");
    FlowRuleState flow;
    Rng rng(1);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).rule_name == "on");
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).rule_name == "on");
    CHECK(flow.matches[0] == 0);
  }

  TEST_CASE("engine: replace() installs a new set and resets every flow's counters") {
    Engine engine = one_rule("role = \"final_ack\"\nfirst = 1\naction = \"drop\"");
    const std::uint32_t before = engine.generation();
    FlowRuleState flow;
    Rng rng(1);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kDrop);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kPass);

    engine.replace(fr::parse_rules(
        "[[rule]]\nname = \"again\"\nrole = \"final_ack\"\nfirst = 1\naction = \"reset\"\n",
        "new"));
    CHECK(engine.generation() != before);
    CHECK(engine.rule_set()->source == "new");
    // The same flow's count starts over under the new generation.
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kReset);
    CHECK(flow.generation == engine.generation());
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kPass);
  }

  TEST_CASE("engine: a rejected replace() keeps the current rules") {
    Engine engine = one_rule("action = \"drop\"");
    fr::RuleSet bad;
    bad.rules.resize(2);
    bad.rules[0].name = "same";
    bad.rules[1].name = "same";
    CHECK_THROWS_WITH_AS(engine.replace(bad), "duplicate rule name 'same'; names must be unique",
                         fr::ConfigError);
    fr::RuleSet unnamed;
    unnamed.rules.resize(1);
    CHECK_THROWS_WITH_AS(engine.replace(unnamed), "rule #1 has no name", fr::ConfigError);
    fr::RuleSet counted =
        fr::parse_rules("[[rule]]\nname = \"x\"\nfirst = 1\naction = \"drop\"\n", "t");
    for (int i = 0; i < 16; ++i) {
      counted.rules.push_back(counted.rules[0]);
      counted.rules.back().name = "x" + std::to_string(i);
    }
    CHECK_THROWS_WITH_AS(
        engine.replace(counted),
        "too many counted rules: at most 16 rules of a rule set may use nth, first "
        "or after (disabled ones included)",
        fr::ConfigError);
    CHECK(engine.rule_set()->rules.size() == 1);
    CHECK(dropped(engine, segment(Role::kFin1)));
  }

  TEST_CASE("engine: set_enabled switches a rule and restarts counts") {
    Engine engine = one_rule("role = \"final_ack\"\nfirst = 1\naction = \"drop\"");
    FlowRuleState flow;
    Rng rng(1);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kDrop);

    engine.set_enabled("r", false);
    CHECK_FALSE(engine.rules()[0].enabled);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kPass);

    const std::uint32_t generation = engine.generation();
    engine.set_enabled("r", false);  // No change, no new generation.
    CHECK(engine.generation() == generation);

    engine.set_enabled("r", true);
    // Enabled again: "first 1" means the first since the change.
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kDrop);
    CHECK(engine.decide(segment(Role::kFinalAck), flow, rng).action == Action::kPass);
  }

  TEST_CASE("engine: add places a rule first or last and remove takes it out") {
    Engine engine = one_rule("role = \"fin1\"\naction = \"drop\"");
    engine.add(fr::parse_single_rule("name = \"late\"\naction = \"delay\"\ndelay_ms = 3", "add"));
    engine.add(
        fr::parse_single_rule("{ name = \"spare\", role = \"fin1\", action = \"pass\" }", "add"),
        Engine::Placement::kFirst);
    const auto rules = engine.rules();
    REQUIRE(rules.size() == 3);
    CHECK(rules[0].name == "spare");
    CHECK(rules[1].name == "r");
    CHECK(rules[2].name == "late");
    CHECK(decide_fresh(engine, segment(Role::kFin1)).action == Action::kPass);
    CHECK(decide_fresh(engine, segment(Role::kFin2)).action == Action::kDelay);

    engine.remove("spare");
    CHECK(decide_fresh(engine, segment(Role::kFin1)).action == Action::kDrop);
    engine.remove("r");
    engine.remove("late");
    CHECK(engine.rules().empty());
    CHECK_FALSE(decide_fresh(engine, segment(Role::kFin1)).matched());
  }

  TEST_CASE("engine: set_enabled and add and remove report unknown and duplicate names") {
    Engine engine = engine_of(
        "[[rule]]\nname = \"lose-final-ack\"\nrole = \"final_ack\"\naction = \"drop\"\n"
        "[[rule]]\nname = \"delay-fin1\"\nrole = \"fin1\"\naction = \"delay\"\ndelay_ms = 5\n");
    CHECK_THROWS_WITH_AS(engine.set_enabled("lose-final-ak", false),
                         "no rule named 'lose-final-ak'; did you mean 'lose-final-ack'?",
                         fr::ConfigError);
    CHECK_THROWS_WITH_AS(engine.remove("zzz"),
                         "no rule named 'zzz'; rules: lose-final-ack, delay-fin1", fr::ConfigError);
    CHECK_THROWS_WITH_AS(
        engine.add(fr::parse_single_rule("name = \"delay-fin1\"\naction = \"pass\"", "add")),
        "a rule named 'delay-fin1' already exists; remove it first or choose another name",
        fr::ConfigError);
    Engine empty;
    CHECK_THROWS_WITH_AS(empty.remove("x"), "no rule named 'x' (there are no rules)",
                         fr::ConfigError);
    CHECK(engine.rules().size() == 2);
  }

  TEST_CASE("engine: add refuses a 17th counted rule") {
    std::string text;
    for (int i = 0; i < 16; ++i) {
      text += "[[rule]]\nname = \"c" + std::to_string(i) + "\"\nnth = 1\naction = \"drop\"\n";
    }
    Engine engine = engine_of(text);
    CHECK_THROWS_WITH_AS(
        engine.add(fr::parse_single_rule("name = \"c16\"\nafter = 1\naction = \"drop\"", "add")),
        "too many counted rules: at most 16 rules of a rule set may use nth, first or after "
        "(disabled ones included)",
        fr::ConfigError);
    engine.add(fr::parse_single_rule("name = \"uncounted\"\naction = \"drop\"", "add"));
    CHECK(engine.rules().size() == 17);
  }

  TEST_CASE("engine: sixteen counted rules keep separate counts") {
    std::string text;
    for (int i = 1; i <= 16; ++i) {
      text += "[[rule]]\nname = \"n" + std::to_string(i) + "\"\nnth = " + std::to_string(i) +
              "\naction = \"drop\"\n";
    }
    Engine engine = engine_of(text);
    FlowRuleState flow;
    Rng rng(1);
    for (int i = 1; i <= 16; ++i) {
      const Decision decision = engine.decide(segment(Role::kAck), flow, rng);
      CHECK(decision.rule_name == "n" + std::to_string(i));
    }
    CHECK_FALSE(engine.decide(segment(Role::kAck), flow, rng).matched());
  }

  TEST_CASE("engine: delay decisions carry the delay and jitter and copies") {
    Engine plain = one_rule("action = \"delay\"\ndelay_ms = 400");
    const Decision delayed = decide_fresh(plain, segment(Role::kFinalAck));
    CHECK(delayed.action == Action::kDelay);
    CHECK(delayed.delay_us == 400000);
    CHECK(delayed.copies == 0);

    Engine fractional = one_rule("action = \"delay\"\ndelay_ms = 0.0015");
    CHECK(decide_fresh(fractional, segment(Role::kFin1)).delay_us == 2);

    Engine jittery =
        one_rule("action = \"delay\"\ndelay_ms = 50\njitter_ms = 10\ncopies = 2\nspacing_ms = 5");
    Rng rng(17);
    std::uint32_t low = UINT32_MAX;
    std::uint32_t high = 0;
    for (int i = 0; i < 2000; ++i) {
      FlowRuleState flow;
      const Decision decision = jittery.decide(segment(Role::kFin1), flow, rng);
      REQUIRE(decision.delay_us >= 40000);
      REQUIRE(decision.delay_us <= 60000);
      low = std::min(low, decision.delay_us);
      high = std::max(high, decision.delay_us);
      CHECK(decision.copies == 2);
      CHECK(decision.spacing_us == 5000);
    }
    CHECK(low < 41000);
    CHECK(high > 59000);
  }

  TEST_CASE("engine: duplicate and reset and pass decisions") {
    Engine duplicate = one_rule("action = \"duplicate\"\ncopies = 3\nspacing_ms = 0.25");
    const Decision copies = decide_fresh(duplicate, segment(Role::kFin2));
    CHECK(copies.action == Action::kDuplicate);
    CHECK(copies.copies == 3);
    CHECK(copies.spacing_us == 250);
    CHECK(copies.delay_us == 0);

    Engine reset = one_rule("role = \"fin2\"\naction = \"reset\"");
    const Decision rst = decide_fresh(reset, segment(Role::kFin2));
    CHECK(rst.action == Action::kReset);
    CHECK(rst.rule_name == "r");
    CHECK(rst.copies == 0);

    Engine pass = one_rule("action = \"pass\"");
    const Decision passed = decide_fresh(pass, segment(Role::kFin2));
    CHECK(passed.action == Action::kPass);
    CHECK(passed.matched());
  }

  TEST_CASE("engine: hit counters count decisions and survive edits but restart on replace") {
    Engine engine = engine_of(R"(
[[rule]]
name = "drop-fin1"
role = "fin1"
action = "drop"
[[rule]]
name = "drop-second-ack"
role = "final_ack"
nth = 2
action = "drop"
)");
    FlowRuleState flow;
    Rng rng(1);
    engine.decide(segment(Role::kFin1), flow, rng);
    engine.decide(segment(Role::kFin1), flow, rng);
    engine.decide(segment(Role::kFinalAck), flow, rng);  // Counted, but not decided.
    auto rules = engine.rules();
    CHECK(rules[0].hits == 2);
    CHECK(rules[1].hits == 0);
    CHECK(rules[1].summary == "drop final_ack, only the 2nd per connection");

    engine.add(fr::parse_single_rule("name = \"x\"\naction = \"pass\"", "add"),
               Engine::Placement::kFirst);
    engine.set_enabled("x", false);
    rules = engine.rules();
    CHECK(rules[0].hits == 0);
    CHECK(rules[1].hits == 2);
    engine.remove("x");
    CHECK(engine.rules()[0].hits == 2);

    engine.replace(
        fr::parse_rules("[[rule]]\nname = \"drop-fin1\"\nrole = \"fin1\"\n"
                        "action = \"drop\"\n",
                        "reload"));
    CHECK(engine.rules()[0].hits == 0);
  }

  TEST_CASE("engine: a rule-set snapshot outlives later changes") {
    Engine engine = one_rule("action = \"drop\"");
    const std::shared_ptr<const fr::RuleSet> snapshot = engine.rule_set();
    engine.remove("r");
    CHECK(snapshot->rules.size() == 1);
    CHECK(engine.rule_set()->rules.empty());
  }
}
