#include "proxy/tracker/teardown.hpp"

#include "netfilter/packet.hpp"

namespace finwave::proxy {

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
