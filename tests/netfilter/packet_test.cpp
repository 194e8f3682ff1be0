#include "netfilter/packet.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "packet_builder.hpp"

namespace finwave::nf {
namespace {

using test::PacketBuilder;
namespace ext = test::ipv6_ext;
using namespace tcp_flag;

ParseError parse(const std::vector<std::uint8_t>& bytes, TcpSegment& out) {
  return parse_tcp_segment(std::span<const std::uint8_t>(bytes.data(), bytes.size()), out);
}

/// What every successfully parsed segment must satisfy, whatever the input.
void check_consistent(const TcpSegment& s, std::size_t size) {
  CHECK(s.src.family == s.dst.family);
  CHECK((s.src.family == 4 || s.src.family == 6));
  CHECK(s.tcp_header_len >= 20);
  CHECK(s.tcp_header_len <= 60);
  CHECK(s.tcp_header_len % 4 == 0);
  CHECK(std::size_t{s.ip_header_len} + s.tcp_header_len + s.payload_len <= size);
  CHECK(s.options.sack_blocks <= 4);
  CHECK(s.options.window_scale <= 14);
}

}  // namespace

TEST_SUITE("netfilter") {
  TEST_CASE(
      "packet: parses an IPv4 SYN with MSS and window scale and SACK-permitted and timestamps") {
    const auto bytes = PacketBuilder::ipv4()
                           .ports(40000, 5432)
                           .seq(0x01020304)
                           .ack(0)
                           .flags(kSyn)
                           .window(64240)
                           .mss(1460)
                           .sack_permitted()
                           .timestamps(0xaabbccdd, 0)
                           .nop()
                           .window_scale(7)
                           .build();
    TcpSegment s;
    REQUIRE(parse(bytes, s) == ParseError::kNone);
    CHECK(to_string(s.src) == "198.18.1.2");
    CHECK(to_string(s.dst) == "198.18.2.2");
    CHECK(s.src_port == 40000);
    CHECK(s.dst_port == 5432);
    CHECK(s.seq == 0x01020304U);
    CHECK(s.ack == 0U);
    CHECK(s.flags == kSyn);
    CHECK(s.window == 64240);
    CHECK(s.ip_header_len == 20);
    CHECK(s.tcp_header_len == 40);
    CHECK(s.payload_len == 0U);
    CHECK(s.seq_len() == 1U);
    CHECK(s.options.mss == 1460);
    CHECK(s.options.window_scale == 7);
    CHECK(s.options.sack_permitted);
    CHECK(s.options.has_timestamps);
    CHECK(s.options.ts_value == 0xaabbccddU);
    CHECK(s.options.ts_echo == 0U);
    CHECK(s.options.sack_blocks == 0);
  }

  TEST_CASE("packet: parses an IPv4 FIN-ACK with payload and IP options and DF set") {
    const auto bytes = PacketBuilder::ipv4()
                           .flags(kFin | kAck | kPsh)
                           .ip_options(8)
                           .fragment(false, 0, /*dont_fragment=*/true)
                           .payload(100)
                           .build();
    TcpSegment s;
    REQUIRE(parse(bytes, s) == ParseError::kNone);
    CHECK(s.ip_header_len == 28);
    CHECK(s.tcp_header_len == 20);
    CHECK(s.payload_len == 100U);
    CHECK(s.seq_len() == 101U);
    CHECK(s.has(kFin));
    CHECK(!s.has(kSyn));
    CHECK(s.options.mss == 0);
    CHECK(s.options.window_scale == -1);
    CHECK(!s.options.has_timestamps);
  }

  TEST_CASE("packet: parses an IPv6 segment with timestamps and SACK blocks") {
    const auto bytes = PacketBuilder::ipv6()
                           .src("2001:db8:1::2")
                           .dst("2001:db8:2::2")
                           .ports(80, 40000)
                           .flags(kAck)
                           .nop()
                           .nop()
                           .timestamps(1, 2)
                           .nop()
                           .nop()
                           .sack({{100, 200}, {300, 400}, {500, 600}})
                           .payload(10)
                           .build();
    TcpSegment s;
    REQUIRE(parse(bytes, s) == ParseError::kNone);
    CHECK(to_string(s.src) == "2001:db8:1::2");
    CHECK(to_string(s.dst) == "2001:db8:2::2");
    CHECK(s.src.family == 6);
    CHECK(s.ip_header_len == 40);
    CHECK(s.tcp_header_len == 60);
    CHECK(s.payload_len == 10U);
    CHECK(s.options.has_timestamps);
    CHECK(s.options.ts_value == 1U);
    CHECK(s.options.ts_echo == 2U);
    CHECK(s.options.sack_blocks == 3);
  }

  TEST_CASE("packet: counts four SACK blocks") {
    const auto bytes =
        PacketBuilder::ipv4().nop().nop().sack({{1, 2}, {3, 4}, {5, 6}, {7, 8}}).build();
    TcpSegment s;
    REQUIRE(parse(bytes, s) == ParseError::kNone);
    CHECK(s.options.sack_blocks == 4);
  }

  TEST_CASE("packet: a copy cut short by the copy range parses with the wire length") {
    // NFQUEUE copies at most 65531 bytes: a 64 KiB loopback GSO segment that carries the FIN
    // arrives cut, and the FIN must still be seen with its full payload length.
    for (const bool v6 : {false, true}) {
      CAPTURE(v6);
      auto builder =
          v6 ? PacketBuilder::ipv6().extension(ext::kDestOptions, 8) : PacketBuilder::ipv4();
      const std::uint32_t payload = v6 ? 65000 : 65495;  // IPv4: a 65535-byte datagram.
      const auto whole = builder.flags(kFin | kAck | kPsh).payload(payload).build();
      const std::span<const std::uint8_t> cut(whole.data(), 65531 - (v6 ? 1000 : 0));
      TcpSegment s;
      CHECK(parse_tcp_segment(cut, s) == ParseError::kTruncatedIp);
      REQUIRE(parse_tcp_segment(cut, s, whole.size()) == ParseError::kNone);
      CHECK(s.payload_len == payload);
      CHECK(s.has(kFin));
      // BIG TCP: above 64 KiB the IP length field is 0 and only the wire length tells.
      auto big = whole;
      if (v6) {
        big[4] = 0;
        big[5] = 0;
      } else {
        big[2] = 0;
        big[3] = 0;
      }
      const std::span<const std::uint8_t> big_cut(big.data(), cut.size());
      REQUIRE(parse_tcp_segment(big_cut, s, 70000) == ParseError::kNone);
      CHECK(s.has(kFin));
      // Too short for its own headers, the wire length cannot help.
      const std::span<const std::uint8_t> headless(whole.data(), v6 ? 50U : 30U);
      CHECK(parse_tcp_segment(headless, s, whole.size()) != ParseError::kNone);
      // A wire length the IP header contradicts is still truncation.
      CHECK(parse_tcp_segment(cut, s, cut.size() + 1) == ParseError::kTruncatedIp);
    }
  }

  TEST_CASE("packet: a copy cut inside the TCP header is truncated, never read past") {
    // Found by tests/fuzz (regressions/packet/copy_cut_inside_tcp_header): with a wire length
    // the data offset was read before checking that the copy holds the fixed TCP header. Each
    // cut is a vector of exactly its size, so that a sanitizer build sees a read past it.
    for (const bool v6 : {false, true}) {
      CAPTURE(v6);
      const auto whole = (v6 ? PacketBuilder::ipv6() : PacketBuilder::ipv4()).payload(100).build();
      const std::size_t ip_header = v6 ? 40 : 20;
      for (std::size_t size = ip_header; size < ip_header + 20; ++size) {
        CAPTURE(size);
        const std::vector<std::uint8_t> cut(whole.begin(),
                                            whole.begin() + static_cast<std::ptrdiff_t>(size));
        TcpSegment s;
        CHECK(parse_tcp_segment(cut, s, whole.size()) == ParseError::kTruncatedTcp);
        CHECK(parse_tcp_segment(cut, s, 0x10000 + size) == ParseError::kTruncatedTcp);
      }
    }
  }

  TEST_CASE("packet: parses IPv6 with extension headers") {
    const auto bytes = PacketBuilder::ipv6()
                           .extension(ext::kHopByHop, 8)
                           .extension(ext::kDestOptions, 16)
                           .extension(ext::kRouting, 24)
                           .extension(ext::kAh, 24)
                           .extension(ext::kDestOptions, 8)
                           .flags(kFin | kAck)
                           .mss(1220)
                           .payload(33)
                           .build();
    TcpSegment s;
    REQUIRE(parse(bytes, s) == ParseError::kNone);
    CHECK(s.ip_header_len == 40 + 8 + 16 + 24 + 24 + 8);
    CHECK(s.tcp_header_len == 24);
    CHECK(s.payload_len == 33U);
    CHECK(s.options.mss == 1220);
    CHECK(s.src_port == 40000);
    CHECK(s.flags == (kFin | kAck));
  }

  TEST_CASE("packet: GSO-size payloads take their length from the IP header") {
    SUBCASE("IPv4 just under 64 KiB") {
      const auto bytes = PacketBuilder::ipv4().timestamps(5, 6).nop().nop().payload(65483).build();
      REQUIRE(bytes.size() == 65535);
      TcpSegment s;
      REQUIRE(parse(bytes, s) == ParseError::kNone);
      CHECK(s.tcp_header_len == 32);
      CHECK(s.payload_len == 65483U);
    }
    SUBCASE("IPv6 with a 64 KiB payload length") {
      const auto bytes = PacketBuilder::ipv6().payload(65515).build();
      REQUIRE(bytes.size() == 40 + 65535);
      TcpSegment s;
      REQUIRE(parse(bytes, s) == ParseError::kNone);
      CHECK(s.payload_len == 65515U);
    }
    SUBCASE("IPv4 BIG TCP: total length 0 above 64 KiB") {
      const auto bytes = PacketBuilder::ipv4().payload(150000).build();
      REQUIRE(bytes[2] == 0);
      REQUIRE(bytes[3] == 0);
      TcpSegment s;
      REQUIRE(parse(bytes, s) == ParseError::kNone);
      CHECK(s.payload_len == 150000U);
    }
    SUBCASE("IPv6 BIG TCP: payload length 0 above 64 KiB") {
      const auto bytes = PacketBuilder::ipv6().payload(150000).build();
      TcpSegment s;
      REQUIRE(parse(bytes, s) == ParseError::kNone);
      CHECK(s.payload_len == 150000U);
    }
  }

  TEST_CASE("packet: bytes past the IP length are not payload") {
    // Ethernet pads short frames to 60 bytes; a pure ACK is 40.
    auto v4 = PacketBuilder::ipv4().build();
    v4.resize(60, 0);
    TcpSegment s;
    REQUIRE(parse(v4, s) == ParseError::kNone);
    CHECK(s.payload_len == 0U);

    auto v6 = PacketBuilder::ipv6().payload(3).build();
    v6.resize(v6.size() + 7, 0xee);
    REQUIRE(parse(v6, s) == ParseError::kNone);
    CHECK(s.payload_len == 3U);
  }

  TEST_CASE("packet: unknown options and known options of the wrong length are skipped") {
    const auto bytes = PacketBuilder::ipv4()
                           .option({30, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})  // MPTCP-like.
                           .option({2, 3, 9})                               // MSS, length 3.
                           .option({3, 4, 7, 0})                            // WS, length 4.
                           .option({5, 6, 0, 0, 0, 0})                      // SACK, no block.
                           .option({8, 8, 0, 0, 0, 1, 0, 0})                // TS, length 8.
                           .option({4, 3, 0})                               // SACK-perm, 3.
                           .window_scale(3)
                           .build();
    TcpSegment s;
    REQUIRE(parse(bytes, s) == ParseError::kNone);
    CHECK(s.options.mss == 0);
    CHECK(s.options.window_scale == 3);
    CHECK(s.options.sack_blocks == 0);
    CHECK(!s.options.has_timestamps);
    CHECK(!s.options.sack_permitted);
  }

  TEST_CASE("packet: options stop at EOL whatever follows") {
    const auto bytes = PacketBuilder::ipv4().mss(536).eol().option({2, 0, 0xff}).build();
    TcpSegment s;
    REQUIRE(parse(bytes, s) == ParseError::kNone);
    CHECK(s.options.mss == 536);
  }

  TEST_CASE("packet: a window scale above 14 reads as 14") {
    TcpSegment s;
    REQUIRE(parse(PacketBuilder::ipv4().window_scale(200).build(), s) == ParseError::kNone);
    CHECK(s.options.window_scale == 14);
  }

  TEST_CASE("packet: a parse resets every field of the output") {
    TcpSegment s;
    REQUIRE(parse(PacketBuilder::ipv4().mss(1460).timestamps(1, 2).build(), s) ==
            ParseError::kNone);
    REQUIRE(parse(PacketBuilder::ipv4().build(), s) == ParseError::kNone);
    CHECK(s.options.mss == 0);
    CHECK(!s.options.has_timestamps);
  }

  TEST_CASE("packet: malformed packets give their exact parse error") {
    struct Case {
      const char* name;
      std::vector<std::uint8_t> bytes;
      ParseError expected;
    };
    const auto v4 = [] { return PacketBuilder::ipv4(); };
    const auto v6 = [] { return PacketBuilder::ipv6(); };
    const std::vector<Case> cases = {
        {"empty", {}, ParseError::kEmpty},
        {"one byte, version 4", {0x45}, ParseError::kTruncatedIp},
        {"one byte, version 6", {0x60}, ParseError::kTruncatedIp},
        {"one byte, version 0", {0x00}, ParseError::kBadIpVersion},
        {"version 5", v4().version(5).build(), ParseError::kBadIpVersion},
        {"version 15", v6().version(15).build(), ParseError::kBadIpVersion},
        {"IPv4 header cut at 19 bytes", v4().build_truncated(19), ParseError::kTruncatedIp},
        {"IPv4 IHL 0", v4().ihl(0).build(), ParseError::kBadIpHeaderLength},
        {"IPv4 IHL 4", v4().ihl(4).build(), ParseError::kBadIpHeaderLength},
        {"IPv4 total length 19", v4().total_length(19).build(), ParseError::kBadIpHeaderLength},
        {"IPv4 total length 0 on a small packet", v4().total_length(0).build(),
         ParseError::kBadIpHeaderLength},
        {"IPv4 total length shorter than IHL", v4().ip_options(8).total_length(24).build(),
         ParseError::kBadIpHeaderLength},
        {"IPv4 IHL 15 on a 40-byte packet", v4().ihl(15).build(), ParseError::kBadIpHeaderLength},
        {"IPv4 options cut", v4().ip_options(40).build_truncated(50), ParseError::kTruncatedIp},
        {"IPv4 total length past the buffer", v4().total_length(41).build(),
         ParseError::kTruncatedIp},
        {"IPv4 cut inside TCP", v4().build_truncated(39), ParseError::kTruncatedIp},
        {"IPv4 cut inside payload", v4().payload(10).build_truncated(49), ParseError::kTruncatedIp},
        {"IPv4 first fragment", v4().fragment(true, 0).build(), ParseError::kFragment},
        {"IPv4 middle fragment", v4().fragment(true, 185).build(), ParseError::kFragment},
        {"IPv4 last fragment", v4().fragment(false, 185).build(), ParseError::kFragment},
        {"IPv4 UDP", v4().protocol(17).build(), ParseError::kNotTcp},
        {"IPv4 ICMP", v4().protocol(1).build(), ParseError::kNotTcp},
        {"IPv6 header cut at 39 bytes", v6().build_truncated(39), ParseError::kTruncatedIp},
        {"IPv6 payload length past the buffer", v6().payload_length(21).build(),
         ParseError::kTruncatedIp},
        {"IPv6 cut inside TCP", v6().build_truncated(59), ParseError::kTruncatedIp},
        {"IPv6 fragment header", v6().extension(ext::kFragment, 8, 0, true).build(),
         ParseError::kFragment},
        {"IPv6 later fragment after hop-by-hop",
         v6().extension(ext::kHopByHop).extension(ext::kFragment, 8, 100, false).build(),
         ParseError::kFragment},
        {"IPv6 atomic fragment", v6().extension(ext::kFragment, 8, 0, false).build(),
         ParseError::kFragment},
        {"IPv6 no next header", v6().protocol(59).build(), ParseError::kNotTcp},
        {"IPv6 ESP", v6().protocol(50).build(), ParseError::kNotTcp},
        {"IPv6 UDP after destination options",
         v6().extension(ext::kDestOptions).protocol(17).build(), ParseError::kNotTcp},
        {"IPv6 ICMPv6", v6().protocol(58).build(), ParseError::kNotTcp},
        {"IPv6 extension header with 1 byte left",
         v6().extension(ext::kHopByHop).payload_length(1).build(), ParseError::kTruncatedIp},
        {"IPv6 extension header cut", v6().extension(ext::kRouting, 24).payload_length(16).build(),
         ParseError::kTruncatedIp},
        {"IPv6 AH cut", v6().extension(ext::kAh, 16).payload_length(12).build(),
         ParseError::kTruncatedIp},
        {"IPv6 extension headers fill the packet",
         v6().extension(ext::kHopByHop).payload_length(8).build(), ParseError::kTruncatedTcp},
        {"IPv4 without TCP header", v4().total_length(20).build(), ParseError::kTruncatedTcp},
        {"IPv4 TCP header cut at 19 bytes", v4().total_length(39).build(),
         ParseError::kTruncatedTcp},
        {"IPv6 TCP header cut after extension",
         v6().extension(ext::kDestOptions).payload_length(18).build(), ParseError::kTruncatedTcp},
        {"TCP data offset 0", v4().data_offset(0).build(), ParseError::kBadTcpDataOffset},
        {"TCP data offset 4", v6().data_offset(4).build(), ParseError::kBadTcpDataOffset},
        {"TCP data offset beyond the packet", v4().data_offset(15).build(),
         ParseError::kTruncatedTcp},
        {"TCP options cut by the IP length", v4().mss(1460).total_length(42).build(),
         ParseError::kTruncatedTcp},
        {"TCP data offset one word too long", v6().data_offset(6).build(),
         ParseError::kTruncatedTcp},
        {"option length 0", v4().option({2, 0, 0, 0}).build(), ParseError::kBadTcpOptions},
        {"option length 1", v4().option({30, 1, 0, 0}).build(), ParseError::kBadTcpOptions},
        {"option overruns the header", v4().option({2, 8, 5, 0xb4}).build(),
         ParseError::kBadTcpOptions},
        {"option kind without length byte", v4().option({1, 1, 1, 8}).build(),
         ParseError::kBadTcpOptions},
        {"SACK overruns the header",
         v6().nop().nop().option({5, 18, 0, 0, 0, 1, 0, 0, 0, 2}).build(),
         ParseError::kBadTcpOptions},
        {"timestamps overrun after valid MSS", v4().mss(1460).option({8, 10, 0, 0}).build(),
         ParseError::kBadTcpOptions},
    };
    for (const Case& c : cases) {
      CAPTURE(c.name);
      TcpSegment s;
      const ParseError got = parse(c.bytes, s);
      CHECK_MESSAGE(got == c.expected, c.name, ": got ", to_string(got), ", expected ",
                    to_string(c.expected));
    }
  }

  TEST_CASE("packet: every truncation or mutation gives an error or a consistent segment") {
    const std::vector<std::vector<std::uint8_t>> valid = {
        PacketBuilder::ipv4()
            .flags(kSyn)
            .mss(1460)
            .sack_permitted()
            .timestamps(1, 0)
            .nop()
            .window_scale(7)
            .build(),
        PacketBuilder::ipv4().flags(kFin | kAck).ip_options(12).payload(50).build(),
        PacketBuilder::ipv6().flags(kRst).build(),
        PacketBuilder::ipv6()
            .extension(ext::kHopByHop, 16)
            .extension(ext::kRouting, 24)
            .extension(ext::kAh, 16)
            .flags(kAck)
            .nop()
            .nop()
            .timestamps(7, 8)
            .nop()
            .nop()
            .sack({{1, 2}, {3, 4}})
            .payload(20)
            .build(),
    };
    for (const auto& packet : valid) {
      TcpSegment full;
      REQUIRE(parse(packet, full) == ParseError::kNone);
      for (std::size_t size = 0; size < packet.size(); ++size) {
        CAPTURE(size);
        // A fresh allocation of exactly `size` bytes, so that AddressSanitizer sees any overread.
        const std::vector<std::uint8_t> cut(packet.begin(),
                                            packet.begin() + static_cast<std::ptrdiff_t>(size));
        TcpSegment s;
        // The IP length still claims the full packet: always truncated at the IP layer.
        CHECK(parse(cut, s) == (size == 0 ? ParseError::kEmpty : ParseError::kTruncatedIp));

        // The same cut with IP lengths rewritten to match: the parser must look deeper.
        std::vector<std::uint8_t> relabelled = cut;
        if (size >= 20 && (relabelled[0] >> 4) == 4) {
          relabelled[2] = static_cast<std::uint8_t>(size >> 8);
          relabelled[3] = static_cast<std::uint8_t>(size & 0xff);
        } else if (size >= 40 && (relabelled[0] >> 4) == 6) {
          relabelled[4] = static_cast<std::uint8_t>((size - 40) >> 8);
          relabelled[5] = static_cast<std::uint8_t>((size - 40) & 0xff);
        }
        const ParseError error = parse(relabelled, s);
        const std::size_t headers = std::size_t{full.ip_header_len} + full.tcp_header_len;
        if (size >= headers) {
          // Only payload was cut: the same segment with a shorter payload.
          REQUIRE(error == ParseError::kNone);
          CHECK(s.payload_len == size - headers);
          CHECK(s.seq == full.seq);
          CHECK(s.options.has_timestamps == full.options.has_timestamps);
          CHECK(s.options.sack_blocks == full.options.sack_blocks);
        } else {
          CHECK(error != ParseError::kNone);
        }
      }
    }

    std::mt19937 rng(20240601);
    for (int round = 0; round < 20000; ++round) {
      std::vector<std::uint8_t> mutated = valid[static_cast<std::size_t>(round) % valid.size()];
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) {
        mutated[rng() % mutated.size()] = static_cast<std::uint8_t>(rng());
      }
      mutated.resize(rng() % (mutated.size() + 1));
      const std::vector<std::uint8_t> exact(mutated.begin(), mutated.end());
      TcpSegment s;
      if (parse(exact, s) == ParseError::kNone) {
        check_consistent(s, exact.size());
      }
    }
  }

