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

#include "netfilter/subprocess.hpp"
#include "netfilter/teardown_set.hpp"

namespace finwave::nf {
namespace {

// The chain's own rules for queue `queue` (family 4 or 6), ending in `verdict`.
std::string chain_rules(int queue, int family, const std::string& verdict,
                        const std::string& mark = "0xf1a0000/0xf1a0000") {
  const std::string chain = "FINWAVE-Q" + std::to_string(queue);
  const std::string set =
      "finwave-q" + std::to_string(queue) + (family == 6 ? "-v6" : "-v4");
  return ":" + chain + " - [0:0]\n" +
         "-A " + chain + " -p tcp --tcp-flags FIN,SYN,RST NONE -m set ! --match-set " + set +
         " src,src,dst -j RETURN\n" +
         "-A " + chain + " -p tcp --tcp-flags FIN,SYN,RST NONE -m set ! --match-set " + set +
         " dst,dst,src -j RETURN\n" +
         "-A " + chain + " -m mark --mark " + mark + " -j RETURN\n" +
         "-A " + chain + " -p tcp --syn -j SET --del-set " + set + " src,src,dst\n" +
         "-A " + chain + " -p tcp --tcp-flags SYN,RST NONE -j SET --add-set " + set +
         " src,src,dst --exist\n" +
         "-A " + chain + " -p tcp --tcp-flags SYN,RST NONE -j SET --add-set " + set +
         " dst,dst,src --exist\n" +
         "-A " + chain + " -j " + verdict + "\n";
}

const std::string kQueue0 = "NFQUEUE --queue-num 0 --queue-bypass";

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
    const CaptureSpec spec;
    for (const int family : {4, 6}) {
      CHECK(render_restore_input(spec, family) ==
            "*mangle\n" + chain_rules(0, family, kQueue0) +
                "-I FORWARD 1 -p tcp -m comment --comment finwave -j FINWAVE-Q0\n"
                "COMMIT\n");
    }
  }

  TEST_CASE("capture_chains: local mode hooks OUTPUT and PREROUTING to local addresses except loopback") {
    CaptureSpec spec;
    spec.mode = CaptureMode::kLocal;
    spec.queue_num = 3;
    spec.ports = {5432, 8080, 5432};
    CHECK(render_restore_input(spec, 4) ==
          "*mangle\n" + chain_rules(3, 4, "NFQUEUE --queue-num 3 --queue-bypass") +
              "-I OUTPUT 1 -p tcp -m multiport --ports 5432,8080 -m comment --comment finwave "
          "-j FINWAVE-Q3\n"
          "-I PREROUTING 1 ! -i lo -m addrtype --dst-type LOCAL -p tcp -m multiport --ports "
          "5432,8080 -m comment --comment finwave "
          "-j FINWAVE-Q3\n"
          "COMMIT\n");
  }

  TEST_CASE("capture_chains: more than 15 ports take one jump rule per 15") {
    CaptureSpec spec;
    for (std::uint16_t port = 1; port <= 20; ++port) {
      spec.ports.push_back(port);
    }
    CHECK(render_restore_input(spec, 6) ==
          "*mangle\n" + chain_rules(0, 6, kQueue0) +
              "-I FORWARD 1 -p tcp -m multiport --ports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "-I FORWARD 2 -p tcp -m multiport --ports 16,17,18,19,20 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "COMMIT\n");
  }

