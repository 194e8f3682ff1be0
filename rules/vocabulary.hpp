#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace finwave::rules {

/// A wire vocabulary: the enumerators of one enum and their stable names (roles, actions,
/// teardown kinds, results, stages, command names, error codes...). Every vocabulary has exactly
/// one table, its constexpr `to_string(Enum)`: a switch with one `case` per enumerator and no
/// `default`, returning "" after it for a value that is no enumerator. Writers call
/// to_string(); parsers, error messages, help text and shell completion read Vocabulary, which
/// is built from that switch at compile time, so no second list of names exists anywhere.
///
/// The checks that every enumerator has a name are compile-time: the compiler rejects a switch
/// that misses an enumerator (finwave's targets build with -Werror=switch), and Vocabulary's
/// static_asserts reject a gap, an empty or repeated name, and an enumerator after `kLast`.
/// Enumerators must run from 0 to kLast without gaps, as they do when none is given a value.
///
/// Usage: `using RoleNames = Vocabulary<Role, Role::kAny>;` next to the enum, then
/// `RoleNames::parse("fin1")`, `RoleNames::joined()`, `RoleNames::names()`.
namespace vocabulary_detail {

template <class Enum, std::size_t kSize>
constexpr std::array<std::string_view, kSize> collect() noexcept {
  std::array<std::string_view, kSize> names{};
  for (std::size_t i = 0; i < kSize; ++i) names[i] = to_string(static_cast<Enum>(i));
  return names;
}

template <std::size_t kSize>
constexpr bool named_and_distinct(const std::array<std::string_view, kSize>& names) noexcept {
  for (std::size_t i = 0; i < kSize; ++i) {
    if (names[i].empty()) return false;
    for (std::size_t j = 0; j < i; ++j) {
      if (names[i] == names[j]) return false;
    }
  }
  return true;
}

}  // namespace vocabulary_detail

template <class Enum, Enum kLast>
class Vocabulary {
 public:
  static_assert(std::is_enum_v<Enum>);

  /// Number of enumerators.
  static constexpr std::size_t kSize = static_cast<std::size_t>(kLast) + 1;

  /// Every name, in enumerator order.
  static constexpr std::span<const std::string_view> names() noexcept { return kNames; }

  /// The enumerator called `name`; std::nullopt for a name the vocabulary does not have.
  static constexpr std::optional<Enum> parse(std::string_view name) noexcept {
    for (std::size_t i = 0; i < kSize; ++i) {
      if (kNames[i] == name) return static_cast<Enum>(i);
    }
    return std::nullopt;
  }

  /// The names joined for messages and help: "syn, syn_ack, fin1".
  static std::string joined(std::string_view separator = ", ") {
    std::string out;
    for (const std::string_view name : kNames) {
      if (!out.empty()) out += separator;
      out += name;
    }
    return out;
  }

 private:
  static constexpr std::array<std::string_view, kSize> kNames =
      vocabulary_detail::collect<Enum, kSize>();

  static_assert(vocabulary_detail::named_and_distinct(kNames),
                "a vocabulary's to_string() must give every value from 0 to kLast its own "
                "non-empty name");
  static_assert(to_string(static_cast<Enum>(kSize)).empty(),
                "an enumerator after kLast has a name: make it the vocabulary's kLast");
};

}  // namespace finwave::rules
