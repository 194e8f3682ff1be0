#include "connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

namespace finwave::peer {
namespace {

constexpr std::size_t kPeriod = 251;
constexpr std::size_t kChunk = std::size_t{64} * 1024;

using Clock = std::chrono::steady_clock;

/// The pattern laid out so that any stream offset o starts a kChunk-long run at o % kPeriod.
const std::array<std::uint8_t, kPeriod + kChunk>& pattern_table() {
  static const auto kTable = [] {
    std::array<std::uint8_t, kPeriod + kChunk> t{};
    for (std::size_t i = 0; i < t.size(); ++i) {
      t[i] = pattern_byte(i);
    }
    return t;
  }();
  return kTable;
}

double ms_since(Clock::time_point start) {
  const std::chrono::duration<double, std::milli> elapsed = Clock::now() - start;
  return std::round(elapsed.count() * 10.0) / 10.0;
}

std::int64_t realtime_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

/// Outcome of one read attempt: bytes > 0, 0 at EOF, or an errno.
struct ReadResult {
  std::size_t bytes = 0;
  int error = 0;
  bool eof = false;
};

class ScriptRunner {
 public:
  ScriptRunner(Fd socket, int conn, EventLog& log, int io_timeout_ms)
      : socket_(std::move(socket)), conn_(conn), log_(log), io_timeout_ms_(io_timeout_ms) {}

  ConnectionResult run(const Script& script) {
    bool ok = true;
    std::string failed_step;
    for (const Step& step : script) {
      if (!run_step(step)) {
        ok = false;
        failed_step = step.text;
        break;
      }
    }
    if (socket_.valid()) {
      const int error = socket_.close();
      Fields fields = error == 0 ? Fields{{"ok", true}} : failure(error);
      fields["implicit"] = true;
      log_.emit(conn_, "close", fields);
    }
    Fields done{{"ok", ok}, {"bytes_sent", sent_}, {"bytes_received", received_}};
    if (!ok) {
      done["failed_step"] = failed_step;
    }
    log_.emit(conn_, "done", done);
    return ConnectionResult{ok, sent_, received_};
  }

 private:
  bool run_step(const Step& step) {
    const auto start = Clock::now();
    deadline_ = io_timeout_ms_ >= 0 ? start + std::chrono::milliseconds(io_timeout_ms_)
                                    : Clock::time_point::max();
    Fields fields;
    switch (step.kind) {
      case StepKind::kSend:
        fields = send(step.count);
        break;
      case StepKind::kRead:
        fields = read_exactly(step.count);
        break;
      case StepKind::kReadEof:
        fields = read_to_end();
        break;
      case StepKind::kShutdown:
        fields = shutdown(step.how);
        break;
      case StepKind::kSleep:
      case StepKind::kHold:
        std::this_thread::sleep_for(std::chrono::milliseconds(step.count));
        fields = {{"ok", true}, {"ms", step.count}};
        break;
      case StepKind::kAt:
        fields = wait_until(step.count);
        break;
      case StepKind::kAtNext:
        fields = wait_until(next_tick_ms(step.count));
        break;
      case StepKind::kWaitFile:
        fields = wait_file(step.path);
        break;
      case StepKind::kClose:
        fields = close();
        break;
      case StepKind::kAbort:
        fields = abort();
        break;
      case StepKind::kWaitRst:
        fields = read_until_error(/*want_reset=*/true);
        break;
      case StepKind::kReadUntilError:
        fields = read_until_error(/*want_reset=*/false);
        break;
    }
    if (step.kind != StepKind::kSleep && step.kind != StepKind::kHold &&
        step.kind != StepKind::kAt && step.kind != StepKind::kAtNext) {
      fields["ms"] = ms_since(start);
    }
    log_.emit(conn_, event_name(step.kind), fields);
    return fields.value("ok", false);
  }

  /// Milliseconds left before this step's deadline, or -1 for no limit.
  int remaining_ms() const {
    if (deadline_ == Clock::time_point::max()) {
      return -1;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
  }

  Fields send(std::uint64_t count) {
    const auto& table = pattern_table();
    std::uint64_t done = 0;
    while (done < count) {
      if (const int error = wait_ready(socket_.get(), POLLOUT, remaining_ms()); error != 0) {
        return partial(failure(error), done, count);
      }
      const std::size_t offset = static_cast<std::size_t>(sent_ % kPeriod);
      const std::size_t length =
          static_cast<std::size_t>(std::min<std::uint64_t>(count - done, kChunk));
      const ssize_t n =
          ::send(socket_.get(), table.data() + offset, length, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
          continue;
        }
        return partial(failure(errno), done, count);
      }
      sent_ += static_cast<std::uint64_t>(n);
      done += static_cast<std::uint64_t>(n);
    }
    return Fields{{"ok", true}, {"bytes", done}};
  }

  static Fields partial(Fields fields, std::uint64_t done, std::uint64_t requested) {
    fields["bytes"] = done;
    fields["requested"] = requested;
    return fields;
  }

  /// One read of at most `max` bytes, verified against the pattern.
  ReadResult read_some(std::size_t max) {
    for (;;) {
      if (const int error = wait_ready(socket_.get(), POLLIN, remaining_ms()); error != 0) {
        return ReadResult{0, error, false};
      }
      const ssize_t n =
          ::recv(socket_.get(), buffer_.data(), std::min(max, buffer_.size()), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
          continue;
        }
        return ReadResult{0, errno, false};
      }
      if (n == 0) {
        return ReadResult{0, 0, true};
      }
      const auto bytes = static_cast<std::size_t>(n);
      const auto* expected = pattern_table().data() + received_ % kPeriod;
      if (!std::equal(buffer_.begin(), buffer_.begin() + n, expected)) {
        step_intact_ = false;
      }
      received_ += bytes;
      return ReadResult{bytes, 0, false};
    }
  }

