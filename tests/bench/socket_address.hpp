#pragma once

// A socket address from text, for the benchmark tools (finwave-latency-probe, finwave-perf-hold).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace finwave::bench {

/// An IPv4 or IPv6 socket address from text and a port; false when the text is neither.
inline bool make_address(const std::string& text, std::uint16_t port, sockaddr_storage& address,
                         socklen_t& length) {
  address = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
    return true;
  }
  return false;
}

}  // namespace finwave::bench
