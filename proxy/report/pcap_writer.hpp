#pragma once

#include <cstdint>
#include <span>
#include <string>

struct pcap;
struct pcap_dumper;

namespace finwave::proxy {

/// Writes captured teardown segments to a pcap file (LINKTYPE_RAW: each record starts at the IP
/// header, IPv4 or IPv6), which Wireshark and tcpdump -r open. Loop thread only.
class PcapWriter {
 public:
  PcapWriter() = default;
  /// Creates or truncates `path`. Throws std::runtime_error with libpcap's message on failure.
  explicit PcapWriter(const std::string& path);
  PcapWriter(PcapWriter&& other) noexcept;
  PcapWriter& operator=(PcapWriter&& other) noexcept;
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  ~PcapWriter();

  bool is_open() const noexcept { return dumper_ != nullptr; }
  /// Appends one packet stamped with the wall-clock time; `original_len` is its length on the
  /// wire when `packet` is a truncated copy. No-op when not open.
  void write(std::span<const std::uint8_t> packet, std::uint32_t original_len) noexcept;
  /// Pushes buffered records to the file (called on every loop tick, and on close).
  void flush() noexcept;
  void close() noexcept;

 private:
  pcap* handle_ = nullptr;
  pcap_dumper* dumper_ = nullptr;
};

}  // namespace finwave::proxy
