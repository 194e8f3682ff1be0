#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace finwave::nf {

/// What the kernel can tell of a captured segment without finwave: its TCP flags. Five classes
/// that split every segment, tested in this order: an RST; a SYN (no ACK); a SYN-ACK; a FIN; the
/// rest (ACKs and data, captured after the first FIN). The capture table queues the classes some
/// enabled rule could act on and logs the others (CaptureSpec::queued).
enum class SegmentClass : std::uint8_t { kRst, kSyn, kSynAck, kFin, kAck };

inline constexpr int kSegmentClassCount = 5;

/// The class's name in `status`, `rules` and `stats`.
constexpr std::string_view to_string(SegmentClass segment_class) noexcept {
  switch (segment_class) {
    case SegmentClass::kRst:
      return "rst";
    case SegmentClass::kSyn:
      return "syn";
    case SegmentClass::kSynAck:
      return "syn_ack";
    case SegmentClass::kFin:
      return "fin";
    case SegmentClass::kAck:
      return "ack";
  }
  return "";
}

/// A set of classes, one bit each.
class SegmentClasses {
 public:
  static constexpr SegmentClasses all() noexcept { return SegmentClasses(0x1f); }
  static constexpr SegmentClasses none() noexcept { return SegmentClasses(0); }

  constexpr SegmentClasses() = default;
  constexpr bool has(SegmentClass c) const noexcept { return (bits_ & bit(c)) != 0; }
  constexpr void add(SegmentClass c) noexcept { bits_ |= bit(c); }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr bool full() const noexcept { return bits_ == all().bits_; }
  constexpr SegmentClasses complement() const noexcept {
    return SegmentClasses(static_cast<std::uint8_t>(~bits_ & all().bits_));
  }
  constexpr bool operator==(const SegmentClasses&) const noexcept = default;

  /// "syn, fin" in class order; "none" when empty.
  std::string names() const;

 private:
  constexpr explicit SegmentClasses(std::uint8_t bits) noexcept : bits_(bits) {}
  static constexpr std::uint8_t bit(SegmentClass c) noexcept {
    return static_cast<std::uint8_t>(1U << static_cast<unsigned>(c));
  }
  std::uint8_t bits_ = 0;
};

/// The nftables match of a class ("tcp flags & (syn | ack | rst) == syn"), for the capture table.
std::string_view nft_match(SegmentClass segment_class) noexcept;

/// Narrows a queued class to some of its segments: those whose source port, destination port
/// or either port is listed. What a rule's ports and sender let the kernel test of a segment.
struct PortMatch {
  enum class End : std::uint8_t { kSource, kDestination, kEither };
  End end = End::kEither;
  std::vector<std::uint16_t> ports;  ///< Not empty.

  bool operator==(const PortMatch&) const = default;
};

/// "sport 5000", "dport 5000,5001", "port 80" (either end): for `status` and the log.
std::string to_string(const PortMatch& match);

/// For each class: when not empty, only its segments that match one of these are queued (and
/// the class's others logged); empty, the class is queued whole (if queued at all).
using QueueNarrowing = std::array<std::vector<PortMatch>, kSegmentClassCount>;

}  // namespace finwave::nf
