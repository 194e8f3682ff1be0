#include "proxy/daemon.hpp"

#include <fcntl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "proxy/ladder.hpp"
#include "rules/config_error.hpp"
#include "rules/rule.hpp"
#include "rules/rule_loader.hpp"
#include "rules/suggest.hpp"

namespace finwave::proxy {
namespace {

// How often resolved teardowns are looked for. The settle and linger windows are a second and
// more, so 50 ms of lateness is invisible in outcomes and costs nothing measurable.
constexpr std::uint64_t kTickMs = 50;
// Outcomes the control socket keeps for `outcomes` and `wait --since` (a few KiB each).
constexpr std::size_t kOutcomeHistory = 1000;

TrackerConfig tracker_config(const DaemonOptions& options) {
  TrackerConfig config;
  config.settle_us = static_cast<std::uint64_t>(options.settle_s * 1e6);
  config.linger_us = static_cast<std::uint64_t>(options.linger_s * 1e6);
  config.max_flows = static_cast<std::size_t>(options.max_flows);
  // A fixed hash seed would let anyone who can open connections through finwave pick 4-tuples
  // that collide in the flow table.
  std::random_device entropy;
  config.hash_seed = (std::uint64_t{entropy()} << 32) | entropy();
  return config;
}

nf::CaptureSpec capture_spec(const DaemonOptions& options) {
  nf::CaptureSpec spec;
  spec.mode = options.mode;
  spec.queue_num = options.queue_num;
  spec.ports = options.ports;
  spec.addresses = options.addresses;
  spec.capture_all = options.capture_all;
  return spec;
}

nlohmann::json flow_counters_json(const TrackerCounters& c) {
  return {{"tracked", c.flows_tracked},        {"created", c.flows_created},
          {"outcomes", c.outcomes_emitted},    {"evicted_idle", c.evicted_idle},
          {"evicted_full", c.evicted_full},    {"refused_full", c.refused_full},
          {"superseded", c.superseded},        {"unknown_flow_acks", c.unknown_flow_acks},
          {"unknown_flow_rsts", c.unknown_flow_rsts}, {"bogus_segments", c.bogus_segments},
          {"outcomes_lost", c.outcomes_lost}};
}

}  // namespace

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)),
      flows_(tracker_config(options_)),
      delays_(options_.max_held) {
  if (options_.seed) rng_.reseed(*options_.seed);
}

