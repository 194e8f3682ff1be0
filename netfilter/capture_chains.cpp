#include "netfilter/capture_chains.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "netfilter/subprocess.hpp"
#include "netfilter/teardown_set.hpp"

namespace finwave::nf {
namespace {

// xt_multiport takes at most 15 ports per rule.
constexpr std::size_t kPortsPerRule = 15;
constexpr const char* kDebianPackage = "iptables";
constexpr const char* kJumpComment = "finwave";

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

/// Family tools: the restore and save binaries.
struct Tools {
  const char* save;
  const char* restore;
};

Tools tools_for(int family) {
  return family == 4 ? Tools{"iptables-save", "iptables-restore"}
                     : Tools{"ip6tables-save", "ip6tables-restore"};
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

/// Splits an iptables-save rule line into words, keeping double-quoted words (comments with
/// spaces) together, as iptables-restore reads them.
std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '\\' && i + 1 < line.size()) {
        word += line[++i];
      } else if (c == '"') {
        quoted = false;
      } else {
        word += c;
      }
    } else if (c == '"') {
      quoted = true;
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) {
        words.push_back(std::move(word));
        word.clear();
        in_word = false;
      }
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) {
    words.push_back(std::move(word));
  }
  return words;
}

/// What remove_family() takes away.
enum class Removal : std::uint8_t {
  kEverything,   ///< The chain and every jump rule into it.
  kChainRules,   ///< Only the chain's own rules: jumps land in an empty chain and return.
};

/// Removes chain `chain` and every jump rule into it (or, with kChainRules, only the chain's
/// rules) from one family's mangle table. Returns the number of rules removed, or -1 when the
/// family's tools are not installed.
int remove_family(const std::string& chain, int family, Removal removal = Removal::kEverything) {
  const Tools tools = tools_for(family);
  const auto save = find_executable(tools.save);
  const auto restore = find_executable(tools.restore);
  if (!save || !restore) {
    return -1;
  }
  const SubprocessResult saved = run_subprocess({*save, "-t", "mangle"});
  if (!saved.ok()) {
    throw std::runtime_error(failure_message(std::string(tools.save) + " -t mangle", saved));
  }

  std::string deletes;
  bool chain_exists = false;
  int removed = 0;
  const std::string declaration = ":" + chain + " ";
  std::size_t begin = 0;
  while (begin < saved.out.size()) {
    std::size_t end = saved.out.find('\n', begin);
    if (end == std::string::npos) {
      end = saved.out.size();
    }
    const std::string_view line(saved.out.data() + begin, end - begin);
    begin = end + 1;
    if (line.substr(0, declaration.size()) == declaration) {
      chain_exists = true;
      continue;
    }
    if (line.substr(0, 3) != "-A ") {
      continue;
    }
    const std::vector<std::string> words = split_words(line);
    if (words.size() < 2) {
      continue;
    }
    if (words[1] == chain) {
      ++removed;  // Flushed with the chain below.
      continue;
    }
    for (std::size_t i = 2; removal == Removal::kEverything && i + 1 < words.size(); ++i) {
      if ((words[i] == "-j" || words[i] == "-g") && words[i + 1] == chain) {
        // iptables-save writes rules exactly as iptables-restore reads them, so the saved text
        // after "-A" is a rule specification that -D matches.
        deletes += "-D ";
        deletes += line.substr(3);
        deletes += '\n';
        ++removed;
        break;
      }
    }
  }
  if (!chain_exists && deletes.empty()) {
    return 0;
  }
  std::string input = "*mangle\n" + deletes;
  if (chain_exists) {
    input += "-F " + chain + "\n";
    if (removal == Removal::kEverything) input += "-X " + chain + "\n";
  }
  input += "COMMIT\n";
  const SubprocessResult result = run_subprocess({*restore, "--noflush", "--wait", "10"}, input);
  if (!result.ok()) {
    throw std::runtime_error(
        failure_message(std::string(tools.restore) + " (removing " + chain + ")", result));
  }
  return removed;
}

