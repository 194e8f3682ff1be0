#include "proxy/control/outcome_filter.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace finwave::proxy::test {
namespace {

using Json = nlohmann::json;

}  // namespace

TEST_SUITE("outcome_filter") {
  TEST_CASE("outcome_filter: fields, flows and their matches") {
    Outcome o;
    o.id = 17;
    o.client.family = 4;
    o.client.address = {198, 18, 1, 2};
    o.client.port = 40000;
    o.server.family = 4;
    o.server.address = {198, 18, 2, 2};
    o.server.port = 5000;
    o.closer = Closer::kClient;
    o.kind = TeardownKind::kThreeWay;
    o.result = TeardownResult::kTimeout;
    o.actions.push_back(ActionRecord{"lose-final-ack", rules::Role::kFinalAck, Verdict::kDrop, 3});

    OutcomeFilter f;
    CHECK(f.empty());
    CHECK(f.matches(o));
    f.result = "timeout";
    f.kind = "three_way";
    f.closer = "client";
    f.rule = "lose-final-ack";
    CHECK(f.matches(o));
    f.rule = "other";
    CHECK_FALSE(f.matches(o));
    f = OutcomeFilter{};
    f.result = "clean";
    CHECK_FALSE(f.matches(o));

    struct FlowCase {
      const char* flow;
      bool matches;
    };
    const FlowCase flows[] = {
        {"17", true},
        {"18", false},
        {"198.18.1.2", true},
        {"198.18.2.2", true},
        {"198.18.1.3", false},
        {"198.18.1.2:40000", true},
        {"198.18.2.2:5000", true},
        {"198.18.1.2:5000", false},
        {"2001:db8:1::2", false},
    };
    for (const FlowCase& c : flows) {
      CAPTURE(c.flow);
      OutcomeFilter ff;
      REQUIRE(ff.set_flow(c.flow));
      CHECK(ff.matches(o) == c.matches);
    }

    Outcome v6 = o;
    v6.client.family = 6;
    v6.client.address = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    v6.server.family = 6;
    v6.server.address = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    const FlowCase flows6[] = {
        {"2001:db8:1::2", true},        {"2001:0db8:0001:0000::2", true},
        {"[2001:db8:2::2]:5000", true}, {"[2001:db8:2::2]:5001", false},
        {"198.18.1.2", false},
    };
    for (const FlowCase& c : flows6) {
      CAPTURE(c.flow);
      OutcomeFilter ff;
      REQUIRE(ff.set_flow(c.flow));
      CHECK(ff.matches(v6) == c.matches);
    }
    OutcomeFilter keep;
    REQUIRE(keep.set_flow("17"));
    CHECK_FALSE(keep.set_flow("not a flow"));
    CHECK(keep.flow == "17");
    CHECK(keep.matches(o));
  }
}

}  // namespace finwave::proxy::test
