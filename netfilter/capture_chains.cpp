#include "netfilter/capture_chains.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "netfilter/queue_rule.hpp"
#include "netfilter/subprocess.hpp"
#include "netfilter/teardown_set.hpp"

namespace finwave::nf {
namespace {

constexpr const char* kNft = "nft";

// The longest packet a log copy holds whole (the kernel's copy range is 0xffff less an attribute
// header).
constexpr unsigned kMaxLoggedLength = 65531;

// Several queues, each with a chain of its own for its queue rule and log group.
bool spread(const CaptureSpec& spec) { return spec.queue_count > 1 && !spec.capture_all; }
constexpr const char* kDebianPackage = "nftables";

std::string hex(std::uint32_t value) {
  std::array<char, 16> text{};
  std::snprintf(text.data(), text.size(), "0x%x", value);
  return text.data();
}

/// The family (4 or 6) of a CIDR prefix or bare address, or 0 when it is neither. Sets `error`
/// to a message tail when the prefix length is out of range.
int cidr_family(const std::string& cidr, std::string& error) {
  const std::size_t slash = cidr.find('/');
  const std::string address = cidr.substr(0, slash);
  std::array<unsigned char, 16> buffer{};
  int family = 0;
  if (inet_pton(AF_INET, address.c_str(), buffer.data()) == 1) {
    family = 4;
  } else if (inet_pton(AF_INET6, address.c_str(), buffer.data()) == 1) {
    family = 6;
  } else {
    return 0;
  }
  if (slash == std::string::npos) {
    return family;
  }
  const std::string_view length(cidr.c_str() + slash + 1);
  if (length.empty() || length.size() > 3 ||
      !std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  const int bits = std::stoi(std::string(length));
  const int max_bits = family == 4 ? 32 : 128;
  if (bits > max_bits) {
    error = "has prefix length " + std::to_string(bits) + ", more than " +
            std::to_string(max_bits) + " for IPv" + std::to_string(family);
  }
  return family;
}

/// Trims trailing whitespace so that messages end cleanly.
std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\t')) {
    text.pop_back();
  }
  return text;
}

std::string failure_message(const std::string& what, const SubprocessResult& result) {
  std::string message = what;
  if (result.timed_out) {
    message += " timed out";
  } else {
    message += " failed (exit status " + std::to_string(result.exit_status) + ")";
  }
  const std::string err = trimmed(result.err);
  if (!err.empty()) {
    message += ": " + err;
  }
  return message;
}

/// An nftables anonymous set: "{ a, b }".
std::string anonymous_set(const std::vector<std::string>& items) {
  std::string set = "{ ";
  for (std::size_t i = 0; i < items.size(); ++i) set += (i == 0 ? "" : ", ") + items[i];
  return set + " }";
}

/// The TCP match of a jump rule: either end's port in `ports` (every TCP segment when there are
/// none), as one rule per end. Each rule sends the segment to the capture chain with goto, so
/// that a segment both of whose ends match enters it once.
std::vector<std::string> port_matches(const std::vector<std::uint16_t>& ports) {
  if (ports.empty()) return {"meta l4proto tcp"};
  std::vector<std::string> numbers;
  numbers.reserve(ports.size());
  for (const std::uint16_t port : ports) numbers.push_back(std::to_string(port));
  const std::string set = anonymous_set(numbers);
  return {"tcp sport " + set, "tcp dport " + set};
}

/// The address match of a jump rule for one family ("ip" or "ip6"): either end's address among
/// `prefixes`, as one rule per end.
std::vector<std::string> address_matches(const std::string& protocol,
                                         const std::vector<std::string>& prefixes) {
  const std::string set = anonymous_set(prefixes);
  return {protocol + " saddr " + set + " ", protocol + " daddr " + set + " "};
}

/// The teardown set of `family` and its refused counter, as declared in the table.
std::string set_declaration(int family, std::uint32_t size) {
  const char* type =
      family == 4 ? "ipv4_addr . inet_service . ipv4_addr" : "ipv6_addr . inet_service . ipv6_addr";
  return "  set " + teardown_set_name(family) + " {\n    type " + type +
         "\n    flags dynamic, timeout\n    timeout " + std::to_string(kTeardownSetTimeoutSeconds) +
         "s\n    size " + std::to_string(size) + "\n  }\n  counter " +
         refused_counter_name(family) + " {\n  }\n";
}

/// The key of a segment's own direction (`own`: address, port, peer address of its sender) or
/// its peer's (those of its receiver) in `family`'s set.
std::string set_key(int family, bool own) {
  const char* protocol = family == 4 ? "ip" : "ip6";
  const std::string source = std::string(protocol) + " saddr";
  const std::string destination = std::string(protocol) + " daddr";
  return own ? source + " . tcp sport . " + destination : destination + " . tcp dport . " + source;
}

SubprocessResult run_nft(const std::vector<std::string>& arguments, std::string_view input = {}) {
  std::vector<std::string> argv = {require_executable(kNft, kDebianPackage)};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return run_subprocess(argv, input);
}

/// Whether `nft list tables inet` shows `table`.
bool table_exists(const std::string& table) {
  const SubprocessResult listed = run_nft({"list", "tables", "inet"});
  if (!listed.ok()) throw std::runtime_error(failure_message("nft list tables inet", listed));
  const std::string line = "table inet " + table;
  std::size_t begin = 0;
  while (begin < listed.out.size()) {
    std::size_t end = listed.out.find('\n', begin);
    if (end == std::string::npos) end = listed.out.size();
    if (std::string_view(listed.out).substr(begin, end - begin) == line) return true;
    begin = end + 1;
  }
  return false;
}

// For shutdown paths that cannot do better than say what failed. `doing` names the step in the
// message ("removing", "emptying").
template <typename Step>
void logged(std::uint16_t queue_num, const char* doing, Step step) noexcept {
  try {
    step();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwave: %s capture table %s failed: %s\n", doing,
                 capture_table_name(queue_num).c_str(), error.what());
  } catch (...) {
    std::fprintf(stderr, "finwave: %s capture table finwave-q%u failed\n", doing,
                 unsigned{queue_num});
  }
}

}  // namespace