Daemon::~Daemon() {
  // run() normally leaves nothing behind; this covers a set-up failure half-way.
  if (control_) control_->stop();
  poll_.close();
  delay_poll_.close();
  tick_.close();
  sigint_.close();
  sigterm_.close();
  sighup_.close();
  chains_.remove();
  if (delay_fd_ >= 0) ::close(delay_fd_);
  if (loop_initialized_) {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
}

std::uint64_t Daemon::now_us() const noexcept { return uv_hrtime() / 1000; }

void Daemon::log(const std::string& message) const noexcept {
  if (!options_.quiet) std::fprintf(stderr, "finwave: %s\n", message.c_str());
}

int Daemon::run() {
  if (const int error = uv_loop_init(&loop_); error != 0) {
    throw std::runtime_error(std::string("cannot create the event loop: ") + uv_strerror(error));
  }
  loop_initialized_ = true;
  start();
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Every handle is closed by now; a non-zero result would mean one leaked.
  const int closed = uv_loop_close(&loop_);
  loop_initialized_ = false;
  if (closed != 0) {
    std::fprintf(stderr, "finwave: event loop still had open handles at exit: %s\n",
                 uv_strerror(closed));
    return 1;
  }
  return 0;
}

void Daemon::start() {
  started_us_ = now_us();
  started_at_ = std::time(nullptr);
  if (!options_.rules_path.empty()) {
    engine_.replace(rules::load_rules_file(options_.rules_path));
    log("loaded " + std::to_string(engine_.rules().size()) + " rule(s) from " +
        options_.rules_path);
  }
  // Before anything is installed: a control socket another finwave owns ends the start-up
  // with nothing to undo.
  if (options_.control_path != "none") {
    control_.emplace(&loop_, static_cast<ControlHandler&>(*this),
                     ControlServer::Config{options_.control_path, options_.control_group,
                                           kOutcomeHistory, options_.quiet});
    control_->start();
  }
  if (!options_.pcap_path.empty()) pcap_ = PcapWriter(options_.pcap_path);
  const nf::CaptureSpec spec = capture_spec(options_);
  injector_ = nf::Injector::open(spec.injected_mark);
  delay_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (delay_fd_ < 0) throw std::system_error(errno, std::generic_category(), "timerfd_create");
  arrival_stamps_.emplace();
  if (!arrival_stamps_->enabled()) {
    log("cannot turn on the kernel's receive timestamps: delays run from when finwave reads "
        "the segment, not from its arrival");
  }

  nf::QueueConfig queue_config;
  queue_config.queue_num = options_.queue_num;
  queue_config.max_len = options_.queue_len;
  queue_ = nf::Queue::open(queue_config);
  dataplane_.emplace(Dataplane::Parts{*queue_, flows_, engine_, rng_, delays_, &*injector_,
                                      pcap_.is_open() ? &pcap_ : nullptr});

  // Bind first, capture second: with --queue-bypass a packet queued before the bind would pass
  // unseen, never be lost; the other order cannot do better.
  chains_ = nf::CaptureChains::install(spec);

  auto check = [](int error, const char* what) {
    if (error != 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(error));
  };
  check(poll_.init(uv_poll_init, &loop_, this, queue_->fd()), "cannot poll the NFQUEUE socket");
  check(uv_poll_start(poll_.get(), UV_READABLE, &Daemon::on_readable), "cannot poll");
  check(delay_poll_.init(uv_poll_init, &loop_, this, delay_fd_), "cannot poll the delay timer");
  check(uv_poll_start(delay_poll_.get(), UV_READABLE, &Daemon::on_delay_timer), "cannot poll");
  check(tick_.init(uv_timer_init, &loop_, this), "cannot create a timer");
  check(uv_timer_start(tick_.get(), &Daemon::on_tick, kTickMs, kTickMs), "cannot start a timer");
  check(sigint_.init(uv_signal_init, &loop_, this), "cannot watch SIGINT");
  check(uv_signal_start(sigint_.get(), &Daemon::on_signal, SIGINT), "cannot watch SIGINT");
  check(sigterm_.init(uv_signal_init, &loop_, this), "cannot watch SIGTERM");
  check(uv_signal_start(sigterm_.get(), &Daemon::on_signal, SIGTERM), "cannot watch SIGTERM");
  check(sighup_.init(uv_signal_init, &loop_, this), "cannot watch SIGHUP");
  check(uv_signal_start(sighup_.get(), &Daemon::on_signal, SIGHUP), "cannot watch SIGHUP");

  std::string ports;
  for (const auto port : options_.ports) ports += (ports.empty() ? "" : ",") + std::to_string(port);
  log(std::string("capturing teardown in ") +
      (options_.mode == nf::CaptureMode::kRouter ? "router" : "local") + " mode on queue " +
      std::to_string(options_.queue_num) + (ports.empty() ? ", all ports" : ", ports " + ports));

  if (!options_.ready_file.empty()) {
    const int fd = ::open(options_.ready_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create the ready file " + options_.ready_file);
    const std::string pid = std::to_string(getpid()) + "\n";
    [[maybe_unused]] const auto written = ::write(fd, pid.data(), pid.size());
    ::close(fd);
  }
}

void Daemon::on_readable(uv_poll_t* handle, int status, int /*events*/) noexcept {
  auto* self = static_cast<Daemon*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    self->log(std::string("NFQUEUE socket error: ") + uv_strerror(status));
    return;
  }
  self->drain();
}

void Daemon::drain() noexcept {
  if (!queue_ || !dataplane_) return;
  const int result = queue_->drain(*dataplane_);
  if (result < 0) log(std::string("NFQUEUE read failed: ") + std::strerror(-result));
  arm_delay_timer();
}

void Daemon::on_delay_timer(uv_poll_t* handle, int status, int /*events*/) noexcept {
  auto* self = static_cast<Daemon*>(handle->data);
  if (self == nullptr || status < 0) return;
  std::uint64_t expirations = 0;
  [[maybe_unused]] const auto ignored = ::read(self->delay_fd_, &expirations, sizeof expirations);
  if (self->delay_fires_us_ != 0) {
    const std::uint64_t now = self->now_us();
    self->timer_lead_.record(now > self->delay_fires_us_ ? now - self->delay_fires_us_ : 0);
  }
  self->delay_due_us_ = 0;
  self->delay_fires_us_ = 0;
  self->run_due();
}

void Daemon::run_due() noexcept {
  if (!queue_ || !dataplane_) return;
  // The timer was armed lead_us() early to absorb its own wake-up latency: what falls due
  // within that margin goes now, which is when it would otherwise have been woken for.
  const std::uint64_t now = now_us();
  dataplane_->on_due(now, now + timer_lead_.lead_us());
  queue_->flush();
  arm_delay_timer();
}

void Daemon::arm_delay_timer() noexcept {
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
  if (timerfd_settime(delay_fd_, TFD_TIMER_ABSTIME, &when, nullptr) == 0) {
    delay_due_us_ = *due;
    // A deadline already past fires at once: its lateness counts from now.
    delay_fires_us_ = std::max(at, now);
  }
}

void Daemon::on_tick(uv_timer_t* handle) noexcept {
  auto* self = static_cast<Daemon*>(handle->data);
  if (self != nullptr) self->tick();
}

void Daemon::tick() noexcept {
  flows_.advance(now_us(), outcomes_);
  emit(outcomes_);
  pcap_.flush();
}

void Daemon::emit(std::vector<Outcome>& outcomes) noexcept {
  for (Outcome& outcome : outcomes) {
    try {
      const std::string line = options_.json ? to_json_line(outcome) : to_text_line(outcome);
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      if (options_.ladder) {
        // Under its outcome line; on stderr with --json, so that stdout stays JSON lines.
        const std::string ladder = render_ladder(outcome);
        std::fwrite(ladder.data(), 1, ladder.size(), options_.json ? stderr : stdout);
      }
    } catch (const std::exception& error) {
      log(std::string("cannot format an outcome: ") + error.what());
    }
    if (control_) control_->publish_outcome(std::move(outcome));
  }
  if (!outcomes.empty()) std::fflush(stdout);
  outcomes.clear();
}

void Daemon::on_signal(uv_signal_t* handle, int signum) noexcept {
  auto* self = static_cast<Daemon*>(handle->data);
  if (self == nullptr) return;
  if (signum == SIGHUP) {
    self->reload();
    return;
  }
  self->log(std::string("received ") + (signum == SIGINT ? "SIGINT" : "SIGTERM") +
            ", shutting down");
  self->shutdown();
}

void Daemon::reload() noexcept {
  if (options_.rules_path.empty()) {
    log("SIGHUP: no rule file to reload (started without --rules)");
    return;
  }
  try {
    reload_rules("sighup", "SIGHUP");
  } catch (const std::exception& error) {
    log(std::string("SIGHUP: reload failed, keeping the current rules: ") + error.what());
  }
}

void Daemon::reload_rules(const std::string& by, const std::string& who) {
  // All or nothing: a file that fails validation leaves the running rules untouched.
  engine_.replace(rules::load_rules_file(options_.rules_path));
  control_added_.clear();
  log(who + ": reloaded " + std::to_string(engine_.rules().size()) + " rule(s) from " +
      options_.rules_path);
  if (control_) control_->publish_rule_change("reload", "", by, engine_.rules().size());
}

void Daemon::shutdown() noexcept {
  if (stopping_) return;
  stopping_ = true;
  poll_.close();
  // Every packet still queued must get its verdict before the capture chains go: removing them
  // makes the kernel drop what is queued through them (a held FIN was lost that way), and so
  // does closing the socket. So: read what is queued and release everything held, remove the
  // chains, then read once more for what came in meanwhile (packets queued in the moment
  // between the two steps are the only ones at risk).
  if (queue_ && dataplane_) {
    queue_->drain(*dataplane_);
    dataplane_->release_all(now_us());
    queue_->flush();
  }
  chains_.remove();
  if (queue_ && dataplane_) {
    queue_->drain(*dataplane_);
    dataplane_->release_all(now_us());
    queue_->flush();
  }
  flows_.finish_all(now_us(), outcomes_);
  emit(outcomes_);
  pcap_.close();
  if (queue_) kernel_stats_ = nf::read_kernel_queue_stats(queue_->queue_num());
  print_stats();
  // Waits are answered, subscribers told, the socket file removed; clients close once their
  // last lines are written.
  if (control_) control_->stop();
  if (dataplane_) dataplane_->set_rule_hit_sink(nullptr);
  delay_poll_.close();
  tick_.close();
  sigint_.close();
  sigterm_.close();
  sighup_.close();
  dataplane_.reset();
  queue_.reset();
  if (delay_fd_ >= 0) ::close(delay_fd_);
  delay_fd_ = -1;
}

void Daemon::print_stats() noexcept {
  if (!queue_ || !dataplane_) return;
  try {
    const std::string line = dump_line(stats_json(false));
    if (options_.json) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
    std::fprintf(stderr, "finwave: stats %s\n", line.c_str());
  } catch (const std::exception& error) {
    log(std::string("cannot format stats: ") + error.what());
  }
}

nlohmann::json Daemon::stats_json(bool live_kernel) const {
  if (!queue_ || !dataplane_) return {{"event", "stats"}};
  const nf::QueueCounters& q = queue_->counters();
  const DataplaneCounters& d = dataplane_->counters();
  nlohmann::json parse_errors = nlohmann::json::object();
  for (std::size_t i = 1; i < d.parse_errors.size(); ++i) {
    if (d.parse_errors[i] != 0) {
      parse_errors[nf::to_string(static_cast<nf::ParseError>(i))] = d.parse_errors[i];
    }
  }
  nlohmann::json stats = {
      {"event", "stats"},
      {"queue", {{"queued", q.queued},
                 {"accepted", q.accepted},
                 {"dropped", q.dropped},
                 {"held", q.held},
                 {"batches", q.batches},
                 {"verdict_errors", q.verdict_errors},
                 {"enobufs", q.enobufs}}},
      {"segments", d.segments},
      {"actions", {{"rule_hits", d.rule_hits},
                   {"dropped", d.dropped},
                   {"delayed", d.delayed},
                   {"released", d.released},
                   {"released_early", d.released_early},
                   {"duplicated", d.duplicated},
                   {"copies_sent", d.copies_sent},
                   {"copy_errors", d.copy_errors},
                   {"resets", d.resets},
                   {"reset_errors", d.reset_errors},
                   {"held_overflow", d.held_overflow}}},
      {"parse_errors", parse_errors},
      {"flows", flow_counters_json(flows_.counters())},
  };
  const std::optional<nf::KernelQueueStats> kernel =
      live_kernel ? nf::read_kernel_queue_stats(queue_->queue_num()) : kernel_stats_;
  if (kernel) {
    stats["kernel"] = {{"queue_total", kernel->queue_total},
                       {"queue_dropped", kernel->queue_dropped},
                       {"user_dropped", kernel->user_dropped},
                       {"id_sequence", kernel->id_sequence}};
  } else {
    stats["kernel"] = nullptr;
  }
  if (control_) {
    const ControlCounters& c = control_->counters();
    stats["control"] = {{"clients", c.clients},
                        {"subscribers", c.subscribers},
                        {"waits", c.waits},
                        {"connections", c.connections},
                        {"requests", c.requests},
                        {"errors", c.errors},
                        {"refused_clients", c.refused_clients},
                        {"events_dropped", c.events_dropped},
                        {"clients_dropped", c.clients_dropped},
                        {"outcomes", c.outcomes}};
  }
  return stats;
}

// --- Control commands (loop thread; may throw ControlError) ---------------------------------

void Daemon::on_rule_hit_interest(bool wanted) noexcept {
  if (dataplane_) dataplane_->set_rule_hit_sink(wanted && control_ ? &*control_ : nullptr);
}

nlohmann::json Daemon::on_control_command(const ControlRequest& request,
                                          const std::string& client) {
  switch (request.command) {
    case ControlCommand::kStatus:
      return status_json();
    case ControlCommand::kRules:
      return rules_json();
    case ControlCommand::kEnable:
    case ControlCommand::kDisable:
    case ControlCommand::kAdd:
    case ControlCommand::kRemove:
      return change_rule(request, client);
    case ControlCommand::kReload:
      if (options_.rules_path.empty()) {
        throw ControlError(ControlErrorCode::kNoRuleFile,
                           "finwave was started without --rules: there is no file to reload");
      }
      try {
        reload_rules("control", "control (" + client + ")");
      } catch (const rules::ConfigError& error) {
        log("control (" + client + "): reload failed, keeping the current rules: " +
            error.what());
        throw ControlError(ControlErrorCode::kReloadFailed,
                           std::string(error.what()) + " (the current rules are kept)");
      }
      return {{"source", options_.rules_path},
              {"rules", engine_.rules().size()},
              {"outcome_seq", control_ ? control_->last_outcome_seq() : 0}};
    case ControlCommand::kFlows:
      return flows_json(request);
    case ControlCommand::kStats:
      return stats_json(true);
    default:
      break;
  }
  throw ControlError(ControlErrorCode::kInternal,
                     "command " + std::string(to_string(request.command)) + " reached the daemon");
}

nlohmann::json Daemon::status_json() const {
  char started[32] = "";
  std::tm utc{};
  if (gmtime_r(&started_at_, &utc) != nullptr) {
    std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &utc);
  }
  std::size_t enabled = 0;
  const std::vector<rules::RuleStatus> statuses = engine_.rules();
  for (const auto& rule : statuses) enabled += rule.enabled ? 1 : 0;
  const TrackerCounters& t = flows_.counters();
  nlohmann::json status = {
      {"version", FINWAVE_VERSION},
      {"pid", getpid()},
      {"mode", options_.mode == nf::CaptureMode::kRouter ? "router" : "local"},
      {"queue", options_.queue_num},
      {"ports", options_.ports},
      {"addresses", options_.addresses},
      {"started", started},
      {"uptime_s", static_cast<double>(now_us() - started_us_) / 1e6},
      {"rules_file", options_.rules_path.empty() ? nlohmann::json(nullptr)
                                                 : nlohmann::json(options_.rules_path)},
      {"rules", statuses.size()},
      {"rules_enabled", enabled},
      {"settle_s", options_.settle_s},
      {"linger_s", options_.linger_s},
      {"flows", {{"tracked", t.flows_tracked}, {"outcomes", t.outcomes_emitted}}},
  };
  if (queue_ && dataplane_) {
    status["segments"] = dataplane_->counters().segments;
    status["rule_hits"] = dataplane_->counters().rule_hits;
    status["queue_counters"] = {{"queued", queue_->counters().queued},
                                {"dropped", queue_->counters().dropped},
                                {"held", queue_->counters().held}};
  }
  if (control_) {
    const ControlCounters& c = control_->counters();
    status["control"] = {{"path", control_->path()},
                         {"clients", c.clients},
                         {"subscribers", c.subscribers},
                         {"waits", c.waits}};
    status["last_outcome_seq"] = control_->last_outcome_seq();
    status["rule_change_seq"] = control_->rule_change_seq();
  }
  return status;
}

