#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace finwave::rules {

/// The candidate `word` was most likely meant to be, for "did you mean ...?" hints: the closest by
/// case-insensitive edit distance (at most 2, and less than the word's length), or the only
/// candidate the word is a prefix of (at least 3 characters: "prob" -> "probability").
/// std::nullopt when nothing is an obvious typo. Control plane only (allocates).
std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates);

}  // namespace finwave::rules
