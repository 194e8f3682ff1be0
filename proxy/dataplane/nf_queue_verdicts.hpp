#pragma once

#include <cstdint>
#include <span>

#include "netfilter/queue.hpp"
#include "proxy/dataplane/verdict_port.hpp"

namespace finwave::proxy {

/// The VerdictPort of an NFQUEUE queue: each verdict is the nf::Queue call of the same meaning.
/// Does not own the queue, which must outlive it. Loop thread only.
class NfQueueVerdicts final : public VerdictPort {
 public:
  explicit NfQueueVerdicts(nf::Queue& queue) noexcept : queue_(queue) {}

  void accept(std::uint32_t id) noexcept override { queue_.accept(id); }
  void drop(std::uint32_t id) noexcept override { queue_.drop(id); }
  void hold(std::uint32_t id) noexcept override { queue_.hold(id); }
  int accept_held(std::uint32_t id) noexcept override {
    return queue_.release(id, nf::KernelVerdict::kAccept);
  }
  int replace(std::uint32_t id, std::span<const std::uint8_t> replacement) noexcept override {
    return queue_.release(id, nf::KernelVerdict::kAccept, replacement);
  }

 private:
  nf::Queue& queue_;
};

}  // namespace finwave::proxy
