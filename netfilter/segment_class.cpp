#include "netfilter/segment_class.hpp"

namespace finwave::nf {

std::string SegmentClasses::names() const {
  std::string text;
  for (int i = 0; i < kSegmentClassCount; ++i) {
    const auto segment_class = static_cast<SegmentClass>(i);
    if (!has(segment_class)) continue;
    if (!text.empty()) text += ", ";
    text += to_string(segment_class);
  }
  return text.empty() ? "none" : text;
}

std::string_view nft_match(SegmentClass segment_class) noexcept {
  // Each test leaves out the flags of the classes before it, so that the five split every
  // segment exactly as the tracker names them (an RST first, then a SYN, then a FIN).
  switch (segment_class) {
    case SegmentClass::kRst:
      return "tcp flags & rst == rst";
    case SegmentClass::kSyn:
      return "tcp flags & (syn | ack | rst) == syn";
    case SegmentClass::kSynAck:
      return "tcp flags & (syn | ack | rst) == syn | ack";
    case SegmentClass::kFin:
      return "tcp flags & (fin | syn | rst) == fin";
    case SegmentClass::kAck:
      return "tcp flags & (fin | syn | rst) == 0";
  }
  return "";
}

std::string to_string(const PortMatch& match) {
  std::string text;
  switch (match.end) {
    case PortMatch::End::kSource:
      text = "sport ";
      break;
    case PortMatch::End::kDestination:
      text = "dport ";
      break;
    case PortMatch::End::kEither:
      text = "port ";
      break;
  }
  for (std::size_t i = 0; i < match.ports.size(); ++i) {
    if (i != 0) text += ',';
    text += std::to_string(match.ports[i]);
  }
  return text;
}

}  // namespace finwave::nf