  TEST_CASE("packet: flags print as tcpdump prints them") {
    struct Case {
      std::uint8_t flags;
      const char* text;
    };
    const Case cases[] = {
        {kSyn, "S"},
        {kSyn | kAck, "S."},
        {kFin | kAck, "F."},
        {kFin | kPsh | kAck, "FP."},
        {kRst, "R"},
        {kRst | kAck, "R."},
        {kPsh | kAck, "P."},
        {kAck, "."},
        {kSyn | kEce | kCwr, "SEW"},
        {kUrg | kAck, "U."},
        {0xff, "FSRPUEW."},
        {0, "none"},
    };
    for (const Case& c : cases) {
      CHECK(flags_to_string(c.flags) == c.text);
      CHECK(flags_from_string(c.text) == std::optional<std::uint8_t>(c.flags));
    }
  }

  TEST_CASE("packet: flags read back from any of the 256 texts, in any order, and no others") {
    for (unsigned flags = 0; flags < 256; ++flags) {
      const auto bits = static_cast<std::uint8_t>(flags);
      CHECK(flags_from_string(flags_to_string(bits)) == std::optional<std::uint8_t>(bits));
    }
    CHECK(flags_from_string(".F") == std::optional<std::uint8_t>(tcp_flag::kFin | tcp_flag::kAck));
    CHECK_FALSE(flags_from_string("").has_value());
    CHECK_FALSE(flags_from_string("FX").has_value());
    CHECK_FALSE(flags_from_string("f").has_value());
    CHECK_FALSE(flags_from_string("none.").has_value());
  }

