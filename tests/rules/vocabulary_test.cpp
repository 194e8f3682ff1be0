#include "rules/vocabulary.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rules/role.hpp"
#include "rules/rule.hpp"

namespace finwave::rules {
namespace {

enum class Wave : std::uint8_t { kFirst, kSecond, kThird, kFourth };

constexpr std::string_view to_string(Wave wave) noexcept {
  switch (wave) {
    case Wave::kFirst:
      return "first";
    case Wave::kSecond:
      return "second";
    case Wave::kThird:
      return "third";
    case Wave::kFourth:
      return "fourth";
  }
  return "";
}
using WaveNames = Vocabulary<Wave, Wave::kFourth>;

// The table is built at compile time: parsing works in constant expressions.
static_assert(WaveNames::kSize == 4);
static_assert(WaveNames::parse("third") == Wave::kThird);
static_assert(!WaveNames::parse("fifth").has_value());
static_assert(RoleNames::parse("final_ack") == Role::kFinalAck);

template <class Names>
std::vector<std::string> names_of() {
  const auto names = Names::names();
  return {names.begin(), names.end()};
}

}  // namespace

TEST_SUITE("rules") {
  TEST_CASE("vocabulary: names in enumerator order, parsed back, joined for messages") {
    CHECK(names_of<WaveNames>() == std::vector<std::string>{"first", "second", "third", "fourth"});
    for (const std::string_view name : WaveNames::names()) {
      const auto wave = WaveNames::parse(name);
      REQUIRE(wave.has_value());
      CHECK(to_string(*wave) == name);
    }
    CHECK(WaveNames::joined() == "first, second, third, fourth");
    CHECK(WaveNames::joined("|") == "first|second|third|fourth");
    CHECK_FALSE(WaveNames::parse("").has_value());
    CHECK_FALSE(WaveNames::parse("First").has_value());
    CHECK_FALSE(WaveNames::parse("first ").has_value());
  }

  // The wire names are the rule files' and the outcomes' contract: this table pins them.
  TEST_CASE("vocabulary: roles, sides, actions and senders keep their wire names") {
    CHECK(names_of<RoleNames>() == std::vector<std::string>{"syn", "syn_ack", "fin1", "ack1",
                                                            "fin2", "final_ack", "data_after_fin",
                                                            "rst", "ack", "any"});
    CHECK(RoleNames::kSize == static_cast<std::size_t>(kSegmentRoleCount) + 1);
    CHECK(names_of<SideNames>() == std::vector<std::string>{"client", "server"});
    CHECK(names_of<ActionNames>() ==
          std::vector<std::string>{"pass", "drop", "delay", "duplicate", "reset"});
    CHECK(names_of<SenderNames>() ==
          std::vector<std::string>{"either", "client", "server", "active", "passive"});
    CHECK(ActionNames::parse("drop") == Action::kDrop);
    CHECK_FALSE(ActionNames::parse("Drop").has_value());
    CHECK(SenderNames::parse("passive") == Sender::kPassiveCloser);
    CHECK(to_string(peer_of(Side::kClient)) == "server");
  }
}

}  // namespace finwave::rules
