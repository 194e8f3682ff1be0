#include "netfilter/log_group.hpp"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <system_error>

namespace finwave::nf {
namespace {

// Large enough for a 64 KiB GSO packet plus the netlink and nfnetlink_log headers.
constexpr std::size_t kReceiveBufferSize = 0xffff + 4096;
constexpr std::size_t kControlBufferSize = 512;

[[noreturn]] void fail(std::uint16_t group, const std::string& what, int error) {
  throw std::system_error(error, std::generic_category(),
                          "log group " + std::to_string(group) + ": " + what);
}

nlmsghdr* put_config(char* buffer, std::uint16_t group) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer);
  nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = AF_UNSPEC;
  header->version = NFNETLINK_V0;
  header->res_id = htons(group);
  return nlh;
}

// Sends one configuration message and waits for the kernel's acknowledgement, so that a refused
// bind is reported at start-up.
void send_config(mnl_socket* socket, nlmsghdr* nlh, std::uint16_t group, const char* what) {
  static std::uint32_t sequence = 1;
  nlh->nlmsg_seq = sequence++;
  if (mnl_socket_sendto(socket, nlh, nlh->nlmsg_len) < 0) fail(group, what, errno);
  std::array<char, 8192> reply{};
  const ssize_t received = mnl_socket_recvfrom(socket, reply.data(), reply.size());
  if (received < 0) fail(group, what, errno);
  if (mnl_cb_run(reply.data(), static_cast<std::size_t>(received), nlh->nlmsg_seq,
                 mnl_socket_get_portid(socket), nullptr, nullptr) < 0) {
    fail(group, what, errno);
  }
}

// The kernel's defaults batch up to 100 copies for up to a second; see LogGroup for the two
// ways finwave asks for instead.
void put_delivery(nlmsghdr* nlh, bool batching) {
  mnl_attr_put_u32(nlh, NFULA_CFG_NLBUFSIZ, htonl(LogGroup::kBatchBytes));
  // A threshold above what fits in kBatchBytes: a batch goes when full or timed out.
  mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(batching ? LogGroup::kBatchBytes : 1));
  mnl_attr_put_u32(nlh, NFULA_CFG_TIMEOUT, htonl(batching ? LogGroup::kBatchTimeoutCs : 0));
}

using Attributes = std::array<const nlattr*, NFULA_MAX + 1>;

// The message's attributes by type, as mnl_attr_parse() would find them, written out: a copy
// has some eight attributes, and a callback and two library calls for each showed in the churn
// profile. A truncated attribute ends the walk, as it ends libmnl's; types newer than this
// build's headers are skipped.
void index_attributes(const nlmsghdr* nlh, Attributes& attributes) noexcept {
  // Offsets, not pointers, so that nothing points past the message even for a moment.
  const auto* base = reinterpret_cast<const std::uint8_t*>(nlh);
  const std::size_t length = nlh->nlmsg_len;
  std::size_t at = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg));
  while (at + sizeof(nlattr) <= length) {
    const auto* attribute = reinterpret_cast<const nlattr*>(base + at);
    if (attribute->nla_len < sizeof(nlattr) || attribute->nla_len > length - at) return;
    const unsigned type = attribute->nla_type & NLA_TYPE_MASK;
    if (type <= NFULA_MAX) attributes[type] = attribute;
    at += MNL_ALIGN(attribute->nla_len);
  }
}

}  // namespace

std::optional<LoggedPacket> parse_log_message(const void* message, std::size_t length) noexcept {
  const auto* nlh = static_cast<const nlmsghdr*>(message);
  if (length < sizeof(nlmsghdr) || nlh->nlmsg_len > length ||
      nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) {
    return std::nullopt;
  }
  if (nlh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) return std::nullopt;
  Attributes attributes{};
  index_attributes(nlh, attributes);
  const nlattr* header = attributes[NFULA_PACKET_HDR];
  const nlattr* payload = attributes[NFULA_PAYLOAD];
  if (header == nullptr || payload == nullptr ||
      mnl_attr_get_payload_len(header) < sizeof(nfulnl_msg_packet_hdr)) {
    return std::nullopt;
  }
  LoggedPacket packet;
  nfulnl_msg_packet_hdr packet_header{};
  std::memcpy(&packet_header, mnl_attr_get_payload(header), sizeof packet_header);
  packet.hw_protocol = ntohs(packet_header.hw_protocol);
  packet.payload = {static_cast<const std::uint8_t*>(mnl_attr_get_payload(payload)),
                    mnl_attr_get_payload_len(payload)};
  packet.original_len = static_cast<std::uint32_t>(packet.payload.size());
  if (const nlattr* mark = attributes[NFULA_MARK];
      mark != nullptr && mnl_attr_get_payload_len(mark) >= sizeof(std::uint32_t)) {
    packet.mark = ntohl(mnl_attr_get_u32(mark));
  }
  if (const nlattr* seq = attributes[NFULA_SEQ];
      seq != nullptr && mnl_attr_get_payload_len(seq) >= sizeof(std::uint32_t)) {
    packet.seq = ntohl(mnl_attr_get_u32(seq));
  }
  if (const nlattr* stamp = attributes[NFULA_TIMESTAMP];
      stamp != nullptr && mnl_attr_get_payload_len(stamp) >= sizeof(nfulnl_msg_packet_timestamp)) {
    nfulnl_msg_packet_timestamp value{};
    std::memcpy(&value, mnl_attr_get_payload(stamp), sizeof value);
    packet.arrival_realtime_us = be64toh(value.sec) * 1'000'000 + be64toh(value.usec);
  }
  return packet;
}