nlohmann::json Daemon::rules_json() const {
  nlohmann::json list = nlohmann::json::array();
  std::size_t position = 0;
  for (const rules::RuleStatus& rule : engine_.rules()) {
    list.push_back({{"position", ++position},
                    {"name", rule.name},
                    {"enabled", rule.enabled},
                    {"summary", rule.summary},
                    {"hits", rule.hits},
                    {"origin", control_added_.count(rule.name) != 0 ? "control" : "file"}});
  }
  return {{"rules", std::move(list)},
          {"source", options_.rules_path.empty() ? nlohmann::json(nullptr)
                                                 : nlohmann::json(options_.rules_path)},
          {"generation", engine_.generation()}};
}

nlohmann::json Daemon::rule_json(const std::string& name) const {
  std::size_t position = 0;
  for (const rules::RuleStatus& rule : engine_.rules()) {
    ++position;
    if (rule.name == name) {
      return {{"position", position},
              {"name", rule.name},
              {"enabled", rule.enabled},
              {"summary", rule.summary},
              {"hits", rule.hits},
              {"origin", control_added_.count(rule.name) != 0 ? "control" : "file"}};
    }
  }
  return nullptr;
}

void Daemon::require_rule(const std::string& name) const {
  const std::vector<rules::RuleStatus> statuses = engine_.rules();
  std::vector<std::string_view> names;
  for (const auto& rule : statuses) {
    if (rule.name == name) return;
    names.push_back(rule.name);
  }
  std::string message = "no rule named '" + name + "'";
  if (const auto guess = rules::closest_match(name, names)) {
    message += "; did you mean '" + std::string(*guess) + "'?";
  } else if (names.empty()) {
    message += " (there are no rules)";
  }
  throw ControlError(ControlErrorCode::kUnknownRule, message);
}