  Fields read_exactly(std::uint64_t count) {
    step_intact_ = true;
    std::uint64_t done = 0;
    while (done < count) {
      const auto r =
          read_some(static_cast<std::size_t>(std::min<std::uint64_t>(count - done, kChunk)));
      if (r.eof || r.error != 0) {
        Fields fields = partial(failure(r.error), done, count);
        fields["intact"] = step_intact_;
        return fields;
      }
      done += r.bytes;
    }
    return Fields{{"ok", step_intact_}, {"bytes", done}, {"intact", step_intact_}};
  }

  Fields read_to_end() {
    step_intact_ = true;
    std::uint64_t done = 0;
    for (;;) {
      const auto r = read_some(kChunk);
      if (r.eof) {
        break;
      }
      if (r.error != 0) {
        Fields fields = failure(r.error);
        fields["bytes"] = done;
        fields["intact"] = step_intact_;
        return fields;
      }
      done += r.bytes;
    }
    return Fields{{"ok", step_intact_}, {"bytes", done}, {"intact", step_intact_}};
  }

  /// Reads (and verifies) until EOF or an error. With want_reset only ECONNRESET succeeds;
  /// otherwise any end succeeds except the step's timeout.
  Fields read_until_error(bool want_reset) {
    step_intact_ = true;
    std::uint64_t done = 0;
    ReadResult r;
    for (;;) {
      r = read_some(kChunk);
      if (r.eof || r.error != 0) {
        break;
      }
      done += r.bytes;
    }
    Fields fields = failure(r.error);  // "error"/"errno" describe how the stream ended
    fields["ok"] = want_reset ? r.error == ECONNRESET : r.error != ETIMEDOUT;
    if (want_reset) {
      fields["expected"] = "ECONNRESET";
    }
    fields["bytes"] = done;
    fields["intact"] = step_intact_;
    return fields;
  }

  /// Waits until `epoch_ms` on CLOCK_REALTIME. A sleeper wakes up to its timer slack (50 us by
  /// default) late, and later on a busy CPU; two peers that must act within microseconds of each
  /// other (both FINs on the wire before either arrives) sleep until a millisecond before and
  /// spin on the clock for the rest.
  static Fields wait_until(std::uint64_t epoch_ms) {
    constexpr std::int64_t kSpinNs = 1'000'000;
    const auto target_ns = static_cast<std::int64_t>(epoch_ms) * 1'000'000;
    const std::int64_t wake_ns = target_ns - kSpinNs;
    if (realtime_ns() < wake_ns) {
      const timespec wake{static_cast<time_t>(wake_ns / 1'000'000'000),
                          static_cast<long>(wake_ns % 1'000'000'000)};
      // Absolute time: an interrupted sleep simply sleeps again to the same instant.
      while (::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &wake, nullptr) == EINTR) {
      }
    }
    std::int64_t now_ns = realtime_ns();
    while (now_ns < target_ns) {
      now_ns = realtime_ns();
    }
    const double late_us = static_cast<double>(now_ns - target_ns) / 1000.0;
    return Fields{{"ok", true}, {"at", epoch_ms}, {"late_us", std::round(late_us * 10.0) / 10.0}};
  }

  /// Polls every millisecond until `path` exists or the step's deadline passes (ETIMEDOUT).
  Fields wait_file(const std::string& path) const {
    while (::access(path.c_str(), F_OK) != 0) {
      if (remaining_ms() == 0) {
        Fields fields = failure(ETIMEDOUT);
        fields["path"] = path;
        return fields;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Fields{{"ok", true}, {"path", path}};
  }

  /// The first multiple of `period_ms` (since the epoch) at least half a period from now.
  static std::uint64_t next_tick_ms(std::uint64_t period_ms) {
    const auto now_ms = static_cast<std::uint64_t>(realtime_ns() / 1'000'000);
    return (now_ms + period_ms / 2 + period_ms - 1) / period_ms * period_ms;
  }

  Fields shutdown(ShutdownHow how) {
    const int flag = how == ShutdownHow::kRead   ? SHUT_RD
                     : how == ShutdownHow::kBoth ? SHUT_RDWR
                                                 : SHUT_WR;
    const char* name = how == ShutdownHow::kRead ? "rd" : how == ShutdownHow::kBoth ? "rdwr" : "wr";
    Fields fields = ::shutdown(socket_.get(), flag) == 0 ? Fields{{"ok", true}} : failure(errno);
    fields["how"] = name;
    return fields;
  }

  Fields close() {
    const int error = socket_.close();
    return error == 0 ? Fields{{"ok", true}} : failure(error);
  }

  Fields abort() {
    // A zero linger time makes close(2) discard unsent data and send RST instead of FIN.
    const linger hard{1, 0};
    if (::setsockopt(socket_.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard) != 0) {
      const int error = errno;
      socket_.close();
      return failure(error);
    }
    return close();
  }

  Fd socket_;
  const int conn_;
  EventLog& log_;
  const int io_timeout_ms_;
  Clock::time_point deadline_;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
  bool step_intact_ = true;
  std::array<std::uint8_t, kChunk> buffer_{};
};

}  // namespace

std::uint8_t pattern_byte(std::uint64_t index) {
  return static_cast<std::uint8_t>((index % kPeriod * 7 + 3) % kPeriod);
}

ConnectionResult run_script(Fd socket, int conn, const Script& script, EventLog& log,
                            int io_timeout_ms) {
  // The runner holds a 64 KiB buffer: keep it off small thread stacks.
  auto runner = std::make_unique<ScriptRunner>(std::move(socket), conn, log, io_timeout_ms);
  return runner->run(script);
}

}  // namespace finwave::peer