/// remove_stale() for both families. A family listed in `required` must have its tools. Both
/// families are attempted even when the first fails; the errors are reported together.
int remove_both(std::uint16_t queue_num, bool required4, bool required6,
                Removal removal = Removal::kEverything) {
  const std::string chain = capture_chain_name(queue_num);
  int total = 0;
  int missing = 0;
  std::string errors;
  for (const int family : {4, 6}) {
    try {
      const int removed = remove_family(chain, family, removal);
      if (removed >= 0) {
        total += removed;
        continue;
      }
      ++missing;
      if ((family == 4 && required4) || (family == 6 && required6) || missing == 2) {
        const Tools tools = tools_for(family);
        require_executable(tools.save, kDebianPackage);
        require_executable(tools.restore, kDebianPackage);
      }
    } catch (const std::runtime_error& error) {
      errors += errors.empty() ? "" : "; ";
      errors += error.what();
    }
  }
  // The sets last: a set cannot be destroyed while a rule refers to it.
  for (const int family : {4, 6}) {
    if (removal != Removal::kEverything || !errors.empty()) break;
    try {
      destroy_teardown_set(queue_num, family);
    } catch (const std::runtime_error& error) {
      errors += errors.empty() ? "" : "; ";
      errors += error.what();
    }
  }
  if (!errors.empty()) {
    throw std::runtime_error(errors);
  }
  return total;
}

}  // namespace

std::string capture_chain_name(std::uint16_t queue_num) {
  return "FINWAVE-Q" + std::to_string(queue_num);
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
  if (spec.injected_mark == 0) {
    throw std::invalid_argument(
        prefix + "injected_mark must not be 0 (every packet would count as injected)");
  }
}

std::string render_restore_input(const CaptureSpec& spec, int family) {
  if (family != 4 && family != 6) {
    throw std::invalid_argument("render_restore_input: family must be 4 or 6, not " +
                                std::to_string(family));
  }
  validate(spec);

  std::vector<std::string> addresses;
  for (const std::string& address : spec.addresses) {
    std::string error;
    if (cidr_family(address, error) == family &&
        std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(address);
    }
  }
  if (!spec.addresses.empty() && addresses.empty()) {
    return "";
  }
  std::vector<std::uint16_t> ports;
  for (const std::uint16_t port : spec.ports) {
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) {
      ports.push_back(port);
    }
  }

  const std::string chain = capture_chain_name(spec.queue_num);
  const std::string set = teardown_set_name(spec.queue_num, family);
  std::string text = "*mangle\n:" + chain + " - [0:0]\n";
  const std::string append = "-A " + chain + " ";
  if (!spec.capture_all) {
    // Bulk data never leaves the kernel: a segment without FIN, SYN or RST is queued only when
    // its connection is in teardown, that is when both of its directions are in the set (see
    // teardown_set.hpp). First, since nearly every packet ends here.
    for (const char* direction : {"src,src,dst", "dst,dst,src"}) {
      text.append(append).append("-p tcp --tcp-flags FIN,SYN,RST NONE -m set ! --match-set ");
      text.append(set).append(" ").append(direction).append(" -j RETURN\n");
    }
  }
  // finwave's own copies (duplicates, RSTs it writes) must not come back to it.
  text += append + "-m mark --mark " + hex(spec.injected_mark) + "/" + hex(spec.injected_mark) +
          " -j RETURN\n";
  if (!spec.capture_all) {
    // A new connection (its SYN) starts outside the set even when its 4-tuple's last teardown
    // is still remembered: only the SYN sender's own entry goes, since the other end's may be
    // shared with the connections before it.
    text += append + "-p tcp --syn -j SET --del-set " + set + " src,src,dst\n";
    // The first FIN puts both directions of its connection in the set, and every later
    // captured segment but an RST keeps them there (--exist refreshes the timeout).
    for (const char* direction : {"src,src,dst", "dst,dst,src"}) {
      text.append(append).append("-p tcp --tcp-flags SYN,RST NONE -j SET --add-set ");
      text.append(set).append(" ").append(direction).append(" --exist\n");
    }
  }
  if (spec.queue_count > 1) {
    text += append + "-j NFQUEUE --queue-balance " + std::to_string(spec.queue_num) + ":" +
            std::to_string(spec.queue_num + spec.queue_count - 1) + " --queue-bypass\n";
  } else {
    text +=
        append + "-j NFQUEUE --queue-num " + std::to_string(spec.queue_num) + " --queue-bypass\n";
  }

  // Jump rules: one per (address, direction) x (chunk of ports). A segment whose two ends both
  // match enters the chain twice when the chain returns it; a queued segment only once, since
  // a verdict resumes at the next hook, not at the next rule.
  std::vector<std::string> address_matches;
  for (const std::string& address : addresses) {
    address_matches.push_back("-s " + address + " ");
    address_matches.push_back("-d " + address + " ");
  }
  if (address_matches.empty()) {
    address_matches.emplace_back();
  }
  std::vector<std::string> port_matches;
  for (std::size_t first = 0; first < ports.size(); first += kPortsPerRule) {
    std::string match = "-m multiport --ports ";
    const std::size_t last = std::min(ports.size(), first + kPortsPerRule);
    for (std::size_t i = first; i < last; ++i) {
      match += (i == first ? "" : ",") + std::to_string(ports[i]);
    }
    port_matches.push_back(match + " ");
  }
  if (port_matches.empty()) {
    port_matches.emplace_back();
  }
  // Local mode: on loopback OUTPUT sees both directions, so the inbound hook skips lo and each
  // segment is queued once. The inbound hook is PREROUTING (for this host's addresses), not
  // INPUT: by INPUT, TCP early demux has already attached the socket to the packet, and while
  // the packet waits in the queue that socket can be replaced by its timewait socket (an orphan
  // reaching FIN_WAIT2); the released packet then meets a closed socket and is dropped without
  // a trace — a fin2 lost, the peer's FIN retransmitted. Before routing nothing is attached yet.
  struct Hook {
    const char* chain;
    const char* match;
  };
  const std::vector<Hook> hooks = spec.mode == CaptureMode::kRouter
                                      ? std::vector<Hook>{{"FORWARD", ""}}
                                      : std::vector<Hook>{{"OUTPUT", ""},
                                                          {"PREROUTING",
                                                           "! -i lo -m addrtype --dst-type LOCAL "}};
  for (const Hook& hook : hooks) {
    int position = 1;
    for (const std::string& address_match : address_matches) {
      for (const std::string& port_match : port_matches) {
        text.append("-I ").append(hook.chain).append(" ").append(std::to_string(position++));
        text.append(" ").append(hook.match).append(address_match).append("-p tcp ");
        text.append(port_match).append("-m comment --comment ").append(kJumpComment);
        text.append(" -j ").append(chain).append("\n");
      }
    }
  }
  text += "COMMIT\n";
  return text;
}

