#include "proxy/dataplane/queue_worker.hpp"

#include <pthread.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace finwave::proxy {
namespace {

// How often resolved teardowns are looked for. The settle and linger windows are a second and
// more, so 50 ms of lateness is invisible in outcomes and costs nothing measurable.
constexpr std::uint64_t kTickMs = 50;

// The longest run_due() waits on the clock for segments about to fall due, in all, before it
// goes back to the loop (and arms the timer for the rest). The lead is capped at 1 ms, so this
// lets one wake-up end the holds of a handful of segments due close together.
constexpr std::uint64_t kMaxWaitUs = 2000;

}  // namespace

QueueWorker::QueueWorker(Config config, rules::Engine engine, OutcomeSink& outcomes)
    : config_(std::move(config)),
      outcome_sink_(outcomes),
      engine_(std::move(engine)),
      flows_(config_.tracker),
      delays_(config_.max_held) {
  if (config_.rng_seed) rng_.reseed(*config_.rng_seed);
  if (!config_.pcap_path.empty()) pcap_ = PcapWriter(config_.pcap_path);
  injector_ = nf::Injector::open(config_.injected_mark);
  nf::QueueConfig queue_config;
  queue_config.queue_num = config_.queue_num;
  queue_config.max_len = config_.queue_len;
  queue_ = nf::Queue::open(queue_config);
  if (config_.log_group) {
    log_group_ = nf::LogGroup::open(
        nf::LogGroupConfig{*config_.log_group, config_.log_buffer, config_.log_batching});
  }
  // Last: nothing after it can throw, and a constructor that throws runs no destructor.
  delay_fd_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!delay_fd_) throw std::system_error(errno, std::generic_category(), "timerfd_create");
  verdicts_.emplace(*queue_);
  dataplane_.emplace(Dataplane::Parts{*verdicts_, flows_, engine_, rng_, delays_, &injector_,
                                      pcap_.is_open() ? &pcap_ : nullptr, nullptr,
                                      log_group_ ? &*log_group_ : nullptr});
  dataplane_->set_read_log_first(config_.logging);
}

QueueWorker::~QueueWorker() {
  finish();
  delay_fd_.reset();
}

std::uint64_t QueueWorker::now_us() const noexcept { return uv_hrtime() / 1000; }

void QueueWorker::log(const std::string& message) const noexcept {
  if (config_.quiet) return;
  // stderr only, never stdout (the control thread's): a line from one fprintf stays whole.
  if (config_.count == 1) {
    std::fprintf(stderr, "finwave: %s\n", message.c_str());
  } else {
    std::fprintf(stderr, "finwave: queue %u: %s\n", unsigned{config_.queue_num}, message.c_str());
  }
}

std::unique_lock<std::mutex> QueueWorker::guard() const {
  return threaded() ? std::unique_lock<std::mutex>(mutex_) : std::unique_lock<std::mutex>();
}

void QueueWorker::start(uv_loop_t* control_loop) {
  auto check = [](int error, const char* what) {
    if (error != 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(error));
  };
  if (threaded()) {
    check(uv_loop_init(&own_loop_), "cannot create a queue worker's event loop");
    own_loop_initialized_ = true;
    loop_ = &own_loop_;
  } else {
    loop_ = control_loop;
  }
  check(poll_.init(uv_poll_init, loop_, this, queue_->fd()), "cannot poll the NFQUEUE socket");
  check(uv_poll_start(poll_.get(), UV_READABLE, &QueueWorker::on_readable), "cannot poll");
  if (log_group_) {
    check(log_poll_.init(uv_poll_init, loop_, this, log_group_->fd()),
          "cannot poll the log socket");
    check(uv_poll_start(log_poll_.get(), UV_READABLE, &QueueWorker::on_log_readable),
          "cannot poll");
  }
  check(delay_poll_.init(uv_poll_init, loop_, this, delay_fd_.get()),
        "cannot poll the delay timer");
  check(uv_poll_start(delay_poll_.get(), UV_READABLE, &QueueWorker::on_delay_timer), "cannot poll");
  check(tick_.init(uv_timer_init, loop_, this), "cannot create a timer");
  check(uv_timer_start(tick_.get(), &QueueWorker::on_tick, kTickMs, kTickMs),
        "cannot start a timer");
  if (!threaded()) return;
  check(wake_.init(uv_async_init, loop_, this, &QueueWorker::on_wake),
        "cannot create a queue worker's wake-up");
  // Everything above happens before the thread starts: the loop is the thread's from here on.
  thread_ = std::thread([this] {
    const std::string name = "finwave-q" + std::to_string(config_.queue_num);
    pthread_setname_np(pthread_self(), name.c_str());
    uv_run(&own_loop_, UV_RUN_DEFAULT);
  });
}

