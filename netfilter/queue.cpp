#include "netfilter/queue.hpp"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

namespace finwave::nf {
namespace {

// Large enough for a 64 KiB GSO packet plus netlink and nfqueue attribute headers.
constexpr std::size_t kReceiveBufferSize = 0xffff + 4096;
// Control messages are small; MNL_SOCKET_BUFFER_SIZE is a sysconf() call, not a constant.
constexpr std::size_t kControlBufferSize = 8192;
// One verdict message is 32 bytes; this holds a couple of thousand per write.
constexpr std::size_t kSendBufferSize = std::size_t{64} * 1024;
// Room one message needs in the send buffer, replacement payload excluded.
constexpr std::size_t kVerdictMessageRoom = 64;
// Bytes of receive buffer to ask for per queued packet: a small segment's skb truesize.
constexpr std::uint64_t kReceiveBytesPerPacket = 2048;
constexpr std::uint64_t kMaxReceiveBuffer = 256ULL * 1024 * 1024;

int to_kernel(KernelVerdict verdict) noexcept {
  return verdict == KernelVerdict::kAccept ? NF_ACCEPT : NF_DROP;
}

[[noreturn]] void fail(std::uint16_t queue_num, const std::string& what, int error) {
  throw std::system_error(error, std::generic_category(),
                          "NFQUEUE " + std::to_string(queue_num) + ": " + what);
}

// Sends one configuration message and waits for the kernel's acknowledgement, so that a refused
// bind (another process owns the queue, or no CAP_NET_ADMIN) is reported at start-up.
void send_config(mnl_socket* socket, std::uint32_t port_id, nlmsghdr* nlh, std::uint16_t queue_num,
                 const char* what) {
  static std::uint32_t sequence = 1;
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = sequence++;
  if (mnl_socket_sendto(socket, nlh, nlh->nlmsg_len) < 0) fail(queue_num, what, errno);
  char buffer[kControlBufferSize];
  const ssize_t received = mnl_socket_recvfrom(socket, buffer, sizeof buffer);
  if (received < 0) fail(queue_num, what, errno);
  if (mnl_cb_run(buffer, static_cast<std::size_t>(received), nlh->nlmsg_seq, port_id, nullptr,
                 nullptr) < 0) {
    fail(queue_num, what, errno);
  }
}

}  // namespace

Queue Queue::open(const QueueConfig& config) {
  Queue queue;
  queue.queue_num_ = config.queue_num;
  queue.socket_.reset(mnl_socket_open(NETLINK_NETFILTER));
  if (!queue.socket_) fail(config.queue_num, "cannot open a netfilter netlink socket", errno);
  mnl_socket* socket = queue.socket_.get();
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    fail(config.queue_num, "cannot bind the netlink socket", errno);
  }
  queue.port_id_ = mnl_socket_get_portid(socket);

  // A burst larger than the receive buffer would otherwise end every read with ENOBUFS; the
  // kernel's own counters (queue_dropped, user_dropped) still record what was lost.
  int one = 1;
  mnl_socket_setsockopt(socket, NETLINK_NO_ENOBUFS, &one, sizeof one);
  const std::uint64_t wanted =
      std::min<std::uint64_t>(kMaxReceiveBuffer, config.max_len * kReceiveBytesPerPacket);
  const int receive_buffer = static_cast<int>(std::max<std::uint64_t>(wanted, 1 << 20));
  if (setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer,
                 sizeof receive_buffer) < 0) {
    fail(config.queue_num, "cannot size the receive buffer (SO_RCVBUFFORCE)", errno);
  }

  char buffer[kControlBufferSize];
  nlmsghdr* nlh = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, config.queue_num);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
  send_config(socket, queue.port_id_, nlh, config.queue_num,
              "cannot bind the queue (is another finwave using it?)");

  nlh = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, config.queue_num);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
  // F_GSO: take GSO super-segments whole and with checksums not yet filled in, rather than
  // making the kernel segment them for us (11x slower on these machines).
  std::uint32_t flags = NFQA_CFG_F_GSO;
  if (config.fail_open) flags |= NFQA_CFG_F_FAIL_OPEN;
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
  send_config(socket, queue.port_id_, nlh, config.queue_num, "cannot set copy mode and flags");

  nlh = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, config.queue_num);
  nfq_nlmsg_cfg_put_qmaxlen(nlh, config.max_len);
  send_config(socket, queue.port_id_, nlh, config.queue_num, "cannot set the queue length");

  queue.receive_buffer_.resize(kReceiveBufferSize);
  queue.send_buffer_.resize(kSendBufferSize);
  queue.pending_accepts_.reserve(4096);
  return queue;
}