  TEST_CASE("packet: parse errors have distinct snake_case names") {
    const ParseError all[] = {
        ParseError::kNone,
        ParseError::kEmpty,
        ParseError::kBadIpVersion,
        ParseError::kTruncatedIp,
        ParseError::kBadIpHeaderLength,
        ParseError::kFragment,
        ParseError::kNotTcp,
        ParseError::kTruncatedTcp,
        ParseError::kBadTcpDataOffset,
        ParseError::kBadTcpOptions,
    };
    std::set<std::string> names;
    for (const ParseError error : all) {
      const std::string name = to_string(error);
      CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos);
      names.insert(name);
    }
    CHECK(names.size() == std::size(all));
    CHECK(std::string(to_string(ParseError::kTruncatedTcp)) == "truncated_tcp");
    CHECK(std::string(to_string(static_cast<ParseError>(200))) == "unknown");
  }

  TEST_CASE("packet: addresses print as inet_ntop writes them") {
    IpAddress v4;
    v4.family = 4;
    v4.bytes = {198, 18, 1, 2};
    CHECK(to_string(v4) == "198.18.1.2");
    IpAddress v6;
    v6.family = 6;
    v6.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    CHECK(to_string(v6) == "2001:db8:1::2");
    CHECK(to_string(IpAddress{}) == "unset");
  }
}

}  // namespace finwave::nf