  TEST_CASE("capture_chains: addresses match either end in their own family only") {
    CaptureSpec spec;
    spec.ports = {80};
    spec.addresses = {"198.18.0.0/15", "2001:db8:1::/48", "198.18.9.9", "198.18.0.0/15"};
    CHECK(render_restore_input(spec, 4) ==
          "*mangle\n" + chain_rules(0, 4, kQueue0) +
              "-I FORWARD 1 -s 198.18.0.0/15 -p tcp -m multiport --ports 80 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "-I FORWARD 2 -d 198.18.0.0/15 -p tcp -m multiport --ports 80 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "-I FORWARD 3 -s 198.18.9.9 -p tcp -m multiport --ports 80 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "-I FORWARD 4 -d 198.18.9.9 -p tcp -m multiport --ports 80 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "COMMIT\n");
    CHECK(render_restore_input(spec, 6) ==
          "*mangle\n" + chain_rules(0, 6, kQueue0) +
              "-I FORWARD 1 -s 2001:db8:1::/48 -p tcp -m multiport --ports 80 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "-I FORWARD 2 -d 2001:db8:1::/48 -p tcp -m multiport --ports 80 "
              "-m comment --comment finwave -j FINWAVE-Q0\n"
              "COMMIT\n");
  }

  TEST_CASE("capture_chains: a family without any of the given addresses is not captured") {
    CaptureSpec spec;
    spec.addresses = {"198.18.1.0/24"};
    CHECK(render_restore_input(spec, 6).empty());
    CHECK(!render_restore_input(spec, 4).empty());
    spec.addresses = {"2001:db8::/32"};
    CHECK(render_restore_input(spec, 4).empty());
    CHECK(!render_restore_input(spec, 6).empty());
  }

  TEST_CASE("capture_chains: capture_all queues every segment, with no teardown set") {
    CaptureSpec spec;
    spec.capture_all = true;
    spec.mode = CaptureMode::kLocal;
    CHECK(render_restore_input(spec, 4) ==
          "*mangle\n"
          ":FINWAVE-Q0 - [0:0]\n"
          "-A FINWAVE-Q0 -m mark --mark 0xf1a0000/0xf1a0000 -j RETURN\n"
          "-A FINWAVE-Q0 -j NFQUEUE --queue-num 0 --queue-bypass\n"
          "-I OUTPUT 1 -p tcp -m comment --comment finwave -j FINWAVE-Q0\n"
          "-I PREROUTING 1 ! -i lo -m addrtype --dst-type LOCAL -p tcp -m comment --comment "
          "finwave -j FINWAVE-Q0\n"
          "COMMIT\n");
  }

  TEST_CASE("capture_chains: several queues balance and the injected mark is configurable") {
    CaptureSpec spec;
    spec.queue_num = 10;
    spec.queue_count = 4;
    spec.injected_mark = 0x80000000;
    CHECK(render_restore_input(spec, 4) ==
          "*mangle\n" +
              chain_rules(10, 4, "NFQUEUE --queue-balance 10:13 --queue-bypass",
                          "0x80000000/0x80000000") +
              "-I FORWARD 1 -p tcp -m comment --comment finwave -j FINWAVE-Q10\n"
          "COMMIT\n");
    spec.queue_num = 65532;
    CHECK(render_restore_input(spec, 4).find("--queue-balance 65532:65535 ") != std::string::npos);
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
        {"injected mark 0", with([](CaptureSpec& s) { s.injected_mark = 0; }),
         "capture spec: injected_mark must not be 0 (every packet would count as injected)"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.name);
      CHECK_THROWS_WITH_AS(validate(c.spec), c.message.c_str(), std::invalid_argument);
      CHECK_THROWS_WITH_AS(render_restore_input(c.spec, 4), c.message.c_str(),
                           std::invalid_argument);
    }
    CHECK_THROWS_WITH_AS(render_restore_input(CaptureSpec{}, 5),
                         "render_restore_input: family must be 4 or 6, not 5",
                         std::invalid_argument);
  }

  TEST_CASE("capture_chains: edge specs are valid") {
    CaptureSpec spec;
    spec.addresses = {"0.0.0.0/0", "::/0", "198.18.0.1/32", "2001:db8::1/128"};
    spec.ports = {65535, 1};
    spec.queue_num = 65535;
    CHECK_NOTHROW(validate(spec));
    CHECK(capture_chain_name(65535) == "FINWAVE-Q65535");
  }
}