nlohmann::json Daemon::change_rule(const ControlRequest& request, const std::string& client) {
  const std::string by = "control (" + client + ")";
  std::string change;
  std::string name = request.name;
  bool changed = true;
  switch (request.command) {
    case ControlCommand::kEnable:
    case ControlCommand::kDisable: {
      require_rule(name);
      const bool enable = request.command == ControlCommand::kEnable;
      change = enable ? "enable" : "disable";
      // A no-op must not restart every flow's rule counts (each change is a new generation).
      changed = rule_json(name).at("enabled").get<bool>() != enable;
      if (changed) engine_.set_enabled(name, enable);
      log(by + ": " + change + (changed ? "d" : "d (already)") + " rule '" + name + "'");
      break;
    }
    case ControlCommand::kAdd: {
      change = "add";
      rules::Rule rule;
      try {
        rule = rules::parse_single_rule(request.rule_toml, "add");
      } catch (const rules::ConfigError& error) {
        // JSON rules were converted to TOML: positions in that text would only confuse.
        throw ControlError(ControlErrorCode::kInvalidRule,
                           request.rule_from_json ? error.message : std::string(error.what()));
      }
      name = rule.name;
      if (!rule_json(name).is_null()) {
        throw ControlError(ControlErrorCode::kRuleExists,
                           "a rule named '" + name + "' exists already; remove it first");
      }
      const std::string summary = rules::describe(rule);
      try {
        engine_.add(std::move(rule), request.add_first ? rules::Engine::Placement::kFirst
                                                       : rules::Engine::Placement::kLast);
      } catch (const rules::ConfigError& error) {
        throw ControlError(ControlErrorCode::kInvalidRule, error.message);
      }
      control_added_.insert(name);
      log(by + ": added rule '" + name + "' " + (request.add_first ? "first" : "last") + ": " +
          summary);
      break;
    }
    case ControlCommand::kRemove:
      change = "remove";
      require_rule(name);
      engine_.remove(name);
      control_added_.erase(name);
      log(by + ": removed rule '" + name + "'");
      break;
    default:
      throw ControlError(ControlErrorCode::kInternal, "not a rule change");
  }
  if (changed && control_) {
    control_->publish_rule_change(change, name, "control", engine_.rules().size());
  }
  nlohmann::json reply = {{"change", change},
                          {"changed", changed},
                          {"rules", engine_.rules().size()},
                          {"outcome_seq", control_ ? control_->last_outcome_seq() : 0}};
  reply["rule"] = request.command == ControlCommand::kRemove ? nlohmann::json(name)
                                                             : rule_json(name);
  return reply;
}