Queue::Queue(Queue&& other) noexcept = default;
Queue& Queue::operator=(Queue&& other) noexcept = default;

Queue::~Queue() {
  if (!socket_) return;
  char buffer[kControlBufferSize];
  nlmsghdr* nlh = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, queue_num_);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
  // Best effort: closing the socket unbinds the queue as well.
  mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len);
}

int Queue::fd() const noexcept { return socket_ ? mnl_socket_get_fd(socket_.get()) : -1; }

int Queue::drain(PacketHandler& handler, int max_packets) noexcept {
  int handled = 0;
  int result = 0;
  while (handled < max_packets) {
    const long received = receive_datagram(fd(), receive_buffer_, counters_.enobufs);
    if (received <= 0) {
      result = static_cast<int>(received);
      break;
    }
    handler.before_batch();
    auto remaining = static_cast<int>(received);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(receive_buffer_.data());
         mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
      handle_message(nlh, handler);
      ++handled;
    }
  }
  const int flushed = flush();
  if (result == 0 && flushed < 0) result = flushed;
  return result < 0 ? result : handled;
}

void Queue::handle_message(const void* message, PacketHandler& handler) noexcept {
  const auto* nlh = static_cast<const nlmsghdr*>(message);
  if (nlh->nlmsg_type == NLMSG_ERROR) {
    // Verdicts are sent without NLM_F_ACK, so an error message here is a verdict the kernel
    // refused (for example an id it no longer holds).
    const auto* error = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    if (error->error != 0) ++counters_.verdict_errors;
    return;
  }
  if (nlh->nlmsg_type == NLMSG_DONE) return;
  if ((nlh->nlmsg_type & 0xff) != NFQNL_MSG_PACKET) return;
  nlattr* attributes[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attributes) < 0 || attributes[NFQA_PACKET_HDR] == nullptr) {
    ++counters_.malformed_messages;
    return;
  }
  const auto* header =
      static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attributes[NFQA_PACKET_HDR]));
  QueuedPacket packet;
  packet.id = ntohl(header->packet_id);
  packet.hw_protocol = ntohs(header->hw_protocol);
  ++counters_.queued;
  if (attributes[NFQA_MARK] != nullptr)
    packet.mark = ntohl(mnl_attr_get_u32(attributes[NFQA_MARK]));
  if (attributes[NFQA_SKB_INFO] != nullptr) {
    packet.gso = (ntohl(mnl_attr_get_u32(attributes[NFQA_SKB_INFO])) & NFQA_SKB_GSO) != 0;
  }
  if (attributes[NFQA_PAYLOAD] != nullptr) {
    packet.payload = {
        static_cast<const std::uint8_t*>(mnl_attr_get_payload(attributes[NFQA_PAYLOAD])),
        mnl_attr_get_payload_len(attributes[NFQA_PAYLOAD])};
  }
  if (attributes[NFQA_TIMESTAMP] != nullptr &&
      mnl_attr_get_payload_len(attributes[NFQA_TIMESTAMP]) >= sizeof(nfqnl_msg_packet_timestamp)) {
    nfqnl_msg_packet_timestamp stamp{};
    std::memcpy(&stamp, mnl_attr_get_payload(attributes[NFQA_TIMESTAMP]), sizeof stamp);
    packet.arrival_realtime_us = be64toh(stamp.sec) * 1'000'000 + be64toh(stamp.usec);
  }
  packet.original_len = attributes[NFQA_CAP_LEN] != nullptr
                            ? ntohl(mnl_attr_get_u32(attributes[NFQA_CAP_LEN]))
                            : static_cast<std::uint32_t>(packet.payload.size());
  handler.on_packet(packet);
}