std::string capture_table_name(std::uint16_t queue_num) {
  return "finwave-q" + std::to_string(queue_num);
}

void validate(const CaptureSpec& spec) {
  const std::string prefix = "capture spec: ";
  if (spec.queue_count == 0) {
    throw std::invalid_argument(prefix + "queue_count must be at least 1");
  }
  const unsigned last_queue = unsigned{spec.queue_num} + spec.queue_count - 1U;
  if (last_queue > 0xFFFFU) {
    throw std::invalid_argument(prefix + "queues " + std::to_string(spec.queue_num) + ".." +
                                std::to_string(last_queue) +
                                " do not fit in 16 bits (the last queue is 65535)");
  }
  const unsigned last_group = unsigned{spec.log_group} + spec.queue_count - 1U;
  if (last_group > 0xFFFFU) {
    throw std::invalid_argument(prefix + "log groups " + std::to_string(spec.log_group) + ".." +
                                std::to_string(last_group) +
                                " do not fit in 16 bits (the last group is 65535)");
  }
  if (std::find(spec.ports.begin(), spec.ports.end(), 0) != spec.ports.end()) {
    throw std::invalid_argument(prefix + "port 0 is not a TCP port");
  }
  for (const std::string& address : spec.addresses) {
    std::string error;
    const int family = cidr_family(address, error);
    if (family == 0) {
      error = "is not an IPv4 or IPv6 address or CIDR prefix";
    }
    if (!error.empty()) {
      std::string message = prefix;
      message.append("address \"").append(address).append("\" ").append(error);
      throw std::invalid_argument(message);
    }
  }
  if (spec.teardown_set_size == 0) {
    throw std::invalid_argument(prefix + "teardown_set_size must be at least 1");
  }
  if (spec.injected_mark == 0) {
    throw std::invalid_argument(
        prefix + "injected_mark must not be 0 (every packet would count as injected)");
  }
}

