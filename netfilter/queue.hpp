#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "netfilter/mnl_socket.hpp"

namespace finwave::nf {

/// A kernel verdict for a queued packet.
enum class KernelVerdict : std::uint8_t { kAccept, kDrop };

/// How the queue is bound and sized.
struct QueueConfig {
  std::uint16_t queue_num = 0;
  /// Packets the kernel may hold for us before it starts dropping (or, with fail_open,
  /// accepting) new ones. Also sizes the socket's receive buffer.
  std::uint32_t max_len = 4096;
  /// NFQA_CFG_F_FAIL_OPEN: when the queue is full the kernel accepts instead of dropping.
  bool fail_open = true;
};

/// One packet handed over by the kernel. Valid only during PacketHandler::on_packet: `payload`
/// points into the receive buffer, which the next read overwrites.
struct QueuedPacket {
  std::uint32_t id = 0;
  std::uint16_t hw_protocol = 0;  ///< ETH_P_IP or ETH_P_IPV6 (host order).
  std::uint32_t mark = 0;
  bool gso = false;                ///< A GSO super-segment (may exceed the MTU).
  std::uint32_t original_len = 0;  ///< Length before any truncation to the copy range.
  /// When the kernel received it (NFQA_TIMESTAMP, CLOCK_REALTIME, µs since the epoch); 0 when
  /// the kernel did not stamp it (see ArrivalStamps). Forwarded packets carry their arrival on
  /// the ingress device; locally sent ones the time they were queued.
  std::uint64_t arrival_realtime_us = 0;
  std::span<const std::uint8_t> payload;  ///< From the IP header on.
};

/// Receives packets from Queue::drain(). Implementations must give every packet a verdict
/// (accept, drop or hold) before returning, and must not throw.
class PacketHandler {
 public:
  virtual void on_packet(const QueuedPacket& packet) noexcept = 0;
  /// Called after each read from the socket, before its packets are handed over (the data path
  /// reads the log path here).
  virtual void before_batch() noexcept {}

 protected:
  ~PacketHandler() = default;
};

/// What the queue has done since it was opened.
struct QueueCounters {
  std::uint64_t queued = 0;          ///< Packets received from the kernel.
  std::uint64_t accepted = 0;        ///< ACCEPT verdicts (batched or single).
  std::uint64_t dropped = 0;         ///< DROP verdicts.
  std::uint64_t held = 0;            ///< Packets held right now, awaiting release().
  std::uint64_t batches = 0;         ///< Batch verdict messages sent.
  std::uint64_t verdict_errors = 0;  ///< Verdicts the kernel could not take (sendto failed).
  std::uint64_t enobufs = 0;  ///< Receive overruns: the kernel dropped messages meant for us.
  std::uint64_t malformed_messages = 0;  ///< Netlink messages without a packet header.
};

/// An NFQUEUE queue bound through the libmnl API of libnetfilter_queue.
///
/// Verdicts are deferred and batched: accept() and drop() only note the decision, and flush()
/// (called at the end of every drain()) sends them all in one write — single DROP verdicts
/// first, then one ACCEPT batch verdict covering every id up to the newest, unless an older
/// packet is held, in which case the accepts go out one by one so the held packet stays queued.
///
/// Not thread-safe: one loop thread owns a Queue.
class Queue {
 public:
  /// Binds queue `config.queue_num` with packet copy, F_GSO and (optionally) F_FAIL_OPEN.
  /// Throws std::system_error with a message naming the queue (e.g. when another process has
  /// bound it already, or without CAP_NET_ADMIN).
  static Queue open(const QueueConfig& config);

  Queue(Queue&& other) noexcept;
  Queue& operator=(Queue&& other) noexcept;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  /// Unbinds and closes the socket. The kernel drops every packet still queued or held on it,
  /// so release held packets and flush() first.
  ~Queue();

  /// The netlink socket to poll for readability.
  int fd() const noexcept;
  std::uint16_t queue_num() const noexcept { return queue_num_; }

  /// Reads every message available now (bounded by `max_packets`, so one busy queue cannot
  /// starve the loop), hands each packet to `handler`, then flushes the verdicts. Returns the
  /// number of packets handled, or a negative errno for a socket error other than EAGAIN.
  int drain(PacketHandler& handler, int max_packets = 1024) noexcept;

  /// Notes an ACCEPT verdict for `id`; sent by the next flush().
  void accept(std::uint32_t id) noexcept;
  /// Notes a DROP verdict for `id`; sent by the next flush().
  void drop(std::uint32_t id) noexcept;
  /// Keeps `id` queued in the kernel with no verdict until release(). While a packet is held,
  /// newer accepts cannot be batched past it.
  void hold(std::uint32_t id) noexcept;
  /// Gives a held packet its verdict now. With `replacement`, the packet is replaced by those
  /// bytes (an ACCEPT with a new payload). Returns 0 or a negative errno.
  int release(std::uint32_t id, KernelVerdict verdict,
              std::span<const std::uint8_t> replacement = {}) noexcept;
  /// Sends every noted verdict. Returns 0 or a negative errno.
  int flush() noexcept;

  const QueueCounters& counters() const noexcept { return counters_; }
  /// Ids currently held, oldest first.
  const std::vector<std::uint32_t>& held_ids() const noexcept { return held_; }

 private:
  Queue() = default;
  int send_buffer() noexcept;
  void append_verdict(int type, std::uint32_t id, KernelVerdict verdict) noexcept;
  void handle_message(const void* nlh, PacketHandler& handler) noexcept;

  MnlSocket socket_;
  std::uint16_t queue_num_ = 0;
  std::uint32_t port_id_ = 0;
  std::vector<std::uint8_t> receive_buffer_;
  std::vector<std::uint8_t> send_buffer_;
  std::size_t send_len_ = 0;
  std::vector<std::uint32_t> pending_accepts_;
  std::vector<std::uint32_t> held_;  // sorted
  QueueCounters counters_;
};

}  // namespace finwave::nf