void Queue::accept(std::uint32_t id) noexcept {
  // reserve() in open() makes this allocation-free up to a full drain's worth of packets.
  try {
    pending_accepts_.push_back(id);
  } catch (...) {
    // Out of memory: give the verdict at once rather than lose the packet.
    append_verdict(NFQNL_MSG_VERDICT, id, KernelVerdict::kAccept);
  }
}

void Queue::drop(std::uint32_t id) noexcept {
  append_verdict(NFQNL_MSG_VERDICT, id, KernelVerdict::kDrop);
}

void Queue::hold(std::uint32_t id) noexcept {
  try {
    // Ids grow with every packet, so this is almost always an append.
    held_.insert(std::upper_bound(held_.begin(), held_.end(), id), id);
    counters_.held = held_.size();
  } catch (...) {
    // Cannot remember it: let it through now rather than lose it.
    append_verdict(NFQNL_MSG_VERDICT, id, KernelVerdict::kAccept);
  }
}

int Queue::release(std::uint32_t id, KernelVerdict verdict,
                   std::span<const std::uint8_t> replacement) noexcept {
  const auto it = std::lower_bound(held_.begin(), held_.end(), id);
  if (it != held_.end() && *it == id) held_.erase(it);
  counters_.held = held_.size();
  if (replacement.empty()) {
    append_verdict(NFQNL_MSG_VERDICT, id, verdict);
    return flush();
  }
  // A replacement payload goes out on its own, after whatever is pending.
  if (const int flushed = flush(); flushed < 0) return flushed;
  std::vector<char> buffer;
  try {
    buffer.resize(replacement.size() + kControlBufferSize);
  } catch (...) {
    return -ENOMEM;
  }
  nlmsghdr* nlh = nfq_nlmsg_put(buffer.data(), NFQNL_MSG_VERDICT, queue_num_);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), to_kernel(verdict));
  nfq_nlmsg_verdict_put_pkt(nlh, replacement.data(),
                            static_cast<std::uint32_t>(replacement.size()));
  if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) {
    ++counters_.verdict_errors;
    return -errno;
  }
  if (verdict == KernelVerdict::kAccept)
    ++counters_.accepted;
  else
    ++counters_.dropped;
  return 0;
}

void Queue::append_verdict(int type, std::uint32_t id, KernelVerdict verdict) noexcept {
  // A failed write is counted by send_buffer() and empties the buffer all the same.
  if (send_len_ + kVerdictMessageRoom > send_buffer_.size()) send_buffer();
  auto* buffer = reinterpret_cast<char*>(send_buffer_.data() + send_len_);
  nlmsghdr* nlh = nfq_nlmsg_put(buffer, type, queue_num_);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), to_kernel(verdict));
  send_len_ += NLMSG_ALIGN(nlh->nlmsg_len);
  // A batch verdict covers many packets; its callers count them.
  if (type == NFQNL_MSG_VERDICT) {
    if (verdict == KernelVerdict::kAccept)
      ++counters_.accepted;
    else
      ++counters_.dropped;
  }
}

int Queue::flush() noexcept {
  if (!pending_accepts_.empty()) {
    const std::uint32_t newest =
        *std::max_element(pending_accepts_.begin(), pending_accepts_.end());
    if (held_.empty() || held_.front() > newest) {
      // Drops already in the buffer go first, so the batch cannot accept them.
      append_verdict(NFQNL_MSG_VERDICT_BATCH, newest, KernelVerdict::kAccept);
      counters_.accepted += pending_accepts_.size();
      ++counters_.batches;
    } else {
      for (const std::uint32_t id : pending_accepts_)
        append_verdict(NFQNL_MSG_VERDICT, id, KernelVerdict::kAccept);
    }
    pending_accepts_.clear();
  }
  return send_buffer();
}

int Queue::send_buffer() noexcept {
  if (send_len_ == 0) return 0;
  const ssize_t sent = mnl_socket_sendto(socket_.get(), send_buffer_.data(), send_len_);
  const int error = errno;
  send_len_ = 0;
  if (sent < 0) {
    ++counters_.verdict_errors;
    return -error;
  }
  return 0;
}

}  // namespace finwave::nf