std::string classify_chain_name(const CaptureSpec& spec, std::uint16_t index) {
  return spread(spec) ? std::string(kClassifyChain) + std::to_string(index) : kClassifyChain;
}

std::vector<std::string> queue_rule_chains(const CaptureSpec& spec) {
  if (!spread(spec)) return {kCaptureChain};
  std::vector<std::string> chains;
  for (std::uint16_t i = 0; i < spec.queue_count; ++i)
    chains.push_back("queue" + std::to_string(i));
  return chains;
}

namespace {

// What a spec captures, duplicates left out: the address prefixes per family (IPv4, IPv6), the
// families captured (both when no address is given) and the ports.
struct CaptureScope {
  std::array<std::vector<std::string>, 2> prefixes;
  std::vector<int> families;
  std::vector<std::uint16_t> ports;

  const std::vector<std::string>& prefixes_of(int family) const {
    return prefixes[family == 4 ? 0 : 1];
  }
};

CaptureScope capture_scope(const CaptureSpec& spec) {
  CaptureScope scope;
  for (const std::string& address : spec.addresses) {
    std::string error;
    std::vector<std::string>& family = scope.prefixes[cidr_family(address, error) == 4 ? 0 : 1];
    if (std::find(family.begin(), family.end(), address) == family.end()) {
      family.push_back(address);
    }
  }
  for (const int family : {4, 6}) {
    if (spec.addresses.empty() || !scope.prefixes_of(family).empty()) {
      scope.families.push_back(family);
    }
  }
  for (const std::uint16_t port : spec.ports) {
    if (std::find(scope.ports.begin(), scope.ports.end(), port) == scope.ports.end()) {
      scope.ports.push_back(port);
    }
  }
  return scope;
}

// The rules of the capture chain that keep the teardown sets: which segments skip the queue,
// which enter or leave the set. None with capture_all, which queues everything it sees.
std::string teardown_set_rules(const std::vector<int>& families) {
  std::string text;
  // Bulk data never leaves the kernel: a segment without FIN, SYN or RST is queued only when
  // its connection is in teardown, that is when both of its directions are in the set (see
  // teardown_set.hpp). First, since nearly every packet ends here.
  for (const int family : families) {
    for (const bool own : {true, false}) {
      text += "    tcp flags & (fin | syn | rst) == 0 " + set_key(family, own) + " != @" +
              teardown_set_name(family) + " return\n";
    }
  }
  return text;
}

std::string teardown_set_updates(const std::vector<int>& families) {
  std::string text;
  // A new connection (its SYN) starts outside the set even when its 4-tuple's last teardown
  // is still remembered: only the SYN sender's own element goes, since the other end's may be
  // shared with the connections before it.
  for (const int family : families) {
    text += "    tcp flags & (fin | syn | rst | ack) == syn delete @" + teardown_set_name(family) +
            " { " + set_key(family, true) + " }\n";
  }
  // The first FIN puts both directions of its connection in the set, and every later
  // captured segment but an RST keeps them there (update restarts the timeout). A full set
  // makes an update fail, which ends only its own rule; a segment whose own element is still
  // missing after its update found the set full, and is counted.
  for (const int family : families) {
    for (const bool own : {true, false}) {
      text += "    tcp flags & (syn | rst) == 0 update @" + teardown_set_name(family) + " { " +
              set_key(family, own) + " }\n";
    }
  }
  for (const int family : families) {
    text += "    tcp flags & (syn | rst) == 0 " + set_key(family, true) + " != @" +
            teardown_set_name(family) + " counter name \"" + refused_counter_name(family) + "\"\n";
  }
  return text;
}

// The chain the hooks jump to, without its queue rule (append_queue_rule adds it after).
std::string capture_chain(const CaptureSpec& spec, const std::vector<int>& families) {
  std::string text = "  chain " + std::string(kCaptureChain) + " {\n";
  if (!spec.capture_all) text += teardown_set_rules(families);
  // finwave's own copies (duplicates, RSTs it writes) must not come back to it.
  text +=
      "    meta mark & " + hex(spec.injected_mark) + " == " + hex(spec.injected_mark) + " return\n";
  if (!spec.capture_all) {
    text += teardown_set_updates(families);
    if (spread(spec)) {
      // One queue per connection, both ways, and its log group with it.
      text += "    symhash mod " + std::to_string(spec.queue_count) + " vmap { ";
      for (std::uint16_t i = 0; i < spec.queue_count; ++i) {
        text += (i == 0 ? "" : ", ") + std::to_string(i) + " : goto queue" + std::to_string(i);
      }
      text += " }\n";
    } else {
      text += "    jump " + std::string(kClassifyChain) + "\n";
    }
  }
  text += "  }\n";
  return text;
}

// The nftables matches of a port match: one, or two for either end (a rule has no "or").
std::vector<std::string> nft_matches(const PortMatch& match) {
  std::vector<std::string> numbers;
  numbers.reserve(match.ports.size());
  for (const std::uint16_t port : match.ports) numbers.push_back(std::to_string(port));
  const std::string set = anonymous_set(numbers);
  switch (match.end) {
    case PortMatch::End::kSource:
      return {"tcp sport " + set};
    case PortMatch::End::kDestination:
      return {"tcp dport " + set};
    case PortMatch::End::kEither:
      break;
  }
  return {"tcp sport " + set, "tcp dport " + set};
}

bool narrowed(const CaptureSpec& spec) {
  return std::any_of(spec.queued_only.begin(), spec.queued_only.end(),
                     [](const std::vector<PortMatch>& only) { return !only.empty(); });
}

// The classify chain's rules for queue `index`: log and accept every class that is not queued.
// A queued class falls through, back to the chain with the queue rule; a narrowed one only
// where one of its matches holds (return), its other segments are logged.
std::string classify_rules(const CaptureSpec& spec, std::uint16_t index) {
  const std::string group = std::to_string(unsigned{spec.log_group} + index);
  std::string text;
  if (spec.queued.full() && !narrowed(spec)) return text;
  // A copy holds at most 65531 bytes, and nfnetlink_log does not say how long the packet was: a
  // GSO packet above that (a BIG TCP one's IPv4 length field is 0) would lose its length. Such a
  // packet is queued, whatever its class: NFQUEUE tells its length.
  text.append("    meta length > ").append(std::to_string(kMaxLoggedLength)).append(" return\n");
  for (int i = 0; i < kSegmentClassCount; ++i) {
    const auto segment_class = static_cast<SegmentClass>(i);
    const std::vector<PortMatch>& only = spec.queued_only[static_cast<std::size_t>(i)];
    if (spec.queued.has(segment_class)) {
      if (only.empty()) continue;  // queued whole
      for (const PortMatch& match : only) {
        for (const std::string& ports : nft_matches(match)) {
          text.append("    ").append(nft_match(segment_class)).append(" ").append(ports);
          text.append(" return\n");
        }
      }
    }
    text.append("    ").append(nft_match(segment_class));
    text.append(" log group ").append(group).append(" accept\n");
  }
  return text;
}

// Every classify chain of the spec, and with several queues the chains of their queue rules
// (which append_queue_rule fills).
std::string classify_chains(const CaptureSpec& spec, bool with_queue_chains) {
  std::string text;
  const std::uint16_t count = spread(spec) ? spec.queue_count : 1;
  for (std::uint16_t i = 0; i < count; ++i) {
    text += "  chain " + classify_chain_name(spec, i) + " {\n" + classify_rules(spec, i) + "  }\n";
  }
  if (with_queue_chains && spread(spec)) {
    for (std::uint16_t i = 0; i < count; ++i) {
      text += "  chain queue" + std::to_string(i) + " {\n    jump " + classify_chain_name(spec, i) +
              "\n  }\n";
    }
  }
  return text;
}

// The matches of the jump rules: (either address, or none) x (either port, or none), per
// family captured.
std::vector<std::string> jump_matches(const CaptureSpec& spec, const CaptureScope& scope) {
  std::vector<std::string> jumps;
  for (const std::string& port_match : port_matches(scope.ports)) {
    if (spec.addresses.empty()) {
      jumps.push_back(port_match);
      continue;
    }
    for (const int family : scope.families) {
      for (const std::string& address_match :
           address_matches(family == 4 ? "ip" : "ip6", scope.prefixes_of(family))) {
        jumps.push_back(address_match + port_match);
      }
    }
  }
  return jumps;
}

// The base chains on the kernel's hooks, each jumping to the capture chain.
std::string hook_chains(CaptureMode mode, const std::vector<std::string>& jumps) {
  // Local mode: on loopback OUTPUT sees both directions, so the inbound hook skips lo and each
  // segment is queued once. The inbound hook is PREROUTING (for this host's addresses), not
  // INPUT: by INPUT, TCP early demux has already attached the socket to the packet, and while
  // the packet waits in the queue that socket can be replaced by its timewait socket (an orphan
  // reaching FIN_WAIT2); the released packet then meets a closed socket and is dropped without
  // a trace — a fin2 lost, the peer's FIN retransmitted. Before routing nothing is attached yet.
  struct Hook {
    const char* name;
    const char* match;
  };
  const std::vector<Hook> hooks =
      mode == CaptureMode::kRouter
          ? std::vector<Hook>{{"forward", ""}}
          : std::vector<Hook>{{"output", ""},
                              {"prerouting", "iif != \"lo\" fib daddr type local "}};
  std::string text;
  for (const Hook& hook : hooks) {
    // Priority mangle (-150), where iptables' mangle table hooks: before filtering, so that a
    // segment a filter would drop is still seen.
    text.append("  chain ").append(hook.name).append(" {\n    type filter hook ");
    text.append(hook.name).append(" priority mangle; policy accept;\n");
    for (const std::string& jump : jumps) {
      text.append("    ").append(hook.match).append(jump).append(" goto ");
      text.append(kCaptureChain).append("\n");
    }
    text += "  }\n";
  }
  return text;
}

}  // namespace

