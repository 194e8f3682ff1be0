#include "proxy/control/line_framer.hpp"

#include <algorithm>

namespace finwave::proxy {

void LineFramer::append(std::string_view bytes) {
  if (discarding_) {
    const auto newline = bytes.find('\n');
    if (newline == bytes.npos) {
      return;
    }
    discarding_ = false;
    bytes.remove_prefix(newline + 1);
  }
  if (start_ > 0 && start_ >= buffer_.size() / 2) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(bytes);
}

LineFramer::Next LineFramer::next(std::string& line) {
  const std::size_t pending = buffer_.size() - start_;
  const auto newline = buffer_.find('\n', start_ + scan_);
  if (newline == std::string::npos) {
    scan_ = pending;
    // A trailing '\r' may still be followed by its '\n'.
    if (pending > max_line_ + 1 || (pending > max_line_ && buffer_.back() != '\r')) {
      buffer_.clear();
      start_ = 0;
      scan_ = 0;
      discarding_ = !finished_;
      return Next::kTooLong;
    }
    if (finished_ && pending > 0) {
      std::size_t length = pending;
      if (buffer_.back() == '\r') {
        --length;
      }
      line.assign(buffer_, start_, length);
      buffer_.clear();
      start_ = 0;
      scan_ = 0;
      return Next::kLine;
    }
    return Next::kNone;
  }
  std::size_t length = newline - start_;
  if (length > 0 && buffer_[newline - 1] == '\r') {
    --length;
  }
  const std::size_t begin = start_;
  start_ = newline + 1;
  scan_ = 0;
  if (length > max_line_) {
    return Next::kTooLong;
  }
  line.assign(buffer_, begin, length);
  return Next::kLine;
}

}  // namespace finwave::proxy
