#pragma once

#include <string>

#include "proxy/tracker/outcome.hpp"

namespace finwave::proxy {

/// One line for a person watching a terminal, e.g.
/// `client 198.18.1.2:40000 → server 198.18.2.2:5000  four_way  clean  closer=client  fin_retx c0
/// s1  final_ack 2 seen / 1 dropped  312.4 ms  [lose-final-ack drop final_ack ×1]`.
std::string to_text_line(const Outcome& outcome);

}  // namespace finwave::proxy