std::string render_nft_input(const CaptureSpec& spec) {
  validate(spec);
  const CaptureScope scope = capture_scope(spec);
  const std::string table = capture_table_name(spec.queue_num);
  // Declaring the table before deleting it makes the delete succeed when there is none, and
  // the whole script is one transaction: a stale table is replaced, never doubled.
  std::string text = "table inet " + table + "\ndelete table inet " + table + "\n";
  text += "table inet " + table + " {\n";
  if (!spec.capture_all) {
    for (const int family : scope.families) {
      text += set_declaration(family, spec.teardown_set_size);
    }
  }
  // Declared before the capture chain, which jumps to them.
  if (!spec.capture_all) text += classify_chains(spec, true);
  text += capture_chain(spec, scope.families);
  text += hook_chains(spec.mode, jump_matches(spec, scope));
  text += "}\n";
  return text;
}

std::string render_classify_input(const CaptureSpec& spec) {
  validate(spec);
  const std::string table = capture_table_name(spec.queue_num);
  std::string text;
  const std::uint16_t count = spread(spec) ? spec.queue_count : 1;
  for (std::uint16_t i = 0; i < count; ++i) {
    text += "flush chain inet " + table + " " + classify_chain_name(spec, i) + "\n";
  }
  return text + "table inet " + table + " {\n" + classify_chains(spec, false) + "}\n";
}

