#include "netfilter/queue_rule.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "netfilter/nft_netlink.hpp"

namespace finwave::nf {
namespace {

struct RuleFree {
  void operator()(nftnl_rule* rule) const noexcept { nftnl_rule_free(rule); }
};

// The NFQUEUE target's revision whose info carries queue balancing and bypass as flags.
constexpr std::uint32_t kNfqueueRevision = 3;

std::string failure(const QueueRuleTarget& target, const std::string& reason) {
  return "adding the queue rule to inet " + target.table + " " + target.chain +
         " failed: " + reason;
}

/// The rule: a counter (so that `nft list table` shows how many segments were queued) and the
/// NFQUEUE target. The rule owns its expressions.
std::unique_ptr<nftnl_rule, RuleFree> queue_rule(const QueueRuleTarget& target,
                                                 std::uint16_t queue_num,
                                                 std::uint16_t queue_count) {
  std::unique_ptr<nftnl_rule, RuleFree> rule(nftnl_rule_alloc());
  nftnl_expr* counter = nftnl_expr_alloc("counter");
  nftnl_expr* verdict = nftnl_expr_alloc("target");
  if (!rule || !counter || !verdict) {
    nftnl_expr_free(counter);
    nftnl_expr_free(verdict);
    throw std::bad_alloc();
  }
  nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, target.table.c_str());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, target.chain.c_str());
  nftnl_rule_add_expr(rule.get(), counter);

  // The expression takes the info over and frees it with free(): it must come from malloc.
  auto* info = static_cast<xt_NFQ_info_v3*>(std::calloc(1, sizeof(xt_NFQ_info_v3)));
  if (!info) {
    nftnl_expr_free(verdict);
    throw std::bad_alloc();
  }
  info->queuenum = queue_num;
  info->queues_total = queue_count;
  // Bypass: while no finwave reads the queue (before it binds, after a crash), segments pass.
  info->flags = NFQ_FLAG_BYPASS;
  nftnl_expr_set_str(verdict, NFTNL_EXPR_TG_NAME, "NFQUEUE");
  nftnl_expr_set_u32(verdict, NFTNL_EXPR_TG_REV, kNfqueueRevision);
  nftnl_expr_set(verdict, NFTNL_EXPR_TG_INFO, info, sizeof *info);
  // libnftnl owns `info` from nftnl_expr_set() on; the analyzer cannot see into the library.
  // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
  nftnl_rule_add_expr(rule.get(), verdict);
  return rule;
}

/// A batch header (NFNL_MSG_BATCH_BEGIN or _END) for the nftables subsystem.
void put_batch_message(mnl_nlmsg_batch* batch, std::uint16_t type, std::uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(batch));
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq;
  auto* header = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  header->nfgen_family = AF_UNSPEC;
  header->version = NFNETLINK_V0;
  header->res_id = htons(NFNL_SUBSYS_NFTABLES);
  mnl_nlmsg_batch_next(batch);
}

}  // namespace

void append_queue_rule(const QueueRuleTarget& target, std::uint16_t queue_num,
                       std::uint16_t queue_count) {
  const auto rule = queue_rule(target, queue_num, queue_count);

  std::array<char, 4096> buffer{};
  std::unique_ptr<mnl_nlmsg_batch, decltype(&mnl_nlmsg_batch_stop)> batch(
      mnl_nlmsg_batch_start(buffer.data(), buffer.size()), &mnl_nlmsg_batch_stop);
  if (!batch) throw std::bad_alloc();
  constexpr std::uint32_t kBeginSeq = 1;
  constexpr std::uint32_t kRuleSeq = 2;
  put_batch_message(batch.get(), NFNL_MSG_BATCH_BEGIN, kBeginSeq);
  nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(
      static_cast<char*>(mnl_nlmsg_batch_current(batch.get())), NFT_MSG_NEWRULE, NFPROTO_INET,
      NLM_F_APPEND | NLM_F_CREATE | NLM_F_ACK, kRuleSeq);
  nftnl_rule_nlmsg_build_payload(nlh, rule.get());
  mnl_nlmsg_batch_next(batch.get());
  put_batch_message(batch.get(), NFNL_MSG_BATCH_END, kRuleSeq + 1);

  const MnlSocket socket = open_nft_socket();
  if (!socket) {
    throw std::runtime_error(
        failure(target, std::string("netlink socket: ") + std::strerror(errno)));
  }
  if (mnl_socket_sendto(socket.get(), mnl_nlmsg_batch_head(batch.get()),
                        mnl_nlmsg_batch_size(batch.get())) < 0) {
    throw std::runtime_error(failure(target, std::string("send: ") + std::strerror(errno)));
  }
  // The rule asked for an ACK: one NLMSG_ERROR answers it, with 0 for success.
  std::array<char, 8192> reply{};
  const ssize_t received = mnl_socket_recvfrom(socket.get(), reply.data(), reply.size());
  if (received < 0) {
    throw std::runtime_error(failure(
        target, errno == EAGAIN ? std::string("no answer from the kernel") : std::strerror(errno)));
  }
  // Sequence 0: any message of the batch may carry the refusal (the batch header itself, when
  // the caller lacks CAP_NET_ADMIN).
  if (mnl_cb_run(reply.data(), static_cast<std::size_t>(received), 0,
                 mnl_socket_get_portid(socket.get()), nullptr, nullptr) < 0) {
    std::string reason = std::strerror(errno);
    // The kernel says ENOENT both for a missing table or chain and for a missing target.
    if (errno == ENOENT) {
      reason +=
          " (no such table or chain, or the kernel lacks the xtables NFQUEUE target: "
          "nft_compat and xt_NFQUEUE)";
    }
    throw std::runtime_error(failure(target, reason));
  }
}

