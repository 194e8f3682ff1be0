// Tests of netfilter/log_group.cpp: parsing nfnetlink_log messages and counting lost copies
// (pure), and a log group bound in a namespace of its own against the kernel (suite "lab").

#include "netfilter/log_group.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <libmnl/libmnl.h>
#include <linux/if_ether.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lab_namespace.hpp"
#include "netfilter/subprocess.hpp"

namespace finwave::nf {
namespace {

// A packet message as the kernel writes it: nfgenmsg, then the attributes asked for.
struct LogMessage {
  std::array<char, 1024> buffer{};
  nlmsghdr* nlh = nullptr;

  explicit LogMessage(std::uint16_t type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) {
    nlh = mnl_nlmsg_put_header(buffer.data());
    nlh->nlmsg_type = type;
    auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    header->nfgen_family = AF_INET;
    header->version = NFNETLINK_V0;
    header->res_id = htons(3);
  }
  LogMessage& packet_header(std::uint16_t hw_protocol) {
    nfulnl_msg_packet_hdr value{};
    value.hw_protocol = htons(hw_protocol);
    mnl_attr_put(nlh, NFULA_PACKET_HDR, sizeof value, &value);
    return *this;
  }
  LogMessage& payload(const std::vector<std::uint8_t>& bytes) {
    mnl_attr_put(nlh, NFULA_PAYLOAD, bytes.size(), bytes.data());
    return *this;
  }
  LogMessage& seq(std::uint32_t value) {
    mnl_attr_put_u32(nlh, NFULA_SEQ, htonl(value));
    return *this;
  }
  LogMessage& mark(std::uint32_t value) {
    mnl_attr_put_u32(nlh, NFULA_MARK, htonl(value));
    return *this;
  }
  LogMessage& timestamp(std::uint64_t sec, std::uint64_t usec) {
    nfulnl_msg_packet_timestamp value{htobe64(sec), htobe64(usec)};
    mnl_attr_put(nlh, NFULA_TIMESTAMP, sizeof value, &value);
    return *this;
  }
  std::optional<LoggedPacket> parse() const { return parse_log_message(nlh, nlh->nlmsg_len); }
};

}  // namespace

TEST_SUITE("netfilter") {
  TEST_CASE("log_group: a packet message gives its payload, sequence number, mark and stamp") {
    const std::vector<std::uint8_t> bytes = {0x45, 0, 0, 40, 1, 2, 3};
    LogMessage message;
    message.packet_header(ETH_P_IP).mark(0xf1a).seq(41).timestamp(1800000000, 250).payload(bytes);
    const std::optional<LoggedPacket> packet = message.parse();
    REQUIRE(packet.has_value());
    CHECK(packet->hw_protocol == ETH_P_IP);
    CHECK(packet->mark == 0xf1a);
    CHECK(packet->seq == std::optional<std::uint32_t>(41));
    CHECK(packet->arrival_realtime_us == 1800000000ULL * 1000000 + 250);
    CHECK(packet->original_len == bytes.size());
    CHECK(std::vector<std::uint8_t>(packet->payload.begin(), packet->payload.end()) == bytes);
  }

  TEST_CASE("log_group: what is missing is left unknown, and what is no copy is refused") {
    const std::vector<std::uint8_t> bytes = {0x60, 0, 0, 0};
    LogMessage plain;
    plain.packet_header(ETH_P_IPV6).payload(bytes);
    const std::optional<LoggedPacket> packet = plain.parse();
    REQUIRE(packet.has_value());
    CHECK_FALSE(packet->seq.has_value());
    CHECK(packet->arrival_realtime_us == 0);
    CHECK(packet->mark == 0);

    LogMessage no_payload;
    no_payload.packet_header(ETH_P_IP);
    CHECK_FALSE(no_payload.parse().has_value());
    LogMessage no_header;
    no_header.payload(bytes);
    CHECK_FALSE(no_header.parse().has_value());
    LogMessage config((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG);
    config.packet_header(ETH_P_IP).payload(bytes);
    CHECK_FALSE(config.parse().has_value());
    // A length that runs past the buffer.
    LogMessage truncated;
    truncated.packet_header(ETH_P_IP).payload(bytes);
    CHECK_FALSE(parse_log_message(truncated.nlh, truncated.nlh->nlmsg_len - 1).has_value());
    CHECK_FALSE(parse_log_message(truncated.nlh, 4).has_value());
    // An attribute whose length runs past the message.
    LogMessage bad_attribute;
    bad_attribute.packet_header(ETH_P_IP).payload(bytes);
    auto* last =
        reinterpret_cast<nlattr*>(reinterpret_cast<char*>(bad_attribute.nlh) +
                                  mnl_nlmsg_size(sizeof(nfgenmsg)) + MNL_ALIGN(sizeof(nlattr) + 4));
    last->nla_len = 500;
    CHECK_FALSE(bad_attribute.parse().has_value());
  }

  TEST_CASE("log_group: attributes of unknown types are passed over, flag bits ignored") {
    const std::vector<std::uint8_t> bytes = {0x45, 0, 0, 20};
    LogMessage message;
    message.packet_header(ETH_P_IP);
    mnl_attr_put_u32(message.nlh, NFULA_MAX + 7, 0xdeadbeef);  // from a newer kernel
    mnl_attr_put_u32(message.nlh, NFULA_SEQ | NLA_F_NET_BYTEORDER, htonl(9));
    mnl_attr_put(message.nlh, NFULA_MARK, 2, "ab");  // too short to be a mark: left unknown
    message.payload(bytes);
    const std::optional<LoggedPacket> packet = message.parse();
    REQUIRE(packet.has_value());
    CHECK(packet->seq == std::optional<std::uint32_t>(9));
    CHECK(packet->mark == 0);
    CHECK(packet->payload.size() == bytes.size());
    // An attribute shorter than its own header ends the walk: the payload after it is not seen.
    LogMessage stunted;
    stunted.packet_header(ETH_P_IP);
    auto* bad = static_cast<nlattr*>(mnl_nlmsg_get_payload_tail(stunted.nlh));
    mnl_attr_put_u32(stunted.nlh, NFULA_MARK, htonl(1));
    bad->nla_len = 2;
    stunted.payload(bytes);
    CHECK_FALSE(stunted.parse().has_value());
  }

  TEST_CASE("log_group: lost copies are the gaps between sequence numbers") {
    LogSequence sequence;
    CHECK(sequence.see(0) == 0);
    CHECK(sequence.see(1) == 0);
    CHECK(sequence.see(5) == 3);
    CHECK(sequence.see(6) == 0);
    // The kernel's counter wraps. (Its first number so far ahead reads as a fresh start.)
    LogSequence wrapping;
    CHECK(wrapping.see(0xfffffffe) == 0);
    CHECK(wrapping.see(0xffffffff) == 0);
    CHECK(wrapping.see(1) == 1);
    // A step back (never from one socket) starts afresh rather than count four billion.
    CHECK(wrapping.see(0) == 0);
    CHECK(wrapping.see(1) == 0);
  }
}

namespace {

class CountingHandler final : public LogHandler {
 public:
  void on_logged(const LoggedPacket& packet) noexcept override {
    seqs.push_back(packet.seq.value_or(0xffffffff));
    if (packet.arrival_realtime_us == 0) ++unstamped;
    lengths.push_back(packet.payload.size());
  }
  std::vector<std::uint32_t> seqs;
  std::vector<std::size_t> lengths;
  int unstamped = 0;
};

// Sends `count` UDP datagrams of `size` bytes to the loopback's discard port (logged by the
// table the test installs, then dropped by nobody: no listener, so ICMP answers them).
void send_udp(int count, std::size_t size) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(9);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::vector<char> data(size, 'x');
  for (int i = 0; i < count; ++i) {
    REQUIRE(::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof to) == static_cast<ssize_t>(data.size()));
  }
  ::close(fd);
}

void nft(const std::string& input) {
  const SubprocessResult result =
      run_subprocess({require_executable("nft", "nftables"), "-f", "-"}, input);
  REQUIRE_MESSAGE(result.ok(), result.err);
}

constexpr const char* kLogTable =
    "table inet fwnf-log {\n  chain output {\n    type filter hook output priority mangle;\n"
    "    udp dport 9 log group 4343\n  }\n}\n";

// The namespace's loopback up, and kLogTable logging its UDP datagrams to port 9.
void log_on_loopback() {
  const SubprocessResult up =
      run_subprocess({require_executable("ip", "iproute2"), "link", "set", "lo", "up"});
  REQUIRE_MESSAGE(up.ok(), up.err);
  nft(kLogTable);
}

}  // namespace