CaptureChains CaptureChains::install(const CaptureSpec& spec) {
  const std::string input = render_nft_input(spec);
  require_executable(kNft, kDebianPackage);
  const std::string table = capture_table_name(spec.queue_num);

  CaptureChains chains(spec, false);
  const SubprocessResult result = run_nft({"-f", "-"}, input);
  if (!result.ok()) {
    throw std::runtime_error(failure_message("nft (installing table inet " + table + ")", result));
  }
  chains.installed_ = true;  // From here on, remove() undoes the table.
  try {
    if (spread(spec)) {
      for (std::uint16_t i = 0; i < spec.queue_count; ++i) {
        append_queue_rule({table, chains.rule_chains_[i]},
                          static_cast<std::uint16_t>(spec.queue_num + i), 1);
      }
    } else {
      append_queue_rule({table, kCaptureChain}, spec.queue_num, spec.queue_count);
    }
  } catch (...) {
    chains.remove();
    throw;
  }
  return chains;
}

void CaptureChains::classify(const CaptureSpec& spec) {
  const std::string input = render_classify_input(spec);
  if (spec.capture_all) return;
  const SubprocessResult result = run_nft({"-f", "-"}, input);
  if (!result.ok()) {
    throw std::runtime_error(failure_message(
        "nft (classifying segments in table inet " + capture_table_name(spec.queue_num) + ")",
        result));
  }
}

