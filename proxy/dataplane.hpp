#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "netfilter/injector.hpp"
#include "netfilter/packet.hpp"
#include "netfilter/queue.hpp"
#include "proxy/arrival_clock.hpp"
#include "proxy/delay_line.hpp"
#include "proxy/flow_table.hpp"
#include "proxy/pcap_writer.hpp"
#include "rules/engine.hpp"
#include "rules/rng.hpp"

namespace finwave::proxy {

/// What the data path saw and did that the queue's own counters don't tell.
struct DataplaneCounters {
  /// Packets that were not a parsable TCP segment, by reason (indexed by nf::ParseError); each
  /// was accepted untouched.
  std::array<std::uint64_t, 16> parse_errors{};
  std::uint64_t segments = 0;        ///< Parsed TCP segments handed to the tracker.
  std::uint64_t rule_hits = 0;       ///< Segments a rule decided (pass rules included).
  std::uint64_t dropped = 0;         ///< Segments dropped by a rule.
  std::uint64_t delayed = 0;         ///< Segments held by a delay rule.
  std::uint64_t duplicated = 0;      ///< Segments a duplicate rule copied (originals).
  std::uint64_t copies_sent = 0;     ///< Copies sent from the raw socket.
  std::uint64_t copy_errors = 0;     ///< Copies the raw socket refused (e.g. EMSGSIZE).
  std::uint64_t resets = 0;          ///< Segments replaced by an RST.
  std::uint64_t reset_errors = 0;    ///< RSTs that could not be built or sent (original passed).
  std::uint64_t held_overflow = 0;   ///< Delay/duplicate refused by --max-held: accepted as is.
  std::uint64_t released = 0;        ///< Held segments released when their delay ran out.
  std::uint64_t released_early = 0;  ///< Held segments released at shutdown.
};

/// One segment a rule decided, as the control plane's rule_hit events report it. Every view and
/// reference is valid only during RuleHitSink::on_rule_hit().
struct RuleHit {
  std::string_view rule;              ///< The deciding rule's name.
  const rules::SegmentFacts& facts;   ///< Role, retx, sender, client and server.
  std::uint64_t flow_id = 0;          ///< The tracker's flow id (0: untracked).
  Verdict verdict = Verdict::kAccept;  ///< What was carried out (kAccept for a pass rule).
};

/// Told about every segment a rule decided. Set only while someone subscribed to rule hits, so
/// that without a subscriber the data path pays one null check. Called on the loop thread from
/// inside the packet callback: must not throw, and must not call back into the data path.
class RuleHitSink {
 public:
  virtual void on_rule_hit(const RuleHit& hit) noexcept = 0;

 protected:
  ~RuleHitSink() = default;
};

/// The per-packet path: parse, classify in the flow table, let the rule engine decide, carry
/// the decision out (verdict now, hold on the delay line, copies from the raw socket, rewrite as
/// an RST), and tell the tracker what was done. Loop thread only; never throws, and allocates
/// only the first time a delay-line slot holds bytes.
class Dataplane final : public nf::PacketHandler {
 public:
  /// Everything it works with; all must outlive it. `pcap` and `injector` may be null (no copies
  /// can be sent then: duplicate decisions pass the original only, counted in copy_errors).
  struct Parts {
    nf::Queue& queue;
    FlowTable& flows;
    rules::Engine& engine;
    rules::Rng& rng;
    DelayLine& delays;
    nf::Injector* injector = nullptr;
    PcapWriter* pcap = nullptr;
    RuleHitSink* rule_hits = nullptr;  ///< See set_rule_hit_sink().
  };

  explicit Dataplane(Parts parts) noexcept : p_(parts) {}

  void on_packet(const nf::QueuedPacket& packet) noexcept override;

  /// Carries out everything on the delay line due by `horizon_us` (normally now): releases held
  /// segments, sends copies. The caller then flushes the queue and waits or re-arms its timer
  /// for delays.next_due().
  void on_due(std::uint64_t now_us, std::uint64_t horizon_us) noexcept;

  /// Shutdown: releases every held segment now (ACCEPT) and forgets pending copies.
  void release_all(std::uint64_t now_us) noexcept;

  const DataplaneCounters& counters() const noexcept { return counters_; }

  /// Who hears of rule decisions from the next segment on; nullptr for no one.
  void set_rule_hit_sink(RuleHitSink* sink) noexcept { p_.rule_hits = sink; }

 private:
  /// Takes a delay-line slot for a held or copied segment; kNone when --max-held is reached.
  std::uint32_t schedule(const nf::QueuedPacket& packet, const nf::TcpSegment& segment,
                         const Classified& classified, const rules::Decision& decision,
                         std::uint64_t due_us, bool hold) noexcept;
  void send_copy(HeldSegment& held) noexcept;

  Parts p_;
  DataplaneCounters counters_;
  ArrivalClock arrival_clock_;
};

}  // namespace finwave::proxy
