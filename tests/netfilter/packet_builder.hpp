#pragma once

// Test-only: builds IPv4/IPv6 + TCP packets byte by byte, with every field the parser looks at
// under the test's control, including wrong ones. Not for production code.

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace finwave::nf::test {

/// IPv6 next-header values the builder knows how to lay out.
namespace ipv6_ext {
inline constexpr std::uint8_t kHopByHop = 0;
inline constexpr std::uint8_t kRouting = 43;
inline constexpr std::uint8_t kFragment = 44;
inline constexpr std::uint8_t kAh = 51;
inline constexpr std::uint8_t kDestOptions = 60;
}  // namespace ipv6_ext

/// Fluent builder: `PacketBuilder::ipv4().flags(kFin | kAck).payload(100).build()`.
/// Defaults: client 198.18.1.2 / 2001:db8:1::2 port 40000 to server 198.18.2.2 / 2001:db8:2::2
/// port 80, seq 1000, ack 2000, flags ACK, window 65535, no options, no payload. Lengths and
/// checksums are computed unless overridden.
class PacketBuilder {
 public:
  static PacketBuilder ipv4() { return PacketBuilder(4); }
  static PacketBuilder ipv6() { return PacketBuilder(6); }

  PacketBuilder& src(const std::string& address) { return set_address(src_, address); }
  PacketBuilder& dst(const std::string& address) { return set_address(dst_, address); }
  PacketBuilder& ports(std::uint16_t src, std::uint16_t dst) {
    src_port_ = src;
    dst_port_ = dst;
    return *this;
  }
  PacketBuilder& seq(std::uint32_t value) {
    seq_ = value;
    return *this;
  }
  PacketBuilder& ack(std::uint32_t value) {
    ack_ = value;
    return *this;
  }
  PacketBuilder& flags(std::uint8_t value) {
    flags_ = value;
    return *this;
  }
  PacketBuilder& window(std::uint16_t value) {
    window_ = value;
    return *this;
  }
  /// `size` payload bytes (a counting pattern).
  PacketBuilder& payload(std::size_t size) {
    payload_size_ = size;
    return *this;
  }

  // TCP options, appended in call order; the option area is padded with EOL to 4 bytes.
  PacketBuilder& mss(std::uint16_t value) { return option({2, 4, hi(value), lo(value)}); }
  PacketBuilder& window_scale(std::uint8_t shift) { return option({3, 3, shift}); }
  PacketBuilder& sack_permitted() { return option({4, 2}); }
  PacketBuilder& sack(const std::vector<std::pair<std::uint32_t, std::uint32_t>>& blocks) {
    std::vector<std::uint8_t> bytes = {5, static_cast<std::uint8_t>(2 + 8 * blocks.size())};
    for (const auto& [left, right] : blocks) {
      append32(bytes, left);
      append32(bytes, right);
    }
    return option(bytes);
  }
  PacketBuilder& timestamps(std::uint32_t value, std::uint32_t echo) {
    std::vector<std::uint8_t> bytes = {8, 10};
    append32(bytes, value);
    append32(bytes, echo);
    return option(bytes);
  }
  PacketBuilder& nop() { return option({1}); }
  PacketBuilder& eol() { return option({0}); }
  /// Raw option bytes, written as given (malformed ones included).
  PacketBuilder& option(const std::vector<std::uint8_t>& bytes) {
    tcp_options_.insert(tcp_options_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  /// Data offset nibble in 32-bit words, instead of the real header length.
  PacketBuilder& data_offset(std::uint8_t words) {
    data_offset_ = words;
    return *this;
  }

  // IPv4 only.
  /// `size` bytes of IPv4 options (NOPs), padded to 4 bytes; IHL follows unless overridden.
  PacketBuilder& ip_options(std::size_t size) {
    ip_options_size_ = size;
    return *this;
  }
  PacketBuilder& ihl(std::uint8_t words) {
    ihl_ = words;
    return *this;
  }
  PacketBuilder& total_length(std::uint16_t value) {
    ip_length_ = value;
    return *this;
  }
  PacketBuilder& fragment(bool more_fragments, std::uint16_t offset_units,
                          bool dont_fragment = false) {
    fragment_field_ = static_cast<std::uint16_t>(
        (dont_fragment ? 0x4000 : 0) | (more_fragments ? 0x2000 : 0) | (offset_units & 0x1FFF));
    return *this;
  }

  // IPv6 only.
  PacketBuilder& payload_length(std::uint16_t value) {
    ip_length_ = value;
    return *this;
  }
  /// Adds an extension header of `type` (ipv6_ext) whose total size is `size` bytes, rounded up
  /// to its unit (8 bytes; 4 for AH, minimum 12). A Fragment header is always 8 bytes, with
  /// `fragment_offset` and the M flag taken from `more_fragments`.
  PacketBuilder& extension(std::uint8_t type, std::size_t size = 8,
                           std::uint16_t fragment_offset = 0, bool more_fragments = false) {
    extensions_.push_back({type, size, fragment_offset, more_fragments});
    return *this;
  }

  // Both families.
  /// Transport protocol (IPv4 protocol / last IPv6 next header) instead of TCP (6). The TCP
  /// bytes are still written after the IP header(s).
  PacketBuilder& protocol(std::uint8_t value) {
    protocol_ = value;
    return *this;
  }
  PacketBuilder& version(std::uint8_t value) {
    version_ = value;
    return *this;
  }

  std::vector<std::uint8_t> build() const {
    std::vector<std::uint8_t> tcp = build_tcp();
    std::vector<std::uint8_t> packet =
        family_ == 4 ? build_ipv4(tcp.size()) : build_ipv6(tcp.size());
    const std::size_t tcp_offset = packet.size();
    packet.insert(packet.end(), tcp.begin(), tcp.end());
    write_tcp_checksum(packet, tcp_offset);
    if (version_) {
      packet[0] = static_cast<std::uint8_t>((*version_ << 4) | (packet[0] & 0x0F));
    }
    return packet;
  }

  /// The built packet cut to its first `size` bytes.
  std::vector<std::uint8_t> build_truncated(std::size_t size) const {
    std::vector<std::uint8_t> packet = build();
    packet.resize(std::min(size, packet.size()));
    return packet;
  }

 private:
  struct Extension {
    std::uint8_t type;
    std::size_t size;
    std::uint16_t fragment_offset;
    bool more_fragments;
  };

  explicit PacketBuilder(int family) : family_(family) {
    src(family == 4 ? "198.18.1.2" : "2001:db8:1::2");
    dst(family == 4 ? "198.18.2.2" : "2001:db8:2::2");
  }

  static std::uint8_t hi(std::uint16_t v) { return static_cast<std::uint8_t>(v >> 8); }
  static std::uint8_t lo(std::uint16_t v) { return static_cast<std::uint8_t>(v & 0xFF); }
  static void append16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(hi(v));
    out.push_back(lo(v));
  }
  static void append32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    append16(out, static_cast<std::uint16_t>(v >> 16));
    append16(out, static_cast<std::uint16_t>(v & 0xFFFF));
  }
  static void store16(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t v) {
    out[at] = hi(v);
    out[at + 1] = lo(v);
  }
  static std::size_t round_up(std::size_t n, std::size_t unit) {
    return (n + unit - 1) / unit * unit;
  }

  PacketBuilder& set_address(std::array<std::uint8_t, 16>& where, const std::string& text) {
    where = {};
    if (inet_pton(family_ == 4 ? AF_INET : AF_INET6, text.c_str(), where.data()) != 1) {
      throw std::invalid_argument("PacketBuilder: bad address " + text);
    }
    return *this;
  }

  std::vector<std::uint8_t> build_tcp() const {
    std::vector<std::uint8_t> options = tcp_options_;
    options.resize(round_up(options.size(), 4), 0);
    const std::size_t header_len = 20 + options.size();
    std::vector<std::uint8_t> tcp;
    append16(tcp, src_port_);
    append16(tcp, dst_port_);
    append32(tcp, seq_);
    append32(tcp, ack_);
    const std::uint8_t words =
        data_offset_ ? *data_offset_ : static_cast<std::uint8_t>(header_len / 4);
    tcp.push_back(static_cast<std::uint8_t>(words << 4));
    tcp.push_back(flags_);
    append16(tcp, window_);
    append16(tcp, 0);  // Checksum, filled in later.
    append16(tcp, 0);  // Urgent pointer.
    tcp.insert(tcp.end(), options.begin(), options.end());
    for (std::size_t i = 0; i < payload_size_; ++i) {
      tcp.push_back(static_cast<std::uint8_t>(i));
    }
    return tcp;
  }

  std::vector<std::uint8_t> build_ipv4(std::size_t tcp_size) const {
    const std::size_t header_len = 20 + round_up(ip_options_size_, 4);
    std::vector<std::uint8_t> ip(header_len, 1);  // Options are NOPs.
    ip[0] = static_cast<std::uint8_t>(0x40 | (ihl_ ? *ihl_ : header_len / 4));
    ip[1] = 0;
    const std::size_t total = header_len + tcp_size;
    store16(ip, 2,
            ip_length_ ? *ip_length_ : static_cast<std::uint16_t>(total > 0xFFFF ? 0 : total));
    store16(ip, 4, 0x1234);
    store16(ip, 6, fragment_field_);
    ip[8] = 64;
    ip[9] = protocol_;
    store16(ip, 10, 0);
    std::copy_n(src_.begin(), 4, ip.begin() + 12);
    std::copy_n(dst_.begin(), 4, ip.begin() + 16);
    store16(ip, 10, checksum(ip.data(), header_len, 0));
    return ip;
  }

  std::vector<std::uint8_t> build_ipv6(std::size_t tcp_size) const {
    std::vector<std::uint8_t> ip(40, 0);
    ip[0] = 0x60;
    ip[6] = extensions_.empty() ? protocol_ : extensions_.front().type;
    ip[7] = 64;
    std::copy(src_.begin(), src_.end(), ip.begin() + 8);
    std::copy(dst_.begin(), dst_.end(), ip.begin() + 24);
    for (std::size_t i = 0; i < extensions_.size(); ++i) {
      const Extension& ext = extensions_[i];
      const std::uint8_t next = i + 1 < extensions_.size() ? extensions_[i + 1].type : protocol_;
      const std::size_t at = ip.size();
      if (ext.type == ipv6_ext::kFragment) {
        ip.resize(at + 8, 0);
        ip[at] = next;
        store16(
            ip, at + 2,
            static_cast<std::uint16_t>((ext.fragment_offset << 3) | (ext.more_fragments ? 1 : 0)));
        store16(ip, at + 4, 0xabcd);
      } else if (ext.type == ipv6_ext::kAh) {
        const std::size_t size = std::max<std::size_t>(12, round_up(ext.size, 4));
        ip.resize(at + size, 0);
        ip[at] = next;
        ip[at + 1] = static_cast<std::uint8_t>(size / 4 - 2);
      } else {
        const std::size_t size = std::max<std::size_t>(8, round_up(ext.size, 8));
        ip.resize(at + size, 0);  // Zero bytes are Pad1 options.
        ip[at] = next;
        ip[at + 1] = static_cast<std::uint8_t>(size / 8 - 1);
      }
    }
    const std::size_t payload = ip.size() - 40 + tcp_size;
    store16(ip, 4,
            ip_length_ ? *ip_length_ : static_cast<std::uint16_t>(payload > 0xFFFF ? 0 : payload));
    return ip;
  }

  static std::uint16_t checksum(const std::uint8_t* data, std::size_t size, std::uint32_t sum) {
    for (std::size_t i = 0; i + 1 < size; i += 2) {
      sum += static_cast<std::uint32_t>((data[i] << 8) | data[i + 1]);
    }
    if (size % 2 != 0) {
      sum += static_cast<std::uint32_t>(data[size - 1] << 8);
    }
    while (sum > 0xFFFF) {
      sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum & 0xFFFF);
  }

  // Real checksums keep the packets usable outside the parser tests (pcap files, raw sockets).
  void write_tcp_checksum(std::vector<std::uint8_t>& packet, std::size_t tcp_offset) const {
    const std::size_t tcp_size = packet.size() - tcp_offset;
    const std::size_t address_size = family_ == 4 ? 4 : 16;
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < address_size; i += 2) {
      sum += static_cast<std::uint32_t>((src_[i] << 8) | src_[i + 1]);
      sum += static_cast<std::uint32_t>((dst_[i] << 8) | dst_[i + 1]);
    }
    sum += 6;
    sum +=
        static_cast<std::uint32_t>(tcp_size & 0xFFFF) + static_cast<std::uint32_t>(tcp_size >> 16);
    store16(packet, tcp_offset + 16, checksum(packet.data() + tcp_offset, tcp_size, sum));
  }

  int family_;
  std::array<std::uint8_t, 16> src_{};
  std::array<std::uint8_t, 16> dst_{};
  std::uint16_t src_port_ = 40000;
  std::uint16_t dst_port_ = 80;
  std::uint32_t seq_ = 1000;
  std::uint32_t ack_ = 2000;
  std::uint8_t flags_ = 0x10;
  std::uint16_t window_ = 65535;
  std::size_t payload_size_ = 0;
  std::vector<std::uint8_t> tcp_options_;
  std::optional<std::uint8_t> data_offset_;
  std::size_t ip_options_size_ = 0;
  std::optional<std::uint8_t> ihl_;
  std::optional<std::uint16_t> ip_length_;
  std::uint16_t fragment_field_ = 0;
  std::vector<Extension> extensions_;
  std::uint8_t protocol_ = 6;
  std::optional<std::uint8_t> version_;
};

}  // namespace finwave::nf::test