// --- The worker's own thread (the control thread for worker 0) -------------------------------

void QueueWorker::on_readable(uv_poll_t* handle, int status, int /*events*/) noexcept {
  auto* self = static_cast<QueueWorker*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    self->log(std::string("NFQUEUE socket error: ") + uv_strerror(status));
    return;
  }
  self->drain();
}

void QueueWorker::on_log_readable(uv_poll_t* handle, int status, int /*events*/) noexcept {
  auto* self = static_cast<QueueWorker*>(handle->data);
  if (self == nullptr || !self->dataplane_ || !self->log_group_) return;
  const std::unique_lock<std::mutex> lock = self->guard();
  if (status < 0) {
    // POLLERR: the kernel overran the socket (ENOBUFS) and libuv has stopped the handle. The
    // error is taken (counted as an overrun), what is left is read, and the poll goes on.
    const int error = self->log_group_->take_error();
    if (error != 0 && error != ENOBUFS) {
      self->log(std::string("log socket error: ") + std::strerror(error));
    }
    uv_poll_start(handle, UV_READABLE, &QueueWorker::on_log_readable);
  }
  self->dataplane_->drain_log();
}

void QueueWorker::drain() noexcept {
  if (!queue_ || !dataplane_) return;
  int result = 0;
  {
    const std::unique_lock<std::mutex> lock = guard();
    result = queue_->drain(*dataplane_);
  }
  if (result < 0) log(std::string("NFQUEUE read failed: ") + std::strerror(-result));
  arm_delay_timer();
}

void QueueWorker::on_delay_timer(uv_poll_t* handle, int status, int /*events*/) noexcept {
  auto* self = static_cast<QueueWorker*>(handle->data);
  if (self == nullptr || status < 0) return;
  std::uint64_t expirations = 0;
  [[maybe_unused]] const auto ignored =
      ::read(self->delay_fd_.get(), &expirations, sizeof expirations);
  if (self->delay_fires_us_ != 0) {
    const std::uint64_t now = self->now_us();
    self->timer_lead_.record(now > self->delay_fires_us_ ? now - self->delay_fires_us_ : 0);
  }
  self->delay_due_us_ = 0;
  self->delay_fires_us_ = 0;
  self->run_due();
}

void QueueWorker::run_due() noexcept {
  if (!queue_ || !dataplane_) return;
  // The timer fired lead_us() before the first due time, so that a wake-up that comes late still
  // comes before it. Each held segment then leaves at its own due time: what is due now goes at
  // once; what falls due within the lead is waited for on the clock, since arming the timer for
  // it would wake finwave too late. Ending a hold can take long (the ACCEPT carries the segment
  // through the rest of the router and into the receiver's stack within the syscall), so the
  // clock is read again after each. The wait is bounded, so the loop is never held for long.
  const std::uint64_t started = now_us();
  for (;;) {
    std::optional<std::uint64_t> due;
    {
      const std::unique_lock<std::mutex> lock = guard();
      const std::uint64_t now = now_us();
      dataplane_->on_due(now, now);
      queue_->flush();
      due = delays_.next_due();
    }
    const std::uint64_t now = now_us();
    if (!due || *due > now + timer_lead_.lead_us() || now - started > kMaxWaitUs) break;
    wait_until(*due);
  }
  arm_delay_timer();
}