namespace {

/// A named network namespace for the duration of a test; deleted by the destructor, whatever
/// happened in between.
class TestNamespace {
 public:
  TestNamespace()
      : name_("fwnf-" + std::to_string(::getpid())), ip_(require_executable("ip", "iproute2")) {
    const SubprocessResult added = run_subprocess({ip_, "netns", "add", name_});
    if (!added.ok()) {
      throw std::runtime_error("ip netns add " + name_ + " failed: " + added.err);
    }
  }
  TestNamespace(const TestNamespace&) = delete;
  TestNamespace& operator=(const TestNamespace&) = delete;
  ~TestNamespace() {
    try {
      const SubprocessResult deleted = run_subprocess({ip_, "netns", "delete", name_});
      if (!deleted.ok()) {
        std::fprintf(stderr, "ip netns delete %s failed: %s\n", name_.c_str(), deleted.err.c_str());
      }
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ip netns delete %s failed: %s\n", name_.c_str(), error.what());
    }
  }

  const std::string& name() const { return name_; }

  /// Runs `body` on a fresh thread that has entered the namespace: setns() moves only the
  /// calling thread, and the processes it forks (iptables-restore) start in its namespace.
  /// Exceptions from `body` (failed REQUIREs included) are rethrown on the caller's thread.
  template <typename Body>
  void run(Body&& body) const {
    std::exception_ptr error;
    std::thread worker([&] {
      try {
        const std::string path = "/run/netns/" + name_;
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          throw std::system_error(errno, std::generic_category(), "open " + path);
        }
        const int entered = ::setns(fd, CLONE_NEWNET);
        const int saved_errno = errno;
        ::close(fd);
        if (entered != 0) {
          throw std::system_error(saved_errno, std::generic_category(), "setns " + path);
        }
        body();
      } catch (...) {
        error = std::current_exception();
      }
    });
    worker.join();
    if (error) {
      std::rethrow_exception(error);
    }
  }

 private:
  std::string name_;
  std::string ip_;
};

std::string save(int family) {
  const SubprocessResult result = run_subprocess(
      {require_executable(family == 4 ? "iptables-save" : "ip6tables-save", "iptables"), "-t",
       "mangle"});
  REQUIRE_MESSAGE(result.ok(), "iptables-save failed: ", result.err);
  return result.out;
}

void restore(int family, const std::string& input) {
  const SubprocessResult result = run_subprocess(
      {require_executable(family == 4 ? "iptables-restore" : "ip6tables-restore", "iptables"),
       "--noflush"},
      input);
  REQUIRE_MESSAGE(result.ok(), "iptables-restore failed: ", result.err, "\ninput:\n", input);
}

