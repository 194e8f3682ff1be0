#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/role.hpp"
#include "rules/segment_facts.hpp"

namespace finwave::rules {

/// What a rule does to the segment it fires on. The data plane executes it (proxy/).
enum class Action : std::uint8_t {
  kPass,       ///< Let the segment through untouched (also: no rule matched).
  kDrop,       ///< Drop the segment; the sender's stack will retransmit it (or not).
  kDelay,      ///< Hold the verdict for a while, then accept (optionally then duplicate).
  kDuplicate,  ///< Accept the segment and send copies of it from a raw socket.
  kReset,      ///< Replace the segment by an RST.
};

/// The action's name in rule files and JSON: the one table of action names
/// (rules/vocabulary.hpp); "" for a value that is no action.
constexpr std::string_view to_string(Action action) noexcept {
  switch (action) {
    case Action::kPass:
      return "pass";
    case Action::kDrop:
      return "drop";
    case Action::kDelay:
      return "delay";
    case Action::kDuplicate:
      return "duplicate";
    case Action::kReset:
      return "reset";
  }
  return "";
}
using ActionNames = Vocabulary<Action, Action::kReset>;

/// Which sender a rule's `from` accepts.
enum class Sender : std::uint8_t {
  kEither,         ///< `from` absent.
  kClient,         ///< "client": the side that sent the SYN.
  kServer,         ///< "server".
  kActiveCloser,   ///< "active": the side that sent the first FIN.
  kPassiveCloser,  ///< "passive": the other side, once a FIN has been seen.
};

/// The sender's name: "either" (no `from`), or what `from` says. The one table of sender names
/// (rules/vocabulary.hpp); "" for a value that is no sender.
constexpr std::string_view to_string(Sender sender) noexcept {
  switch (sender) {
    case Sender::kEither:
      return "either";
    case Sender::kClient:
      return "client";
    case Sender::kServer:
      return "server";
    case Sender::kActiveCloser:
      return "active";
    case Sender::kPassiveCloser:
      return "passive";
  }
  return "";
}
using SenderNames = Vocabulary<Sender, Sender::kPassiveCloser>;

/// An address prefix such as 198.18.0.0/15 or 2001:db8::/32. Host bits are cleared on parse.
struct Cidr {
  std::uint8_t family = 4;  ///< 4 or 6.
  std::uint8_t prefix_length = 0;
  std::array<std::uint8_t, 16> address{};  ///< Network byte order, like Endpoint::address.

  /// True if `endpoint` has the same family and lies inside the prefix.
  bool contains(const Endpoint& endpoint) const noexcept;

  /// Parses "ADDRESS/LEN" or a bare address (a /32 or /128). On failure returns std::nullopt and,
  /// if `why` is not null, stores a sentence saying what is wrong with the text.
  static std::optional<Cidr> parse(std::string_view text, std::string* why = nullptr);
};

/// "198.18.0.0/15", "2001:db8::/32".
std::string to_string(const Cidr& cidr);

/// A per-connection limit on which of a rule's matching segments it fires on.
enum class Counter : std::uint8_t {
  kNone,
  kNth,    ///< `nth = N`: only the Nth matching segment of the connection.
  kFirst,  ///< `first = N`: only the first N.
  kAfter,  ///< `after = N`: only those after the first N.
};

/// One rule of a rule file (see rules/README.md for the file format). Plain data: a value
/// that the loader (rule_loader.hpp) has checked; the engine trusts the ranges documented here.
struct Rule {
  /// Limits the loader enforces.
  static constexpr std::size_t kMaxNameLength = 64;
  static constexpr double kMaxDelayMs = 600000.0;
  static constexpr double kMaxSpacingMs = 60000.0;
  static constexpr std::uint16_t kMaxCopies = 100;
  /// Largest N of nth/first/after: FlowRuleState keeps 16-bit counts that stop at 65535,
  /// which stands for "65535 or more".
  static constexpr std::uint32_t kMaxCount = 65534;

  std::string name;  ///< Unique in its rule set; [A-Za-z0-9_.-], 1..64 characters.
  bool enabled = true;

  // --- Match. All present fields must match (AND); a list matches if any element does (OR).
  Role role = Role::kAny;
  std::optional<bool> retx;  ///< true: retransmissions only; false: first transmissions only.
  Sender from = Sender::kEither;
  std::vector<std::uint16_t> ports;         ///< Either endpoint's port.
  std::vector<std::uint16_t> client_ports;  ///< The client's port.
  std::vector<std::uint16_t> server_ports;  ///< The server's port.
  std::vector<Cidr> addresses;              ///< Either endpoint's address.
  std::vector<Cidr> client_addresses;
  std::vector<Cidr> server_addresses;

  // --- Which matching segments of a connection the rule fires on.
  Counter counter = Counter::kNone;
  std::uint32_t count = 0;   ///< N of nth/first/after: 1..65534.
  double probability = 1.0;  ///< 0 < p <= 1, drawn after the counter said yes.

  // --- What it does.
  Action action = Action::kPass;
  double delay_ms = 0.0;     ///< kDelay: 0 < d <= 600000.
  double jitter_ms = 0.0;    ///< kDelay: 0 <= j <= delay_ms; delay drawn in [d - j, d + j].
  std::uint16_t copies = 0;  ///< kDuplicate: 1..100 (default 1); kDelay: 0 or 1..100.
  double spacing_ms = 0.0;   ///< Between copies: 0 <= s <= 60000.

  // --- How long it lives: set by the control socket's `add` (max_hits), never by a rule file.
  /// Decisions the rule may still make, over every flow and every queue's engine (they share
  /// the counter: a copy of the rule shares it too); null for no limit. The engine stops
  /// letting the rule decide once it is used up, and the daemon removes the rule soon after.
  std::shared_ptr<std::atomic<std::int64_t>> hit_budget;
  std::uint64_t max_hits = 0;  ///< The budget it started with (0: none), for describe().

  /// True if the rule keeps a per-connection count (uses a FlowRuleState slot).
  bool counted() const noexcept { return counter != Counter::kNone; }
};

/// The rules of one file (or one control-plane edit), in priority order: the first enabled rule
/// that matches a segment and whose counter and probability say yes decides it.
struct RuleSet {
  std::vector<Rule> rules;
  std::string source;  ///< Where the rules came from: a file path, "<control>", ...
};

/// A one-line human summary of a rule, for status listings and logs, e.g.
/// "drop final_ack from client, first 1 per connection".
std::string describe(const Rule& rule);

/// Formats milliseconds without trailing zeros: 400 -> "400", 0.25 -> "0.25".
std::string format_ms(double ms);

}  // namespace finwave::rules