void QueueWorker::wait_until(std::uint64_t due_us) const noexcept {
  while (now_us() < due_us) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

void QueueWorker::arm_delay_timer() noexcept {
  const std::optional<std::uint64_t> due = delays_.next_due();
  if (!due || *due == delay_due_us_) return;
  // An absolute CLOCK_MONOTONIC deadline: uv_hrtime() reads the same clock. A deadline already
  // past fires at once. Zero would disarm, hence the max.
  const std::uint64_t now = now_us();
  const std::uint64_t lead = timer_lead_.lead_us();
  const std::uint64_t at = std::max<std::uint64_t>(*due > lead ? *due - lead : 0, 1);
  itimerspec when{};
  when.it_value.tv_sec = static_cast<time_t>(at / 1'000'000);
  when.it_value.tv_nsec = static_cast<long>((at % 1'000'000) * 1000);
  if (timerfd_settime(delay_fd_.get(), TFD_TIMER_ABSTIME, &when, nullptr) == 0) {
    delay_due_us_ = *due;
    // A deadline already past fires at once: its lateness counts from now.
    delay_fires_us_ = std::max(at, now);
  }
}

void QueueWorker::on_tick(uv_timer_t* handle) noexcept {
  auto* self = static_cast<QueueWorker*>(handle->data);
  if (self != nullptr) self->tick();
}

void QueueWorker::tick() noexcept {
  {
    const std::unique_lock<std::mutex> lock = guard();
    flows_.advance(now_us(), outcomes_);
    publish_counters();
  }
  renumber(outcomes_);
  if (!outcomes_.empty()) outcome_sink_.on_outcomes(outcomes_);
  outcomes_.clear();
  pcap_.flush();
}

void QueueWorker::publish_counters() noexcept {
  if (!queue_ || !dataplane_) return;
  try {
    published_.store(std::make_shared<const WorkerCounters>(WorkerCounters{
        queue_->counters(), dataplane_->counters(), flows_.counters(), log_counters()}));
  } catch (const std::bad_alloc&) {
    // Out of memory: the metrics stay one tick older; the packets do not notice.
  }
}

void QueueWorker::renumber(std::vector<Outcome>& outcomes) const noexcept {
  if (config_.count == 1) return;
  for (Outcome& outcome : outcomes) {
    outcome.id = daemon_flow_id(outcome.id, config_.index, config_.count);
  }
}

void QueueWorker::on_rule_hit(const RuleHit& hit) noexcept {
  // Inside the packet callback, under the worker's lock: rule_hit_sink_ cannot change now.
  if (rule_hit_sink_ == nullptr) return;
  rule_hit_sink_->on_rule_hit(RuleHit{
      hit.rule, hit.facts, daemon_flow_id(hit.flow_id, config_.index, config_.count), hit.verdict});
}

void QueueWorker::on_wake(uv_async_t* handle) noexcept {
  auto* self = static_cast<QueueWorker*>(handle->data);
  if (self == nullptr) return;
  Step step = Step::kRunning;
  {
    const std::lock_guard<std::mutex> lock(self->mutex_);
    step = self->requested_;
  }
  self->do_step(step);
  {
    const std::lock_guard<std::mutex> lock(self->mutex_);
    self->done_ = step;
  }
  self->step_done_.notify_all();
}

void QueueWorker::do_step(Step step) noexcept {
  if (step == Step::kStopReading) do_stop_reading();
  if (step == Step::kFinish) do_finish();
}

void QueueWorker::do_stop_reading() noexcept {
  poll_.close();
  log_poll_.close();
  if (!queue_ || !dataplane_) return;
  const std::unique_lock<std::mutex> lock = guard();
  dataplane_->drain_log();
  queue_->drain(*dataplane_);
  dataplane_->end_all_holds(now_us());
  queue_->flush();
}

void QueueWorker::do_finish() noexcept {
  poll_.close();
  log_poll_.close();
  {
    const std::unique_lock<std::mutex> lock = guard();
    if (queue_ && dataplane_) {
      // The capture is gone: the copies the kernel still batches come out with the unbind.
      if (log_group_) log_group_->unbind();
      dataplane_->drain_log();
      queue_->drain(*dataplane_);
      dataplane_->end_all_holds(now_us());
      queue_->flush();
      dataplane_->set_rule_hit_sink(nullptr);
    }
    flows_.finish_all(now_us(), final_outcomes_);
    pcap_.close();
  }
  renumber(final_outcomes_);
  delay_poll_.close();
  tick_.close();
  wake_.close();
}

// --- Control thread ---------------------------------------------------------------------------

void QueueWorker::run_step(Step step) noexcept {
  if (!thread_.joinable()) {
    do_step(step);
    return;
  }
  uv_async_t* wake = nullptr;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    requested_ = step;
    wake = wake_.get();
  }
  uv_async_send(wake);
  std::unique_lock<std::mutex> lock(mutex_);
  step_done_.wait(lock, [&] { return done_ == step; });
}

