#include "proxy/tracker/teardown.hpp"

#include <arpa/inet.h>

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

std::optional<rules::Endpoint> address_from_string(std::string_view text) {
  // inet_pton() would stop at an embedded NUL and accept what came before it.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string host(text);
  rules::Endpoint endpoint;
  if (inet_pton(AF_INET, host.c_str(), endpoint.address.data()) == 1) {
    endpoint.family = 4;
    return endpoint;
  }
  if (inet_pton(AF_INET6, host.c_str(), endpoint.address.data()) == 1) {
    endpoint.family = 6;
    return endpoint;
  }
  return std::nullopt;
}

std::optional<rules::Endpoint> endpoint_from_string(std::string_view text) {
  std::string_view host;
  std::string_view port;
  std::uint8_t family = 4;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    family = 6;
  } else {
    // An IPv6 address holds colons too: unbracketed, only IPv4 takes ":PORT".
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  std::optional<rules::Endpoint> endpoint = address_from_string(host);
  if (!endpoint || endpoint->family != family) return std::nullopt;
  if (port.empty() || port.size() > 5) return std::nullopt;
  std::uint32_t number = 0;
  for (const char digit : port) {
    if (digit < '0' || digit > '9') return std::nullopt;
    number = number * 10 + static_cast<std::uint32_t>(digit - '0');
  }
  if (number > 65535) return std::nullopt;
  endpoint->port = static_cast<std::uint16_t>(number);
  return endpoint;
}

}  // namespace finwave::proxy