CaptureChains CaptureChains::install(const CaptureSpec& spec) {
  const std::array<std::string, 2> inputs = {render_restore_input(spec, 4),
                                             render_restore_input(spec, 6)};
  const std::array<int, 2> families = {4, 6};
  std::array<std::string, 2> restore_paths;
  for (std::size_t i = 0; i < 2; ++i) {
    if (!inputs[i].empty()) {
      const Tools tools = tools_for(families[i]);
      require_executable(tools.save, kDebianPackage);
      restore_paths[i] = require_executable(tools.restore, kDebianPackage);
    }
  }
  remove_both(spec.queue_num, !inputs[0].empty(), !inputs[1].empty());

  CaptureChains chains(spec.queue_num, false);
  for (std::size_t i = 0; i < 2; ++i) {
    if (inputs[i].empty()) {
      continue;
    }
    // From the first attempt on, remove() must undo whatever part made it into the kernel.
    chains.installed_ = true;
    if (!spec.capture_all) {
      try {
        create_teardown_set(spec.queue_num, families[i]);
      } catch (...) {
        chains.remove();
        throw;
      }
    }
    const SubprocessResult result =
        run_subprocess({restore_paths[i], "--noflush", "--wait", "10"}, inputs[i]);
    if (!result.ok()) {
      chains.remove();
      throw std::runtime_error(failure_message(std::string(tools_for(families[i]).restore) +
                                                   " (installing " +
                                                   capture_chain_name(spec.queue_num) + ")",
                                               result));
    }
  }
  return chains;
}

int CaptureChains::remove_stale(std::uint16_t queue_num) {
  return remove_both(queue_num, false, false);
}

CaptureChains::CaptureChains(CaptureChains&& other) noexcept
    : queue_num_(other.queue_num_), installed_(std::exchange(other.installed_, false)) {}

CaptureChains& CaptureChains::operator=(CaptureChains&& other) noexcept {
  if (this != &other) {
    remove();
    queue_num_ = other.queue_num_;
    installed_ = std::exchange(other.installed_, false);
  }
  return *this;
}

CaptureChains::~CaptureChains() { remove(); }

namespace {

// remove_both() for shutdown paths that cannot do better than say what failed. `doing` names the
// step in the message ("removing", "emptying").
void remove_both_logged(std::uint16_t queue_num, Removal removal, const char* doing) noexcept {
  try {
    remove_both(queue_num, false, false, removal);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "finwave: %s capture chain FINWAVE-Q%u failed: %s\n", doing,
                 unsigned{queue_num}, error.what());
  } catch (...) {
    std::fprintf(stderr, "finwave: %s capture chain FINWAVE-Q%u failed\n", doing,
                 unsigned{queue_num});
  }
}

}  // namespace

void CaptureChains::stop_capturing() noexcept {
  if (installed_) remove_both_logged(queue_num_, Removal::kChainRules, "emptying");
}

void CaptureChains::remove() noexcept {
  if (!installed_) {
    return;
  }
  installed_ = false;
  remove_both_logged(queue_num_, Removal::kEverything, "removing");
}

}  // namespace finwave::nf
