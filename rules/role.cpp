#include "rules/role.hpp"

#include <array>
#include <utility>

namespace finwave::rules {
namespace {

constexpr std::array<std::pair<Role, std::string_view>, 10> kNames = {{
    {Role::kSyn, "syn"},
    {Role::kSynAck, "syn_ack"},
    {Role::kFin1, "fin1"},
    {Role::kAck1, "ack1"},
    {Role::kFin2, "fin2"},
    {Role::kFinalAck, "final_ack"},
    {Role::kDataAfterFin, "data_after_fin"},
    {Role::kRst, "rst"},
    {Role::kAck, "ack"},
    {Role::kAny, "any"},
}};

}  // namespace

std::string_view to_string(Role role) noexcept {
  for (const auto& [value, name] : kNames) {
    if (value == role) return name;
  }
  return "unknown";
}

std::optional<Role> role_from_string(std::string_view name) noexcept {
  for (const auto& [value, text] : kNames) {
    if (text == name) return value;
  }
  return std::nullopt;
}

std::string_view to_string(Side side) noexcept {
  return side == Side::kClient ? "client" : "server";
}

std::string_view role_names() noexcept {
  return "syn, syn_ack, fin1, ack1, fin2, final_ack, data_after_fin, rst, ack, any";
}

}  // namespace finwave::rules
