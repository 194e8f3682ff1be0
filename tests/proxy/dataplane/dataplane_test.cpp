// Tests of Dataplane (proxy/dataplane/dataplane.cpp): parse, decide and verdict for synthetic
// segments, with the kernel queue replaced by a fake VerdictPort that records every call.

#include "proxy/dataplane/dataplane.hpp"

#include <doctest/doctest.h>
#include <linux/if_ether.h>
#include <uv.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "packet_builder.hpp"
#include "rules/rule_loader.hpp"

namespace finwave::proxy {
namespace {

using nf::test::PacketBuilder;
namespace flag = nf::tcp_flag;

// A VerdictPort that remembers what it was told, in order.
class FakeVerdicts final : public VerdictPort {
 public:
  enum class Kind : std::uint8_t { kAccept, kDrop, kHold, kAcceptHeld, kReplace };
  struct Call {
    Kind kind = Kind::kAccept;
    std::uint32_t id = 0;
    std::vector<std::uint8_t> replacement;  // kReplace only
  };

  void accept(std::uint32_t id) noexcept override { calls.push_back({Kind::kAccept, id, {}}); }
  void drop(std::uint32_t id) noexcept override { calls.push_back({Kind::kDrop, id, {}}); }
  void hold(std::uint32_t id) noexcept override { calls.push_back({Kind::kHold, id, {}}); }
  int accept_held(std::uint32_t id) noexcept override {
    calls.push_back({Kind::kAcceptHeld, id, {}});
    return 0;
  }
  int replace(std::uint32_t id, std::span<const std::uint8_t> replacement) noexcept override {
    calls.push_back({Kind::kReplace, id, {replacement.begin(), replacement.end()}});
    return replace_result;
  }

  // Verdicts per packet id: every call but hold(), and a replace() only when it succeeded.
  std::map<std::uint32_t, int> verdicts_by_id() const {
    std::map<std::uint32_t, int> count;
    for (const Call& call : calls) {
      if (call.kind == Kind::kHold) continue;
      if (call.kind == Kind::kReplace && replace_result < 0) continue;
      ++count[call.id];
    }
    return count;
  }

  std::vector<Call> calls;
  int replace_result = 0;  // What replace() returns.
};

const char* name(FakeVerdicts::Kind kind) {
  switch (kind) {
    case FakeVerdicts::Kind::kAccept:
      return "accept";
    case FakeVerdicts::Kind::kDrop:
      return "drop";
    case FakeVerdicts::Kind::kHold:
      return "hold";
    case FakeVerdicts::Kind::kAcceptHeld:
      return "accept_held";
    case FakeVerdicts::Kind::kReplace:
      return "replace";
  }
  return "?";
}

std::vector<std::string> kinds(const FakeVerdicts& fake) {
  std::vector<std::string> out;
  for (const auto& call : fake.calls) out.emplace_back(name(call.kind));
  return out;
}

// Remembers the verdict of every rule hit.
class RecordingRuleHits final : public RuleHitSink {
 public:
  void on_rule_hit(const RuleHit& hit) noexcept override {
    hits.push_back({std::string(hit.rule), std::string(to_string(hit.verdict))});
  }
  std::vector<std::pair<std::string, std::string>> hits;
};

std::uint64_t monotonic_us() { return uv_hrtime() / 1000; }

// A Dataplane and everything it works with, with one rule on fin1 (the TOML keys given) and no
// injector or pcap file.
struct Rig {
  explicit Rig(const std::string& rule_keys, std::size_t max_held = 16,
               const std::string& role = "fin1")
      : engine(rules::parse_rules(
            "[[rule]]\nname = \"r\"\nrole = \"" + role + "\"\n" + rule_keys + "\n", "test")),
        delays(max_held),
        dataplane(Dataplane::Parts{fake, flows, engine, rng, delays}) {
    dataplane.set_rule_hit_sink(&rule_hits);
  }

  // Hands `bytes` to on_packet() as queued packet `id`.
  void queue(std::uint32_t id, const std::vector<std::uint8_t>& bytes, bool ipv6 = false) {
    nf::QueuedPacket packet;
    packet.id = id;
    packet.hw_protocol = ipv6 ? ETH_P_IPV6 : ETH_P_IP;
    packet.original_len = static_cast<std::uint32_t>(bytes.size());
    packet.payload = bytes;
    dataplane.on_packet(packet);
  }