void QueueWorker::stop_reading() noexcept {
  if (finished_) return;
  run_step(Step::kStopReading);
}

void QueueWorker::finish() noexcept {
  if (finished_) return;
  finished_ = true;
  run_step(Step::kFinish);
  if (thread_.joinable()) thread_.join();
  if (own_loop_initialized_) {
    // A worker whose thread never started still has its handles' close callbacks to run.
    uv_run(&own_loop_, UV_RUN_DEFAULT);
    loop_close_error_ = uv_loop_close(&own_loop_);
    own_loop_initialized_ = false;
  }
}

std::vector<Outcome> QueueWorker::take_final_outcomes() noexcept {
  return std::exchange(final_outcomes_, {});
}

void QueueWorker::close_queue() noexcept {
  closed_counters_ = counters();
  const std::unique_lock<std::mutex> lock = guard();
  publish_counters();
  dataplane_.reset();
  verdicts_.reset();
  queue_.reset();
  log_group_.reset();
}

WorkerCounters QueueWorker::counters() const {
  const std::unique_lock<std::mutex> lock = guard();
  if (!queue_ || !dataplane_) return closed_counters_;
  return WorkerCounters{queue_->counters(), dataplane_->counters(), flows_.counters(),
                        log_counters()};
}

void QueueWorker::append_flows(std::vector<FlowSummary>& out) const {
  const std::unique_lock<std::mutex> lock = guard();
  flows_.for_each_flow([&](const FlowSummary& flow) {
    out.push_back(flow);
    out.back().id = daemon_flow_id(flow.id, config_.index, config_.count);
  });
}

std::vector<rules::RuleStatus> QueueWorker::rules() const {
  const std::unique_lock<std::mutex> lock = guard();
  return engine_.rules();
}

std::shared_ptr<const rules::RuleSet> QueueWorker::rule_set() const {
  const std::unique_lock<std::mutex> lock = guard();
  return engine_.rule_set();
}

std::uint32_t QueueWorker::rule_generation() const {
  const std::unique_lock<std::mutex> lock = guard();
  return engine_.generation();
}

int QueueWorker::set_log_batching(bool batching) noexcept {
  const std::unique_lock<std::mutex> lock = guard();
  if (!log_group_ || log_group_->batching() == batching) return 0;
  return log_group_->set_batching(batching);
}

void QueueWorker::set_logging(bool logging) noexcept {
  const std::unique_lock<std::mutex> lock = guard();
  if (!dataplane_) return;
  if (!logging) dataplane_->drain_log();
  dataplane_->set_read_log_first(logging);
}

void QueueWorker::set_rule_hit_sink(RuleHitSink* sink) noexcept {
  const std::unique_lock<std::mutex> lock = guard();
  rule_hit_sink_ = sink;
  // One worker's flow ids are the daemon's: the sink can be told directly, as before there were
  // several queues.
  RuleHitSink* direct = sink == nullptr || config_.count == 1 ? sink : this;
  if (dataplane_) dataplane_->set_rule_hit_sink(direct);
}

}  // namespace finwave::proxy
