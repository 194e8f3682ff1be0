#include "rules/rule.hpp"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>
#include <utility>

#include "rules/config_error.hpp"

namespace finwave::rules {
namespace {

// "1st", "2nd", "3rd", "4th", "11th", "21st".
std::string ordinal(std::uint32_t n) {
  const std::uint32_t last_two = n % 100;
  const char* suffix = "th";
  if (last_two < 11 || last_two > 13) {
    switch (n % 10) {
      case 1:
        suffix = "st";
        break;
      case 2:
        suffix = "nd";
        break;
      case 3:
        suffix = "rd";
        break;
      default:
        break;
    }
  }
  return std::to_string(n) + suffix;
}

template <typename T, typename Format>
std::string join(const std::vector<T>& items, Format format) {
  std::string out;
  for (const T& item : items) {
    if (!out.empty()) {
      out += ", ";
    }
    out += format(item);
  }
  return out;
}

std::string port_list(std::string_view singular, const std::vector<std::uint16_t>& ports) {
  std::string out = " ";
  out += singular;
  if (ports.size() > 1) {
    out += 's';
  }
  out += ' ';
  out += join(ports, [](std::uint16_t port) { return std::to_string(port); });
  return out;
}

std::string address_list(std::string_view what, const std::vector<Cidr>& cidrs) {
  std::string out = " ";
  out += what;
  out += ' ';
  out += join(cidrs, [](const Cidr& cidr) { return to_string(cidr); });
  return out;
}

std::string copies_text(const Rule& rule) {
  std::string out = std::to_string(rule.copies) + (rule.copies == 1 ? " copy" : " copies");
  if (rule.copies > 1) {
    out += ' ' + format_ms(rule.spacing_ms) + " ms apart";
  } else if (rule.spacing_ms > 0) {
    out += " after " + format_ms(rule.spacing_ms) + " ms";
  }
  return out;
}

}  // namespace

bool Cidr::contains(const Endpoint& endpoint) const noexcept {
  if (endpoint.family != family) {
    return false;
  }
  const std::size_t whole_bytes = prefix_length / 8U;
  for (std::size_t i = 0; i < whole_bytes; ++i) {
    if (endpoint.address[i] != address[i]) {
      return false;
    }
  }
  const unsigned rest = prefix_length % 8U;
  if (rest == 0) {
    return true;
  }
  const auto mask = static_cast<std::uint8_t>(0xFFU << (8U - rest));
  return (endpoint.address[whole_bytes] & mask) == address[whole_bytes];
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<Cidr> {
    if (why != nullptr) {
      *why = std::move(reason);
    }
    return std::nullopt;
  };
  const std::string quoted = "'" + printable(text) + "'";
  if (text.empty()) {
    return fail("empty address; write an address or prefix such as 198.18.0.0/15");
  }

  const std::size_t slash = text.find('/');
  const std::string address_text(text.substr(0, slash));
  Cidr cidr;
  cidr.family = address_text.find(':') != std::string::npos ? 6 : 4;
  const unsigned max_length = cidr.family == 4 ? 32 : 128;
  const char* family_name = cidr.family == 4 ? "IPv4" : "IPv6";
  // inet_pton() would stop at an embedded NUL and accept what came before it.
  if (address_text.find('\0') != std::string::npos ||
      inet_pton(cidr.family == 4 ? AF_INET : AF_INET6, address_text.c_str(), cidr.address.data()) !=
          1) {
    return fail(quoted + ": '" + printable(address_text) + "' is not an " + family_name +
                " address");
  }

  cidr.prefix_length = static_cast<std::uint8_t>(max_length);
  if (slash != std::string_view::npos) {
    const std::string_view length_text = text.substr(slash + 1);
    if (length_text.empty()) {
      return fail(quoted + ": missing prefix length after '/'");
    }
    unsigned length = 0;
    const auto [end, error] =
        std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
    if (error != std::errc{} || end != length_text.data() + length_text.size()) {
      if (error == std::errc::result_out_of_range) {
        return fail(quoted + ": prefix length /" + printable(length_text) + " is too long for " +
                    family_name + " (0.." + std::to_string(max_length) + ")");
      }
      return fail(quoted + ": prefix length '" + printable(length_text) + "' is not a number");
    }
    if (length > max_length) {
      return fail(quoted + ": prefix length /" + std::to_string(length) + " is too long for " +
                  family_name + " (0.." + std::to_string(max_length) + ")");
    }
    cidr.prefix_length = static_cast<std::uint8_t>(length);
  }

  // Clear host bits so that contains() can compare bytes directly: "198.18.1.2/15" means the
  // network 198.18.0.0/15, as `ip route` reads it.
  for (unsigned bit = cidr.prefix_length; bit < 128; ++bit) {
    cidr.address[bit / 8] &= static_cast<std::uint8_t>(~(0x80U >> (bit % 8)));
  }
  return cidr;
}

std::string to_string(const Cidr& cidr) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(cidr.family == 4 ? AF_INET : AF_INET6, cidr.address.data(), buffer, sizeof buffer);
  return std::string(buffer) + '/' + std::to_string(cidr.prefix_length);
}

