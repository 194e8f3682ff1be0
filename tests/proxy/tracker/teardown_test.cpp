#include "proxy/tracker/teardown.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <string_view>

#include "segment_script.hpp"

namespace finwave::proxy::test {

TEST_SUITE("proxy") {
  TEST_CASE("teardown: every vocabulary value has its stable name") {
    struct Case {
      std::string_view got;
      const char* want;
    };
    const Case cases[] = {
        {to_string(Verdict::kAccept), "accept"},
        {to_string(Verdict::kDrop), "drop"},
        {to_string(Verdict::kDelay), "delay"},
        {to_string(Verdict::kDuplicate), "duplicate"},
        {to_string(Verdict::kReset), "reset"},
        {to_string(Closer::kNone), "none"},
        {to_string(Closer::kClient), "client"},
        {to_string(Closer::kServer), "server"},
        {to_string(Closer::kBoth), "both"},
        {to_string(TeardownKind::kFourWay), "four_way"},
        {to_string(TeardownKind::kThreeWay), "three_way"},
        {to_string(TeardownKind::kSimultaneous), "simultaneous"},
        {to_string(TeardownKind::kReset), "reset"},
        {to_string(TeardownKind::kIncomplete), "incomplete"},
        {to_string(TeardownResult::kClean), "clean"},
        {to_string(TeardownResult::kReset), "reset"},
        {to_string(TeardownResult::kTimeout), "timeout"},
        {to_string(Stage::kBeforeFin), "before_fin"},
        {to_string(Stage::kFinWait), "fin_wait"},
        {to_string(Stage::kClosing), "closing"},
        {to_string(Stage::kLastAck), "last_ack"},
        {to_string(Stage::kTimeWait), "time_wait"},
        {to_string(Stage::kAfterClose), "after_close"},
        {to_string(EndReason::kSettled), "settle"},
        {to_string(EndReason::kRst), "rst"},
        {to_string(EndReason::kLinger), "linger"},
        {to_string(EndReason::kNewSyn), "new_syn"},
        {to_string(EndReason::kShutdown), "shutdown"},
    };
    for (const Case& c : cases) {
      CHECK(std::string(c.got) == c.want);
    }
  }

  TEST_CASE("teardown: every vocabulary parses its own names back, and only those") {
    const auto round_trips = [](auto names) {
      using Names = decltype(names);
      for (const std::string_view name : Names::names()) {
        const auto value = Names::parse(name);
        REQUIRE(value.has_value());
        CHECK(to_string(*value) == name);
      }
      CHECK_FALSE(Names::parse("").has_value());
      CHECK_FALSE(Names::parse("unknown").has_value());
    };
    round_trips(VerdictNames{});
    round_trips(CloserNames{});
    round_trips(TeardownKindNames{});
    round_trips(TeardownResultNames{});
    round_trips(StageNames{});
    round_trips(EndReasonNames{});
    CHECK(TeardownResultNames::joined() == "clean, reset, timeout");
    CHECK(CloserNames::joined(" | ") == "none | client | server | both");
    CHECK_FALSE(TeardownKindNames::parse("FOUR_WAY").has_value());
  }

  TEST_CASE("teardown: endpoints print as addr:port with IPv6 in brackets") {
    rules::Endpoint v4;
    v4.family = 4;
    v4.address = ipv4(198, 18, 1, 2).bytes;
    v4.port = 40000;
    CHECK(to_string(v4) == "198.18.1.2:40000");
    rules::Endpoint v6;
    v6.family = 6;
    v6.address = ipv6(1, 2).bytes;
    v6.port = 443;
    CHECK(to_string(v6) == "[2001:db8:1::2]:443");
  }

  TEST_CASE("teardown: endpoints are read back in to_string form, and nothing else") {
    using namespace std::string_view_literals;
    struct Case {
      std::string_view text;
      const char* normalized;  // nullptr: not an endpoint.
    };
    const Case cases[] = {
        {"198.18.1.2:40000", "198.18.1.2:40000"},
        {"0.0.0.0:0", "0.0.0.0:0"},
        {"198.18.1.2:65535", "198.18.1.2:65535"},
        {"198.18.1.2:00080", "198.18.1.2:80"},
        {"[2001:db8:1::2]:5000", "[2001:db8:1::2]:5000"},
        {"[2001:0db8:0001:0000::2]:05000", "[2001:db8:1::2]:5000"},
        {"[::ffff:198.18.1.2]:1", "[::ffff:198.18.1.2]:1"},
        {"198.18.1.2:65536", nullptr},
        {"198.18.1.2:000080", nullptr},
        {"198.18.1.2:", nullptr},
        {"198.18.1.2:-1", nullptr},
        {"198.18.1.2:+80", nullptr},
        {"198.18.1.2: 80", nullptr},
        {"198.18.1:80", nullptr},
        {"198.18.1.2", nullptr},
        {"localhost:80", nullptr},
        {"2001:db8::1:80", nullptr},
        {"[2001:db8::1]", nullptr},
        {"[2001:db8::1]80", nullptr},
        {"[198.18.1.2]:80", nullptr},
        {"198.18.1.2\0junk:80"sv, nullptr},
        {"", nullptr},
        {":", nullptr},
        {"[]:", nullptr},
    };
    for (const Case& c : cases) {
      CAPTURE(c.text);
      const std::optional<rules::Endpoint> endpoint = endpoint_from_string(c.text);
      REQUIRE(endpoint.has_value() == (c.normalized != nullptr));
      if (endpoint) CHECK(to_string(*endpoint) == c.normalized);
    }
  }

  TEST_CASE("teardown: bare addresses are read with port 0") {
    const auto v4 = address_from_string("198.18.2.2");
    REQUIRE(v4.has_value());
    CHECK(to_string(*v4) == "198.18.2.2:0");
    const auto v6 = address_from_string("2001:db8:2::2");
    REQUIRE(v6.has_value());
    CHECK(to_string(*v6) == "[2001:db8:2::2]:0");
    CHECK_FALSE(address_from_string("198.18.2.2:80").has_value());
    CHECK_FALSE(address_from_string("[2001:db8:2::2]").has_value());
    CHECK_FALSE(address_from_string("").has_value());
  }

  TEST_CASE("teardown: serial-number comparisons hold across the wrap") {
    struct Case {
      std::uint32_t a;
      std::uint32_t b;
      bool before;
    };
    const Case cases[] = {
        {1, 2, true},
        {2, 1, false},
        {5, 5, false},
        {0xffffffffU, 0, true},
        {0, 0xffffffffU, false},
        {0xfffffff0U, 0x10, true},
        {0x7fffffffU, 0, false},
        {0, 0x7fffffffU, true},
    };
    for (const Case& c : cases) {
      INFO(c.a << " vs " << c.b);
      CHECK(seq_before(c.a, c.b) == c.before);
      CHECK(seq_after(c.b, c.a) == c.before);
      CHECK(seq_at_or_after(c.a, c.b) == !c.before);
    }
  }

}  // TEST_SUITE
}  // namespace finwave::proxy::test
