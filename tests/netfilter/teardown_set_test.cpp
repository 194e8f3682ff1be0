#include "netfilter/teardown_set.hpp"

#include <doctest/doctest.h>

#include <string>

namespace finwave::nf {
namespace {

TEST_SUITE("netfilter") {
  TEST_CASE("teardown_set: names carry the queue and the family") {
    CHECK(teardown_set_name(0, 4) == "finwave-q0-v4");
    CHECK(teardown_set_name(65535, 6) == "finwave-q65535-v6");
  }

  TEST_CASE("teardown_set: the entry count is read from ipset's terse listing") {
    // As `ipset list -terse` prints it (ipset 7.17).
    const std::string listing =
        "Name: finwave-q0-v4\n"
        "Type: hash:ip,port,ip\n"
        "Revision: 6\n"
        "Header: family inet hashsize 1024 maxelem 1048576 timeout 180 bucketsize 12\n"
        "Size in memory: 1808\n"
        "References: 2\n"
        "Number of entries: 1001\n";
    CHECK(parse_set_entries(listing) == 1001U);
    CHECK(parse_set_entries("Number of entries: 0") == 0U);
    CHECK(parse_set_entries("Number of entries:   7\nMembers:\n") == 7U);
  }

  TEST_CASE("teardown_set: a listing without a readable count gives nothing") {
    CHECK_FALSE(parse_set_entries("").has_value());
    CHECK_FALSE(parse_set_entries("Name: x\nReferences: 0\n").has_value());
    CHECK_FALSE(parse_set_entries("Number of entries: \n").has_value());
    CHECK_FALSE(parse_set_entries("Number of entries: -3\n").has_value());
    CHECK_FALSE(parse_set_entries("Number of entries: 12abc\n").has_value());
    CHECK_FALSE(parse_set_entries("Number of entries: 99999999999999999999999\n").has_value());
  }
}

}  // namespace
}  // namespace finwave::nf
