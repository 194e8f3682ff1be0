#include "events.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

namespace finwave::peer {

EventLog::EventLog(std::string side, bool quiet)
    : side_(std::move(side)), quiet_(quiet), start_(std::chrono::steady_clock::now()) {}

void EventLog::emit(int conn, std::string_view event, const Fields& fields) {
  if (!quiet_) {
    write(conn, event, fields);
  }
}

void EventLog::emit_always(int conn, std::string_view event, const Fields& fields) {
  write(conn, event, fields);
}

void EventLog::write(int conn, std::string_view event, const Fields& fields) {
  const std::chrono::duration<double, std::milli> elapsed =
      std::chrono::steady_clock::now() - start_;
  Fields line;
  // Tenths of a millisecond: finer is noise next to scheduling, and lines stay short.
  line["t_ms"] = std::round(elapsed.count() * 10.0) / 10.0;
  line["side"] = side_;
  if (conn >= 0) {
    line["conn"] = conn;
  }
  line["event"] = event;
  for (const auto& [key, value] : fields.items()) {
    line[key] = value;
  }
  const std::string text = line.dump() + "\n";

  const std::lock_guard lock(mutex_);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

std::string errno_name(int error) {
  // strerrorname_np: glibc >= 2.32 (Debian 12 has 2.36).
  const char* name = ::strerrorname_np(error);
  return name != nullptr ? std::string(name) : "E" + std::to_string(error);
}

Fields failure(int error) {
  Fields fields;
  fields["ok"] = false;
  if (error == 0) {
    fields["error"] = "EOF";
  } else {
    fields["error"] = errno_name(error);
    fields["errno"] = error;
  }
  return fields;
}

}  // namespace finwave::peer
