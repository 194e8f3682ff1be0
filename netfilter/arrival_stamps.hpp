#pragma once

#include "netfilter/unique_fd.hpp"

namespace finwave::nf {

/// Asks the kernel to stamp every packet it receives with its arrival time, so that NFQUEUE
/// messages carry NFQA_TIMESTAMP (QueuedPacket::arrival_realtime_us).
///
/// Why: a delay is meant to run from the moment the segment reached this host, not from the
/// moment finwave got round to reading it. Without stamps the queue trip (a scheduler wake-up,
/// tens to hundreds of µs on these machines) would be added to every delay.
///
/// How: the kernel stamps received packets only while some socket wants receive timestamps
/// (a global switch, the same one tcpdump turns on). One UDP socket with SO_TIMESTAMPNS,
/// kept open and never read, holds it on; closing it lets the kernel turn it off again. The
/// cost is one clock read per received packet, machine-wide.
class ArrivalStamps {
 public:
  /// Never throws: without stamps finwave still works, with the queue trip in its delays.
  /// `enabled()` says whether it worked.
  ArrivalStamps() noexcept;
  ~ArrivalStamps();
  ArrivalStamps(const ArrivalStamps&) = delete;
  ArrivalStamps& operator=(const ArrivalStamps&) = delete;

  bool enabled() const noexcept { return static_cast<bool>(fd_); }

 private:
  UniqueFd fd_;
};

}  // namespace finwave::nf
