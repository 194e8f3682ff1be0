#pragma once

// Ready files of the benchmark tools (finwave-churn-load, finwave-perf-hold): a script polls
// for the file and reads it at once, so it is written under another name and renamed, and a
// reader never sees it half written.

#include <cstdio>
#include <string>

namespace finwave::bench {

/// Writes TEXT to PATH through PATH.tmp and a rename; an empty PATH writes nothing.
inline void write_ready_file(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  const std::string temporary = path + ".tmp";
  if (FILE* file = std::fopen(temporary.c_str(), "w")) {
    std::fputs(text.c_str(), file);
    std::fclose(file);
    std::rename(temporary.c_str(), path.c_str());
  }
}

}  // namespace finwave::bench
