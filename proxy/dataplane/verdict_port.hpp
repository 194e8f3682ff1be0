#pragma once

#include <cstdint>
#include <span>

namespace finwave::proxy {

/// Where the data path sends the kernel's verdicts: every queued packet gets exactly one, through
/// accept(), drop(), replace() or, after hold(), accept_held(). An abstract port so that tests can
/// drive Dataplane without a netlink socket; NfQueueVerdicts is the real one. Loop thread only;
/// nothing here throws or allocates (one virtual call per verdict).
class VerdictPort {
 public:
  /// ACCEPT for `id`, possibly sent later in a batch.
  virtual void accept(std::uint32_t id) noexcept = 0;
  /// DROP for `id`, possibly sent later in a batch.
  virtual void drop(std::uint32_t id) noexcept = 0;
  /// No verdict for `id` yet: the kernel keeps it queued until accept_held().
  virtual void hold(std::uint32_t id) noexcept = 0;
  /// ACCEPT, now, for a packet hold() kept. Returns 0 or a negative errno.
  virtual int accept_held(std::uint32_t id) noexcept = 0;
  /// ACCEPT, now, with `replacement` in place of the packet's bytes (an RST instead of the
  /// segment). Returns 0 or a negative errno; the packet has no verdict yet after an error.
  virtual int replace(std::uint32_t id, std::span<const std::uint8_t> replacement) noexcept = 0;

 protected:
  ~VerdictPort() = default;
};

}  // namespace finwave::proxy