nlohmann::json Daemon::flows_json(const ControlRequest& request) const {
  constexpr std::uint64_t kDefaultFlowLimit = 1000;
  const std::uint64_t limit = request.limit.value_or(kDefaultFlowLimit);
  const std::uint64_t now = now_us();
  std::vector<FlowSummary> flows;
  flows_.for_each_flow([&](const FlowSummary& flow) { flows.push_back(flow); });
  std::sort(flows.begin(), flows.end(),
            [](const FlowSummary& a, const FlowSummary& b) { return a.id < b.id; });
  nlohmann::json list = nlohmann::json::array();
  auto ms = [](std::uint64_t from, std::uint64_t to) {
    return to > from ? static_cast<double>(to - from) / 1000.0 : 0.0;
  };
  for (const FlowSummary& flow : flows) {
    if (list.size() >= limit) break;
    list.push_back({{"id", flow.id},
                    {"client", to_string(flow.client)},
                    {"server", to_string(flow.server)},
                    {"sides_known", flow.sides_known},
                    {"stage", std::string(flow.stage)},
                    {"closer", std::string(to_string(flow.closer))},
                    {"segments", flow.segments},
                    {"age_ms", ms(flow.first_seen_us, now)},
                    {"idle_ms", ms(flow.last_segment_us, now)}});
  }
  return {{"flows", std::move(list)},
          {"count", flows.size()},
          {"truncated", flows.size() > limit}};
}

}  // namespace finwave::proxy
