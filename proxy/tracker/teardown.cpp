#include "proxy/tracker/teardown.hpp"

#include "netfilter/packet.hpp"

namespace finwave::proxy {

std::string_view to_string(Verdict verdict) noexcept {
  switch (verdict) {
    case Verdict::kAccept:
      return "accept";
    case Verdict::kDrop:
      return "drop";
    case Verdict::kDelay:
      return "delay";
    case Verdict::kDuplicate:
      return "duplicate";
    case Verdict::kReset:
      return "reset";
  }
  return "unknown";
}

std::string_view to_string(Closer closer) noexcept {
  switch (closer) {
    case Closer::kNone:
      return "none";
    case Closer::kClient:
      return "client";
    case Closer::kServer:
      return "server";
    case Closer::kBoth:
      return "both";
  }
  return "unknown";
}

std::string_view to_string(TeardownKind kind) noexcept {
  switch (kind) {
    case TeardownKind::kFourWay:
      return "four_way";
    case TeardownKind::kThreeWay:
      return "three_way";
    case TeardownKind::kSimultaneous:
      return "simultaneous";
    case TeardownKind::kReset:
      return "reset";
    case TeardownKind::kIncomplete:
      return "incomplete";
  }
  return "unknown";
}

std::string_view to_string(TeardownResult result) noexcept {
  switch (result) {
    case TeardownResult::kClean:
      return "clean";
    case TeardownResult::kReset:
      return "reset";
    case TeardownResult::kTimeout:
      return "timeout";
  }
  return "unknown";
}

std::string_view to_string(Stage stage) noexcept {
  switch (stage) {
    case Stage::kBeforeFin:
      return "before_fin";
    case Stage::kFinWait:
      return "fin_wait";
    case Stage::kClosing:
      return "closing";
    case Stage::kLastAck:
      return "last_ack";
    case Stage::kTimeWait:
      return "time_wait";
    case Stage::kAfterClose:
      return "after_close";
  }
  return "unknown";
}

std::string_view to_string(EndReason reason) noexcept {
  switch (reason) {
    case EndReason::kSettled:
      return "settle";
    case EndReason::kRst:
      return "rst";
    case EndReason::kLinger:
      return "linger";
    case EndReason::kNewSyn:
      return "new_syn";
    case EndReason::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

std::string to_string(const rules::Endpoint& endpoint) {
  nf::IpAddress address;
  address.family = endpoint.family;
  address.bytes = endpoint.address;
  const std::string host = nf::to_string(address);
  const std::string port = std::to_string(endpoint.port);
  if (endpoint.family == 6) {
    return "[" + host + "]:" + port;
  }
  return host + ":" + port;
}

}  // namespace finwave::proxy
