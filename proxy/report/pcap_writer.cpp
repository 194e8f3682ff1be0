#include "proxy/report/pcap_writer.hpp"

#include <pcap/pcap.h>
#include <sys/time.h>

#include <stdexcept>
#include <utility>

namespace finwave::proxy {

PcapWriter::PcapWriter(const std::string& path) {
  // Snap length 65535 plus room for an IPv6 header: NFQUEUE copies at most that much.
  handle_ = pcap_open_dead(DLT_RAW, 65535 + 40);
  if (handle_ == nullptr) throw std::runtime_error("pcap: cannot create a raw-IP capture handle");
  dumper_ = pcap_dump_open(handle_, path.c_str());
  if (dumper_ == nullptr) {
    const std::string message = pcap_geterr(handle_);
    pcap_close(handle_);
    handle_ = nullptr;
    throw std::runtime_error("pcap: cannot write " + path + ": " + message);
  }
}

PcapWriter::PcapWriter(PcapWriter&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      dumper_(std::exchange(other.dumper_, nullptr)) {}

PcapWriter& PcapWriter::operator=(PcapWriter&& other) noexcept {
  if (this != &other) {
    close();
    handle_ = std::exchange(other.handle_, nullptr);
    dumper_ = std::exchange(other.dumper_, nullptr);
  }
  return *this;
}

PcapWriter::~PcapWriter() { close(); }

void PcapWriter::write(std::span<const std::uint8_t> packet, std::uint32_t original_len) noexcept {
  if (dumper_ == nullptr) return;
  pcap_pkthdr header{};
  gettimeofday(&header.ts, nullptr);
  header.caplen = static_cast<bpf_u_int32>(packet.size());
  header.len = original_len > packet.size() ? original_len : header.caplen;
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &header, packet.data());
}

void PcapWriter::flush() noexcept {
  if (dumper_ != nullptr) pcap_dump_flush(dumper_);
}

void PcapWriter::close() noexcept {
  if (dumper_ != nullptr) {
    pcap_dump_close(dumper_);
    dumper_ = nullptr;
  }
  if (handle_ != nullptr) {
    pcap_close(handle_);
    handle_ = nullptr;
  }
}

}  // namespace finwave::proxy
