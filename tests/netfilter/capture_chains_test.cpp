#include "netfilter/capture_chains.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "lab_namespace.hpp"
#include "netfilter/queue_rule.hpp"
#include "netfilter/set_elements.hpp"
#include "netfilter/subprocess.hpp"
#include "netfilter/teardown_set.hpp"

namespace finwave::nf {
namespace {

using test::require_root;
using test::TestNamespace;

std::string set_declaration(int family) {
  const std::string address = family == 4 ? "ipv4_addr" : "ipv6_addr";
  return "  set teardown" + std::to_string(family) + " {\n    type " + address +
         " . inet_service . " + address +
         "\n    flags dynamic, timeout\n    timeout 180s\n    size 1048576\n  }\n  counter "
         "refused" +
         std::to_string(family) + " {\n  }\n";
}

// The classify chain when every class is queued: empty, each segment falls through to the queue.
constexpr const char* kClassifyQueueAll = "  chain classify {\n  }\n";

// The capture chain of a teardown capture of both families, written out in full: what
// render_nft_input must produce, not a second derivation of it.
const std::string kCaptureBoth =
    std::string(kClassifyQueueAll) +
    "  chain capture {\n"
    "    tcp flags & (fin | syn | rst) == 0 ip saddr . tcp sport . ip daddr != @teardown4 return\n"
    "    tcp flags & (fin | syn | rst) == 0 ip daddr . tcp dport . ip saddr != @teardown4 return\n"
    "    tcp flags & (fin | syn | rst) == 0 ip6 saddr . tcp sport . ip6 daddr != @teardown6 "
    "return\n"
    "    tcp flags & (fin | syn | rst) == 0 ip6 daddr . tcp dport . ip6 saddr != @teardown6 "
    "return\n"
    "    meta mark & 0xf1a0000 == 0xf1a0000 return\n"
    "    tcp flags & (fin | syn | rst | ack) == syn delete @teardown4 { ip saddr . tcp sport . ip "
    "daddr }\n"
    "    tcp flags & (fin | syn | rst | ack) == syn delete @teardown6 { ip6 saddr . tcp sport . "
    "ip6 daddr }\n"
    "    tcp flags & (syn | rst) == 0 update @teardown4 { ip saddr . tcp sport . ip daddr }\n"
    "    tcp flags & (syn | rst) == 0 update @teardown4 { ip daddr . tcp dport . ip saddr }\n"
    "    tcp flags & (syn | rst) == 0 update @teardown6 { ip6 saddr . tcp sport . ip6 daddr }\n"
    "    tcp flags & (syn | rst) == 0 update @teardown6 { ip6 daddr . tcp dport . ip6 saddr }\n"
    "    tcp flags & (syn | rst) == 0 ip saddr . tcp sport . ip daddr != @teardown4 counter name "
    "\"refused4\"\n"
    "    tcp flags & (syn | rst) == 0 ip6 saddr . tcp sport . ip6 daddr != @teardown6 counter name "
    "\"refused6\"\n"
    "    jump classify\n"
    "  }\n";

// The same for IPv4 alone.
const std::string kCaptureV4 =
    std::string(kClassifyQueueAll) +
    "  chain capture {\n"
    "    tcp flags & (fin | syn | rst) == 0 ip saddr . tcp sport . ip daddr != @teardown4 return\n"
    "    tcp flags & (fin | syn | rst) == 0 ip daddr . tcp dport . ip saddr != @teardown4 return\n"
    "    meta mark & 0xf1a0000 == 0xf1a0000 return\n"
    "    tcp flags & (fin | syn | rst | ack) == syn delete @teardown4 { ip saddr . tcp sport . ip "
    "daddr }\n"
    "    tcp flags & (syn | rst) == 0 update @teardown4 { ip saddr . tcp sport . ip daddr }\n"
    "    tcp flags & (syn | rst) == 0 update @teardown4 { ip daddr . tcp dport . ip saddr }\n"
    "    tcp flags & (syn | rst) == 0 ip saddr . tcp sport . ip daddr != @teardown4 counter name "
    "\"refused4\"\n"
    "    jump classify\n"
    "  }\n";

// The table's opening for queue `queue`: replace whatever table of that name there is.
std::string table_head(int queue) {
  const std::string table = "finwave-q" + std::to_string(queue);
  return "table inet " + table + "\ndelete table inet " + table + "\ntable inet " + table + " {\n";
}

// A base chain on `hook` holding `jumps` (each followed by " goto capture").
std::string base_chain(const std::string& hook, const std::vector<std::string>& jumps) {
  std::string text =
      "  chain " + hook + " {\n    type filter hook " + hook + " priority mangle; policy accept;\n";
  for (const std::string& jump : jumps) text += "    " + jump + " goto capture\n";
  return text + "  }\n";
}

// `chain` with the default injected mark replaced by `mark`.
std::string with_mark(std::string chain, const std::string& mark) {
  const std::string old = "meta mark & 0xf1a0000 == 0xf1a0000";
  chain.replace(chain.find(old), old.size(), "meta mark & " + mark + " == " + mark);
  return chain;
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

}  // namespace

TEST_SUITE("netfilter") {
  TEST_CASE("capture_chains: router mode captures every port by default") {
    CHECK(render_nft_input(CaptureSpec{}) ==
          table_head(0) + set_declaration(4) + set_declaration(6) + kCaptureBoth +
              base_chain("forward", {"meta l4proto tcp"}) + "}\n");
  }

  TEST_CASE(
      "capture_chains: local mode hooks output and prerouting to local addresses except loopback") {
    CaptureSpec spec;
    spec.mode = CaptureMode::kLocal;
    spec.queue_num = 3;
    spec.ports = {5432, 8080, 5432};
    const std::string inbound = "iif != \"lo\" fib daddr type local ";
    CHECK(render_nft_input(spec) ==
          table_head(3) + set_declaration(4) + set_declaration(6) + kCaptureBoth +
              base_chain("output", {"tcp sport { 5432, 8080 }", "tcp dport { 5432, 8080 }"}) +
              base_chain("prerouting", {inbound + "tcp sport { 5432, 8080 }",
                                        inbound + "tcp dport { 5432, 8080 }"}) +
              "}\n");
  }

  TEST_CASE("capture_chains: any number of ports takes one jump rule per end") {
    CaptureSpec spec;
    std::string ports;
    for (std::uint16_t port = 1; port <= 40; ++port) {
      spec.ports.push_back(port);
      ports += (port == 1 ? "" : ", ") + std::to_string(port);
    }
    CHECK(
        render_nft_input(spec) ==
        table_head(0) + set_declaration(4) + set_declaration(6) + kCaptureBoth +
            base_chain("forward", {"tcp sport { " + ports + " }", "tcp dport { " + ports + " }"}) +
            "}\n");
  }

  TEST_CASE("capture_chains: addresses match either end in their own family only") {
    CaptureSpec spec;
    spec.ports = {80};
    spec.addresses = {"198.18.0.0/15", "2001:db8:1::/48", "198.18.9.9", "198.18.0.0/15"};
    const std::string v4 = "{ 198.18.0.0/15, 198.18.9.9 } ";
    const std::string v6 = "{ 2001:db8:1::/48 } ";
    CHECK(render_nft_input(spec) == table_head(0) + set_declaration(4) + set_declaration(6) +
                                        kCaptureBoth +
                                        base_chain("forward",
                                                   {
                                                       "ip saddr " + v4 + "tcp sport { 80 }",
                                                       "ip daddr " + v4 + "tcp sport { 80 }",
                                                       "ip6 saddr " + v6 + "tcp sport { 80 }",
                                                       "ip6 daddr " + v6 + "tcp sport { 80 }",
                                                       "ip saddr " + v4 + "tcp dport { 80 }",
                                                       "ip daddr " + v4 + "tcp dport { 80 }",
                                                       "ip6 saddr " + v6 + "tcp dport { 80 }",
                                                       "ip6 daddr " + v6 + "tcp dport { 80 }",
                                                   }) +
                                        "}\n");
  }

  TEST_CASE("capture_chains: a family without any of the given addresses is not captured") {
    CaptureSpec spec;
    spec.addresses = {"198.18.1.0/24"};
    CHECK(render_nft_input(spec) ==
          table_head(0) + set_declaration(4) + kCaptureV4 +
              base_chain("forward", {"ip saddr { 198.18.1.0/24 } meta l4proto tcp",
                                     "ip daddr { 198.18.1.0/24 } meta l4proto tcp"}) +
              "}\n");
    spec.addresses = {"2001:db8::/32"};
    const std::string rendered = render_nft_input(spec);
    CHECK(count(rendered, "teardown4") == 0);
    CHECK(count(rendered, "ip ") == 0);
    CHECK(count(rendered, "ip6 saddr { 2001:db8::/32 } meta l4proto tcp goto capture") == 1);
  }

  TEST_CASE("capture_chains: the classes not queued are logged to the log group and accepted") {
    CaptureSpec spec;
    spec.queue_num = 7;
    spec.log_group = 7;
    spec.queued = SegmentClasses::none();
    spec.queued.add(SegmentClass::kAck);
    const std::string logged =
        "  chain classify {\n"
        "    meta length > 65531 return\n"
        "    tcp flags & rst == rst log group 7 accept\n"
        "    tcp flags & (syn | ack | rst) == syn log group 7 accept\n"
        "    tcp flags & (syn | ack | rst) == syn | ack log group 7 accept\n"
        "    tcp flags & (fin | syn | rst) == fin log group 7 accept\n"
        "  }\n";
    const std::string rendered = render_nft_input(spec);
    CHECK(count(rendered, logged) == 1);
    CHECK(count(rendered, "    jump classify\n  }\n") == 1);
    // Declared before the chain that jumps to it.
    CHECK(rendered.find(logged) < rendered.find("  chain capture {"));
    // Replaced whole, in one transaction.
    CHECK(render_classify_input(spec) ==
          "flush chain inet finwave-q7 classify\ntable inet finwave-q7 {\n" + logged + "}\n");

    // Observing: every class logged, none queued.
    spec.queued = SegmentClasses::none();
    const std::string observing = render_classify_input(spec);
    CHECK(count(observing, " log group 7 accept\n") == kSegmentClassCount);
    CHECK(count(observing, "tcp flags & (fin | syn | rst) == 0 log group 7 accept") == 1);
    CHECK(SegmentClasses::none().complement() == SegmentClasses::all());
    CHECK(spec.queued.names() == "none");
    spec.queued.add(SegmentClass::kFin);
    spec.queued.add(SegmentClass::kRst);
    CHECK(spec.queued.names() == "rst, fin");
    CHECK(spec.queued.complement().names() == "syn, syn_ack, ack");
  }

  TEST_CASE("capture_chains: a narrowed class is queued where its port matches hold, else logged") {
    CaptureSpec spec;
    spec.queue_num = 3;
    spec.log_group = 3;
    spec.queued = SegmentClasses::none();
    spec.queued.add(SegmentClass::kAck);
    spec.queued.add(SegmentClass::kFin);
    spec.queued_only[static_cast<std::size_t>(SegmentClass::kAck)] = {
        PortMatch{PortMatch::End::kDestination, {5000}},
        PortMatch{PortMatch::End::kEither, {80, 443}}};
    const std::string classify = render_classify_input(spec);
    CHECK(classify ==
          "flush chain inet finwave-q3 classify\ntable inet finwave-q3 {\n"
          "  chain classify {\n"
          "    meta length > 65531 return\n"
          "    tcp flags & rst == rst log group 3 accept\n"
          "    tcp flags & (syn | ack | rst) == syn log group 3 accept\n"
          "    tcp flags & (syn | ack | rst) == syn | ack log group 3 accept\n"
          "    tcp flags & (fin | syn | rst) == 0 tcp dport { 5000 } return\n"
          "    tcp flags & (fin | syn | rst) == 0 tcp sport { 80, 443 } return\n"
          "    tcp flags & (fin | syn | rst) == 0 tcp dport { 80, 443 } return\n"
          "    tcp flags & (fin | syn | rst) == 0 log group 3 accept\n"
          "  }\n}\n");
    // Every class queued, one narrowed: the chain is not empty.
    spec.queued = SegmentClasses::all();
    spec.queued_only = {};
    spec.queued_only[static_cast<std::size_t>(SegmentClass::kSyn)] = {
        PortMatch{PortMatch::End::kSource, {1234}}};
    const std::string all = render_classify_input(spec);
    CHECK(count(all, " log group 3 accept\n") == 1);
    CHECK(count(all, "tcp flags & (syn | ack | rst) == syn tcp sport { 1234 } return\n") == 1);
    CHECK(count(all, "tcp flags & (syn | ack | rst) == syn log group 3 accept\n") == 1);
    CHECK(to_string(PortMatch{PortMatch::End::kSource, {1234}}) == "sport 1234");
    CHECK(to_string(PortMatch{PortMatch::End::kDestination, {5000, 5001}}) == "dport 5000,5001");
    CHECK(to_string(PortMatch{PortMatch::End::kEither, {80}}) == "port 80");
  }

  TEST_CASE("capture_chains: capture_all queues every segment, with no teardown set") {
    CaptureSpec spec;
    spec.capture_all = true;
    spec.mode = CaptureMode::kLocal;
    CHECK(render_nft_input(spec) ==
          table_head(0) +
              "  chain capture {\n"
              "    meta mark & 0xf1a0000 == 0xf1a0000 return\n"
              "  }\n" +
              base_chain("output", {"meta l4proto tcp"}) +
              base_chain("prerouting", {"iif != \"lo\" fib daddr type local meta l4proto tcp"}) +
              "}\n");
  }

  TEST_CASE("capture_chains: the queue and the injected mark are configurable") {
    CaptureSpec spec;
    spec.queue_num = 10;
    spec.injected_mark = 0x80000000;
    CHECK(render_nft_input(spec) == table_head(10) + set_declaration(4) + set_declaration(6) +
                                        with_mark(kCaptureBoth, "0x80000000") +
                                        base_chain("forward", {"meta l4proto tcp"}) + "}\n");
  }

  TEST_CASE("capture_chains: several queues each get a queue chain and a log group by symhash") {
    CaptureSpec spec;
    spec.queue_num = 10;
    spec.log_group = 20;
    spec.queue_count = 3;
    spec.queued = SegmentClasses::none();
    spec.queued.add(SegmentClass::kFin);
    const std::string rendered = render_nft_input(spec);
    CHECK(count(rendered,
                "    symhash mod 3 vmap { 0 : goto queue0, 1 : goto queue1, 2 : goto queue2 }\n"
                "  }\n") == 1);
    CHECK(count(rendered, "jump classify\n") == 0);
    for (int i = 0; i < 3; ++i) {
      CAPTURE(i);
      const std::string index = std::to_string(i);
      std::string queue_chain = "  chain queue";
      queue_chain.append(index).append(" {\n    jump classify").append(index).append("\n  }\n");
      CHECK(count(rendered, queue_chain) == 1);
      CHECK(count(rendered, " log group " + std::to_string(20 + i) + " accept\n") == 4);
    }
    CHECK(queue_rule_chains(spec) == std::vector<std::string>{"queue0", "queue1", "queue2"});
    CHECK(classify_chain_name(spec, 2) == "classify2");
    const std::string classify = render_classify_input(spec);
    CHECK(classify.rfind("flush chain inet finwave-q10 classify0\n"
                         "flush chain inet finwave-q10 classify1\n"
                         "flush chain inet finwave-q10 classify2\n"
                         "table inet finwave-q10 {\n",
                         0) == 0);
    CHECK(count(classify, "chain queue") == 0);
    // One queue, or everything queued through the target's own balancing: the capture chain.
    spec.queue_count = 1;
    CHECK(queue_rule_chains(spec) == std::vector<std::string>{"capture"});
    spec.queue_count = 3;
    spec.capture_all = true;
    CHECK(queue_rule_chains(spec) == std::vector<std::string>{"capture"});
    CHECK(count(render_nft_input(spec), "symhash") == 0);
  }

  TEST_CASE("capture_chains: invalid specs are rejected with their reason") {
    struct Case {
      const char* name;
      CaptureSpec spec;
      std::string message;
    };
    const auto with = [](auto change) {
      CaptureSpec spec;
      change(spec);
      return spec;
    };
    const std::string bad_address = " is not an IPv4 or IPv6 address or CIDR prefix";
    const std::vector<Case> cases = {
        {"port 0", with([](CaptureSpec& s) {
           s.ports = {80, 0};
         }),
         "capture spec: port 0 is not a TCP port"},
        {"no queue", with([](CaptureSpec& s) { s.queue_count = 0; }),
         "capture spec: queue_count must be at least 1"},
        {"queue range past 65535", with([](CaptureSpec& s) {
           s.queue_num = 65535;
           s.queue_count = 2;
         }),
         "capture spec: queues 65535..65536 do not fit in 16 bits (the last queue is 65535)"},
        {"IPv4 prefix too long", with([](CaptureSpec& s) { s.addresses = {"198.18.0.0/33"}; }),
         "capture spec: address \"198.18.0.0/33\" has prefix length 33, more than 32 for IPv4"},
        {"IPv6 prefix too long", with([](CaptureSpec& s) { s.addresses = {"2001:db8::/129"}; }),
         "capture spec: address \"2001:db8::/129\" has prefix length 129, more than 128 for IPv6"},
        {"empty prefix length", with([](CaptureSpec& s) { s.addresses = {"198.18.0.0/"}; }),
         "capture spec: address \"198.18.0.0/\"" + bad_address},
        {"prefix length with letters",
         with([](CaptureSpec& s) { s.addresses = {"198.18.0.0/1a"}; }),
         "capture spec: address \"198.18.0.0/1a\"" + bad_address},
        {"negative prefix length", with([](CaptureSpec& s) { s.addresses = {"198.18.0.0/-1"}; }),
         "capture spec: address \"198.18.0.0/-1\"" + bad_address},
        {"four-digit prefix length",
         with([](CaptureSpec& s) { s.addresses = {"2001:db8::/0064"}; }),
         "capture spec: address \"2001:db8::/0064\"" + bad_address},
        {"short IPv4 address", with([](CaptureSpec& s) { s.addresses = {"198.18.0/16"}; }),
         "capture spec: address \"198.18.0/16\"" + bad_address},
        {"host name", with([](CaptureSpec& s) { s.addresses = {"example.com"}; }),
         "capture spec: address \"example.com\"" + bad_address},
        {"empty address", with([](CaptureSpec& s) { s.addresses = {""}; }),
         "capture spec: address \"\"" + bad_address},
        {"prefix only", with([](CaptureSpec& s) { s.addresses = {"/24"}; }),
         "capture spec: address \"/24\"" + bad_address},
        {"one bad among good", with([](CaptureSpec& s) {
           s.addresses = {"198.18.0.0/15", "fe80::1%eth0"};
         }),
         "capture spec: address \"fe80::1%eth0\"" + bad_address},
        {"teardown set of size 0", with([](CaptureSpec& s) { s.teardown_set_size = 0; }),
         "capture spec: teardown_set_size must be at least 1"},
        {"injected mark 0", with([](CaptureSpec& s) { s.injected_mark = 0; }),
         "capture spec: injected_mark must not be 0 (every packet would count as injected)"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.name);
      CHECK_THROWS_WITH_AS(validate(c.spec), c.message.c_str(), std::invalid_argument);
      CHECK_THROWS_WITH_AS(render_nft_input(c.spec), c.message.c_str(), std::invalid_argument);
    }
  }

  TEST_CASE("capture_chains: edge specs are valid") {
    CaptureSpec spec;
    spec.addresses = {"0.0.0.0/0", "::/0", "198.18.0.1/32", "2001:db8::1/128"};
    spec.ports = {65535, 1};
    spec.queue_num = 65535;
    CHECK_NOTHROW(validate(spec));
    CHECK(capture_table_name(65535) == "finwave-q65535");
  }
}

namespace {

/// `nft <arguments>`'s output, which must succeed.
std::string nft(const std::vector<std::string>& arguments, const std::string& input = "") {
  std::vector<std::string> argv = {require_executable("nft", "nftables")};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  const SubprocessResult result = run_subprocess(argv, input);
  REQUIRE_MESSAGE(result.ok(), "nft failed: ", result.err, "\ninput:\n", input);
  return result.out;
}

/// Every nftables rule and set of the calling thread's namespace.
std::string ruleset() { return nft({"list", "ruleset"}); }

/// The iptables mangle table of `family`, as iptables-save writes it.
std::string iptables_save(int family) {
  const SubprocessResult result = run_subprocess(
      {require_executable(family == 4 ? "iptables-save" : "ip6tables-save", "iptables"), "-t",
       "mangle"});
  REQUIRE_MESSAGE(result.ok(), "iptables-save failed: ", result.err);
  return result.out;
}

/// Sets an environment variable for a scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      old_ = old;
    }
    ::setenv(name, value.c_str(), 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A queue number no real deployment on this machine is likely to use: the test checks that the
// root namespace never sees its chain.
constexpr std::uint16_t kLabQueue = 4242;

}  // namespace

namespace {

/// Segments the queue rule of kLabQueue's table has counted so far.
long queued_so_far() {
  const std::string chain =
      nft({"list", "chain", "inet", capture_table_name(kLabQueue), "capture"});
  const std::string counter = "counter packets ";
  const std::size_t at = chain.find(counter);
  REQUIRE_MESSAGE(at != std::string::npos, "no counter in\n", chain);
  return std::stol(chain.substr(at + counter.size()));
}

/// A socket closed on destruction.
struct Socket {
  explicit Socket(int value) : fd(value) { REQUIRE_MESSAGE(fd >= 0, "socket: ", errno); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  Socket(Socket&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  Socket& operator=(Socket&&) = delete;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

/// One loopback connection from 127.0.0.1 to `listener`: handshake, `writes` small data
/// segments from the client, then the client closes first and the server answers.

/// The network namespace's loopback brought up, and a local-mode capture spec of `port` on it.
CaptureSpec loopback_capture(std::uint16_t port) {
  const SubprocessResult up =
      run_subprocess({require_executable("ip", "iproute2"), "link", "set", "lo", "up"});
  REQUIRE_MESSAGE(up.ok(), up.err);
  CaptureSpec spec;
  spec.mode = CaptureMode::kLocal;
  spec.queue_num = kLabQueue;
  spec.ports = {port};
  return spec;
}

sockaddr_in loopback_address(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

Socket listen_on_loopback(std::uint16_t port) {
  Socket listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in address = loopback_address(port);
  REQUIRE(::bind(listener.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener.fd, 4) == 0);
  return listener;
}

/// Runs `body` in a new network namespace with a local-mode capture of `port` installed and a
/// listener on 127.0.0.1:`port`.
template <typename Body>
void on_loopback_capture(std::uint16_t port, Body body) {
  require_root();
  TestNamespace ns;
  ns.run([&] {
    const CaptureSpec spec = loopback_capture(port);
    const CaptureChains chains = CaptureChains::install(spec);
    const Socket listener = listen_on_loopback(port);
    body(spec, listener);
  });
}

/// A loopback connection to `port`, both ends open, Nagle off; the client's packets carry
/// `client_mark` (SO_MARK) unless it is 0.
struct Connection {
  Socket client;
  Socket server;
};

Connection connect_to(const Socket& listener, std::uint16_t port, std::uint32_t client_mark = 0) {
  Socket client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (client_mark != 0) {
    REQUIRE(::setsockopt(client.fd, SOL_SOCKET, SO_MARK, &client_mark, sizeof client_mark) == 0);
  }
  const int one = 1;
  REQUIRE(::setsockopt(client.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
  const sockaddr_in address = loopback_address(port);
  REQUIRE(::connect(client.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  Socket server(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(::setsockopt(server.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
  return Connection{std::move(client), std::move(server)};
}

void run_connection(const Socket& listener, std::uint16_t port, std::uint32_t client_mark) {
  const Connection connection = connect_to(listener, port, client_mark);
  const Socket& client = connection.client;
  const Socket& server = connection.server;

  const std::string chunk(100, 'd');
  std::string received;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(::send(client.fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(chunk.size()));
    // Wait for each chunk, so that every write is a segment of its own.
    while (received.size() < chunk.size() * static_cast<std::size_t>(i + 1)) {
      char buffer[4096];
      const ssize_t n = ::recv(server.fd, buffer, sizeof buffer, 0);
      REQUIRE(n > 0);
      received.append(buffer, static_cast<std::size_t>(n));
    }
  }
  REQUIRE(::shutdown(client.fd, SHUT_WR) == 0);  // fin1
  char byte;
  REQUIRE(::recv(server.fd, &byte, 1, 0) == 0);  // The server sees the FIN ...
  REQUIRE(::shutdown(server.fd, SHUT_WR) == 0);  // ... and sends fin2.
  REQUIRE(::recv(client.fd, &byte, 1, 0) == 0);  // The client's final ACK follows.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

/// Sends `chunks` 100-byte writes from `from` to `to`, each read before the next is written, so
/// that every write is a segment of its own.
void exchange(const Socket& from, const Socket& to, int chunks) {
  const std::string chunk(100, 'd');
  for (int i = 0; i < chunks; ++i) {
    REQUIRE(::send(from.fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(chunk.size()));
    std::size_t received = 0;
    while (received < chunk.size()) {
      char buffer[4096];
      const ssize_t n = ::recv(to.fd, buffer, sizeof buffer, 0);
      REQUIRE(n > 0);
      received += static_cast<std::size_t>(n);
    }
  }
  // Delayed ACKs go out within 40 ms on loopback.
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
}

/// The client of `connection` half-closes (fin1) and the server reads the end of the stream;
/// then the ACKs settle.
void send_fin1(const Connection& connection) {
  REQUIRE(::shutdown(connection.client.fd, SHUT_WR) == 0);
  char byte;
  REQUIRE(::recv(connection.server.fd, &byte, 1, 0) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
}

}  // namespace

TEST_SUITE("lab") {
  TEST_CASE("capture_chains: every kind of spec renders a table nft accepts") {
    require_root();
    TestNamespace ns;
    ns.run([] {
      std::vector<CaptureSpec> specs(6);
      specs[1].mode = CaptureMode::kLocal;
      specs[1].ports = {5432, 8080};
      specs[2].addresses = {"198.18.0.0/15", "198.18.0.1", "2001:db8::/32", "0.0.0.0/0"};
      specs[2].ports = {80, 443};
      specs[3].addresses = {"2001:db8:1::/48"};
      specs[3].mode = CaptureMode::kLocal;
      specs[4].capture_all = true;
      specs[5].queue_num = 65535;
      specs[5].injected_mark = 0xffffffff;
      specs[1].queued = SegmentClasses::none();
      specs[3].queued.add(SegmentClass::kSynAck);
      for (std::size_t i = 0; i < specs.size(); ++i) {
        CAPTURE(i);
        const std::string input = render_nft_input(specs[i]);
        nft({"-f", "-"}, input);
        if (!specs[i].capture_all) {
          // Every set of classes, in turn, replacing the chain in place.
          specs[i].queued = SegmentClasses::none();
          nft({"-f", "-"}, render_classify_input(specs[i]));
          specs[i].queued.add(SegmentClass::kAck);
          nft({"-f", "-"}, render_classify_input(specs[i]));
          // Narrowed by ports at each end, then whole again.
          specs[i].queued_only[static_cast<std::size_t>(SegmentClass::kAck)] = {
              PortMatch{PortMatch::End::kSource, {5000}},
              PortMatch{PortMatch::End::kEither, {80, 443}}};
          nft({"-f", "-"}, render_classify_input(specs[i]));
          specs[i].queued_only = {};
          specs[i].queued = SegmentClasses::all();
          nft({"-f", "-"}, render_classify_input(specs[i]));
        }
        nft({"delete", "table", "inet", capture_table_name(specs[i].queue_num)});
      }
    });
  }

  TEST_CASE(
      "capture_chains: install replaces a stale table and remove leaves nothing in a namespace") {
    const std::string table = capture_table_name(kLabQueue);
    require_root();
    REQUIRE_MESSAGE(count(ruleset(), table) == 0, "the root namespace already has ", table,
                    "; refusing to run");

    TestNamespace ns;
    ns.run([&] {
      // Someone else's table and iptables rule must survive everything below. The table's name
      // starts like finwave's, to make sure tables are matched on whole names.
      nft({"-f", "-"}, "table inet " + table +
                           "0 {\n  chain output {\n    type filter hook output "
                           "priority mangle; policy accept;\n    udp dport 9 return\n  }\n}\n");
      const std::string foreign_rule = "-A OUTPUT -p udp -m udp --dport 9 -j RETURN";
      const SubprocessResult restored =
          run_subprocess({require_executable("iptables-restore", "iptables"), "--noflush"},
                         "*mangle\n" + foreign_rule + "\nCOMMIT\n");
      REQUIRE_MESSAGE(restored.ok(), restored.err);
      const auto check_foreign = [&] {
        CHECK(count(ruleset(), "table inet " + table + "0 {") == 1);
        CHECK(count(iptables_save(4), foreign_rule) == 1);
      };

      CaptureSpec spec;
      spec.mode = CaptureMode::kLocal;
      spec.queue_num = kLabQueue;
      spec.ports = {5432, 8080};
      spec.addresses = {"198.18.0.0/15", "2001:db8::/32"};

      const auto check_installed = [&](const char* when) {
        CAPTURE(when);
        const std::string text = ruleset();
        CHECK(count(text, "table inet " + table + " {") == 1);
        CHECK(count(text, "set teardown4 {") == 1);
        CHECK(count(text, "set teardown6 {") == 1);
        CHECK(count(text, "type filter hook output priority mangle") ==
              2);  // Ours and the foreign one.
        CHECK(count(text, "type filter hook prerouting priority mangle") == 1);
        // (source + destination) x (sport + dport) x 2 families, in each of the two hooks.
        CHECK(count(text, "goto capture") == 16);
        // The queue rule ends the capture chain, with its counter.
        CHECK(count(text, "queue num 4242 bypass") == 1);
        CHECK(count(text,
                    "!= @teardown6 counter name \"refused6\"\n\t\tjump classify\n\t\tcounter "
                    "packets 0 bytes 0 "
                    "queue num 4242 bypass\n\t}") == 1);
        check_foreign();
      };
      const auto check_removed = [&](const char* when) {
        CAPTURE(when);
        const std::string text = ruleset();
        CHECK(count(text, "table inet " + table + " {") == 0);
        CHECK(count(text, "queue num") == 0);
        check_foreign();
      };

      {
        CaptureChains chains = CaptureChains::install(spec);
        CHECK(chains.installed());
        CHECK(chains.queue_num() == kLabQueue);
        check_installed("first install");
        CHECK(teardown_set_entries(kLabQueue, 4) == 0U);
        CHECK(teardown_set_entries(kLabQueue, 6) == 0U);

        // A second install of the same queue replaces the table instead of doubling it.
        CaptureChains again = CaptureChains::install(spec);
        check_installed("second install");

        // Stopping the capture empties the capture chain and keeps the table and its hooks.
        chains.stop_capturing();
        CHECK(chains.installed());
        const std::string capture = nft({"list", "chain", "inet", table, "capture"});
        CHECK(count(capture, "chain capture {\n\t}") == 1);
        CHECK(count(ruleset(), "goto capture") == 16);

        chains.remove();
        CHECK(!chains.installed());
        check_removed("after remove");
        CHECK_FALSE(teardown_set_entries(kLabQueue, 4).has_value());
        chains.remove();  // Idempotent.
        again.remove();   // Nothing left to remove: no error.
        check_removed("after removing twice");
      }

      // Leftovers of a crashed run.
      nft({"-f", "-"}, render_nft_input(spec));
      CHECK(CaptureChains::remove_stale(kLabQueue));
      check_removed("after remove_stale");
      CHECK_FALSE(CaptureChains::remove_stale(kLabQueue));

      // Router mode over four queues, moved between owners: the last owner's destructor removes
      // the table.
      {
        CaptureSpec router;
        router.queue_num = kLabQueue;
        router.queue_count = 4;
        CaptureChains first = CaptureChains::install(router);
        CaptureChains second(std::move(first));
        CHECK(!first.installed());  // NOLINT(bugprone-use-after-move): moved-from state is defined.
        CHECK(second.installed());
        const std::string text = ruleset();
        CHECK(count(text, "type filter hook forward priority mangle") == 1);
        // A queue rule per queue, each in its own chain.
        for (const char* queue : {"4242", "4243", "4244", "4245"}) {
          CHECK(count(text, std::string("queue num ") + queue + " bypass") == 1);
        }
        CHECK(second.check().state == QueueRuleState::kPresent);
        CHECK(second.check().packets == std::optional<std::uint64_t>(0));
        // One of them deleted: found, and put back alone.
        nft({"flush", "chain", "inet", table, "queue2"});
        CHECK(second.check().state == QueueRuleState::kMissing);
        second.restore(router, QueueRuleState::kMissing);
        CHECK(second.check().state == QueueRuleState::kPresent);
        CHECK(count(ruleset(), "queue num 4244 bypass") == 1);
        CHECK(count(ruleset(), "bypass") == 4);
      }
      check_removed("after destruction");

      // An nft that fails: the error carries its stderr, and nothing is left.
      char dir_template[] = "/tmp/fwnf-fake-XXXXXX";
      REQUIRE(::mkdtemp(dir_template) != nullptr);
      const std::string dir = dir_template;
      const std::string fake = dir + "/nft";
      const char* path = std::getenv("PATH");
      const std::string fake_path = dir + ":" + (path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
      {
        std::ofstream script(fake);
        script
            << "#!/bin/sh\ncat >/dev/null\necho '/dev/stdin:3:5-9: Error: simulated' >&2\nexit 1\n";
      }
      ::chmod(fake.c_str(), 0755);
      {
        ScopedEnv env("PATH", fake_path);
        CHECK_THROWS_WITH_AS(CaptureChains::install(spec),
                             "nft (installing table inet finwave-q4242) failed (exit status 1): "
                             "/dev/stdin:3:5-9: Error: simulated",
                             std::runtime_error);
      }
      check_removed("after nft failed");

      // An nft that claims success without creating the table: the queue rule is refused with
      // the kernel's reason.
      {
        std::ofstream script(fake);
        script << "#!/bin/sh\ncat >/dev/null\nexit 0\n";
      }
      {
        ScopedEnv env("PATH", fake_path);
        CHECK_THROWS_WITH_AS(CaptureChains::install(spec),
                             "adding the queue rule to inet finwave-q4242 capture failed: No such "
                             "file or directory (no such table or chain, or the kernel lacks the "
                             "xtables NFQUEUE target: nft_compat and xt_NFQUEUE)",
                             std::runtime_error);
      }
      check_removed("after the queue rule failed");
      ::unlink(fake.c_str());
      ::rmdir(dir.c_str());
    });

    CHECK_MESSAGE(count(ruleset(), table) == 0, "the root namespace must never see ", table);
  }

  TEST_CASE(
      "capture_chains: check() sees a deleted queue rule or table and restore() puts it back") {
    require_root();
    TestNamespace ns;
    ns.run([] {
      const std::string table = capture_table_name(kLabQueue);
      CaptureSpec spec;
      spec.queue_num = kLabQueue;
      spec.ports = {5000};
      CHECK(CaptureChains().check().state == QueueRuleState::kUnknown);
      CHECK(probe_queue_rule({table, kCaptureChain}).state == QueueRuleState::kChainMissing);
      CaptureChains chains = CaptureChains::install(spec);
      QueueRuleProbe probe = chains.check();
      CHECK(probe.state == QueueRuleState::kPresent);
      CHECK(probe.packets == std::optional<std::uint64_t>(0));

      // The queue rule alone: found by its handle, the last word of its line in `nft -a`.
      const std::string listed = nft({"-a", "list", "chain", "inet", table, kCaptureChain});
      const std::size_t rule = listed.find("queue num 4242 bypass # handle ");
      REQUIRE(rule != std::string::npos);
      const std::string handle = listed.substr(rule + 31, listed.find('\n', rule) - (rule + 31));
      nft({"delete", "rule", "inet", table, kCaptureChain, "handle", handle});
      CHECK(chains.check().state == QueueRuleState::kMissing);
      chains.restore(spec, QueueRuleState::kMissing);
      CHECK(chains.check().state == QueueRuleState::kPresent);
      CHECK(count(ruleset(), "queue num 4242 bypass") == 1);

      // The whole table.
      nft({"delete", "table", "inet", table});
      CHECK(chains.check().state == QueueRuleState::kChainMissing);
      chains.restore(spec, QueueRuleState::kChainMissing);
      CHECK(chains.check().state == QueueRuleState::kPresent);
      const std::string text = ruleset();
      CHECK(count(text, "table inet " + table + " {") == 1);
      CHECK(count(text, "queue num 4242 bypass") == 1);
      CHECK(count(text, "goto capture") == 2);
      chains.remove();
      CHECK(count(ruleset(), table) == 0);
    });
  }

  TEST_CASE("capture_chains: only teardown segments reach the queue on loopback") {
    constexpr std::uint16_t kPort = 5432;
    on_loopback_capture(kPort, [](const CaptureSpec& spec, const Socket& listener) {
      // Nobody listens on the queue: bypass lets the queued segments through, and the queue
      // rule's counter tells how many got there.
      run_connection(listener, kPort, 0);
      const long queued = queued_so_far();
      // SYN, SYN-ACK, fin1, ack1, fin2, final ACK (ack1 may ride on fin2). The handshake's ACK
      // and ten data segments with their ACKs stay in the kernel.
      CHECK(queued >= 5);
      CHECK(queued <= 6);
      // fin1 put both directions of the connection in the set; the handshake did not.
      const std::string set =
          nft({"list", "set", "inet", capture_table_name(kLabQueue), "teardown4"});
      CAPTURE(set);
      CHECK(count(set, "127.0.0.1 . 5432 . 127.0.0.1 expires") == 1);
      CHECK(count(set, " . 127.0.0.1 expires") == 2);
      CHECK(teardown_set_entries(kLabQueue, 4) == 2U);
      CHECK(teardown_set_entries(kLabQueue, 6) == 0U);

      // finwave's own copies carry the injected mark and are never queued: of the client's
      // SYN, fin1 and final ACK, none; only the server's SYN-ACK, ack1 and fin2.
      run_connection(listener, kPort, spec.injected_mark);
      CHECK(queued_so_far() - queued <= 3);
      CHECK(queued_so_far() - queued >= 2);
    });
  }

  TEST_CASE(
      "capture_chains: a connection in teardown does not pull its neighbours' data into the "
      "queue") {
    constexpr std::uint16_t kPort = 5433;
    on_loopback_capture(kPort, [](const CaptureSpec& /*spec*/, const Socket& listener) {
      // Nobody listens on the queue: bypass lets queued segments through, and the queue rule's
      // counter tells how many got there.
      // A half-closes: its client sent fin1, its server keeps the connection open. Both of its
      // entries are in the set now, among them (127.0.0.1, 5433, 127.0.0.1), which every
      // connection from this client address to this port shares.
      const Connection a = connect_to(listener, kPort);
      send_fin1(a);

      // B, a neighbour with the same addresses and server port, exchanges data both ways: only
      // its SYN and SYN-ACK are queued.
      const long before_b = queued_so_far();
      const Connection b = connect_to(listener, kPort);
      exchange(b.client, b.server, 5);
      exchange(b.server, b.client, 5);
      CHECK(queued_so_far() - before_b == 2);

      // A's server still sends after fin1: those segments and the client's ACKs are A's
      // teardown, and all of them are queued.
      const long before_a = queued_so_far();
      exchange(a.server, a.client, 3);
      CHECK(queued_so_far() - before_a >= 4);  // 3 data segments, at least one ACK.

      // B's teardown is queued like any other: fin1, fin2, the final ACK (ack1 may ride on fin2).
      const long before_close = queued_so_far();
      send_fin1(b);
      char byte;
      REQUIRE(::shutdown(b.server.fd, SHUT_WR) == 0);
      REQUIRE(::recv(b.client.fd, &byte, 1, 0) == 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
      CHECK(queued_so_far() - before_close >= 3);
    });
  }

  TEST_CASE("capture_chains: a full teardown set refuses a new connection and counts it") {
    constexpr std::uint16_t kPort = 5434;
    require_root();
    TestNamespace ns;
    ns.run([] {
      CaptureSpec spec = loopback_capture(kPort);
      spec.teardown_set_size = 2;
      const CaptureChains chains = CaptureChains::install(spec);
      const Socket listener = listen_on_loopback(kPort);
      const std::string table = capture_table_name(kLabQueue);

      // A's fin1 fills the set with A's two elements.
      const Connection a = connect_to(listener, kPort);
      send_fin1(a);
      CHECK(teardown_set_entries(kLabQueue, 4) == 2U);
      CHECK(teardown_set_refused(kLabQueue, 4) == 0U);

      // B's fin1 finds no room for B's client element (the server's, shared with A, is there):
      // it is counted, and B's later pure ACKs will not be captured.
      const Connection b = connect_to(listener, kPort);
      send_fin1(b);
      CHECK(teardown_set_entries(kLabQueue, 4) == 2U);
      CHECK(teardown_set_refused(kLabQueue, 4) == 1U);
      CHECK(teardown_set_refused(kLabQueue, 6) == 0U);

      // A count past its limit gives nothing rather than a partial figure.
      CHECK(nft_set_elements(table, "teardown4", 2) == 2U);
      CHECK_FALSE(nft_set_elements(table, "teardown4", 1).has_value());
    });
  }
}

}  // namespace finwave::nf