/// `ipset list -name`: one set name per line.
std::string ipset_names() {
  const SubprocessResult result =
      run_subprocess({require_executable("ipset", "ipset"), "list", "-name"});
  REQUIRE_MESSAGE(result.ok(), "ipset list failed: ", result.err);
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

/// Packet counter of the first rule in `saved` (iptables-save -c output) containing `rule`.
long packets(const std::string& saved, const std::string& rule) {
  const std::size_t at = saved.find(rule);
  REQUIRE_MESSAGE(at != std::string::npos, "no rule ", rule, " in\n", saved);
  const std::size_t line = saved.rfind('\n', at) + 1;
  REQUIRE(saved[line] == '[');
  return std::stol(saved.substr(line + 1));
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
void require_root() {
  REQUIRE_MESSAGE(::geteuid() == 0,
                  "this lab test needs root (CAP_NET_ADMIN) to create a network namespace and "
                  "install iptables rules in it; run it as root, or exclude the 'lab' suite");
}

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

/// Packets the queue rule of kLabQueue has matched so far (IPv4).
long queued_so_far() {
  const std::string saved =
      run_subprocess({require_executable("iptables-save", "iptables"), "-c", "-t", "mangle"}).out;
  return packets(saved, "-j NFQUEUE --queue-num 4242");
}

}  // namespace

TEST_SUITE("lab") {
  TEST_CASE(
      "capture_chains: install replaces stale rules and remove leaves nothing in a namespace") {
    const std::string lab_chain = capture_chain_name(kLabQueue);
    require_root();
    const std::string root_before_v4 = save(4);
    REQUIRE_MESSAGE(count(root_before_v4, lab_chain) == 0, "the root namespace already has ",
                    lab_chain, "; refusing to run");

    TestNamespace ns;
    ns.run([&] {
      // Someone else's rule in the same hook must survive everything below.
      // Its comment mentions the chain, to make sure rules are matched on words, not text.
      const std::string foreign_rule =
          "-A OUTPUT -p udp -m udp --dport 9 -m comment --comment \"not -j " + lab_chain +
          "\" -j RETURN";
      restore(4, "*mangle\n" + foreign_rule + "\nCOMMIT\n");
      restore(6, "*mangle\n" + foreign_rule + "\nCOMMIT\n");

      CaptureSpec spec;
      spec.mode = CaptureMode::kLocal;
      spec.queue_num = kLabQueue;
      spec.ports = {5432, 8080};
      spec.addresses = {"198.18.0.0/15", "2001:db8::/32"};

      const auto check_installed = [&](const char* when) {
        for (const int family : {4, 6}) {
          CAPTURE(when);
          CAPTURE(family);
          const std::string text = save(family);
          CHECK(count(text, ":" + lab_chain + " ") == 1);
          // (OUTPUT + PREROUTING) x (source + destination) jump rules, 7 rules in the chain.
          CHECK(count(text, "-j " + lab_chain + "\n") == 4);
          CHECK(count(text, "-m comment --comment finwave") == 4);
          CHECK(count(text, "-A " + lab_chain + " ") == 7);
          CHECK(count(ipset_names(), teardown_set_name(kLabQueue, family) + "\n") == 1);
          CHECK(count(text, "--queue-num 4242 --queue-bypass") == 1);
          // Jump rules come first in their hooks.
          const std::size_t first_output = text.find("-A OUTPUT ");
          REQUIRE(first_output != std::string::npos);
          const std::string first_jump =
              family == 4 ? "-A OUTPUT -s 198.18.0.0/15 " : "-A OUTPUT -s 2001:db8::/32 ";
          CHECK(text.compare(first_output, first_jump.size(), first_jump) == 0);
          CHECK(count(text, foreign_rule) == 1);
        }
      };
      const auto check_removed = [&](const char* when) {
        for (const int family : {4, 6}) {
          CAPTURE(when);
          CAPTURE(family);
          const std::string text = save(family);
          CHECK(count(text, ":" + lab_chain) == 0);
          CHECK(count(text, "-A " + lab_chain) == 0);
          CHECK(count(text, "-j " + lab_chain + "\n") == 0);
          CHECK(count(text, "--comment finwave") == 0);
          CHECK(count(text, foreign_rule) == 1);
          CHECK(count(ipset_names(), teardown_set_name(kLabQueue, family) + "\n") == 0);
        }
      };

      {
        CaptureChains chains = CaptureChains::install(spec);
        CHECK(chains.installed());
        CHECK(chains.queue_num() == kLabQueue);
        check_installed("first install");

        // A second install of the same queue replaces the rules instead of doubling them.
        CaptureChains again = CaptureChains::install(spec);
        check_installed("second install");

        // Stopping the capture empties the chains and keeps them and their jumps.
        chains.stop_capturing();
        CHECK(chains.installed());
        for (const int family : {4, 6}) {
          CAPTURE(family);
          const std::string text = save(family);
          CHECK(count(text, ":" + lab_chain + " ") == 1);
          CHECK(count(text, "-A " + lab_chain + " ") == 0);
          CHECK(count(text, "-j " + lab_chain + "\n") == 4);
          CHECK(count(text, foreign_rule) == 1);
        }

        chains.remove();
        CHECK(!chains.installed());
        check_removed("after remove");
        chains.remove();  // Idempotent.
        again.remove();   // Nothing left to remove: no error.
        check_removed("after removing twice");
      }

      // Leftovers of a crashed run: the same input applied twice doubles the jump rules (the
      // chain declaration flushes the chain itself).
      for (const int family : {4, 6}) {
        create_teardown_set(kLabQueue, family);
        const std::string input = render_restore_input(spec, family);
        restore(family, input);
        restore(family, input);
      }
      CHECK(count(save(4), "-j " + lab_chain + "\n") == 8);
      CHECK(CaptureChains::remove_stale(kLabQueue) == 2 * (8 + 7));
      check_removed("after remove_stale");
      CHECK(CaptureChains::remove_stale(kLabQueue) == 0);

      // Router mode, moved between owners: the last owner's destructor removes the rules.
      {
        CaptureSpec router;
        router.queue_num = kLabQueue;
        CaptureChains first = CaptureChains::install(router);
        CaptureChains second(std::move(first));
        CHECK(!first.installed());  // NOLINT(bugprone-use-after-move): moved-from state is defined.
        CHECK(second.installed());
        CHECK(count(save(6), "-A FORWARD -p tcp -m comment --comment finwave -j " + lab_chain) ==
              1);
      }
      check_removed("after destruction");

      // A set of finwave's name but another type (not finwave's own leftover, which remove_stale
      // would have destroyed first): install refuses with ipset's reason and leaves no rules.
      {
        const std::string ipset = require_executable("ipset", "ipset");
        const std::string name = teardown_set_name(kLabQueue, 4);
        const SubprocessResult made = run_subprocess({ipset, "create", name, "hash:ip"});
        REQUIRE_MESSAGE(made.ok(), made.err);
        try {
          create_teardown_set(kLabQueue, 4);
          FAIL("create_teardown_set accepted a set of another type");
        } catch (const std::runtime_error& error) {
          const std::string message = error.what();
          CHECK(message.find("ipset create " + name + " failed") == 0);
          CHECK(message.find("exists") != std::string::npos);
        }
        CHECK(destroy_teardown_set(kLabQueue, 4));
        CHECK(!destroy_teardown_set(kLabQueue, 4));  // Gone: nothing to destroy.
        check_removed("after a foreign set");
      }

      // If the IPv6 half fails, the IPv4 half is rolled back and the error carries stderr.
      {
        char dir_template[] = "/tmp/fwnf-fake-XXXXXX";
        REQUIRE(::mkdtemp(dir_template) != nullptr);
        const std::string dir = dir_template;
        const std::string fake = dir + "/ip6tables-restore";
        {
          std::ofstream script(fake);
          script
              << "#!/bin/sh\ncat >/dev/null\necho 'line 3 failed: simulated failure' >&2\nexit 1\n";
        }
        ::chmod(fake.c_str(), 0755);
        {
          const char* path = std::getenv("PATH");
          ScopedEnv env("PATH", dir + ":" + (path ? path : "/usr/sbin:/usr/bin:/sbin:/bin"));
          CHECK_THROWS_WITH_AS(CaptureChains::install(spec),
                               doctest::Contains("ip6tables-restore (installing FINWAVE-Q4242) "
                                                 "failed (exit status 1): line 3 failed: "
                                                 "simulated failure"),
                               std::runtime_error);
        }
        ::unlink(fake.c_str());
        ::rmdir(dir.c_str());
        check_removed("after failed install");
      }
    });

    CHECK_MESSAGE(count(save(4), lab_chain) == 0, "the root namespace must never see ", lab_chain);
    CHECK_MESSAGE(count(save(6), lab_chain) == 0, "the root namespace must never see ", lab_chain);
  }

  TEST_CASE("capture_chains: only teardown segments reach the queue on loopback") {
    constexpr std::uint16_t kPort = 5432;
    on_loopback_capture(kPort, [](const CaptureSpec& spec, const Socket& listener) {

      // Nobody listens on the queue: --queue-bypass lets the queued segments through, and the
      // rule counters tell which rule each segment ended at.
      run_connection(listener, kPort, 0);
      std::string saved =
          run_subprocess({require_executable("iptables-save", "iptables"), "-c", "-t", "mangle"})
              .out;
      const std::string chain = capture_chain_name(kLabQueue);
      const long queued = packets(saved, "-j NFQUEUE --queue-num 4242");
      const std::string set = teardown_set_name(kLabQueue, 4);
      const long bulk = packets(saved, "--match-set " + set + " src,src,dst -j RETURN") +
                        packets(saved, "--match-set " + set + " dst,dst,src -j RETURN");
      const long added = packets(saved, "--add-set " + set + " src,src,dst --exist");
      const long through_output = packets(saved, "-A OUTPUT -p tcp");
      const long through_input = packets(saved, "-A PREROUTING ! -i lo");
      CAPTURE(saved);
      // SYN, SYN-ACK, fin1, ack1, fin2, final ACK (ack1 may ride on fin2).
      CHECK(queued >= 5);
      CHECK(queued <= 6);
      // fin1, ack1 (unless it rides on fin2), fin2 and the final ACK enter the set; the
      // handshake does not.
      CHECK(added >= 3);
      CHECK(added == queued - 2);
      // The handshake's ACK and ten data segments with their ACKs stay in the kernel.
      CHECK(bulk >= 11);
      // On loopback OUTPUT sees every segment once; PREROUTING skips lo.
      CHECK(through_output == queued + bulk);
      CHECK(through_input == 0);

      // finwave's own copies carry the injected mark and are never queued.
      run_connection(listener, kPort, spec.injected_mark);
      saved =
          run_subprocess({require_executable("iptables-save", "iptables"), "-c", "-t", "mangle"})
              .out;
      const long injected = packets(saved, "-m mark --mark 0xf1a0000/0xf1a0000 -j RETURN");
      const long queued_after = packets(saved, "-j NFQUEUE --queue-num 4242");
      // The client's SYN, fin1 and final ACK; its bulk segments return before the mark test.
      CHECK(injected >= 3);
      CHECK(queued_after - queued <= 3);  // Only the server's SYN-ACK, ack1 and fin2.
    });
  }

  TEST_CASE("capture_chains: a connection in teardown does not pull its neighbours' data into the queue") {
    constexpr std::uint16_t kPort = 5433;
    on_loopback_capture(kPort, [](const CaptureSpec& /*spec*/, const Socket& listener) {

      // Nobody listens on the queue: --queue-bypass lets queued segments through, and the queue
      // rule's counter tells how many got there.
      // A half-closes: its client sent fin1, its server keeps the connection open. Both of its
      // entries are in the set now, among them (127.0.0.1, 5433, 127.0.0.1), which every
      // connection from this client address to this port shares.
      const Connection a = connect_to(listener, kPort);
      REQUIRE(::shutdown(a.client.fd, SHUT_WR) == 0);
      char byte;
      REQUIRE(::recv(a.server.fd, &byte, 1, 0) == 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(60));

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
      REQUIRE(::shutdown(b.client.fd, SHUT_WR) == 0);
      REQUIRE(::recv(b.server.fd, &byte, 1, 0) == 0);
      REQUIRE(::shutdown(b.server.fd, SHUT_WR) == 0);
      REQUIRE(::recv(b.client.fd, &byte, 1, 0) == 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(60));
      CHECK(queued_so_far() - before_close >= 3);
    });
  }
}

}  // namespace finwave::nf