  // Hands `bytes` to on_logged() as a copy from the log path, stamped `arrival_us` (0: none).
  void log(const std::vector<std::uint8_t>& bytes, std::uint64_t arrival_us = 0) {
    nf::LoggedPacket packet;
    packet.hw_protocol = ETH_P_IP;
    packet.original_len = static_cast<std::uint32_t>(bytes.size());
    packet.arrival_realtime_us = arrival_us;
    packet.payload = bytes;
    dataplane.on_logged(packet);
  }

  // Finishes every flow and returns the outcomes.
  std::vector<Outcome> finish() {
    std::vector<Outcome> out;
    flows.finish_all(monotonic_us(), out);
    return out;
  }

  FakeVerdicts fake;
  FlowTable flows;
  rules::Engine engine;
  rules::Rng rng{7};
  DelayLine delays;
  RecordingRuleHits rule_hits;
  Dataplane dataplane;
};

// The client's FIN: a connection first seen at its FIN is tracked, and the segment is its fin1.
PacketBuilder fin_from_client(bool ipv6) {
  PacketBuilder builder = ipv6 ? PacketBuilder::ipv6() : PacketBuilder::ipv4();
  builder.flags(flag::kFin | flag::kAck);
  return builder;
}

// The counters that say what was done to a segment; a case names those that must be 1.
using Counter = std::uint64_t DataplaneCounters::*;
struct NamedCounter {
  const char* name;
  Counter counter;
};
constexpr NamedCounter kActionCounters[] = {
    {"dropped", &DataplaneCounters::dropped},
    {"delayed", &DataplaneCounters::delayed},
    {"duplicated", &DataplaneCounters::duplicated},
    {"copies_sent", &DataplaneCounters::copies_sent},
    {"copy_errors", &DataplaneCounters::copy_errors},
    {"resets", &DataplaneCounters::resets},
    {"reset_errors", &DataplaneCounters::reset_errors},
    {"held_overflow", &DataplaneCounters::held_overflow},
    {"released", &DataplaneCounters::released},
    {"released_early", &DataplaneCounters::released_early},
};

void check_action_counters(const DataplaneCounters& counters,
                           const std::vector<std::string>& expected_ones) {
  for (const NamedCounter& named : kActionCounters) {
    CAPTURE(named.name);
    bool one = false;
    for (const std::string& expected : expected_ones) one = one || expected == named.name;
    CHECK(counters.*named.counter == (one ? 1U : 0U));
  }
}

struct ActionCase {
  const char* what;
  const char* rule_keys;
  std::size_t max_held;
  int replace_result;
  std::vector<std::string> at_packet;  // verdict calls during on_packet()
  std::vector<std::string> at_due;     // calls added by on_due() once the delay ran out
  const char* recorded;                // the timeline entry's verdict
  bool acted;                          // an action record for the rule
  std::vector<std::string> counters_at_one;
};

const std::vector<ActionCase>& action_cases() {
  static const std::vector<ActionCase> kCases = {
      {"pass", "action = \"pass\"", 16, 0, {"accept"}, {}, "accept", true, {}},
      {"drop", "action = \"drop\"", 16, 0, {"drop"}, {}, "drop", true, {"dropped"}},
      {"delay",
       "action = \"delay\"\ndelay_ms = 50",
       16,
       0,
       {"hold"},
       {"accept_held"},
       "delay",
       true,
       {"delayed", "released"}},
      {"delay at --max-held",
       "action = \"delay\"\ndelay_ms = 50",
       0,
       0,
       {"accept"},
       {},
       "accept",
       false,
       {"held_overflow"}},
      {"duplicate without an injector",
       "action = \"duplicate\"\ncopies = 2",
       16,
       0,
       {"accept"},
       {},
       "accept",
       false,
       {"copy_errors"}},
      {"reset without an injector",
       "action = \"reset\"",
       16,
       0,
       {"replace"},
       {},
       "reset",
       true,
       {"resets"}},
      {"reset the queue refuses",
       "action = \"reset\"",
       16,
       -EIO,
       {"replace", "accept"},
       {},
       "accept",
       false,
       {"reset_errors"}},
  };
  return kCases;
}

constexpr std::uint64_t kDelayUs = 50'000;

}  // namespace

TEST_SUITE("dataplane") {
  TEST_CASE("dataplane: each rule action gives one verdict and is recorded as carried out") {
    for (const bool ipv6 : {false, true}) {
      for (const ActionCase& c : action_cases()) {
        CAPTURE(ipv6);
        CAPTURE(c.what);
        Rig rig(c.rule_keys, c.max_held);
        rig.fake.replace_result = c.replace_result;
        const std::vector<std::uint8_t> fin = fin_from_client(ipv6).build();

        const std::uint64_t before_us = monotonic_us();
        rig.queue(7, fin, ipv6);
        const std::uint64_t after_us = monotonic_us();
        CHECK(kinds(rig.fake) == c.at_packet);

        // Nothing more before the delay runs out (measured from the segment's arrival, which
        // with no kernel stamp is when on_packet() read the clock).
        rig.dataplane.on_due(before_us + kDelayUs - 1, before_us + kDelayUs - 1);
        CHECK(kinds(rig.fake) == c.at_packet);
        if (!c.at_due.empty()) {
          REQUIRE(rig.delays.next_due().has_value());
          CHECK(*rig.delays.next_due() >= before_us + kDelayUs);
          CHECK(*rig.delays.next_due() <= after_us + kDelayUs);
        } else {
          CHECK_FALSE(rig.delays.next_due().has_value());
        }
        rig.dataplane.on_due(after_us + kDelayUs, after_us + kDelayUs);
        std::vector<std::string> all = c.at_packet;
        all.insert(all.end(), c.at_due.begin(), c.at_due.end());
        CHECK(kinds(rig.fake) == all);
        CHECK(rig.delays.size() == 0);

        // Exactly one verdict, for this packet.
        const auto verdicts = rig.fake.verdicts_by_id();
        REQUIRE(verdicts.size() == 1);
        CHECK(verdicts.begin()->first == 7);
        CHECK(verdicts.begin()->second == 1);

        const DataplaneCounters& counters = rig.dataplane.counters();
        CHECK(counters.segments == 1);
        CHECK(counters.rule_hits == 1);
        check_action_counters(counters, c.counters_at_one);
        REQUIRE(rig.rule_hits.hits.size() == 1);
        CHECK(rig.rule_hits.hits[0].first == "r");
        CHECK(rig.rule_hits.hits[0].second == c.recorded);

        CHECK(rig.flows.counters().segments == 1);
        const std::vector<Outcome> outcomes = rig.finish();
        REQUIRE(outcomes.size() == 1);
        REQUIRE(outcomes[0].timeline.size() == 1);
        const TimelineEntry& entry = outcomes[0].timeline[0];
        CHECK(rules::to_string(entry.role) == "fin1");
        CHECK(to_string(entry.verdict) == c.recorded);
        CHECK(entry.released == !c.at_due.empty());
        if (c.acted) {
          REQUIRE(outcomes[0].actions.size() == 1);
          CHECK(outcomes[0].actions[0].rule == "r");
          CHECK(to_string(outcomes[0].actions[0].action) == c.recorded);
          CHECK(outcomes[0].actions[0].count == 1);
        } else {
          CHECK(outcomes[0].actions.empty());
        }
      }
    }
  }

  TEST_CASE("dataplane: a reset replaces the segment by an RST from the same sender") {
    for (const bool ipv6 : {false, true}) {
      CAPTURE(ipv6);
      Rig rig("action = \"reset\"");
      rig.queue(3, fin_from_client(ipv6).seq(5000).build(), ipv6);
      REQUIRE(rig.fake.calls.size() == 1);
      nf::TcpSegment rst;
      REQUIRE(nf::parse_tcp_segment(rig.fake.calls[0].replacement, rst) == nf::ParseError::kNone);
      CHECK(rst.has(flag::kRst));
      CHECK_FALSE(rst.has(flag::kFin));
      CHECK(rst.src.family == (ipv6 ? 6 : 4));
      CHECK(rst.src_port == 40000);
      CHECK(rst.dst_port == 80);
      CHECK(rst.payload_len == 0);
    }
  }

  TEST_CASE("dataplane: a segment no rule decides passes and is tracked") {
    Rig rig("action = \"drop\"");
    // A SYN is not fin1: the rule does not match.
    rig.queue(1, PacketBuilder::ipv4().flags(flag::kSyn).seq(999).build());
    CHECK(kinds(rig.fake) == std::vector<std::string>{"accept"});
    CHECK(rig.dataplane.counters().segments == 1);
    CHECK(rig.dataplane.counters().rule_hits == 0);
    check_action_counters(rig.dataplane.counters(), {});
    CHECK(rig.rule_hits.hits.empty());
    CHECK(rig.flows.counters().flows_created == 1);
  }

  TEST_CASE("dataplane: a logged copy is tracked as observed, and no rule decides it") {
    Rig rig("action = \"drop\"");
    // A fin1, which the rule would drop were it queued: logged, it has gone on already.
    rig.log(fin_from_client(false).build());
    rig.log(PacketBuilder::ipv4().payload(0).build());  // not a TCP-flag class the rule names
    CHECK(rig.fake.calls.empty());
    const DataplaneCounters& counters = rig.dataplane.counters();
    CHECK(counters.logged == 2);
    CHECK(counters.segments == 0);
    CHECK(counters.rule_hits == 0);
    check_action_counters(counters, {});
    CHECK(rig.rule_hits.hits.empty());
    CHECK(rig.engine.rules().front().hits == 0);
    const std::vector<Outcome> outcomes = rig.finish();
    REQUIRE(outcomes.size() == 1);
    REQUIRE_FALSE(outcomes[0].timeline.empty());
    CHECK(outcomes[0].timeline[0].role == rules::Role::kFin1);
    CHECK(outcomes[0].timeline[0].verdict == Verdict::kObserved);
    CHECK(outcomes[0].actions.empty());
    CHECK_FALSE(outcomes[0].incomplete);

    Rig broken("action = \"drop\"");
    broken.log({0x45, 0});
    CHECK(broken.dataplane.counters().logged == 0);
    CHECK(broken.dataplane.counters()
              .parse_errors[static_cast<std::size_t>(nf::ParseError::kTruncatedIp)] == 1);
    CHECK(broken.flows.counters().segments == 0);
  }

  TEST_CASE("dataplane: a final ACK queued after its FINs were logged is named and decided") {
    // The rule on final_ack queues the ack class only; every FIN reaches the tracker as a copy.
    Rig rig("first = 1\naction = \"drop\"", 16, "final_ack");
    const auto client = [] { return PacketBuilder::ipv4(); };
    const auto server = [] {
      return PacketBuilder::ipv4().src("198.18.2.2").dst("198.18.1.2").ports(80, 40000);
    };
    rig.log(client().flags(flag::kSyn).seq(999).ack(0).build(), 100);
    rig.log(server().flags(flag::kSyn | flag::kAck).seq(1999).ack(1000).build(), 110);
    rig.log(client().flags(flag::kFin | flag::kAck).seq(1000).ack(2000).build(), 120);
    rig.log(server().flags(flag::kFin | flag::kAck).seq(2000).ack(1001).build(), 130);
    nf::QueuedPacket final_ack;
    const std::vector<std::uint8_t> bytes = client().seq(1001).ack(2001).build();
    final_ack.id = 5;
    final_ack.hw_protocol = ETH_P_IP;
    final_ack.original_len = static_cast<std::uint32_t>(bytes.size());
    final_ack.arrival_realtime_us = 140;
    final_ack.payload = bytes;
    rig.dataplane.on_packet(final_ack);
    CHECK(kinds(rig.fake) == std::vector<std::string>{"drop"});
    CHECK(rig.dataplane.counters().order_inversions == 0);
    // Read after a copy stamped later: counted, never reordered.
    final_ack.id = 6;
    final_ack.arrival_realtime_us = 125;
    rig.dataplane.on_packet(final_ack);
    CHECK(rig.dataplane.counters().order_inversions == 1);

    const std::vector<Outcome> outcomes = rig.finish();
    REQUIRE(outcomes.size() == 1);
    std::vector<std::pair<rules::Role, Verdict>> seen;
    for (const TimelineEntry& e : outcomes[0].timeline) seen.emplace_back(e.role, e.verdict);
    using rules::Role;
    CHECK(seen == std::vector<std::pair<Role, Verdict>>{{Role::kSyn, Verdict::kObserved},
                                                        {Role::kSynAck, Verdict::kObserved},
                                                        {Role::kFin1, Verdict::kObserved},
                                                        {Role::kFin2, Verdict::kObserved},
                                                        {Role::kFinalAck, Verdict::kDrop},
                                                        {Role::kFinalAck, Verdict::kAccept}});
    CHECK(outcomes[0].final_acks_dropped == 1);
  }

  TEST_CASE("dataplane: a packet that does not parse is accepted untouched and counted") {
    struct Malformed {
      const char* what;
      std::vector<std::uint8_t> bytes;
      nf::ParseError error;
    };
    const std::vector<Malformed> cases = {
        {"empty", {}, nf::ParseError::kEmpty},
        {"version 5", PacketBuilder::ipv4().version(5).build(), nf::ParseError::kBadIpVersion},
        {"UDP", PacketBuilder::ipv4().protocol(17).build(), nf::ParseError::kNotTcp},
        {"IPv6 UDP", PacketBuilder::ipv6().protocol(17).build(), nf::ParseError::kNotTcp},
        {"fragment", PacketBuilder::ipv4().fragment(true, 0).build(), nf::ParseError::kFragment},
        {"data offset 4", PacketBuilder::ipv4().data_offset(4).build(),
         nf::ParseError::kBadTcpDataOffset},
    };
    for (const Malformed& c : cases) {
      CAPTURE(c.what);
      Rig rig("action = \"drop\"");
      rig.queue(9, c.bytes);
      CHECK(kinds(rig.fake) == std::vector<std::string>{"accept"});
      REQUIRE(rig.fake.calls.size() == 1);
      CHECK(rig.fake.calls[0].id == 9);
      const DataplaneCounters& counters = rig.dataplane.counters();
      CHECK(counters.parse_errors[static_cast<std::size_t>(c.error)] == 1);
      std::uint64_t all_errors = 0;
      for (const std::uint64_t count : counters.parse_errors) all_errors += count;
      CHECK(all_errors == 1);
      CHECK(counters.segments == 0);
      CHECK(counters.rule_hits == 0);
      CHECK(rig.flows.counters().segments == 0);
      CHECK(rig.rule_hits.hits.empty());
    }
  }

  TEST_CASE("dataplane: shutdown ends every hold at once, due or not") {
    Rig rig("action = \"delay\"\ndelay_ms = 60000");
    rig.queue(1, fin_from_client(false).build());
    rig.queue(2, fin_from_client(true).build(), true);
    CHECK(kinds(rig.fake) == std::vector<std::string>{"hold", "hold"});
    rig.dataplane.end_all_holds(monotonic_us());
    CHECK(kinds(rig.fake) ==
          std::vector<std::string>{"hold", "hold", "accept_held", "accept_held"});
    const auto verdicts = rig.fake.verdicts_by_id();
    CHECK(verdicts == std::map<std::uint32_t, int>{{1, 1}, {2, 1}});
    CHECK(rig.delays.size() == 0);
    CHECK_FALSE(rig.delays.next_due().has_value());
    CHECK(rig.dataplane.counters().delayed == 2);
    CHECK(rig.dataplane.counters().released == 0);
    CHECK(rig.dataplane.counters().released_early == 2);
    for (const Outcome& outcome : rig.finish()) {
      REQUIRE(outcome.timeline.size() == 1);
      CHECK(outcome.timeline[0].released);
    }
  }

  TEST_CASE("dataplane: held segments go out in the order they fall due") {
    Rig rig("action = \"delay\"\ndelay_ms = 10");
    rig.queue(1, fin_from_client(false).ports(40001, 80).build());
    rig.queue(2, fin_from_client(false).ports(40002, 80).build());
    rig.queue(3, fin_from_client(false).ports(40003, 80).build());
    const std::uint64_t later = monotonic_us() + kDelayUs;
    rig.dataplane.on_due(later, later);
    REQUIRE(rig.fake.calls.size() == 6);
    for (std::size_t i = 3; i < 6; ++i) {
      CHECK(name(rig.fake.calls[i].kind) == std::string("accept_held"));
      CHECK(rig.fake.calls[i].id == i - 2);
    }
    CHECK(rig.dataplane.counters().released == 3);
  }
}

}  // namespace finwave::proxy
