#include "proxy/tracker/flow_table.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proxy/tracker/timeline_ring.hpp"
#include "segment_script.hpp"

namespace finwave::proxy::test {
namespace {

template <class T>
std::string name(T value) {
  return std::string(to_string(value));
}
std::string name(Role role) { return std::string(rules::to_string(role)); }
std::string name(Side side) { return std::string(rules::to_string(side)); }

constexpr std::uint64_t kMs = 1000;
constexpr std::uint64_t kSettle = 1'000'000;
constexpr std::uint64_t kLinger = 120'000'000;

// The outcome fields most tests look at, in one place.
void check_shape(const Outcome& o, Closer closer, TeardownKind kind, TeardownResult result) {
  CHECK(name(o.closer) == name(closer));
  CHECK(name(o.kind) == name(kind));
  CHECK(name(o.result) == name(result));
}

}  // namespace

TEST_SUITE("proxy") {
  TEST_CASE("flow_table: four-way close by the client is clean once the settle window passes") {
    Harness h;
    const Wire wire = wire_v4();
    const auto classified = h.play(wire, handshake() + four_way_by_client());
    CHECK(classified[0].sides_known);
    CHECK(classified[0].flow.valid());
    CHECK(classified[0].rule_state != nullptr);
    CHECK_FALSE(classified[1].facts.active_closer.has_value());
    REQUIRE(classified[2].facts.active_closer.has_value());
    CHECK(*classified[2].facts.active_closer == kClient);
    CHECK(classified[5].flow_id == classified[0].flow_id);
    CHECK(to_string(classified[3].facts.client) == "198.18.1.2:40000");
    CHECK(to_string(classified[3].facts.server) == "198.18.2.2:5000");

    CHECK(h.wait(kSettle - 1) == 0);
    CHECK(h.table.size() == 1);
    CHECK(h.wait(1) == 1);
    CHECK(h.table.size() == 0);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(name(o.ended_by) == "settle");
    CHECK(o.sides_known);
    CHECK(o.fin_retransmits_client == 0);
    CHECK(o.fin_retransmits_server == 0);
    CHECK(o.final_acks_seen == 1);
    CHECK(o.final_acks_dropped == 0);
    CHECK_FALSE(o.rst.has_value());
    CHECK(o.teardown_us == 3 * kMs);  // fin1 to final_ack
    CHECK(o.data_after_fin_bytes == 0);
    CHECK(o.segments == 6);
    CHECK(o.actions.empty());
    REQUIRE(o.timeline.size() == 6);
    CHECK(o.timeline[0].t_us == -2 * static_cast<std::int64_t>(kMs));  // SYN before the FIN
    CHECK(name(o.timeline[0].role) == "syn");
    CHECK(o.timeline[0].seq == 1000);
    CHECK(o.timeline[2].t_us == 0);
    CHECK(name(o.timeline[2].role) == "fin1");
    CHECK(o.timeline[5].t_us == 3 * static_cast<std::int64_t>(kMs));
    CHECK(name(o.timeline[5].role) == "final_ack");
    CHECK(name(o.timeline[5].from) == "client");
    CHECK(o.timeline[5].ack == 9002);
    CHECK(h.table.counters().outcomes_emitted == 1);

    // Exactly one outcome: nothing more, ever.
    CHECK(h.wait(10 * kLinger) == 0);
    CHECK(h.finish() == 0);
  }

  TEST_CASE("flow_table: lost copies mark the flows tracked then, and those begun just after") {
    Harness h;
    h.play(wire_v4(40001), handshake() + four_way_by_client());  // tracked at the loss
    const std::uint64_t lost_at = h.now;
    h.table.mark_incomplete(lost_at);
    h.play(wire_v4(40002), handshake() + four_way_by_client());  // begun within the window
    h.now = lost_at + FlowTable::kIncompleteWindowUs;
    h.play(wire_v4(40003), handshake() + four_way_by_client());  // begun after it
    h.wait(kSettle);
    REQUIRE(h.outcomes.size() == 3);
    std::map<std::string, bool> incomplete;
    for (const Outcome& o : h.outcomes) incomplete[to_string(o.client)] = o.incomplete;
    CHECK(incomplete == std::map<std::string, bool>{{"198.18.1.2:40001", true},
                                                    {"198.18.1.2:40002", true},
                                                    {"198.18.1.2:40003", false}});
  }

  TEST_CASE("flow_table: four-way close by the server over IPv6") {
    Harness h;
    const Wire wire = wire_v6();
    h.play(wire, handshake() + std::vector<Row>{
                                   {kServer, "F.", 9001, 2001, 0, Role::kFin1},
                                   {kClient, ".", 2001, 9002, 0, Role::kAck1},
                                   {kClient, "F.", 2001, 9002, 0, Role::kFin2},
                                   {kServer, ".", 9002, 2002, 0, Role::kFinalAck},
                               });
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kServer, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(to_string(o.client) == "[2001:db8:1::2]:40000");
    CHECK(to_string(o.server) == "[2001:db8:2::2]:5000");
    CHECK(o.final_acks_seen == 1);
  }

  TEST_CASE("flow_table: three-way close when ack1 rides on fin2") {
    Harness h;
    h.play(wire_v4(), handshake() + std::vector<Row>{
                                        {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                        {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                        {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
                                    });
    CHECK(h.wait(kSettle) == 1);
    check_shape(h.only(), Closer::kClient, TeardownKind::kThreeWay, TeardownResult::kClean);
    CHECK(h.only().teardown_us == 2 * kMs);
  }

  TEST_CASE("flow_table: simultaneous close when both FINs cross before either ACK") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + std::vector<Row>{
                                   {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                   // The server's FIN does not acknowledge the client's.
                                   {kServer, "F.", 9001, 2001, 0, Role::kFin2},
                               });
    std::string stage;
    h.table.for_each_flow([&](const FlowSummary& flow) { stage = std::string(flow.stage); });
    CHECK(stage == "closing");
    h.play(wire, {
                     {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
                     {kServer, ".", 9002, 2002, 0, Role::kAck1},
                 });
    CHECK(h.wait(kSettle) == 1);
    check_shape(h.only(), Closer::kBoth, TeardownKind::kSimultaneous, TeardownResult::kClean);
  }

  TEST_CASE("flow_table: FIN carried on the last data segment") {
    Harness h;
    // Client: 100 bytes + FIN at 1901, so the FIN is sequence number 2001.
    h.play(wire_v4(), handshake() + std::vector<Row>{
                                        {kClient, "FP.", 1901, 9001, 100, Role::kFin1},
                                        {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                        {kServer, "FP.", 9001, 2002, 50, Role::kFin2},
                                        {kClient, ".", 2002, 9052, 0, Role::kFinalAck},
                                    });
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    // The server's 50 bytes went out after it acknowledged fin1: half-close data.
    CHECK(o.data_after_fin_bytes == 50);
  }

  TEST_CASE("flow_table: half-close data from the passive side is counted from sequence numbers") {
    Harness h;
    h.play(wire_v4(),
           handshake() + std::vector<Row>{
                             {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                             // In flight before the server got fin1 (ack 2001): ordinary data.
                             {kServer, "P.", 8001, 2001, 1000, Role::kAck},
                             {kServer, ".", 9001, 2002, 0, Role::kAck1},
                             {kServer, "P.", 9001, 2002, 1000, Role::kDataAfterFin},
                             {kServer, "P.", 10001, 2002, 1000, Role::kDataAfterFin},
                             {kClient, ".", 2002, 11001, 0, Role::kAck},
                             {kServer, "P.", 10001, 2002, 1000, Role::kDataAfterFin, true},
                             {kServer, "F.", 11001, 2002, 0, Role::kFin2},
                             {kClient, ".", 2002, 11002, 0, Role::kFinalAck},
                         });
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(o.data_after_fin_bytes == 2000);
  }

  TEST_CASE("flow_table: half-close data still flowing when the teardown times out") {
    Harness h;
    h.play(wire_v4(), handshake() + std::vector<Row>{
                                        {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                        {kServer, "P.", 9001, 2002, 1400, Role::kDataAfterFin},
                                        {kServer, "P.", 10401, 2002, 1400, Role::kDataAfterFin},
                                    });
    CHECK(h.wait(kLinger) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kIncomplete, TeardownResult::kTimeout);
    CHECK(o.data_after_fin_bytes == 2800);
  }

  namespace {

  struct RstCase {
    const char* name;
    std::vector<Row> rows;  // after the handshake
    Side from;
    const char* stage;
    const char* kind;
    const char* closer;
    bool answers_fin_retransmit = false;
  };

  std::vector<RstCase> rst_cases() {
    const Row fin1{kClient, "F.", 2001, 9001, 0, Role::kFin1};
    const Row ack1{kServer, ".", 9001, 2002, 0, Role::kAck1};
    const Row fin2{kServer, "F.", 9001, 2002, 0, Role::kFin2};
    const Row final_ack{kClient, ".", 2002, 9002, 0, Role::kFinalAck};
    Row lost_final_ack = final_ack;
    lost_final_ack.verdict = Verdict::kDrop;
    Row fin2_retx = fin2;
    fin2_retx.retx = true;
    fin2_retx.gap_us = 200 * kMs;
    return {
        {"before_fin by the client",
         {{kClient, "R", 1001, 0, 0, Role::kRst}},
         kClient,
         "before_fin",
         "reset",
         "none"},
        {"before_fin by the server",
         {{kServer, "R.", 5001, 1001, 0, Role::kRst}},
         kServer,
         "before_fin",
         "reset",
         "none"},
        {"fin_wait by the passive server",
         {fin1, ack1, {kServer, "R.", 9001, 2002, 0, Role::kRst}},
         kServer,
         "fin_wait",
         "reset",
         "client"},
        {"fin_wait by the active client",
         {fin1, ack1, {kClient, "R", 2002, 0, 0, Role::kRst}},
         kClient,
         "fin_wait",
         "reset",
         "client"},
        {"closing in a simultaneous close",
         {fin1,
          {kServer, "F.", 9001, 2001, 0, Role::kFin2},
          {kServer, "R", 9002, 0, 0, Role::kRst}},
         kServer,
         "closing",
         "simultaneous",
         "both"},
        {"closing in a simultaneous close, reset by the client",
         {fin1,
          {kServer, "F.", 9001, 2001, 0, Role::kFin2},
          {kClient, "R", 2002, 0, 0, Role::kRst}},
         kClient,
         "closing",
         "simultaneous",
         "both"},
        {"last_ack by the passive server",
         {fin1, ack1, fin2, {kServer, "R.", 9002, 2002, 0, Role::kRst}},
         kServer,
         "last_ack",
         "four_way",
         "client"},
        {"last_ack by the active client",
         {fin1, ack1, fin2, {kClient, "R", 2002, 0, 0, Role::kRst}},
         kClient,
         "last_ack",
         "four_way",
         "client"},
        {"time_wait after a clean close",
         {fin1, ack1, fin2, final_ack, {kServer, "R", 9002, 0, 0, Role::kRst}},
         kServer,
         "time_wait",
         "four_way",
         "client"},
        {"time_wait after a clean close, reset by the client",
         {fin1, ack1, fin2, final_ack, {kClient, "R", 2002, 0, 0, Role::kRst}},
         kClient,
         "time_wait",
         "four_way",
         "client"},
        {"after_close: fin2 retransmission answered by the client",
         {fin1, ack1, fin2, lost_final_ack, fin2_retx, {kClient, "R", 2002, 0, 0, Role::kRst}},
         kClient,
         "after_close",
         "four_way",
         "client",
         true},
    };
  }

  }  // namespace

  TEST_CASE("flow_table: RST in every stage by either side") {
    for (const RstCase& rst_case : rst_cases()) {
      SUBCASE(rst_case.name) {
        Harness h;
        h.play(wire_v4(), handshake() + rst_case.rows);
        // Kept for the settle window after the RST, then reported.
        CHECK(h.wait(kSettle - 1) == 0);
        CHECK(h.wait(1) == 1);
        const Outcome& o = h.only();
        CHECK(name(o.result) == "reset");
        CHECK(name(o.ended_by) == "rst");
        CHECK(name(o.kind) == rst_case.kind);
        CHECK(name(o.closer) == rst_case.closer);
        REQUIRE(o.rst.has_value());
        CHECK(name(o.rst->from) == name(rst_case.from));
        CHECK(name(o.rst->stage) == rst_case.stage);
        CHECK(o.rst->answers_fin_retransmit == rst_case.answers_fin_retransmit);
        if (std::string(rst_case.stage) == "before_fin") {
          CHECK(o.teardown_us == 0);
        }
      }
    }
  }

  TEST_CASE(
      "flow_table: lost final ACK then fin2 retransmission answered by an RST from the client") {
    Harness h;
    h.play(
        wire_v4(),
        handshake() +
            std::vector<Row>{
                {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                {kServer, ".", 9001, 2002, 0, Role::kAck1},
                {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                {kClient, ".", 2002, 9002, 0, Role::kFinalAck, false, Verdict::kDrop,
                 "lose-final-ack"},
                // The client's socket is gone by the time the retransmission arrives.
                {kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kAccept, {}, 200 * kMs},
                {kClient, "R", 2002, 0, 0, Role::kRst},
            });
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kReset);
    CHECK(o.fin_retransmits_server == 1);
    CHECK(o.fin_retransmits_client == 0);
    CHECK(o.final_acks_seen == 1);
    CHECK(o.final_acks_dropped == 1);
    REQUIRE(o.rst.has_value());
    CHECK(name(o.rst->from) == "client");
    CHECK(name(o.rst->stage) == "after_close");
    CHECK(o.rst->answers_fin_retransmit);
    CHECK(o.teardown_us == static_cast<std::int64_t>(204 * kMs));  // fin1 to the RST
    REQUIRE(o.actions.size() == 1);
    CHECK(o.actions[0].rule == "lose-final-ack");
    CHECK(name(o.actions[0].role) == "final_ack");
    CHECK(name(o.actions[0].action) == "drop");
    CHECK(o.actions[0].count == 1);
    REQUIRE(o.timeline.size() == 8);
    CHECK(name(o.timeline[5].verdict) == "drop");
    CHECK(o.timeline[6].retx);
  }

  TEST_CASE("flow_table: fin1 retransmission answered by an RST from the passive side") {
    Harness h;
    h.play(wire_v4(), handshake() + std::vector<Row>{
                                        {kClient, "F.", 2001, 9001, 0, Role::kFin1, false,
                                         Verdict::kDrop, "x"},
                                        {kClient, "F.", 2001, 9001, 0, Role::kFin1, true},
                                        {kServer, "R", 9001, 0, 0, Role::kRst},
                                    });
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    REQUIRE(o.rst.has_value());
    CHECK(name(o.rst->from) == "server");
    CHECK(name(o.rst->stage) == "fin_wait");
    CHECK(o.rst->answers_fin_retransmit);
    CHECK(o.fin_retransmits_client == 1);
  }

  TEST_CASE("flow_table: an RST that answers nothing in particular is not taken for a FIN reply") {
    Harness h;
    h.play(wire_v4(), handshake() + std::vector<Row>{
                                        {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                        {kServer, "R", 9001, 0, 0, Role::kRst},
                                    });
    CHECK(h.wait(kSettle) == 1);
    REQUIRE(h.only().rst.has_value());
    CHECK_FALSE(h.only().rst->answers_fin_retransmit);
  }

  // Scenario 5b: the final ACK is lost, the first fin2 retransmission is held 1.5 s and the later
  // ones are dropped; when the held one goes out, a new socket on the client's port answers it.
  TEST_CASE("flow_table: an RST answering an earlier, delayed FIN retransmission is recognised") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + std::vector<Row>{
                                   {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                   {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                   {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                   {kClient, ".", 2002, 9002, 0, Role::kFinalAck, false,
                                    Verdict::kDrop, "lose-first-final-ack"},
                               });
    const Classified held = h.send(wire, {kServer, "F.", 9001, 2002, 0, Role::kFin2, true,
                                          Verdict::kDelay, "hold-fin2-retransmission", 211 * kMs});
    const nf::TcpSegment held_segment = h.last_segment;
    h.play(wire, {
                     {kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kDrop,
                      "lose-later-fin2-retransmissions", 211 * kMs},
                     {kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kDrop,
                      "lose-later-fin2-retransmissions", 439 * kMs},
                 });
    h.now += 850 * kMs;
    REQUIRE(h.table.release(held.flow, held_segment, h.now));
    // The new socket has no connection: it answers the FIN's ACK with an RST at that number.
    h.play(wire, {{kClient, "R", 2002, 0, 0, Role::kRst}});
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kReset);
    CHECK(o.fin_retransmits_server == 3);
    REQUIRE(o.rst.has_value());
    CHECK(name(o.rst->from) == "client");
    CHECK(name(o.rst->stage) == "after_close");
    CHECK(o.rst->answers_fin_retransmit);
  }

  TEST_CASE("flow_table: which RSTs answer a FIN retransmission") {
    const Row fin1{kClient, "F.", 2001, 9001, 0, Role::kFin1};
    const Row ack1{kServer, ".", 9001, 2002, 0, Role::kAck1};
    const Row fin2{kServer, "F.", 9001, 2002, 0, Role::kFin2};
    const Row lost_final_ack{kClient, ".", 2002, 9002, 0, Role::kFinalAck, false, Verdict::kDrop};
    const Row fin2_retx{kServer, "F.", 9001, 2002, 0, Role::kFin2, true};
    Row fin2_retx_lost = fin2_retx;
    fin2_retx_lost.verdict = Verdict::kDrop;
    Row fin2_retx_copied = fin2_retx;
    fin2_retx_copied.verdict = Verdict::kDuplicate;
    const Row rst{kClient, "R", 2002, 0, 0, Role::kRst};
    struct Case {
      const char* name;
      std::vector<Row> rows;
      bool answers;
    };
    const std::vector<Case> cases = {
        {"the latest retransmission", {fin2_retx, rst}, true},
        {"an earlier retransmission, later ones lost", {fin2_retx, fin2_retx_lost, rst}, true},
        {"a duplicated retransmission", {fin2_retx_copied, rst}, true},
        {"only lost retransmissions", {fin2_retx_lost, fin2_retx_lost, rst}, false},
        {"an RST at another sequence number",
         {fin2_retx, {kClient, "R", 7777, 0, 0, Role::kRst}},
         false},
        {"an RST|ACK acknowledging a retransmission without ACK",
         {{kServer, "F", 9001, 0, 0, Role::kFin2, true}, {kClient, "R.", 0, 9002, 0, Role::kRst}},
         true},
        {"an RST|ACK acknowledging something else",
         {{kServer, "F", 9001, 0, 0, Role::kFin2, true}, {kClient, "R.", 0, 9001, 0, Role::kRst}},
         false},
    };
    for (const Case& c : cases) {
      SUBCASE(c.name) {
        Harness h;
        h.play(wire_v4(),
               handshake() + std::vector<Row>{fin1, ack1, fin2, lost_final_ack} + c.rows);
        CHECK(h.wait(kSettle) == 1);
        REQUIRE(h.only().rst.has_value());
        CHECK(h.only().rst->answers_fin_retransmit == c.answers);
      }
    }
  }

  TEST_CASE(
      "flow_table: a dropped final ACK does not acknowledge fin2 and the flow times out after "
      "linger") {
    Harness h;
    const Row lost_final_ack{
        kClient,          ".", 2002, 9002, 0, Role::kFinalAck, false, Verdict::kDrop,
        "lose-final-ack", 1000};
    std::vector<Row> rows = handshake() + std::vector<Row>{
                                              {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                              {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                              {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                              lost_final_ack,
                                          };
    // The server retransmits fin2 with exponential backoff; every answer is dropped too.
    std::uint64_t backoff = 200 * kMs;
    for (int i = 0; i < 3; ++i) {
      rows.push_back(
          {kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kAccept, {}, backoff});
      rows.push_back(lost_final_ack);
      backoff *= 2;
    }
    const auto classified = h.play(wire_v4(), rows);
    CHECK_FALSE(classified[5].dup_ack);
    CHECK(classified[7].dup_ack);  // the answer to the retransmitted fin2

    std::string stage;
    h.table.for_each_flow([&](const FlowSummary& flow) { stage = std::string(flow.stage); });
    CHECK(stage == "last_ack");
    // Not clean after the settle window, not a timeout before the linger window.
    CHECK(h.wait(kSettle) == 0);
    CHECK(h.wait(kLinger - kSettle - 1) == 0);
    CHECK(h.wait(1) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kTimeout);
    CHECK(name(o.ended_by) == "linger");
    CHECK(o.fin_retransmits_server == 3);
    CHECK(o.final_acks_seen == 4);
    CHECK(o.final_acks_dropped == 4);
    CHECK(o.dup_acks == 3);
    REQUIRE(o.actions.size() == 1);
    CHECK(o.actions[0].count == 4);
    // fin1 at 0; then 1 + 1 + 1 ms, and 3 rounds of (backoff + 1 ms).
    CHECK(o.teardown_us == static_cast<std::int64_t>((3 + 200 + 400 + 800 + 3) * kMs));
  }

  TEST_CASE("flow_table: only the first final ACK dropped and the second gets through: clean") {
    Harness h;
    h.play(
        wire_v4(),
        handshake() +
            std::vector<Row>{
                {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                {kServer, ".", 9001, 2002, 0, Role::kAck1},
                {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                {kClient, ".", 2002, 9002, 0, Role::kFinalAck, false, Verdict::kDrop,
                 "lose-first-final-ack"},
                {kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kAccept, {}, 200 * kMs},
                {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
            });
    CHECK(h.wait(kSettle - 1) == 0);
    CHECK(h.wait(1) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(o.fin_retransmits_server == 1);
    CHECK(o.final_acks_seen == 2);
    CHECK(o.final_acks_dropped == 1);
    CHECK(o.dup_acks == 1);
    REQUIRE(o.actions.size() == 1);
    CHECK(o.actions[0].rule == "lose-first-final-ack");
  }

  TEST_CASE("flow_table: a late FIN retransmission re-opens the settle window") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + four_way_by_client());
    // The server did not get the final ACK in time (lost behind finwave): it retransmits fin2.
    h.play(wire,
           {
               {kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kAccept, {}, 800 * kMs},
               {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
           });
    // 801 ms after the first final ACK the window restarted at the retransmission.
    CHECK(h.wait(kSettle - 801 * kMs) == 0);
    CHECK(h.wait(800 * kMs - 1) == 0);
    CHECK(h.wait(1) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(o.fin_retransmits_server == 1);
    CHECK(o.final_acks_seen == 2);
    CHECK(o.dup_acks == 1);
  }

  TEST_CASE("flow_table: a new SYN on the 4-tuple during TIME_WAIT ends the old flow") {
    Harness h;
    const Wire wire = wire_v4();
    const auto old_flow = h.play(wire, handshake() + four_way_by_client());
    CHECK(h.wait(100 * kMs) == 0);
    // Same ports, new ISN: a new connection.
    const auto new_flow = h.play(wire, handshake(7000, 3000));
    CHECK(new_flow[0].flow_id != old_flow[0].flow_id);
    CHECK(new_flow[1].flow_id == new_flow[0].flow_id);
    CHECK(h.table.size() == 1);
    CHECK(h.wait(0) == 1);
    const Outcome& old_outcome = h.only();
    CHECK(old_outcome.id == old_flow[0].flow_id);
    check_shape(old_outcome, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(name(old_outcome.ended_by) == "new_syn");

    // The new connection has its own teardown and its own outcome, closed by the server this time.
    h.play(wire, {
                     {kServer, "F.", 3001, 7001, 0, Role::kFin1},
                     {kClient, "F.", 7001, 3002, 0, Role::kFin2},
                     {kServer, ".", 3002, 7002, 0, Role::kFinalAck},
                 });
    CHECK(h.wait(kSettle) == 1);
    REQUIRE(h.outcomes.size() == 2);
    CHECK(h.outcomes[1].id == new_flow[0].flow_id);
    check_shape(h.outcomes[1], Closer::kServer, TeardownKind::kThreeWay, TeardownResult::kClean);
    REQUIRE(h.outcomes[1].timeline.size() == 5);
    CHECK(h.outcomes[1].timeline[0].seq == 7000);
  }

  TEST_CASE("flow_table: a new SYN while the old teardown is unresolved reports it as a timeout") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + std::vector<Row>{
                                   {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                   {kServer, ".", 9001, 2002, 0, Role::kAck1},
                               });
    // A retransmitted SYN of the old connection is not a new one.
    h.play(wire, {{kClient, "S", 1000, 0, 0, Role::kSyn, true}});
    CHECK(h.wait(0) == 0);
    h.play(wire, {{kClient, "S", 123456, 0, 0, Role::kSyn}});
    CHECK(h.wait(0) == 1);
    check_shape(h.only(), Closer::kClient, TeardownKind::kIncomplete, TeardownResult::kTimeout);
    CHECK(name(h.only().ended_by) == "new_syn");
    CHECK(h.table.size() == 1);
  }

  TEST_CASE("flow_table: a SYN with a new ISN replaces a flow with no FIN silently") {
    Harness h;
    const Wire wire = wire_v4();
    const auto first = h.play(wire, handshake());
    const auto second = h.play(wire, handshake(42, 4242));
    CHECK(first[0].flow_id != second[0].flow_id);
    CHECK(h.table.counters().superseded == 1);
    CHECK(h.table.size() == 1);
    CHECK(h.wait(0) == 0);
  }

  TEST_CASE("flow_table: first seen at its FIN: sides named by port with sides_known false") {
    SUBCASE("the high-port side closes: it is named the client") {
      Harness h;
      const auto c = h.play(wire_v4(), {
                                           {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                           {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                           {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
                                       });
      CHECK_FALSE(c[0].sides_known);
      CHECK(h.wait(kSettle) == 1);
      const Outcome& o = h.only();
      CHECK_FALSE(o.sides_known);
      CHECK(to_string(o.server) == "198.18.2.2:5000");
      check_shape(o, Closer::kClient, TeardownKind::kThreeWay, TeardownResult::kClean);
      CHECK(o.timeline[0].t_us == 0);
    }
    SUBCASE("the low-port side closes: it is named the server") {
      Harness h;
      h.play(wire_v6(), {
                            {kServer, "F.", 9001, 2001, 0, Role::kFin1},
                            {kClient, ".", 2001, 9002, 0, Role::kAck1},
                        });
      CHECK(h.finish() == 1);
      const Outcome& o = h.only();
      CHECK_FALSE(o.sides_known);
      CHECK(to_string(o.server) == "[2001:db8:2::2]:5000");
      check_shape(o, Closer::kServer, TeardownKind::kIncomplete, TeardownResult::kTimeout);
    }
    SUBCASE("equal ports: the lower address is the server") {
      Harness h;
      // The script's "server" 198.18.2.2 sends; the tracker must call it the client, because
      // 198.18.1.2 is the lower address.
      const Classified c = h.send(wire_v4(7000, 7000), {kServer, "F.", 9001, 2001, 0, Role::kFin1});
      CHECK(to_string(c.facts.server) == "198.18.1.2:7000");
      CHECK(to_string(c.facts.client) == "198.18.2.2:7000");
      CHECK(c.facts.from == kClient);
      CHECK(name(c.facts.role) == "fin1");
    }
  }

  TEST_CASE("flow_table: a SYN-ACK of a flow whose SYN was missed still knows the server") {
    Harness h;
    const auto c = h.play(wire_v4(), {{kServer, "S.", 5000, 1001, 0, Role::kSynAck},
                                      {kClient, "S", 1000, 0, 0, Role::kSyn},
                                      {kServer, "S.", 5000, 1001, 0, Role::kSynAck, true},
                                      {kClient, "F.", 2001, 9001, 0, Role::kFin1}});
    CHECK(c[0].sides_known);
    CHECK(c[3].flow_id == c[0].flow_id);
    CHECK(to_string(c[0].facts.client) == "198.18.1.2:40000");
  }

  TEST_CASE("flow_table: out-of-order and retransmitted segments") {
    SUBCASE("ack1 overtaken by fin2 is still a four-way close") {
      Harness h;
      const auto c =
          h.play(wire_v4(), handshake() + std::vector<Row>{
                                              {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                              {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                              {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                              {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
                                          });
      CHECK_FALSE(c[4].dup_ack);
      CHECK(h.wait(kSettle) == 1);
      check_shape(h.only(), Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    }
    SUBCASE("an ACK of fin1 repeated after a three-way fin2 is a duplicate") {
      Harness h;
      const auto c =
          h.play(wire_v4(), handshake() + std::vector<Row>{
                                              {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                              {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                              {kClient, "F.", 2001, 9001, 0, Role::kFin1, true},
                                              {kServer, ".", 9002, 2002, 0, Role::kAck1},
                                              {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
                                          });
      CHECK(c[5].dup_ack);
      CHECK(h.wait(kSettle) == 1);
      check_shape(h.only(), Closer::kClient, TeardownKind::kThreeWay, TeardownResult::kClean);
      CHECK(h.only().fin_retransmits_client == 1);
    }
    SUBCASE("a dropped fin1 is retransmitted; only the delivered one is acknowledged") {
      Harness h;
      h.play(wire_v4(), handshake() + std::vector<Row>{
                                          {kClient, "F.", 2001, 9001, 0, Role::kFin1, false,
                                           Verdict::kDrop, "lose-fin1"},
                                          {kClient,
                                           "F.",
                                           2001,
                                           9001,
                                           0,
                                           Role::kFin1,
                                           true,
                                           Verdict::kAccept,
                                           {},
                                           200 * kMs},
                                          {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                          {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                          {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
                                      });
      CHECK(h.wait(kSettle) == 1);
      const Outcome& o = h.only();
      check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
      CHECK(o.fin_retransmits_client == 1);
      // The timeline starts at the first (dropped) FIN: that is when the client closed.
      CHECK(o.teardown_us == static_cast<std::int64_t>(203 * kMs));
    }
    SUBCASE("a FIN retransmitted with the data before it is the same FIN") {
      Harness h;
      h.play(wire_v4(), handshake() + std::vector<Row>{
                                          {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                          {kClient, "FP.", 1501, 9001, 500, Role::kFin1, true},
                                          {kClient, "P.", 1001, 9001, 500, Role::kAck, true},
                                      });
      CHECK(h.table.counters().bogus_segments == 0);
    }
  }

  TEST_CASE("flow_table: sequence numbers wrap around 2^32") {
    Harness h;
    const auto c = h.play(
        wire_v4(),
        handshake(0xffffff00U, 0xfffffe00U) +
            std::vector<Row>{
                // The client's FIN is the last sequence number before the wrap; its ACK is 0.
                {kClient, "F.", 0xffffffffU, 0xffffff80U, 0, Role::kFin1},
                {kServer, ".", 0xffffff80U, 0, 0, Role::kAck1},
                // 256 bytes of half-close data across the wrap, then fin2 at 0x80.
                {kServer, "P.", 0xffffff80U, 0, 0x100, Role::kDataAfterFin},
                {kServer, "F.", 0x80, 0, 0, Role::kFin2},
                {kClient, ".", 0, 0x81, 0, Role::kFinalAck},
                {kServer, "P.", 0xffffff80U, 0, 0x100, Role::kDataAfterFin, true},
            });
    CHECK_FALSE(c[6].bogus);
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(o.data_after_fin_bytes == 256);
    CHECK(o.timeline[2].seq == 0xffffffffU);
  }

  TEST_CASE("flow_table: garbage does not create flows or corrupt a tracked one") {
    SUBCASE("ACK, data and RST for unknown flows are ignored and counted") {
      Harness h;
      const auto c = h.play(wire_v4(), {
                                           {kClient, ".", 2002, 9002, 0, Role::kAck},
                                           {kServer, "P.", 9002, 2002, 100, Role::kAck},
                                           {kServer, "R", 9002, 0, 0, Role::kRst},
                                       });
      for (const Classified& one : c) {
        CHECK_FALSE(one.flow.valid());
        CHECK(one.rule_state == nullptr);
        CHECK(one.flow_id == 0);
      }
      // Best-effort sides by port even for untracked segments.
      CHECK(to_string(c[0].facts.server) == "198.18.2.2:5000");
      CHECK(h.table.counters().unknown_flow_acks == 2);
      CHECK(h.table.counters().unknown_flow_rsts == 1);
      CHECK(h.table.size() == 0);
      CHECK(h.wait(kLinger) == 0);
      CHECK(h.finish() == 0);
    }
    SUBCASE("bogus FIN, ACK beyond fin2 and data beyond a FIN are recorded and change nothing") {
      Harness h;
      const Wire wire = wire_v4();
      const auto c =
          h.play(wire, handshake() + std::vector<Row>{
                                         {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                         {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                         // A FIN from the client at another sequence number.
                                         {kClient, "F.", 77777, 9001, 0, Role::kFin1},
                                         {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                         // Acknowledges more than the server ever sent.
                                         {kClient, ".", 2002, 9500, 0, Role::kAck},
                                         // Data beyond the client's own FIN.
                                         {kClient, "P.", 2002, 9002, 10, Role::kAck},
                                     });
      CHECK(c[4].bogus);
      CHECK(c[6].bogus);
      CHECK(c[7].bogus);
      CHECK(h.table.counters().bogus_segments == 3);
      // fin2 is still unacknowledged: not clean.
      CHECK(h.wait(kSettle) == 0);
      h.play(wire, {{kClient, ".", 2002, 9002, 0, Role::kFinalAck}});
      CHECK(h.wait(kSettle) == 1);
      const Outcome& o = h.only();
      check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
      CHECK(o.fin_retransmits_client == 0);
      CHECK(o.timeline[4].bogus);
      CHECK(o.segments == 9);
    }
    SUBCASE("bogus segments do not keep an unresolved flow alive") {
      Harness h;
      const Wire wire = wire_v4();
      h.play(wire, handshake() + std::vector<Row>{{kClient, "F.", 2001, 9001, 0, Role::kFin1}});
      h.play(wire, {{kClient,
                     "F.",
                     3001,
                     9001,
                     0,
                     Role::kFin1,
                     false,
                     Verdict::kAccept,
                     {},
                     kLinger - 10 * kMs}});
      CHECK(h.wait(10 * kMs) == 1);
      CHECK(name(h.only().result) == "timeout");
    }
  }

  TEST_CASE("flow_table: a FIN that contradicts data seen from the same side is bogus") {
    Harness h;
    const auto c =
        h.play(wire_v4(), handshake() + std::vector<Row>{
                                            {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                            {kServer, "P.", 9001, 2002, 500, Role::kDataAfterFin},
                                            // fin2 before bytes the server already sent
                                            {kServer, "F.", 9101, 2002, 0, Role::kFin2},
                                        });
    CHECK(c[4].bogus);
  }

  TEST_CASE("flow_table: idle flows with no FIN are evicted silently") {
    TrackerConfig config = Harness::default_config();
    config.idle_us = 10'000'000;
    Harness h(config);
    h.play(wire_v4(40001), handshake());
    h.play(wire_v4(40002),
           handshake() + std::vector<Row>{{kClient, "F.", 2001, 9001, 0, Role::kFin1}});
    CHECK(h.wait(config.idle_us) == 0);
    CHECK(h.table.counters().evicted_idle == 1);
    CHECK(h.table.size() == 1);  // the flow in teardown stays
    CHECK(h.wait(kLinger) == 1);
    CHECK(h.table.counters().evicted_idle == 1);
  }

  TEST_CASE("flow_table: a full table evicts the stalest flow with no FIN or else refuses") {
    TrackerConfig config = Harness::default_config();
    config.max_flows = 4;
    SUBCASE("room is made by evicting a flow with no FIN") {
      Harness h(config);
      for (std::uint16_t i = 0; i < 4; ++i) {
        h.play(wire_v4(40000 + i), handshake());
      }
      const auto c = h.play(wire_v4(41000), handshake());
      CHECK(c[0].flow.valid());
      CHECK(h.table.counters().evicted_full == 1);
      CHECK(h.table.size() == 4);
      // The evicted flow (port 40000) comes back at its FIN as a flow with sides unknown.
      const auto again = h.play(wire_v4(40000), {{kClient, "F.", 2001, 9001, 0, Role::kFin1}});
      CHECK(again[0].flow.valid());
      CHECK_FALSE(again[0].sides_known);
      CHECK(h.table.counters().evicted_full == 2);
    }
    SUBCASE("flows in teardown are never evicted: new flows are refused") {
      Harness h(config);
      for (std::uint16_t i = 0; i < 4; ++i) {
        h.play(wire_v4(40000 + i),
               handshake() + std::vector<Row>{{kClient, "F.", 2001, 9001, 0, Role::kFin1}});
      }
      const Wire wire = wire_v4(41000);
      const Classified c = h.send(wire, {kClient, "S", 1000, 0, 0, Role::kSyn});
      CHECK_FALSE(c.flow.valid());
      CHECK(name(c.facts.role) == "syn");
      CHECK(c.facts.from == kClient);
      CHECK(c.rule_state == nullptr);
      CHECK(h.table.counters().refused_full == 1);
      CHECK(h.table.size() == 4);
      CHECK(h.finish() == 4);
    }
    SUBCASE("eviction can be turned off") {
      config.evict_idle_when_full = false;
      Harness h(config);
      for (std::uint16_t i = 0; i < 4; ++i) {
        h.play(wire_v4(40000 + i), handshake());
      }
      const Classified c = h.send(wire_v4(41000), {kClient, "S", 1000, 0, 0, Role::kSyn});
      CHECK_FALSE(c.flow.valid());
      CHECK(h.table.counters().refused_full == 1);
    }
  }

  TEST_CASE("flow_table: finish_all reports every flow whose teardown began as it stands") {
    Harness h;
    const auto clean = h.play(wire_v4(40001), handshake() + four_way_by_client());
    const auto waiting =
        h.play(wire_v4(40002), handshake() + std::vector<Row>{
                                                 {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                             });
    const auto reset =
        h.play(wire_v6(40003), handshake() + std::vector<Row>{
                                                 {kClient, "R", 1001, 0, 0, Role::kRst},
                                             });
    h.play(wire_v4(40004), handshake());  // no teardown: not reported
    CHECK(h.table.size() == 4);
    CHECK(h.finish() == 3);
    CHECK(h.table.size() == 0);
    std::map<std::uint64_t, const Outcome*> by_id;
    for (const Outcome& o : h.outcomes) {
      CHECK(name(o.ended_by) == "shutdown");
      by_id[o.id] = &o;
    }
    REQUIRE(by_id.size() == 3);
    CHECK(name(by_id.at(clean[0].flow_id)->result) == "clean");
    CHECK(name(by_id.at(waiting[0].flow_id)->result) == "timeout");
    CHECK(name(by_id.at(waiting[0].flow_id)->kind) == "incomplete");
    CHECK(name(by_id.at(reset[0].flow_id)->result) == "reset");
    CHECK(h.finish() == 0);
    // Still usable.
    h.play(wire_v4(40001), handshake(10, 20));
    CHECK(h.table.size() == 1);
  }

  TEST_CASE("flow_table: exactly one outcome per flow across many interleaved connections") {
    Harness h;
    std::set<std::uint64_t> teardown_ids;
    std::set<std::uint64_t> quiet_ids;
    for (std::uint16_t i = 0; i < 200; ++i) {
      const Wire wire = i % 2 == 0 ? wire_v4(static_cast<std::uint16_t>(30000 + i))
                                   : wire_v6(static_cast<std::uint16_t>(30000 + i));
      const std::vector<Row> hs = handshake(1000U * i, 5000U * i);
      std::vector<Row> rows;
      const std::uint32_t c = 1000U * i + 1001U;
      const std::uint32_t s = 5000U * i + 4001U;
      switch (i % 5) {
        case 0:
          rows = hs;
          break;  // never closes
        case 1:
          rows = hs + std::vector<Row>{{kClient, "F.", c, s, 0, Role::kFin1},
                                       {kServer, "F.", s, c + 1, 0, Role::kFin2},
                                       {kClient, ".", c + 1, s + 1, 0, Role::kFinalAck}};
          break;
        case 2:
          rows = hs + std::vector<Row>{{kServer, "F.", s, c, 0, Role::kFin1},
                                       {kClient, "R", c, 0, 0, Role::kRst}};
          break;
        case 3:
          rows = {{kClient, "F.", c, s, 0, Role::kFin1}};
          break;  // first seen at FIN
        default:
          rows = hs + std::vector<Row>{{kClient, "F.", c, s, 0, Role::kFin1},
                                       {kServer, "F.", s, c + 1, 0, Role::kFin2},
                                       {kClient, ".", c + 1, s + 1, 0, Role::kFinalAck, false,
                                        Verdict::kDrop, "drop"}};
          break;
      }
      const auto classified = h.play(wire, rows);
      (i % 5 == 0 ? quiet_ids : teardown_ids).insert(classified[0].flow_id);
      if (i % 7 == 0) {
        h.wait(300 * kMs);
      }
    }
    for (int step = 0; step < 50; ++step) {
      h.wait(5'000'000);
    }
    h.finish();
    std::multiset<std::uint64_t> reported;
    for (const Outcome& o : h.outcomes) {
      reported.insert(o.id);
    }
    CHECK(reported.size() == teardown_ids.size());
    for (const std::uint64_t id : teardown_ids) {
      CHECK(reported.count(id) == 1);
    }
    for (const std::uint64_t id : quiet_ids) {
      CHECK(reported.count(id) == 0);
    }
    CHECK(h.table.counters().outcomes_emitted == h.outcomes.size());
    CHECK(h.table.counters().flows_created == 200);
  }

  TEST_CASE("flow_table: a delayed final ACK counts only once released") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + std::vector<Row>{
                                   {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                   {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                   {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                               });
    const Row delayed{kClient, ".", 2002, 9002, 0, Role::kFinalAck, false, Verdict::kDelay, "slow"};
    const Classified c = h.send(wire, delayed);
    const FlowRef ref = c.flow;
    const nf::TcpSegment held = h.last_segment;
    CHECK(h.wait(kSettle + 500 * kMs) == 0);  // not acknowledged yet
    CHECK(h.table.release(ref, held, h.now));
    CHECK(h.wait(kSettle - 1) == 0);
    CHECK(h.wait(1) == 1);
    const Outcome& o = h.only();
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
    CHECK(name(o.timeline.back().verdict) == "delay");
    // The flow is gone: a late release is refused.
    CHECK_FALSE(h.table.release(ref, held, h.now));
  }

  TEST_CASE("flow_table: the timeline keeps how long a delayed segment was held") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + std::vector<Row>{{kClient, "F.", 2001, 9001, 0, Role::kFin1}});
    Row held_ack1{kServer, ".", 9001, 2002, 0, Role::kAck1, false, Verdict::kDelay, "slow"};
    held_ack1.delay_us = 300 * kMs;
    const Classified c = h.send(wire, held_ack1);
    const nf::TcpSegment held_segment = h.last_segment;
    // Released 312.4 ms later (the timer was late): the measured time is kept, in whole ms.
    h.now += 312'400;
    REQUIRE(h.table.release(c.flow, held_segment, h.now));
    // A second one, asked for 1.5 s, is still held when the outcome is built: the asked delay.
    Row held_fin2{kServer, "F.", 9001, 2002, 0, Role::kFin2, false, Verdict::kDelay, "slow"};
    held_fin2.delay_us = 1'500'400;
    h.send(wire, held_fin2);
    Row copied{kClient, ".", 2002, 9002, 0, Role::kAck, false, Verdict::kDuplicate, "twice"};
    copied.copies = 3;
    h.send(wire, copied);
    CHECK(h.finish() == 1);
    const Outcome& o = h.only();
    REQUIRE(o.timeline.size() == 6);
    const TimelineEntry& ack1 = o.timeline[3];
    CHECK(name(ack1.verdict) == "delay");
    REQUIRE(ack1.hold_ms.has_value());
    CHECK(*ack1.hold_ms == 312);
    CHECK(ack1.released);
    CHECK(ack1.copies == 0);
    const TimelineEntry& fin2 = o.timeline[4];
    REQUIRE(fin2.hold_ms.has_value());
    CHECK(*fin2.hold_ms == 1500);
    CHECK_FALSE(fin2.released);
    const TimelineEntry& copy = o.timeline[5];
    CHECK_FALSE(copy.hold_ms.has_value());
    CHECK(copy.copies == 3);
    // Entries that are neither delayed nor duplicated carry no amounts.
    CHECK_FALSE(o.timeline[2].hold_ms.has_value());
    CHECK(o.timeline[2].copies == 0);
  }

  TEST_CASE("flow_table: identical held segments are matched to their entries in order") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + std::vector<Row>{
                                   {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                   {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                   {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                               });
    // Every final ACK held 100 ms, then copied twice; the server retransmits fin2 meanwhile.
    Row held{kClient, ".", 2002, 9002, 0, Role::kFinalAck, false, Verdict::kDelay, "slow"};
    held.delay_us = 100 * kMs;
    held.copies = 2;
    const Classified first = h.send(wire, held);
    const nf::TcpSegment segment = h.last_segment;
    h.play(wire,
           {{kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kAccept, {}, 50 * kMs}});
    held.gap_us = 10 * kMs;
    h.send(wire, held);
    h.now += 41 * kMs;  // 101 ms after the first was held
    REQUIRE(h.table.release(first.flow, segment, h.now));
    h.now += 9 * kMs;  // 50 ms after the second
    REQUIRE(h.table.release(first.flow, segment, h.now));
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    REQUIRE(o.timeline.size() == 8);
    CHECK(*o.timeline[5].hold_ms == 101);
    CHECK(*o.timeline[7].hold_ms == 50);
    CHECK(o.timeline[5].released);
    CHECK(o.timeline[7].released);
    CHECK(o.timeline[5].copies == 2);
    CHECK(o.timeline[7].copies == 2);
    check_shape(o, Closer::kClient, TeardownKind::kFourWay, TeardownResult::kClean);
  }

  TEST_CASE("flow_table: amounts and lengths beyond a timeline entry's fields saturate") {
    Harness h;
    const Wire wire = wire_v4();
    // A BIG TCP segment keeps its length (up to 16 MiB - 1); a delay longer than any rule allows
    // is kept as 2^21 - 1 ms.
    h.play(wire, handshake() + std::vector<Row>{
                                   {kClient, "P.", 1001, 5001, 400'000, Role::kAck},
                                   {kClient, "F.", 401'001, 5001, 0, Role::kFin1},
                               });
    Row held{kServer, ".", 5001, 401'002, 0, Role::kAck1, false, Verdict::kDelay, "slow"};
    held.delay_us = 0xffffffffU;
    h.send(wire, held);
    h.send(wire, {kServer, "P.", 5001, 401'002, 20'000'000, Role::kDataAfterFin});
    CHECK(h.finish() == 1);
    const Outcome& o = h.only();
    REQUIRE(o.timeline.size() == 6);
    CHECK(o.timeline[2].len == 400'000);
    CHECK(*o.timeline[4].hold_ms == (1U << 21) - 1);
    CHECK(o.timeline[5].len == (1U << 24) - 1);
  }

  TEST_CASE("flow_table: a reset verdict replaces the segment with an RST from its sender") {
    Harness h;
    h.play(wire_v4(), handshake() + std::vector<Row>{
                                        {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                        {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                        {kServer, "F.", 9001, 2002, 0, Role::kFin2, false,
                                         Verdict::kReset, "rst-fin2"},
                                        // Stray segments land in the timeline of the reset flow.
                                        {kServer, "F.", 9001, 2002, 0, Role::kFin2, true},
                                        {kClient, "R", 2002, 0, 0, Role::kRst},
                                    });
    CHECK(h.wait(kSettle - 2 * kMs - 1) == 0);
    CHECK(h.wait(1) == 1);
    const Outcome& o = h.only();
    CHECK(name(o.result) == "reset");
    REQUIRE(o.rst.has_value());
    CHECK(name(o.rst->from) == "server");
    CHECK(name(o.rst->stage) == "fin_wait");
    CHECK(o.timeline.size() == 7);
    CHECK(name(o.timeline[4].verdict) == "reset");
    CHECK(o.fin_retransmits_server == 1);
    REQUIRE(o.actions.size() == 1);
    CHECK(name(o.actions[0].action) == "reset");
    CHECK(name(o.actions[0].role) == "fin2");
  }

  TEST_CASE("flow_table: a dropped RST does not reset the flow") {
    Harness h;
    h.play(wire_v4(), handshake() + std::vector<Row>{
                                        {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                        {kServer, "R", 9001, 0, 0, Role::kRst, false,
                                         Verdict::kDrop, "eat-rst"},
                                    });
    CHECK(h.wait(kSettle) == 0);
    CHECK(h.wait(kLinger) == 1);
    CHECK(name(h.only().result) == "timeout");
    CHECK_FALSE(h.only().rst.has_value());
  }

  TEST_CASE("flow_table: the timeline keeps its head and tail and counts what it left out") {
    Harness h;
    std::vector<Row> rows = handshake() + std::vector<Row>{
                                              {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                              {kServer, ".", 9001, 2002, 0, Role::kAck1},
                                              {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                          };
    for (int i = 0; i < 20; ++i) {
      rows.push_back({kClient, ".", 2002, 9002, 0, Role::kFinalAck, false, Verdict::kDrop, "drop"});
      rows.push_back({kServer, "F.", 9001, 2002, 0, Role::kFin2, true});
    }
    rows.push_back({kClient, "R", 2002, 0, 0, Role::kRst});
    h.play(wire_v4(), rows);
    CHECK(h.wait(kSettle) == 1);
    const Outcome& o = h.only();
    const std::size_t total = rows.size();  // 46
    REQUIRE(o.timeline.size() == kTimelineCapacity);
    CHECK(o.timeline_dropped == total - kTimelineCapacity);
    CHECK(o.segments == total);
    CHECK(name(o.timeline.front().role) == "syn");
    CHECK(name(o.timeline.back().role) == "rst");
    for (std::size_t i = 1; i < o.timeline.size(); ++i) {
      CHECK(o.timeline[i].t_us > o.timeline[i - 1].t_us);
    }
    REQUIRE(o.actions.size() == 1);
    CHECK(o.actions[0].count == 20);
  }

  TEST_CASE("flow_table: actions are grouped by rule and role and action") {
    Harness h;
    std::vector<Row> rows =
        handshake() +
        std::vector<Row>{
            {kClient, "F.", 2001, 9001, 0, Role::kFin1, false, Verdict::kDelay, "slow-fin"},
            {kClient, "F.", 2001, 9001, 0, Role::kFin1, true, Verdict::kDuplicate, "dup-fin"},
            {kServer, ".", 9001, 2002, 0, Role::kAck1, false, Verdict::kAccept, "watch"},
            {kServer, "F.", 9001, 2002, 0, Role::kFin2, false, Verdict::kAccept, "watch"},
        };
    // More distinct triples than a flow has slots for.
    const std::vector<std::string> rule_names = {"r0", "r1", "r2", "r3", "r4",
                                                 "r5", "r6", "r7", "r8"};
    for (const std::string& rule : rule_names) {
      rows.push_back({kServer, "F.", 9001, 2002, 0, Role::kFin2, true, Verdict::kAccept, rule});
    }
    h.play(wire_v4(), rows);
    h.finish();
    const Outcome& o = h.only();
    REQUIRE(o.actions.size() == FlowTable::kActionSlots);
    CHECK(o.actions[0].rule == "slow-fin");
    CHECK(name(o.actions[0].action) == "delay");
    CHECK(o.actions[1].rule == "dup-fin");
    CHECK(name(o.actions[1].action) == "duplicate");
    CHECK(o.actions[2].rule == "watch");
    CHECK(name(o.actions[2].role) == "ack1");
    CHECK(o.actions[3].rule == "watch");
    CHECK(name(o.actions[3].role) == "fin2");
    CHECK(o.actions_dropped == 5);
  }

  TEST_CASE("flow_table: the flows listing names each flow's stage") {
    Harness h;
    h.play(wire_v4(40001), handshake());
    h.play(wire_v4(40002),
           handshake() + std::vector<Row>{{kClient, "F.", 2001, 9001, 0, Role::kFin1}});
    h.play(wire_v4(40003), handshake() + std::vector<Row>{
                                             {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                             {kServer, "F.", 9001, 2002, 0, Role::kFin2},
                                         });
    h.play(wire_v4(40004), handshake() + four_way_by_client());
    h.play(wire_v4(40005), handshake() + std::vector<Row>{{kServer, "R", 5001, 0, 0, Role::kRst}});
    std::map<std::uint16_t, std::string> stages;
    h.table.for_each_flow([&](const FlowSummary& flow) {
      stages[flow.client.port] = std::string(flow.stage);
      CHECK(flow.sides_known);
      CHECK(flow.segments >= 2);
    });
    CHECK(stages == std::map<std::uint16_t, std::string>{{40001, "before_fin"},
                                                         {40002, "fin_wait"},
                                                         {40003, "last_ack"},
                                                         {40004, "time_wait"},
                                                         {40005, "reset"}});
  }

  TEST_CASE("flow_table: IPv4 and IPv6 flows with the same ports are distinct") {
    Harness h;
    const auto v4 = h.play(wire_v4(), handshake());
    const auto v6 = h.play(wire_v6(), handshake());
    CHECK(v4[0].flow_id != v6[0].flow_id);
    CHECK(h.table.size() == 2);
  }

  TEST_CASE("flow_table: thousands of flows come and go without losing one (index growth)") {
    TrackerConfig config = Harness::default_config();
    config.max_flows = 20000;
    Harness h(config);
    std::map<std::uint32_t, std::uint64_t> ids;  // key: flow number
    auto wire_of = [](std::uint32_t n) {
      Wire wire = n % 3 == 0 ? wire_v6(static_cast<std::uint16_t>(1024 + n % 60000), 443)
                             : wire_v4(static_cast<std::uint16_t>(1024 + n % 60000), 80);
      wire.client.bytes[wire.client.family == 4 ? 3 : 14] = static_cast<std::uint8_t>(n / 60000);
      return wire;
    };
    for (std::uint32_t n = 0; n < 12000; ++n) {
      ids[n] = h.send(wire_of(n), {kClient, "S", n, 0, 0, Role::kSyn}).flow_id;
    }
    CHECK(h.table.size() == 12000);
    // Reset every other flow and let it go.
    for (std::uint32_t n = 0; n < 12000; n += 2) {
      h.send(wire_of(n), {kClient, "R", n + 1, 0});
    }
    h.wait(kSettle);
    CHECK(h.outcomes.size() == 6000);
    CHECK(h.table.size() == 6000);
    // The rest are all still found.
    for (std::uint32_t n = 1; n < 12000; n += 2) {
      const Classified c = h.send(wire_of(n), {kServer, "S.", 7, n + 1, 0, Role::kSynAck});
      CHECK(c.flow_id == ids[n]);
    }
    CHECK(h.table.counters().flows_created == 12000);
    CHECK(h.table.memory_bytes() >= 12000 * FlowTable::flow_record_bytes());
  }

  TEST_CASE("flow_table: per-flow record stays within 1 KiB, index included") {
    MESSAGE("sizeof flow record: " << FlowTable::flow_record_bytes() << " bytes");
    // The index keeps its load at or under 1/2 with 8-byte slots: 16 bytes a flow.
    CHECK(FlowTable::flow_record_bytes() + 16 <= 1024);
  }

  TEST_CASE("flow_table: time that goes backwards is taken as the latest time seen") {
    Harness h;
    const Wire wire = wire_v4();
    h.play(wire, handshake() + four_way_by_client());
    h.now -= 10'000'000;  // a caller's clock glitch
    h.play(wire, {{kServer, ".", 9002, 2002, 0, Role::kAck1}});
    h.now += 10'000'000;
    CHECK(h.wait(kSettle) == 1);
    CHECK(h.only().teardown_us >= 0);
  }

  TEST_CASE("flow_table: commit of an untracked segment is harmless") {
    Harness h;
    const nf::TcpSegment s = Harness::segment(wire_v4(), {kClient, ".", 1, 2});
    const Classified c = h.table.classify(s, h.now);
    h.table.commit(c, s, Verdict::kDrop, "rule", h.now);
    CHECK(h.table.size() == 0);
    CHECK(h.table.counters().segments == 1);
  }

}  // TEST_SUITE
}  // namespace finwave::proxy::test