bool CaptureChains::remove_stale(std::uint16_t queue_num) {
  const std::string table = capture_table_name(queue_num);
  if (!table_exists(table)) return false;
  const SubprocessResult result = run_nft({"delete", "table", "inet", table});
  if (!result.ok()) {
    throw std::runtime_error(failure_message("nft delete table inet " + table, result));
  }
  return true;
}

QueueRuleProbe CaptureChains::check() const noexcept {
  if (!installed_) return {};
  // Several queue rules: the worst state any is in, and their counters summed.
  QueueRuleProbe total;
  for (std::size_t i = 0; i < rule_chains_.size(); ++i) {
    const QueueRuleProbe probe =
        probe_queue_rule({capture_table_name(queue_num_), rule_chains_[i]});
    if (probe.state == QueueRuleState::kUnknown) return probe;
    if (i == 0 || probe.state > total.state) total.state = probe.state;
    if (probe.packets) total.packets = total.packets.value_or(0) + *probe.packets;
  }
  if (total.state != QueueRuleState::kPresent) total.packets.reset();
  return total;
}

void CaptureChains::restore(const CaptureSpec& spec, QueueRuleState found) {
  if (found == QueueRuleState::kMissing && installed_) {
    const std::string table = capture_table_name(queue_num_);
    if (!spread(spec)) {
      append_queue_rule({table, kCaptureChain}, spec.queue_num, spec.queue_count);
      return;
    }
    for (std::size_t i = 0; i < rule_chains_.size(); ++i) {
      if (probe_queue_rule({table, rule_chains_[i]}).state == QueueRuleState::kMissing) {
        append_queue_rule({table, rule_chains_[i]}, static_cast<std::uint16_t>(spec.queue_num + i),
                          1);
      }
    }
    return;
  }
  // Whatever is left of the table goes in the same transaction that writes it anew.
  installed_ = false;
  *this = install(spec);
}

CaptureChains::CaptureChains(CaptureChains&& other) noexcept
    : queue_num_(other.queue_num_),
      rule_chains_(std::move(other.rule_chains_)),
      installed_(std::exchange(other.installed_, false)) {}

CaptureChains& CaptureChains::operator=(CaptureChains&& other) noexcept {
  if (this != &other) {
    remove();
    queue_num_ = other.queue_num_;
    rule_chains_ = std::move(other.rule_chains_);
    installed_ = std::exchange(other.installed_, false);
  }
  return *this;
}

CaptureChains::~CaptureChains() { remove(); }

void CaptureChains::stop_capturing() noexcept {
  if (!installed_) return;
  logged(queue_num_, "emptying", [this] {
    const std::string table = capture_table_name(queue_num_);
    const SubprocessResult result = run_nft({"flush", "chain", "inet", table, kCaptureChain});
    if (!result.ok()) {
      throw std::runtime_error(
          failure_message("nft flush chain inet " + table + " " + kCaptureChain, result));
    }
  });
}

void CaptureChains::remove() noexcept {
  if (!installed_) return;
  installed_ = false;
  logged(queue_num_, "removing", [this] { remove_stale(queue_num_); });
}

}  // namespace finwave::nf
