#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "netfilter/mnl_socket.hpp"

namespace finwave::nf {

/// How a log group is bound.
struct LogGroupConfig {
  /// The nfnetlink_log group the capture table's `log group` statements name.
  std::uint16_t group = 0;
  /// The socket's receive buffer. Copies that find it full are lost (the kernel cannot hold a
  /// logged packet back: it has gone on already); 64 MiB holds some 30,000 small segments, a
  /// stall of a second at the rates these machines reach.
  std::uint32_t receive_buffer_bytes = 64U << 20;
  /// Start batched (see LogGroup::set_batching()).
  bool batching = false;
};

/// One copy the kernel logged. Valid only during LogHandler::on_logged: `payload` points into the
/// receive buffer, which the next read overwrites.
struct LoggedPacket {
  std::uint16_t hw_protocol = 0;  ///< ETH_P_IP or ETH_P_IPV6 (host order).
  std::uint32_t mark = 0;
  /// The group's own sequence number (NFULA_SEQ): one per copy the kernel made, sent or not.
  std::optional<std::uint32_t> seq;
  /// NFULA_TIMESTAMP, CLOCK_REALTIME µs since the epoch; 0 when the kernel did not stamp it.
  std::uint64_t arrival_realtime_us = 0;
  std::uint32_t original_len = 0;         ///< The packet's length (the copy is never shorter here).
  std::span<const std::uint8_t> payload;  ///< From the IP header on.
};

/// Receives copies from LogGroup::drain(); must not throw.
class LogHandler {
 public:
  virtual void on_logged(const LoggedPacket& packet) noexcept = 0;

 protected:
  ~LogHandler() = default;
};

/// What the log group has received since it was bound.
struct LogCounters {
  std::uint64_t received = 0;  ///< Copies handed to the handler.
  /// Copies the kernel made but finwave never received: the gaps in their sequence numbers
  /// (seen when the next copy arrives).
  std::uint64_t lost = 0;
  std::uint64_t enobufs = 0;  ///< Receive overruns the socket reported (the gaps tell how many).
  std::uint64_t malformed_messages = 0;  ///< Messages without a packet header or payload.
  std::uint64_t config_errors = 0;       ///< Mode switches the kernel refused.
};

/// Counts the copies lost between the sequence numbers seen. The first copy after binding is 0.
class LogSequence {
 public:
  /// Returns how many copies were skipped before `seq` (0 when it is the one expected).
  std::uint32_t see(std::uint32_t seq) noexcept {
    const std::uint32_t gap = seq - expected_;  // unsigned: wraps with the kernel's counter
    expected_ = seq + 1;
    // A copy from before the expected one cannot come (one socket, in order): a huge gap is a
    // step back, which a rebind would cause; it starts the count afresh.
    return gap > (1U << 31) ? 0 : gap;
  }

 private:
  std::uint32_t expected_ = 0;
};

/// Parses one nfnetlink_log message (`message` points at its nlmsghdr, `length` bytes of
/// buffer from there). Returns nullopt for a message that is no packet copy or has no payload.
/// Pure, for tests.
std::optional<LoggedPacket> parse_log_message(const void* message, std::size_t length) noexcept;

/// An nfnetlink_log group bound over libmnl: the log path, on which the kernel lets each packet go
/// on at once and sends finwave a copy. Two ways to deliver:
/// - one by one (queue threshold 1): each copy is in the socket before its packet goes on, so
///   before anything the packet causes can reach finwave's queue. That keeps the tracker's
///   order when segments are queued too (see Dataplane). The price: a wake-up of finwave in
///   the packet's path for every copy (tens of µs on these VMs when finwave sleeps on another
///   CPU).
/// - batched: the kernel gathers copies into one message of up to kBatchBytes and sends it when
///   full or kBatchTimeoutCs hundredths of a second after the first: no wake-up per packet,
///   copies up to that much late. Right when nothing is queued, so no order is at stake.
///
/// Not thread-safe: one loop thread owns a LogGroup.
class LogGroup {
 public:
  /// Binds `config.group` with whole-packet copies, sequence numbers and one message per copy.
  /// Throws std::system_error with a message naming the group (another process has bound it,
  /// no CAP_NET_ADMIN, no nfnetlink_log in the kernel).
  static LogGroup open(const LogGroupConfig& config);

  LogGroup(LogGroup&& other) noexcept;
  LogGroup& operator=(LogGroup&& other) noexcept;
  LogGroup(const LogGroup&) = delete;
  LogGroup& operator=(const LogGroup&) = delete;
  /// Unbinds and closes the socket.
  ~LogGroup();

  int fd() const noexcept;
  std::uint16_t group() const noexcept { return group_; }

  /// Switches between batched and one-by-one delivery (see above). The kernel takes it without
  /// an answer being waited for (the answer would come among the copies): a refusal comes back
  /// as an error message, counted in config_errors. Copies batched before a switch to one by one
  /// still come at the end of their batch's timeout: whoever starts queueing must wait
  /// kBatchTimeoutCs (and a tick) first. Returns 0 or a negative errno (the send failed).
  int set_batching(bool batching) noexcept;
  bool batching() const noexcept { return batching_; }

  /// Most bytes of copies in one batched message, and how long the kernel holds a batch.
  static constexpr std::uint32_t kBatchBytes = 32768;
  static constexpr std::uint32_t kBatchTimeoutCs = 1;

  /// Reads every copy available now, at most `max_packets`, and hands each to `handler`.
  /// Returns the number handled, or a negative errno for a socket error other than EAGAIN.
  int drain(LogHandler& handler, int max_packets = 4096) noexcept;

  /// Unbinds the group now: the kernel hands over the batch it still holds (within this call)
  /// and makes no more copies for finwave. For shutdown, before the last drain(). Idempotent.
  void unbind() noexcept;

  /// Takes the error the socket holds (SO_ERROR), which an overrun leaves and which makes poll()
  /// report POLLERR until it is taken; an ENOBUFS is counted. Returns the error (0: none).
  int take_error() noexcept;

  const LogCounters& counters() const noexcept { return counters_; }

 private:
  LogGroup() = default;

  MnlSocket socket_;
  std::uint16_t group_ = 0;
  bool batching_ = false;
  bool bound_ = false;
  std::vector<std::uint8_t> receive_buffer_;
  LogSequence sequence_;
  LogCounters counters_;
};

}  // namespace finwave::nf