TEST_SUITE("lab") {
  TEST_CASE("log_group: the kernel's copies arrive whole, numbered from 0, one message each") {
    test::require_root();
    test::TestNamespace ns;
    ns.run([] {
      log_on_loopback();
      LogGroup log = LogGroup::open(LogGroupConfig{4343});
      CHECK(log.group() == 4343);
      // A second reader of the same group is refused with a message naming it.
      CHECK_THROWS_WITH_AS(LogGroup::open(LogGroupConfig{4343}),
                           doctest::Contains("log group 4343: cannot bind the log group"),
                           std::system_error);
      send_udp(20, 100);
      CountingHandler handler;
      // Sent by the kernel before sendto() returned (threshold 1): all there now.
      CHECK(log.drain(handler) == 20);
      std::vector<std::uint32_t> expected(20);
      for (std::uint32_t i = 0; i < 20; ++i) expected[i] = i;
      CHECK(handler.seqs == expected);
      for (const std::size_t length : handler.lengths) CHECK(length == 20 + 8 + 100);
      CHECK(log.counters().received == 20);
      CHECK(log.counters().lost == 0);
      CHECK(log.drain(handler) == 0);
    });
  }

  TEST_CASE("log_group: batched copies come with their batch, or with the unbind") {
    test::require_root();
    test::TestNamespace ns;
    ns.run([] {
      log_on_loopback();
      LogGroup log = LogGroup::open(LogGroupConfig{4343, 1U << 20, true});
      CHECK(log.batching());
      CountingHandler handler;
      // The kernel's batch timeout (a hundredth of a second, in ticks) sends them; wait for it.
      send_udp(5, 100);
      for (int i = 0; i < 100 && handler.seqs.size() < 5; ++i) {
        log.drain(handler);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      CHECK(handler.seqs == std::vector<std::uint32_t>{0, 1, 2, 3, 4});
      // Switched to one by one: each copy is there when sendto() returns.
      REQUIRE(log.set_batching(false) == 0);
      CHECK_FALSE(log.batching());
      send_udp(2, 100);
      CHECK(log.drain(handler) == 2);
      // Batched again, then unbound at once: the batch comes out with the unbind.
      REQUIRE(log.set_batching(true) == 0);
      send_udp(3, 100);
      log.unbind();
      log.drain(handler);
      CHECK(handler.seqs.size() == 10);
      CHECK(log.counters().lost == 0);
      CHECK(log.counters().config_errors == 0);
    });
  }

  TEST_CASE("log_group: copies that find the socket full are lost, and counted") {
    test::require_root();
    test::TestNamespace ns;
    ns.run([] {
      log_on_loopback();
      // The smallest buffer the kernel allows: a few copies fit, the rest are lost.
      LogGroup log = LogGroup::open(LogGroupConfig{4343, 4096});
      constexpr int kSent = 300;
      send_udp(kSent, 1000);
      CountingHandler handler;
      log.drain(handler);
      const LogCounters& counters = log.counters();
      CHECK(counters.received > 0);
      CHECK(counters.received < kSent);
      // The last copies were lost after the last one received: sent once more, one copy shows
      // every gap.
      send_udp(1, 1000);
      log.drain(handler);
      CHECK(counters.received + counters.lost == kSent + 1);
      CHECK(counters.enobufs >= 1);
    });
  }
}

}  // namespace finwave::nf
