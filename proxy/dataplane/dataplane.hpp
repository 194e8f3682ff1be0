#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "netfilter/injector.hpp"
#include "netfilter/log_group.hpp"
#include "netfilter/packet.hpp"
#include "netfilter/queue.hpp"
#include "proxy/dataplane/arrival_clock.hpp"
#include "proxy/dataplane/dataplane_counters.hpp"
#include "proxy/dataplane/delay_line.hpp"
#include "proxy/dataplane/verdict_port.hpp"
#include "proxy/report/pcap_writer.hpp"
#include "proxy/tracker/flow_table.hpp"
#include "proxy/tracker/sinks.hpp"
#include "rules/engine.hpp"
#include "rules/rng.hpp"

namespace finwave::proxy {

/// The per-packet path: parse, classify in the flow table, let the rule engine decide, carry
/// the decision out (verdict now, hold on the delay line, copies from the raw socket, rewrite as
/// an RST), and tell the tracker what was done. Every packet gets exactly one verdict through the
/// VerdictPort: at once, or when its hold ends. Loop thread only; never throws, and allocates
/// only the first time a delay-line slot holds bytes.
class Dataplane final : public nf::PacketHandler, public nf::LogHandler {
 public:
  /// Everything it works with; all must outlive it. `pcap` and `injector` may be null (no copies
  /// can be sent then: duplicate decisions pass the original only, counted in copy_errors).
  struct Parts {
    VerdictPort& verdicts;  ///< Normally NfQueueVerdicts; the caller flushes the queue.
    FlowTable& flows;
    rules::Engine& engine;
    rules::Rng& rng;
    DelayLine& delays;
    nf::Injector* injector = nullptr;
    PcapWriter* pcap = nullptr;
    RuleHitSink* rule_hits = nullptr;  ///< See set_rule_hit_sink().
    /// The log path's group, read before every queue batch; null when nothing is logged.
    nf::LogGroup* log = nullptr;
  };

  explicit Dataplane(Parts parts) noexcept : p_(parts) {}

  void on_packet(const nf::QueuedPacket& packet) noexcept override;

  /// Before a queue batch is handled: reads every logged copy first. The kernel writes a copy
  /// to the log socket while the segment is in the hook, before the segment goes on, so every
  /// copy of a segment that caused a queued one (the FIN a final ACK answers) is there by the
  /// time the queued segment is read, and the tracker sees the two in the hook's order.
  void before_batch() noexcept override {
    if (read_log_first_) drain_log();
  }

  /// Whether before_batch() reads the log path (the default). Off while every class is queued:
  /// nothing is logged then, and the read would be one more syscall per queue batch. The caller
  /// turns it off only once the log is drained and no copy can come any more.
  void set_read_log_first(bool read) noexcept { read_log_first_ = read; }

  /// Reads the log path now (its socket is readable, or a batch is about to be handled).
  void drain_log() noexcept;

  /// A copy from the log path: the kernel let the segment go on already. It is parsed,
  /// classified and recorded exactly as a queued one, with the verdict kObserved; no rule
  /// decides it (the capture queues every segment an enabled rule could act on).
  void on_logged(const nf::LoggedPacket& packet) noexcept override;

  /// Carries out everything on the delay line due by `horizon_us` (normally now): ends the holds
  /// that are due, sends copies. The caller then flushes the queue and waits or re-arms its
  /// timer for delays.next_due().
  void on_due(std::uint64_t now_us, std::uint64_t horizon_us) noexcept;

  /// Shutdown: ends every hold now, due or not (ACCEPT), and forgets pending copies.
  void end_all_holds(std::uint64_t now_us) noexcept;

  const DataplaneCounters& counters() const noexcept { return counters_; }

  /// Who hears of rule decisions from the next segment on; nullptr for no one.
  void set_rule_hit_sink(RuleHitSink* sink) noexcept { p_.rule_hits = sink; }

 private:
  /// Gives the kernel the verdict `decision` asks for, or accept when it cannot be carried out
  /// (no room to hold, no copy to send, no RST to build); returns what was done.
  Verdict carry_out(const nf::QueuedPacket& packet, const nf::TcpSegment& segment,
                    const Classified& classified, const rules::Decision& decision,
                    std::uint64_t arrived_us, std::uint64_t now_us) noexcept;
  /// Takes a delay-line slot for a held or copied segment; kNone when --max-held is reached.
  std::uint32_t schedule(const nf::QueuedPacket& packet, const nf::TcpSegment& segment,
                         const Classified& classified, const rules::Decision& decision,
                         std::uint64_t due_us, bool hold) noexcept;
  /// The held original goes out: the kernel gets its ACCEPT, the tracker hears it left now.
  void end_hold(HeldSegment& held, std::uint64_t now_us) noexcept;
  void send_copy(HeldSegment& held) noexcept;

  Parts p_;
  DataplaneCounters counters_;
  bool read_log_first_ = true;
  std::uint64_t last_logged_arrival_us_ = 0;  // realtime stamp of the newest copy, 0: unknown
  std::uint64_t log_lost_seen_ = 0;           // the log group's lost + enobufs, as last seen
  ArrivalClock arrival_clock_;
};

}  // namespace finwave::proxy
