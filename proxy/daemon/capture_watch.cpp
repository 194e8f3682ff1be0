// The capture watch: puts back finwave's capture table or queue rule when someone deletes it.
#include <cstdio>
#include <string>

#include "proxy/daemon/daemon.hpp"

namespace finwave::proxy {

void Daemon::on_capture_watch(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Daemon*>(timer->data);
  if (self != nullptr) self->watch_capture();
}

// Someone may delete finwave's table or its queue rule while it runs: `nft flush ruleset`, a
// firewall reload, a colleague's clean-up. The kernel does not tell a queue's reader that
// nothing is sent to it any more; finwave would run on, seeing, faulting and reporting nothing.
//
// finwave puts the capture back rather than exit: it is a chaos tool that runs for hours under
// test suites that come and go around it, and a firewall reload that takes its table should
// cost a gap in the capture, not the run. The gap is not hidden: it is said on stderr and
// counted in `stats` (capture.lost, capture.restored, capture.state), so a test can tell that
// connections seen during it may be reported incompletely. Deleting the table makes the kernel
// drop what is queued through its hooks (its verdicts are then refused, queue.verdict_errors);
// nothing can save those. A table that cannot be put back (nft gone, a permission taken) is
// tried again at every look, and said once per loss.
//
// It looks four times a second rather than subscribing to nftables notifications
// (NFNLGRP_NFTABLES): a notification says that something changed, not whether the capture is
// whole, so the look is needed anyway; a subscriber must read every change anyone makes to the
// namespace's ruleset (kube-proxy and firewall managers rewrite theirs all the time) on this
// loop, the one that gives queue 0's verdicts, and loses notifications to ENOBUFS when it falls
// behind. The look is two short netlink round trips and a read of /proc, whatever else changes.
// Putting a table back runs nft (tens of milliseconds, during which queue 0 waits): rare, and
// better than no capture.
void Daemon::watch_capture() noexcept {
  if (stopping_) return;
  CaptureWatch& watch = capture_watch_state_;
  ++watch.checks;
  nf::QueueRuleProbe probe;
  if (chains_.installed()) {
    probe = chains_.check();
  } else {
    probe.state = nf::QueueRuleState::kChainMissing;  // a restore that failed: try again
  }
  const std::string table = "inet " + nf::capture_table_name(options_.queue_num);
  if (probe.state == nf::QueueRuleState::kUnknown) {
    // Nothing is concluded from a look that failed; say so now and then.
    if (watch.check_errors++ % 120 == 0) {
      log("capture watch: cannot look at table " + table + ": " + std::strerror(probe.error));
    }
    return;
  }
  if (probe.state == nf::QueueRuleState::kPresent) {
    read_capture_counts(probe);
    return;
  }
  if (watch.intact) note_loss(probe.state, table);
  restore_capture(probe.state, table);
}

// The capture was found gone: counted, said once, and what the deleted rule had counted kept.
void Daemon::note_loss(nf::QueueRuleState state, const std::string& table) noexcept {
  CaptureWatch& watch = capture_watch_state_;
  watch.intact = false;
  ++watch.lost;
  watch.lost_at_us = now_us();
  watch.restore_errors_at_loss = watch.restore_errors;
  watch.last_loss = state == nf::QueueRuleState::kMissing ? "queue rule" : "table";
  // What the deleted rule counted up to the last look is kept; what it counted since is lost.
  if (watch.counts_known && watch.rule_packets) {
    const auto queued = static_cast<std::int64_t>(watch.ids - watch.ids_at_install);
    watch.passed_before +=
        std::max<std::int64_t>(0, static_cast<std::int64_t>(*watch.rule_packets) - queued);
    watch.rule_packets_before += *watch.rule_packets;
  }
  watch.rule_packets = std::nullopt;
  log("capture lost: " +
      (state == nf::QueueRuleState::kMissing
           ? "the queue rule of " + table + " chain " + nf::kCaptureChain + " was deleted"
           : "table " + table + " was deleted") +
      " (not by finwave): teardown segments pass unseen until it is back; restoring it");
}

// Puts the table or its queue rule back; a failure is said once per loss and tried again at the
// next look.
void Daemon::restore_capture(nf::QueueRuleState state, const std::string& table) noexcept {
  CaptureWatch& watch = capture_watch_state_;
  // No queue rule exists now, so nothing is queued between this read and the new rule.
  const std::optional<std::uint64_t> ids_before = queue_ids();
  try {
    chains_.restore(live_capture_spec(), state);
  } catch (const std::exception& error) {
    if (++watch.restore_errors == watch.restore_errors_at_loss + 1) {
      log(std::string("capture watch: cannot restore the capture (trying again every ") +
          std::to_string(kCaptureWatchMs) + " ms): " + error.what());
    }
    return;
  }
  watch.intact = true;
  ++watch.restored;
  // The new rule's counter starts at 0; the queue ids go on.
  watch.counts_known = watch.counts_known && ids_before;
  watch.ids_at_install = watch.ids = ids_before.value_or(0);
  watch.rule_packets = 0;
  log("capture restored: " +
      (watch.last_loss == "table" ? "table " + table : "the queue rule of " + table) +
      " put back " + std::to_string((now_us() - watch.lost_at_us) / 1000) +
      " ms after the loss was noticed" +
      (watch.last_loss == "table" ? " (connections in teardown then are seen again from their "
                                    "next FIN or RST)"
                                  : ""));
}

bool Daemon::read_capture_counts(const nf::QueueRuleProbe& probe) noexcept {
  CaptureWatch& watch = capture_watch_state_;
  if (probe.state != nf::QueueRuleState::kPresent || !probe.packets) return false;
  // The counter first, the ids second: a segment queued in between makes the difference come
  // out low (and it is clamped at 0), never counts a queued segment as passed.
  const std::optional<std::uint64_t> ids = queue_ids();
  if (!ids) return false;
  watch.rule_packets = *probe.packets;
  watch.ids = *ids;
  watch.counts_known = true;
  return true;
}

std::optional<std::uint64_t> Daemon::queue_ids() const noexcept {
  std::uint64_t ids = 0;
  try {
    for (const auto& worker : workers_) {
      const auto kernel = nf::read_kernel_queue_stats(worker->queue_num());
      if (!kernel) return std::nullopt;
      ids += kernel->id_sequence;
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return ids;
}

}  // namespace finwave::proxy
