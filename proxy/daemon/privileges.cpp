// Capabilities with libcap: the check before start-up and the drop after it.
#include "proxy/daemon/privileges.hpp"

#include <sys/capability.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace finwave::proxy {
namespace {

struct CapFree {
  void operator()(cap_t caps) const noexcept { cap_free(caps); }
};
using Caps = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

struct Need {
  cap_value_t cap;
  const char* name;
  const char* why;
};

std::vector<Need> needed(const CapabilityNeeds& needs) {
  std::vector<Need> out = {
      {CAP_NET_ADMIN, "CAP_NET_ADMIN", "its NFQUEUE queue and nftables table"},
      {CAP_NET_RAW, "CAP_NET_RAW", "the raw sockets that send copies and RSTs"}};
  if (needs.netns) out.push_back({CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "entering --netns"});
  if (needs.realtime) out.push_back({CAP_SYS_NICE, "CAP_SYS_NICE", "--realtime-priority"});
  return out;
}

Caps current() {
  Caps caps(cap_get_proc());
  if (!caps)
    throw std::runtime_error(std::string("cannot read capabilities: ") + std::strerror(errno));
  return caps;
}

bool has(cap_t caps, cap_value_t cap, cap_flag_t set) {
  cap_flag_value_t value = CAP_CLEAR;
  return cap_get_flag(caps, cap, set, &value) == 0 && value == CAP_SET;
}

[[noreturn]] void refuse(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

}  // namespace

void require_capabilities(const CapabilityNeeds& needs) {
  const Caps caps = current();
  std::string missing;
  std::string names;
  for (const Need& need : needed(needs)) {
    names += std::string(names.empty() ? "" : ", ") + need.name + " (" + need.why + ")";
    if (!has(caps.get(), need.cap, CAP_PERMITTED)) {
      missing += std::string(missing.empty() ? "" : " and ") + need.name;
      continue;
    }
    // Permitted but not effective (file capabilities without +e): raise it; and inheritable,
    // so that CAP_NET_ADMIN can be made ambient below.
    cap_set_flag(caps.get(), CAP_EFFECTIVE, 1, &need.cap, CAP_SET);
    if (need.cap == CAP_NET_ADMIN) cap_set_flag(caps.get(), CAP_INHERITABLE, 1, &need.cap, CAP_SET);
  }
  if (!missing.empty()) {
    throw std::runtime_error(
        "finwave needs " + names + "; it runs without " + missing +
        ". Run it as root, or give it these capabilities: setpriv --inh-caps and --ambient-caps, "
        "systemd's AmbientCapabilities=, setcap on the binary, or in a container --cap-add "
        "NET_ADMIN --cap-add NET_RAW");
  }
  if (cap_set_proc(caps.get()) != 0) refuse("cannot raise finwave's capabilities");
  // The nft that installs the table must hold CAP_NET_ADMIN too: ambient capabilities pass to a
  // program finwave runs. Where raising one is refused (SECBIT_NO_CAP_AMBIENT_RAISE), root's
  // nft still gets its capabilities from being root, and a non-root one fails and says so.
  if (CAP_AMBIENT_SUPPORTED()) (void)cap_set_ambient(CAP_NET_ADMIN, CAP_SET);
}

std::string drop_capabilities(const CapabilityNeeds& needs) {
  std::vector<cap_value_t> keep = {CAP_NET_ADMIN};
  if (needs.realtime) keep.push_back(CAP_SYS_NICE);
  const auto kept = [&](cap_value_t cap) {
    for (const cap_value_t k : keep) {
      if (k == cap) return true;
    }
    return false;
  };
  const Caps before = current();
  // The bounding set first, while CAP_SETPCAP may still be held: what a program finwave runs
  // could gain. Without CAP_SETPCAP it stays, and the sets below still hold only what is kept.
  bool bounded = false;
  if (has(before.get(), CAP_SETPCAP, CAP_EFFECTIVE)) {
    bounded = true;
    for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; ++cap) {
      if (!kept(cap) && CAP_IS_SUPPORTED(cap) && cap_drop_bound(cap) != 0) {
        refuse("cannot drop a capability from the bounding set");
      }
    }
  }
  if (CAP_AMBIENT_SUPPORTED()) cap_reset_ambient();
  Caps after(cap_init());
  if (!after) refuse("cannot make a capability set");
  for (cap_flag_t set : {CAP_PERMITTED, CAP_EFFECTIVE, CAP_INHERITABLE}) {
    cap_set_flag(after.get(), set, static_cast<int>(keep.size()), keep.data(), CAP_SET);
  }
  if (cap_set_proc(after.get()) != 0) refuse("cannot drop finwave's capabilities");
  if (CAP_AMBIENT_SUPPORTED()) (void)cap_set_ambient(CAP_NET_ADMIN, CAP_SET);
  std::string what = "dropped every capability but CAP_NET_ADMIN";
  if (needs.realtime) what += " and CAP_SYS_NICE";
  if (!bounded) what += " (the bounding set stays: no CAP_SETPCAP)";
  return what;
}

}  // namespace finwave::proxy
