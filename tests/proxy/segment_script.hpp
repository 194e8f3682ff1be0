#pragma once

// Test-only: drives a FlowTable with scripts of segments written like a `tcpdump -S` listing, one
// row per segment: who sends it, its flags, seq, ack, payload length, what the tracker must call
// it and what finwave does with it.
//
//   play(wire, {
//       {kClient, "S", 1000, 0, 0, Role::kSyn},
//       {kServer, "S.", 5000, 1001, 0, Role::kSynAck},
//       {kClient, "F.", 2001, 9001, 0, Role::kFin1},
//       {kServer, ".", 9001, 2002, 0, Role::kAck1, false, Verdict::kDrop, "lose-ack1"},
//   });

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netfilter/packet.hpp"
#include "proxy/tracker/flow_table.hpp"
#include "proxy/tracker/outcome.hpp"
#include "rules/role.hpp"

namespace finwave::proxy::test {

using rules::Role;
using rules::Side;

inline constexpr Side kClient = Side::kClient;
inline constexpr Side kServer = Side::kServer;

/// The two ends of one connection.
struct Wire {
  nf::IpAddress client;
  nf::IpAddress server;
  std::uint16_t client_port = 40000;
  std::uint16_t server_port = 5000;
};

inline nf::IpAddress ipv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  nf::IpAddress address;
  address.family = 4;
  address.bytes[0] = a;
  address.bytes[1] = b;
  address.bytes[2] = c;
  address.bytes[3] = d;
  return address;
}

/// 2001:db8:<site>::<host>.
inline nf::IpAddress ipv6(std::uint8_t site, std::uint8_t host) {
  nf::IpAddress address;
  address.family = 6;
  address.bytes[0] = 0x20;
  address.bytes[1] = 0x01;
  address.bytes[2] = 0x0d;
  address.bytes[3] = 0xb8;
  address.bytes[5] = site;
  address.bytes[15] = host;
  return address;
}

/// The lab's client 198.18.1.2 and server 198.18.2.2.
inline Wire wire_v4(std::uint16_t client_port = 40000, std::uint16_t server_port = 5000) {
  return Wire{ipv4(198, 18, 1, 2), ipv4(198, 18, 2, 2), client_port, server_port};
}

/// The lab's client 2001:db8:1::2 and server 2001:db8:2::2.
inline Wire wire_v6(std::uint16_t client_port = 40000, std::uint16_t server_port = 5000) {
  return Wire{ipv6(1, 2), ipv6(2, 2), client_port, server_port};
}

/// tcpdump's flag letters: F S R P U E W, and "." for ACK.
inline std::uint8_t parse_flags(std::string_view text) {
  const std::optional<std::uint8_t> flags = nf::flags_from_string(text);
  if (!flags) FAIL("unknown flag letter in \"" << text << "\"");
  return flags.value_or(0);
}

/// One segment of a script.
struct Row {
  Side from = kClient;
  std::string_view flags = ".";
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint32_t len = 0;
  Role role = Role::kAck;  ///< Expected role.
  bool retx = false;       ///< Expected retransmission mark.
  Verdict verdict = Verdict::kAccept;
  std::string_view rule = {};   ///< Rule name recorded with the verdict.
  std::uint64_t gap_us = 1000;  ///< Time since the previous row.
  std::uint32_t delay_us = 0;   ///< kDelay: the delay the rule asked for.
  std::uint16_t copies = 0;     ///< kDuplicate (or kDelay): copies sent behind the segment.
};

/// The standard handshake: client ISN `client_isn`, server ISN `server_isn`.
inline std::vector<Row> handshake(std::uint32_t client_isn = 1000,
                                  std::uint32_t server_isn = 5000) {
  return {
      {kClient, "S", client_isn, 0, 0, Role::kSyn},
      {kServer, "S.", server_isn, client_isn + 1, 0, Role::kSynAck},
  };
}

/// A FlowTable, a virtual clock and the outcomes collected so far.
class Harness {
 public:
  static constexpr std::uint64_t kStart = 1'000'000'000;  // 1000 s: far from 0.

  static TrackerConfig default_config() {
    TrackerConfig config;
    config.settle_us = 1'000'000;
    config.linger_us = 120'000'000;
    config.idle_us = 600'000'000;
    config.max_flows = 1024;
    return config;
  }

  explicit Harness(TrackerConfig config = default_config()) : table(config) {}

  static nf::TcpSegment segment(const Wire& wire, const Row& row) {
    nf::TcpSegment s;
    const bool from_client = row.from == kClient;
    s.src = from_client ? wire.client : wire.server;
    s.dst = from_client ? wire.server : wire.client;
    s.src_port = from_client ? wire.client_port : wire.server_port;
    s.dst_port = from_client ? wire.server_port : wire.client_port;
    s.seq = row.seq;
    s.ack = row.ack;
    s.flags = parse_flags(row.flags);
    s.window = 65535;
    s.payload_len = row.len;
    s.ip_header_len = wire.client.family == 6 ? 40 : 20;
    s.tcp_header_len = 20;
    return s;
  }

  /// Advances the clock by the row's gap, classifies and commits the row's segment.
  Classified send(const Wire& wire, const Row& row) {
    now += row.gap_us;
    const nf::TcpSegment s = segment(wire, row);
    Classified c = table.classify(s, now);
    table.commit(c, s, row.verdict, row.rule, now, VerdictAmounts{row.delay_us, row.copies});
    last_segment = s;
    return c;
  }

  /// Sends every row and checks the role and retransmission mark the tracker gave each.
  std::vector<Classified> play(const Wire& wire, const std::vector<Row>& rows) {
    std::vector<Classified> out;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      const Classified c = send(wire, row);
      INFO("row " << i << ": " << rules::to_string(row.from) << " " << row.flags << " seq "
                  << row.seq << " ack " << row.ack << " len " << row.len);
      CHECK(rules::to_string(c.facts.role) == rules::to_string(row.role));
      CHECK(c.facts.retx == row.retx);
      CHECK(c.facts.from == row.from);
      out.push_back(c);
    }
    return out;
  }
  std::vector<Classified> play(const Wire& wire, std::initializer_list<Row> rows) {
    return play(wire, std::vector<Row>(rows));
  }

  /// Moves the clock forward and collects what resolved; returns how many outcomes were added.
  std::size_t wait(std::uint64_t us) {
    now += us;
    const std::size_t before = outcomes.size();
    table.advance(now, outcomes);
    return outcomes.size() - before;
  }

  std::size_t finish() {
    const std::size_t before = outcomes.size();
    table.finish_all(now, outcomes);
    return outcomes.size() - before;
  }

  /// The one outcome collected so far.
  const Outcome& only() const {
    REQUIRE(outcomes.size() == 1);
    return outcomes.front();
  }

  FlowTable table;
  std::uint64_t now = kStart;
  std::vector<Outcome> outcomes;
  nf::TcpSegment last_segment;
};

/// Rows after the handshake of a four-way close the client starts: client FIN at 2001, server
/// stream at 9001.
inline std::vector<Row> four_way_by_client() {
  return {
      {kClient, "F.", 2001, 9001, 0, Role::kFin1},
      {kServer, ".", 9001, 2002, 0, Role::kAck1},
      {kServer, "F.", 9001, 2002, 0, Role::kFin2},
      {kClient, ".", 2002, 9002, 0, Role::kFinalAck},
  };
}

/// `a` followed by `b`.
inline std::vector<Row> operator+(std::vector<Row> a, const std::vector<Row>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace finwave::proxy::test
