#pragma once

#include <array>
#include <cstdint>

#include "netfilter/packet.hpp"
#include "netfilter/queue.hpp"
#include "proxy/flow_table.hpp"
#include "proxy/pcap_writer.hpp"

namespace finwave::proxy {

/// What the data path saw that the queue's own counters don't tell.
struct DataplaneCounters {
  /// Packets that were not a parsable TCP segment, by reason (indexed by nf::ParseError); each
  /// was accepted untouched.
  std::array<std::uint64_t, 16> parse_errors{};
  std::uint64_t segments = 0;  ///< Parsed TCP segments handed to the tracker.
};

/// The per-packet path: parse, classify in the flow table, decide, give the verdict, record it.
/// Runs on the loop thread inside Queue::drain(); never throws, never allocates per packet.
class Dataplane final : public nf::PacketHandler {
 public:
  /// `pcap` may be null. All references must outlive the Dataplane.
  Dataplane(nf::Queue& queue, FlowTable& flows, PcapWriter* pcap) noexcept
      : queue_(queue), flows_(flows), pcap_(pcap) {}

  void on_packet(const nf::QueuedPacket& packet) noexcept override;

  const DataplaneCounters& counters() const noexcept { return counters_; }

 private:
  nf::Queue& queue_;
  FlowTable& flows_;
  PcapWriter* pcap_;
  DataplaneCounters counters_;
};

}  // namespace finwave::proxy