namespace {

/// The NFQUEUE rule among the rules of a dump, and its counter.
struct RuleScan {
  bool found = false;
  std::optional<std::uint64_t> packets;
};

int scan_rule(const nlmsghdr* nlh, void* data) {
  auto* scan = static_cast<RuleScan*>(data);
  if ((nlh->nlmsg_type & 0xff) != NFT_MSG_NEWRULE || scan->found) return MNL_CB_OK;
  std::unique_ptr<nftnl_rule, RuleFree> rule(nftnl_rule_alloc());
  // A rule libnftnl cannot parse is not ours (ours it wrote itself): skip it.
  if (!rule || nftnl_rule_nlmsg_parse(nlh, rule.get()) < 0) return MNL_CB_OK;
  std::unique_ptr<nftnl_expr_iter, decltype(&nftnl_expr_iter_destroy)> iter(
      nftnl_expr_iter_create(rule.get()), &nftnl_expr_iter_destroy);
  if (!iter) return MNL_CB_OK;
  bool queue = false;
  std::optional<std::uint64_t> packets;
  for (nftnl_expr* expr = nftnl_expr_iter_next(iter.get()); expr != nullptr;
       expr = nftnl_expr_iter_next(iter.get())) {
    const char* name = nftnl_expr_get_str(expr, NFTNL_EXPR_NAME);
    if (name == nullptr) continue;
    const std::string_view kind(name);
    if (kind == "counter") {
      packets = nftnl_expr_get_u64(expr, NFTNL_EXPR_CTR_PACKETS);
    } else if (kind == "target") {
      const char* target = nftnl_expr_get_str(expr, NFTNL_EXPR_TG_NAME);
      queue = target != nullptr && std::string_view(target) == "NFQUEUE";
    }
  }
  if (queue) {
    scan->found = true;
    scan->packets = packets;
  }
  return MNL_CB_OK;
}

QueueRuleProbe unknown(int error) {
  QueueRuleProbe probe;
  probe.error = error;
  return probe;
}

}  // namespace

QueueRuleProbe probe_queue_rule(const QueueRuleTarget& target) noexcept {
  if (!valid_nft_name(target.table) || !valid_nft_name(target.chain)) return unknown(EINVAL);
  const MnlSocket socket = open_nft_socket();
  if (!socket) return unknown(errno);
  const std::uint32_t portid = mnl_socket_get_portid(socket.get());
  std::array<char, 16384> buffer{};

  // The chain first: a rule dump of a chain or table that is not there is empty, not an error.
  nlmsghdr* nlh = put_nft_request(buffer.data(), NFT_MSG_GETCHAIN, NLM_F_ACK);
  mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, target.table.c_str());
  mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, target.chain.c_str());
  if (mnl_socket_sendto(socket.get(), nlh, nlh->nlmsg_len) < 0) return unknown(errno);
  for (;;) {
    const ssize_t received = mnl_socket_recvfrom(socket.get(), buffer.data(), buffer.size());
    if (received <= 0) return unknown(received < 0 ? errno : EIO);
    // The chain, then the ACK (error 0); or only the error.
    const int run =
        mnl_cb_run(buffer.data(), static_cast<std::size_t>(received), 1, portid, nullptr, nullptr);
    if (run == MNL_CB_STOP) break;
    if (run < 0) {
      if (errno == ENOENT) {
        QueueRuleProbe probe;
        probe.state = QueueRuleState::kChainMissing;
        return probe;
      }
      return unknown(errno);
    }
  }

  nlh = put_nft_request(buffer.data(), NFT_MSG_GETRULE, NLM_F_DUMP);
  mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, target.table.c_str());
  mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, target.chain.c_str());
  if (mnl_socket_sendto(socket.get(), nlh, nlh->nlmsg_len) < 0) return unknown(errno);
  RuleScan scan;
  for (;;) {
    const ssize_t received = mnl_socket_recvfrom(socket.get(), buffer.data(), buffer.size());
    if (received <= 0) return unknown(received < 0 ? errno : EIO);
    const int run =
        mnl_cb_run(buffer.data(), static_cast<std::size_t>(received), 1, portid, scan_rule, &scan);
    if (run == MNL_CB_STOP) break;
    // EINTR: the ruleset changed during the dump; the next look will tell.
    if (run < 0) return unknown(errno);
  }
  QueueRuleProbe probe;
  probe.state = scan.found ? QueueRuleState::kPresent : QueueRuleState::kMissing;
  probe.packets = scan.packets;
  return probe;
}

}  // namespace finwave::nf