std::string format_ms(double ms) {
  char buffer[400];
  std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof buffer, ms, std::chars_format::fixed);
  if (result.ec != std::errc{}) {
    result = std::to_chars(buffer, buffer + sizeof buffer, ms);
  }
  return std::string(buffer, result.ptr);
}

std::string describe(const Rule& rule) {
  std::string out(to_string(rule.action));
  out += ' ';
  out += rule.role == Role::kAny ? "any segment" : std::string(to_string(rule.role));
  if (rule.retx.has_value()) {
    out += *rule.retx ? " (retransmissions only)" : " (first transmissions only)";
  }
  switch (rule.from) {
    case Sender::kEither:
      break;
    case Sender::kClient:
      out += " from client";
      break;
    case Sender::kServer:
      out += " from server";
      break;
    case Sender::kActiveCloser:
      out += " from the active closer";
      break;
    case Sender::kPassiveCloser:
      out += " from the passive closer";
      break;
  }
  if (!rule.ports.empty()) {
    out += port_list("on port", rule.ports);
  }
  if (!rule.client_ports.empty()) {
    out += port_list("on client port", rule.client_ports);
  }
  if (!rule.server_ports.empty()) {
    out += port_list("on server port", rule.server_ports);
  }
  if (!rule.addresses.empty()) {
    out += address_list("at", rule.addresses);
  }
  if (!rule.client_addresses.empty()) {
    out += address_list("with client in", rule.client_addresses);
  }
  if (!rule.server_addresses.empty()) {
    out += address_list("with server in", rule.server_addresses);
  }

  if (rule.action == Action::kDelay) {
    out += " by " + format_ms(rule.delay_ms) + " ms";
    if (rule.jitter_ms > 0) {
      out += " ± " + format_ms(rule.jitter_ms) + " ms";
    }
    if (rule.copies > 0) {
      out += ", then " + copies_text(rule);
    }
  } else if (rule.action == Action::kDuplicate) {
    out += " (" + copies_text(rule) + ")";
  } else if (rule.action == Action::kReset) {
    out += " (replace it with RST)";
  }

  switch (rule.counter) {
    case Counter::kNone:
      break;
    case Counter::kNth:
      out += ", only the " + ordinal(rule.count) + " per connection";
      break;
    case Counter::kFirst:
      out += ", first " + std::to_string(rule.count) + " per connection";
      break;
    case Counter::kAfter:
      out += ", after the first " + std::to_string(rule.count) + " per connection";
      break;
  }
  if (rule.probability < 1.0) {
    out += ", with probability " + format_ms(rule.probability);
  }
  if (rule.max_hits != 0) {
    out += ", " + std::to_string(rule.max_hits) + " time" + (rule.max_hits == 1 ? "" : "s") +
           " in all";
  }
  return out;
}

}  // namespace finwave::rules
