#include "rules/rule.hpp"

#include <doctest/doctest.h>

#include <string>

#include "rules/config_error.hpp"
#include "rules/rule_loader.hpp"
#include "rules/suggest.hpp"

namespace fr = finwave::rules;
using fr::Cidr;
using fr::Endpoint;

namespace {

Endpoint v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  Endpoint endpoint;
  endpoint.family = 4;
  endpoint.address = {a, b, c, d};
  return endpoint;
}

Endpoint v6(std::initializer_list<std::uint8_t> bytes) {
  Endpoint endpoint;
  endpoint.family = 6;
  std::size_t i = 0;
  for (std::uint8_t byte : bytes) {
    endpoint.address[i++] = byte;
  }
  return endpoint;
}

std::string describe_text(const char* toml) {
  return fr::describe(fr::parse_single_rule(toml, "test"));
}

}  // namespace

TEST_SUITE("rules") {
  TEST_CASE("rule: cidr parses IPv4 and IPv6 prefixes and bare addresses") {
    auto net = Cidr::parse("198.18.0.0/15");
    REQUIRE(net.has_value());
    CHECK(net->family == 4);
    CHECK(net->prefix_length == 15);
    CHECK(fr::to_string(*net) == "198.18.0.0/15");

    auto host = Cidr::parse("198.18.1.2");
    REQUIRE(host.has_value());
    CHECK(fr::to_string(*host) == "198.18.1.2/32");

    auto six = Cidr::parse("2001:db8::/32");
    REQUIRE(six.has_value());
    CHECK(six->family == 6);
    CHECK(fr::to_string(*six) == "2001:db8::/32");
    CHECK(fr::to_string(*Cidr::parse("2001:db8:1::2")) == "2001:db8:1::2/128");
    CHECK(fr::to_string(*Cidr::parse("0.0.0.0/0")) == "0.0.0.0/0");
  }

  TEST_CASE("rule: cidr clears host bits") {
    CHECK(fr::to_string(*Cidr::parse("198.18.1.2/15")) == "198.18.0.0/15");
    CHECK(fr::to_string(*Cidr::parse("2001:db8:1::2/33")) == "2001:db8::/33");
  }

  TEST_CASE("rule: cidr contains") {
    const Cidr net = *Cidr::parse("198.18.0.0/15");
    CHECK(net.contains(v4(198, 18, 1, 2)));
    CHECK(net.contains(v4(198, 19, 255, 255)));
    CHECK_FALSE(net.contains(v4(198, 20, 0, 1)));
    CHECK_FALSE(net.contains(v4(10, 0, 0, 1)));
    CHECK_FALSE(net.contains(v6({0x20, 0x01, 0x0d, 0xb8})));

    const Cidr six = *Cidr::parse("2001:db8:2::/48");
    CHECK(six.contains(v6({0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})));
    CHECK_FALSE(six.contains(v6({0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01})));
    CHECK_FALSE(six.contains(v4(198, 18, 2, 2)));

    CHECK(Cidr::parse("0.0.0.0/0")->contains(v4(1, 2, 3, 4)));
    CHECK(Cidr::parse("::/0")->contains(v6({0xfe, 0x80})));
    CHECK(Cidr::parse("198.18.1.2")->contains(v4(198, 18, 1, 2)));
    CHECK_FALSE(Cidr::parse("198.18.1.2")->contains(v4(198, 18, 1, 3)));
  }

  TEST_CASE("rule: cidr explains what is wrong with bad text") {
    struct Case {
      const char* text;
      const char* why;
    };
    const Case cases[] = {
        {"198.18.0.0/33", "'198.18.0.0/33': prefix length /33 is too long for IPv4 (0..32)"},
        {"2001:db8::/129", "'2001:db8::/129': prefix length /129 is too long for IPv6 (0..128)"},
        {"198.18.0.0/99999999999",
         "'198.18.0.0/99999999999': prefix length /99999999999 is too "
         "long for IPv4 (0..32)"},
        {"198.18.0.256/24", "'198.18.0.256/24': '198.18.0.256' is not an IPv4 address"},
        {"2001:db8:::1", "'2001:db8:::1': '2001:db8:::1' is not an IPv6 address"},
        {"localhost", "'localhost': 'localhost' is not an IPv4 address"},
        {"198.18.0.0/", "'198.18.0.0/': missing prefix length after '/'"},
        {"198.18.0.0/x", "'198.18.0.0/x': prefix length 'x' is not a number"},
        {"198.18.0.0/-1", "'198.18.0.0/-1': prefix length '-1' is not a number"},
        {"", "empty address; write an address or prefix such as 198.18.0.0/15"},
    };
    for (const Case& c : cases) {
      INFO(std::string(c.text));
      std::string why;
      CHECK_FALSE(Cidr::parse(c.text, &why).has_value());
      CHECK(why == c.why);
    }
    // Found by tests/fuzz (regressions/rule_loader/control_character_in_address.toml): control
    // characters were echoed raw, and inet_pton() accepted what came before a NUL.
    std::string why;
    CHECK_FALSE(Cidr::parse(std::string_view("198.18.0.1\0x", 12), &why).has_value());
    CHECK(why == "'198.18.0.1\\u0000x': '198.18.0.1\\u0000x' is not an IPv4 address");
    CHECK_FALSE(Cidr::parse("\t198.18.0.1/32", &why).has_value());
    CHECK(why == "'\\u0009198.18.0.1/32': '\\u0009198.18.0.1' is not an IPv4 address");
  }

  TEST_CASE("rule: describe gives a one-line summary") {
    CHECK(describe_text("name = 'a'\nrole = 'final_ack'\nfrom = 'client'\nfirst = 1\n"
                        "action = 'drop'") == "drop final_ack from client, first 1 per connection");
    CHECK(describe_text("name = 'a'\naction = 'pass'") == "pass any segment");
    CHECK(describe_text("name = 'a'\nrole = 'fin1'\naction = 'delay'\ndelay_ms = 50") ==
          "delay fin1 by 50 ms");
    CHECK(describe_text("name = 'a'\nrole = 'fin1'\naction = 'delay'\ndelay_ms = 400\n"
                        "jitter_ms = 12.5\ncopies = 2\nspacing_ms = 10\nfrom = 'active'") ==
          "delay fin1 from the active closer by 400 ms ± 12.5 ms, then 2 copies 10 ms apart");
    CHECK(describe_text("name = 'a'\nrole = 'fin2'\naction = 'duplicate'") ==
          "duplicate fin2 (1 copy)");
    CHECK(describe_text("name = 'a'\nrole = 'fin2'\naction = 'duplicate'\ncopies = 1\n"
                        "spacing_ms = 3") == "duplicate fin2 (1 copy after 3 ms)");
    CHECK(describe_text("name = 'a'\nrole = 'fin2'\nfrom = 'passive'\naction = 'reset'\nnth = 2") ==
          "reset fin2 from the passive closer (replace it with RST), only the 2nd per connection");
    CHECK(describe_text("name = 'a'\nrole = 'fin1'\nretx = true\nafter = 3\naction = 'drop'\n"
                        "probability = 0.25") ==
          "drop fin1 (retransmissions only), after the first 3 per connection, with "
          "probability 0.25");
    CHECK(describe_text("name = 'a'\nretx = false\nports = [80, 443]\nclient_ports = 40000\n"
                        "server_ports = [5432]\naddresses = '198.18.0.0/15'\n"
                        "client_addresses = ['198.18.1.2', '2001:db8:1::/48']\n"
                        "server_addresses = '198.18.2.2'\naction = 'drop'") ==
          "drop any segment (first transmissions only) on ports 80, 443 on client port 40000 on "
          "server port 5432 at 198.18.0.0/15 with client in 198.18.1.2/32, 2001:db8:1::/48 with "
          "server in 198.18.2.2/32");
    CHECK(describe_text("name = 'a'\nrole = 'final_ack'\nnth = 11\naction = 'drop'") ==
          "drop final_ack, only the 11th per connection");
    CHECK(describe_text("name = 'a'\nrole = 'final_ack'\nnth = 23\naction = 'drop'") ==
          "drop final_ack, only the 23rd per connection");
  }

  TEST_CASE("rule: format_ms drops trailing zeros and never uses exponents") {
    CHECK(fr::format_ms(400) == "400");
    CHECK(fr::format_ms(0.25) == "0.25");
    CHECK(fr::format_ms(600000) == "600000");
    CHECK(fr::format_ms(0) == "0");
  }

  TEST_CASE("rule: closest_match suggests obvious typos only") {
    const std::vector<std::string_view> keys = {"action", "delay_ms", "probability", "ports",
                                                "enabled"};
    CHECK(fr::closest_match("acton", keys) == "action");
    CHECK(fr::closest_match("ACTION", keys) == "action");
    CHECK(fr::closest_match("port", keys) == "ports");
    CHECK(fr::closest_match("enable", keys) == "enabled");
    CHECK(fr::closest_match("delay_us", keys) == "delay_ms");
    CHECK(fr::closest_match("prob", keys) == "probability");
    CHECK_FALSE(fr::closest_match("colour", keys).has_value());
    CHECK_FALSE(fr::closest_match("x", keys).has_value());
  }

  TEST_CASE("config error: what() reads FILE:LINE:COL: message") {
    const fr::ConfigError positioned("rules.toml", 3, 7, "bad thing");
    CHECK(std::string(positioned.what()) == "rules.toml:3:7: bad thing");
    CHECK(positioned.file == "rules.toml");
    CHECK(positioned.line == 3);
    CHECK(positioned.column == 7);
    CHECK(positioned.message == "bad thing");

    const fr::ConfigError file_only("rules.toml", 0, 0, "cannot read");
    CHECK(std::string(file_only.what()) == "rules.toml: cannot read");

    const fr::ConfigError bare("no rule named 'x'");
    CHECK(std::string(bare.what()) == "no rule named 'x'");
    CHECK(bare.file.empty());
    CHECK(bare.line == 0);
  }
}
