#pragma once

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace finwave::peer {

/// Fields of one event, in the order they are printed.
using Fields = nlohmann::ordered_json;

/// Writes events as JSON lines on stdout, one line per event, flushed per line.
/// Every line starts with t_ms (since the log was made), side, conn (when >= 0) and event.
/// Thread-safe: connection threads share one log.
class EventLog {
 public:
  EventLog(std::string side, bool quiet);

  /// Prints an event unless the log is quiet.
  void emit(int conn, std::string_view event, const Fields& fields);

  /// Prints an event even when the log is quiet (the summary).
  void emit_always(int conn, std::string_view event, const Fields& fields);

  const std::string& side() const { return side_; }

 private:
  void write(int conn, std::string_view event, const Fields& fields);

  const std::string side_;
  const bool quiet_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
};

/// The symbolic name of an errno value ("ECONNRESET"), or "E<number>" when it has none.
std::string errno_name(int error);

/// Fields describing a failure: "ok":false, "error":"ECONNRESET", "errno":104.
/// Error 0 stands for an unexpected end of stream: "error":"EOF" without "errno".
Fields failure(int error);

}  // namespace finwave::peer
