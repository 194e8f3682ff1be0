#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/control/control_protocol.hpp"

namespace finwave::proxy {

/// Splices bytes into request lines, at most `max_line` bytes each (the newline and a trailing
/// '\r' excluded). Memory is bounded by max_line plus the bytes of one append.
class LineFramer {
 public:
  enum class Next : std::uint8_t {
    kNone,     ///< No complete line buffered.
    kLine,     ///< `line` holds the next line.
    kTooLong,  ///< A line exceeded the limit; its bytes up to its newline are skipped.
  };

  explicit LineFramer(std::size_t max_line = kMaxRequestLineBytes) : max_line_(max_line) {}

  /// Adds bytes read from the peer.
  void append(std::string_view bytes);
  /// Takes the next complete line, if any.
  Next next(std::string& line);
  /// The peer closed its side: a final line without a newline becomes complete.
  void finish() noexcept { finished_ = true; }
  /// Bytes buffered (lines not yet taken plus a partial line).
  std::size_t buffered() const noexcept { return buffer_.size() - start_; }

 private:
  std::size_t max_line_;
  std::string buffer_;
  std::size_t start_ = 0;    // First byte not yet taken.
  std::size_t scan_ = 0;     // Bytes from start_ already known to hold no newline.
  bool discarding_ = false;  // Skipping the rest of a line that was too long.
  bool finished_ = false;
};

}  // namespace finwave::proxy