LogGroup LogGroup::open(const LogGroupConfig& config) {
  LogGroup log;
  log.group_ = config.group;
  log.socket_.reset(mnl_socket_open(NETLINK_NETFILTER));
  if (!log.socket_) fail(config.group, "cannot open a netfilter netlink socket", errno);
  mnl_socket* socket = log.socket_.get();
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    fail(config.group, "cannot bind the netlink socket", errno);
  }
  const int receive_buffer = static_cast<int>(config.receive_buffer_bytes);
  if (setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer,
                 sizeof receive_buffer) < 0) {
    fail(config.group, "cannot size the receive buffer (SO_RCVBUFFORCE)", errno);
  }

  std::array<char, kControlBufferSize> buffer{};
  nlmsghdr* nlh = put_config(buffer.data(), config.group);
  nfulnl_msg_config_cmd bind{NFULNL_CFG_CMD_BIND};
  mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof bind, &bind);
  send_config(socket, nlh, config.group,
              "cannot bind the log group (is another finwave, or a program reading "
              "nflog, using it? is nfnetlink_log in the kernel?)");

  nlh = put_config(buffer.data(), config.group);
  nfulnl_msg_config_mode mode{};
  mode.copy_range = htonl(0xffff);
  mode.copy_mode = NFULNL_COPY_PACKET;
  mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof mode, &mode);
  put_delivery(nlh, config.batching);
  // Sequence numbers show the copies the kernel could not deliver.
  mnl_attr_put_u16(nlh, NFULA_CFG_FLAGS, htons(NFULNL_CFG_F_SEQ));
  send_config(socket, nlh, config.group, "cannot set copy mode, threshold and flags");
  log.batching_ = config.batching;
  log.bound_ = true;

  log.receive_buffer_.resize(kReceiveBufferSize);
  return log;
}

LogGroup::LogGroup(LogGroup&& other) noexcept = default;
LogGroup& LogGroup::operator=(LogGroup&& other) noexcept = default;

LogGroup::~LogGroup() { unbind(); }

void LogGroup::unbind() noexcept {
  if (!socket_ || !bound_) return;
  bound_ = false;
  std::array<char, kControlBufferSize> buffer{};
  nlmsghdr* nlh = put_config(buffer.data(), group_);
  nlh->nlmsg_flags = NLM_F_REQUEST;  // Best effort: closing the socket unbinds as well.
  nfulnl_msg_config_cmd command{NFULNL_CFG_CMD_UNBIND};
  mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof command, &command);
  // The kernel destroys the instance in this call, and sends what it still batched first.
  mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len);
}

int LogGroup::fd() const noexcept { return socket_ ? mnl_socket_get_fd(socket_.get()) : -1; }

int LogGroup::set_batching(bool batching) noexcept {
  std::array<char, kControlBufferSize> buffer{};
  nlmsghdr* nlh = put_config(buffer.data(), group_);
  nlh->nlmsg_flags = NLM_F_REQUEST;  // No ACK: it would come among the copies.
  put_delivery(nlh, batching);
  if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) return -errno;
  batching_ = batching;
  return 0;
}

int LogGroup::take_error() noexcept {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(fd(), SOL_SOCKET, SO_ERROR, &error, &length) < 0) return errno;
  if (error == ENOBUFS) ++counters_.enobufs;
  return error;
}

int LogGroup::drain(LogHandler& handler, int max_packets) noexcept {
  int handled = 0;
  while (handled < max_packets) {
    const long received = receive_datagram(fd(), receive_buffer_, counters_.enobufs);
    if (received < 0) return static_cast<int>(received);
    if (received == 0) break;
    auto remaining = static_cast<int>(received);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(receive_buffer_.data());
         mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        // Only a refused set_batching() is answered (nothing else asks for an answer).
        const auto* error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (error->error != 0) ++counters_.config_errors;
        continue;
      }
      if (nlh->nlmsg_type == NLMSG_DONE) continue;
      const std::optional<LoggedPacket> packet = parse_log_message(nlh, nlh->nlmsg_len);
      if (!packet) {
        ++counters_.malformed_messages;
        continue;
      }
      if (packet->seq) counters_.lost += sequence_.see(*packet->seq);
      ++counters_.received;
      handler.on_logged(*packet);
      ++handled;
    }
  }
  return handled;
}

}  // namespace finwave::nf
