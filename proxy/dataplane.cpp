#include "proxy/dataplane.hpp"

#include <uv.h>

namespace finwave::proxy {

void Dataplane::on_packet(const nf::QueuedPacket& packet) noexcept {
  nf::TcpSegment segment;
  const nf::ParseError error = nf::parse_tcp_segment(packet.payload, segment);
  if (error != nf::ParseError::kNone) {
    // Not ours to judge: a packet finwave cannot read passes untouched.
    ++counters_.parse_errors[static_cast<std::size_t>(error) % counters_.parse_errors.size()];
    queue_.accept(packet.id);
    return;
  }
  ++counters_.segments;
  if (pcap_ != nullptr) pcap_->write(packet.payload, packet.original_len);

  const std::uint64_t now_us = uv_hrtime() / 1000;
  const Classified classified = flows_.classify(segment, now_us);
  queue_.accept(packet.id);
  flows_.commit(classified, segment, Verdict::kAccept, {}, now_us);
}

}  // namespace finwave::proxy
