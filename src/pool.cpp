// The process Pool's engine: forking a call's workers, reading their frames,
// noticing deaths and overrunning tasks, replacing workers, and the
// supervisor thread of the asynchronous calls.
#include "concur/detail/pool_engine.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>

#include <cxxabi.h>

#include "concur/errors.hpp"
#include "concur/multiprocessing/connection.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/process.hpp"
#include "exception_text.hpp"
#include "fault_injection.hpp"

namespace concur::detail {

namespace mp = concur::multiprocessing;

std::pair<std::string, std::string> exception_parts(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return {demangle(typeid(ex).name()), ex.what()};
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return {type != nullptr ? demangle(type->name()) : std::string("unknown exception"), ""};
  }
}

void WorkerLink::send(std::span<const std::byte> frame) { end_.send(kBytesTag, frame); }

WakeFd::WakeFd() {
  fd_ = fault::inject(fault::Call::kEventfd) ? -1 : ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "Pool: eventfd");
}

WakeFd::~WakeFd() { ::close(fd_); }

void WakeFd::wake() const {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);
}

void WakeFd::drain() const {
  std::uint64_t count = 0;
  [[maybe_unused]] const ssize_t n = ::read(fd_, &count, sizeof count);
}

int poll_timeout_ms(std::int64_t deadline_ns) {
  if (deadline_ns == Deadline::kNever) return -1;
  const std::int64_t left = deadline_ns - Deadline::monotonic_ns();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, INT_MAX));
}

bool WorkerLink::ready() {
  try {
    return end_.poll(Deadline::now_only());
  } catch (const std::exception&) {
    return true;  // recv() reports it
  }
}

std::optional<std::vector<std::byte>> WorkerLink::recv() {
  try {
    std::vector<std::byte> frame = end_.recv(kBytesTag);
    if (frame.empty()) return std::nullopt;  // the caller's "no more tasks"
    return frame;
  } catch (const EOFError&) {
    return std::nullopt;
  }
}

namespace {

std::atomic<int> g_worker_number{0};

std::int64_t deadline_ns_of(Deadline d) {
  if (d.is_never()) return Deadline::kNever;
  return Deadline::monotonic_ns() + d.remaining_ns();
}

}  // namespace

struct PoolRunner::Worker {
  int position = 0;
  pid_t pid = 0;
  std::unique_ptr<mp::Process> process;
  std::shared_ptr<Endpoint> end;  // the caller's end of the worker's pipe
  bool pipe_open = true;          // false once the worker's end reported EOF
  bool timed_out = false;
};

PoolRunner::PoolRunner(std::shared_ptr<const PoolSettings> settings, PoolWork& work,
                       int max_workers, PoolSlot* slots)
    : settings_(std::move(settings)),
      work_(work),
      max_workers_(max_workers < 1 ? 1 : max_workers),
      slots_(slots),
      workers_(static_cast<std::size_t>(max_workers_)) {}

PoolRunner::~PoolRunner() { kill_all(); }

int PoolRunner::live_count() const {
  int n = 0;
  for (const auto& w : workers_) n += w != nullptr ? 1 : 0;
  return n;
}

std::vector<int> PoolRunner::live_positions() const {
  std::vector<int> out;
  for (const auto& w : workers_) {
    if (w != nullptr) out.push_back(w->position);
  }
  return out;
}

void PoolRunner::start_workers() {
  for (int position = 0; position < max_workers_; ++position) {
    if (workers_[static_cast<std::size_t>(position)] != nullptr) continue;
    // Asked again before every fork: a small call may be done by the first
    // worker before a second is worth forking.
    if (!work_.wants_worker()) return;
    try {
      fork_worker(position);
    } catch (const std::system_error&) {
      // Out of processes, memory or descriptors (EAGAIN, ENOMEM, EMFILE):
      // the workers that run carry on, and forking is tried again after
      // each of them ends. With none running, the call fails with the
      // error instead of waiting for resources that may never come.
      if (live_count() == 0) throw;
      return;
    }
  }
}

void PoolRunner::fork_worker(int position) {
  PoolSlot& slot = slots_[position];
  std::atomic_ref<std::uint64_t>(slot.item).store(kNoItem, std::memory_order_relaxed);
  slot.since_ns.store(0, std::memory_order_relaxed);
  auto [parent_end, child_end] = mp::detail_pipe::make_pipe(true);

  // The child closes the caller's ends it inherits, so that only the
  // caller holds them.
  std::vector<Endpoint*> not_ours{parent_end.get()};
  for (const auto& w : workers_) {
    if (w != nullptr) not_ours.push_back(w->end.get());
  }
  PoolWork* work = &work_;
  const PoolSettings* settings = settings_.get();
  Endpoint* own = child_end.get();
  const bool timed = settings->task_timeout_ns > 0;
  auto body = [work, settings, own, not_ours, &slot, timed] {
    for (Endpoint* e : not_ours) e->close();
    if (settings->initializer) {
      try {
        settings->initializer();
      } catch (...) {
        const std::string text = describe_exception(std::current_exception());
        std::fprintf(stderr, "Pool worker %d: the initializer threw %s\n",
                     static_cast<int>(::getpid()), text.c_str());
      }
    }
    WorkerLink link(*own, slot, timed, settings->maxtasksperchild);
    work->run_worker(link);
    own->close();
  };
  auto w = std::make_unique<Worker>();
  w->position = position;
  w->end = std::move(parent_end);
  const int number = g_worker_number.fetch_add(1, std::memory_order_relaxed) + 1;
  w->process = std::make_unique<mp::Process>(
      mp::ProcessOptions{settings_->name_prefix + "-" + std::to_string(number), true},
      std::move(body));
  w->process->start();
  child_end->close();
  w->pid = *w->process->pid();
  workers_[static_cast<std::size_t>(position)] = std::move(w);
}

void PoolRunner::read_frames(Worker& w, bool draining) {
  // A frame arrives whole (the worker writes it in one go); one that is cut
  // short or corrupt means the worker is gone or broken: stop reading it.
  while (w.pipe_open) {
    if (draining && !w.end->poll(Deadline::now_only())) return;
    std::vector<std::byte> frame;
    try {
      frame = w.end->recv(kBytesTag);
    } catch (const EOFError&) {
      w.pipe_open = false;  // it closed its end: it is ending
      return;
    } catch (const std::exception&) {
      w.pipe_open = false;  // cut short or corrupt: it cannot be trusted further
      if (!draining) w.process->kill();
      return;
    }
    work_.on_frame(w.position, frame);
    if (!draining) return;
  }
}

void PoolRunner::end_worker(Worker& w) {
  read_frames(w, true);
  w.process->join();
  const int code = w.process->exitcode().value_or(255);
  const std::uint64_t item = running_item(slots_[w.position]);
  std::exception_ptr failure;
  if (item != kNoItem) {
    if (w.timed_out) {
      const double limit = static_cast<double>(settings_->task_timeout_ns) / 1e9;
      failure = std::make_exception_ptr(TimeoutError(
          "Pool: the task for item " + std::to_string(item) + " ran longer than task_timeout (" +
          std::to_string(limit) + " s); its worker was stopped"));
    } else {
      failure = std::make_exception_ptr(WorkerLostError(static_cast<std::size_t>(item), w.pid, code));
    }
    idle_deaths_ = 0;
  } else if (code != 0) {
    ++idle_deaths_;
  } else {
    idle_deaths_ = 0;
  }
  const int position = w.position;
  const pid_t pid = w.pid;
  workers_[static_cast<std::size_t>(position)].reset();
  work_.on_worker_end(position, item, failure);
  if (idle_deaths_ > max_workers_ + 2) {
    idle_deaths_ = 0;
    work_.fail_remaining(pid, code);
  }
}

void PoolRunner::check_timeouts() {
  if (settings_->task_timeout_ns <= 0) return;
  const std::int64_t now = Deadline::monotonic_ns();
  for (auto& w : workers_) {
    if (w == nullptr || w->timed_out) continue;
    PoolSlot& slot = slots_[w->position];
    if (running_item(slot) == kNoItem) continue;
    if (now - slot.since_ns.load(std::memory_order_relaxed) >= settings_->task_timeout_ns) {
      w->timed_out = true;
      w->process->kill();
    }
  }
}

std::int64_t PoolRunner::next_deadline_ns() const {
  if (settings_->task_timeout_ns <= 0) return Deadline::kNever;
  const std::int64_t now = Deadline::monotonic_ns();
  // A worker idle now may start an item at once: look again within a
  // fraction of the timeout (and at least every 50 ms).
  std::int64_t next = now + std::min<std::int64_t>(settings_->task_timeout_ns / 4 + 1, 50'000'000);
  for (const auto& w : workers_) {
    if (w == nullptr || w->timed_out) continue;
    PoolSlot& slot = slots_[w->position];
    if (running_item(slot) == kNoItem) continue;
    next = std::min(next, slot.since_ns.load(std::memory_order_relaxed) + settings_->task_timeout_ns);
  }
  return next;
}

void PoolRunner::collect(std::vector<pollfd>& fds) const {
  for (const auto& w : workers_) {
    if (w == nullptr) continue;
    fds.push_back(pollfd{w->pipe_open ? w->end->fileno() : -1, POLLIN, 0});
    fds.push_back(pollfd{w->process->sentinel(), POLLIN, 0});
  }
}

void PoolRunner::handle(const pollfd* fds, std::size_t count) {
  std::size_t at = 0;
  std::vector<Worker*> ended;
  for (auto& w : workers_) {
    if (w == nullptr) continue;
    if (at + 2 > count) break;
    const pollfd& pipe = fds[at];
    const pollfd& sentinel = fds[at + 1];
    at += 2;
    if (pipe.fd >= 0 && (pipe.revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_frames(*w, false);
    if ((sentinel.revents & (POLLIN | POLLHUP | POLLERR)) != 0) ended.push_back(w.get());
  }
  for (Worker* w : ended) end_worker(*w);
  check_timeouts();
}

void PoolRunner::step(Deadline deadline) {
  std::vector<pollfd> fds;
  collect(fds);
  const std::int64_t until = std::min(deadline_ns_of(deadline), next_deadline_ns());
  if (fds.empty()) {
    check_timeouts();
    return;
  }
  const int rc = ::poll(fds.data(), fds.size(), poll_timeout_ms(until));
  if (rc < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "Pool: poll");
  if (rc < 0) return;
  handle(fds.data(), fds.size());
}

bool PoolRunner::finished() const { return live_count() == 0 && work_.complete(); }

void PoolRunner::run() {
  start_workers();
  while (!finished()) {
    if (live_count() == 0 && !work_.wants_worker()) {
      // Nothing alive and nothing to hand out, yet results are missing:
      // fail them rather than wait forever.
      work_.fail_remaining(0, 0);
      if (finished()) return;
    }
    step(Deadline::never());
    start_workers();
  }
}

void PoolRunner::kill_all() {
  for (auto& w : workers_) {
    if (w == nullptr) continue;
    try {
      w->process->kill();
      w->process->join();
    } catch (...) {
      // The worker is reaped by Process's own machinery in every case.
    }
    w.reset();
  }
}

void PoolRunner::close_all() {
  for (auto& w : workers_) {
    if (w == nullptr) continue;
    try {
      w->end->send(kBytesTag, {});
    } catch (...) {
      // Already gone: its sentinel says so.
    }
  }
}

bool PoolRunner::send(int position, std::span<const std::byte> frame) {
  Worker* w = workers_[static_cast<std::size_t>(position)].get();
  if (w == nullptr) return false;
  try {
    w->end->send(kBytesTag, frame);
    return true;
  } catch (const std::exception&) {
    return false;  // it died; its sentinel will say so
  }
}

// --- the supervisor of asynchronous calls -----------------------------------

struct PoolSupervisor::State {
  explicit State(std::shared_ptr<const PoolSettings> s) : settings(std::move(s)) {}

  void wake() const { wake_fd.wake(); }

  void start_thread() {
    if (thread.joinable()) return;
    // The supervisor blocks every signal, so that signals go to the
    // program's own threads (docs/guarantees.md, "Signals").
    sigset_t all;
    sigset_t old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      thread = std::thread([this] { loop(); });
    } catch (...) {
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  // Jobs that may fork now: at most `processes` calls run at once.
  void start_queued(std::unique_lock<std::mutex>&) {
    while (!queued.empty() && static_cast<int>(running.size()) < settings->processes) {
      Job job = std::move(queued.front());
      queued.pop_front();
      try {
        job.runner->start_workers();
      } catch (...) {
        job.fail(std::current_exception());
        continue;
      }
      running.push_back(std::move(job));
    }
  }

  void loop() {
    std::vector<pollfd> fds;
    std::vector<std::size_t> starts;
    for (;;) {
      std::vector<Job*> jobs;
      {
        std::unique_lock guard(mutex);
        if (terminating) {
          auto error = std::make_exception_ptr(
              std::runtime_error("Pool.terminate(): the task was stopped before it finished"));
          for (auto& job : running) {
            job.runner->kill_all();
            job.fail(error);
          }
          for (auto& job : queued) job.fail(error);
          running.clear();
          queued.clear();
          idle.notify_all();
          return;
        }
        start_queued(guard);
        if (running.empty() && queued.empty()) {
          idle.notify_all();
          if (stopping) return;
        }
        for (auto& job : running) jobs.push_back(&job);
      }
      fds.assign(1, pollfd{wake_fd.fd(), POLLIN, 0});
      starts.clear();
      std::int64_t until = Deadline::kNever;
      for (Job* job : jobs) {
        starts.push_back(fds.size());
        job->runner->collect(fds);
        until = std::min(until, job->runner->next_deadline_ns());
      }
      const int rc = ::poll(fds.data(), fds.size(), poll_timeout_ms(until));
      if (rc < 0 && errno != EINTR) continue;
      if ((fds[0].revents & POLLIN) != 0) wake_fd.drain();
      std::vector<Job*> done;
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        Job& job = *jobs[i];
        const std::size_t end = i + 1 < jobs.size() ? starts[i + 1] : fds.size();
        try {
          if (rc > 0) job.runner->handle(fds.data() + starts[i], end - starts[i]);
          job.runner->start_workers();
          if (job.runner->live_count() == 0 && !job.work->complete() &&
              !job.work->wants_worker()) {
            job.work->fail_remaining(0, 0);
          }
          if (job.runner->finished()) done.push_back(&job);
        } catch (...) {
          job.runner->kill_all();
          job.fail(std::current_exception());
          done.push_back(&job);
          job.finish = nullptr;
        }
      }
      if (done.empty()) continue;
      for (Job* job : done) {
        if (job->finish) job->finish();
      }
      std::unique_lock guard(mutex);
      running.remove_if([&](const Job& j) {
        return std::find(done.begin(), done.end(), &j) != done.end();
      });
    }
  }

  std::shared_ptr<const PoolSettings> settings;
  WakeFd wake_fd;
  std::mutex mutex;
  std::condition_variable idle;
  std::list<Job> running;
  std::deque<Job> queued;
  bool stopping = false;
  bool terminating = false;
  std::thread thread;
};

PoolSupervisor::PoolSupervisor(std::shared_ptr<const PoolSettings> settings)
    : state_(std::make_shared<State>(std::move(settings))) {}

PoolSupervisor::~PoolSupervisor() {
  try {
    terminate();
  } catch (...) {
    // A destructor never throws; terminate() only joins a thread.
  }
}

void PoolSupervisor::submit(Job job) {
  std::unique_lock guard(state_->mutex);
  if (static_cast<int>(state_->running.size()) < state_->settings->processes &&
      state_->queued.empty()) {
    // Forked here, in the caller's thread, while the state is the call's.
    guard.unlock();
    try {
      job.runner->start_workers();
    } catch (...) {
      // No worker could be forked: the result carries the error, as every
      // other failure of an asynchronous call.
      job.fail(std::current_exception());
      return;
    }
    guard.lock();
    state_->running.push_back(std::move(job));
  } else {
    state_->queued.push_back(std::move(job));
  }
  state_->start_thread();
  state_->wake();
}

void PoolSupervisor::join() {
  {
    std::unique_lock guard(state_->mutex);
    state_->stopping = true;
    if (!state_->thread.joinable()) return;
  }
  state_->wake();
  if (state_->thread.get_id() != std::this_thread::get_id()) state_->thread.join();
}

void PoolSupervisor::terminate() {
  {
    std::unique_lock guard(state_->mutex);
    state_->terminating = true;
    if (!state_->thread.joinable()) {
      auto error = std::make_exception_ptr(
          std::runtime_error("Pool.terminate(): the task was stopped before it finished"));
      for (auto& job : state_->queued) job.fail(error);
      state_->queued.clear();
      return;
    }
  }
  state_->wake();
  if (state_->thread.get_id() != std::this_thread::get_id()) state_->thread.join();
}

}  // namespace concur::detail

// --- Pool's non-template parts ----------------------------------------------

namespace concur::multiprocessing {
int cpu_count();
}

namespace concur::detail {

namespace {

std::shared_ptr<const PoolSettings> make_settings(mp::PoolOptions options) {
  if (options.processes < 0) {
    throw std::invalid_argument("Pool(): processes must be at least 1 (or 0 for cpu_count()), got " +
                                std::to_string(options.processes));
  }
  if (options.maxtasksperchild < 0) {
    throw std::invalid_argument("Pool(): maxtasksperchild must be >= 0 (0: no limit), got " +
                                std::to_string(options.maxtasksperchild));
  }
  auto settings = std::make_shared<PoolSettings>();
  settings->processes = options.processes == 0 ? mp::cpu_count() : options.processes;
  settings->initializer = std::move(options.initializer);
  settings->maxtasksperchild = options.maxtasksperchild;
  settings->resident = options.worker_start == mp::WorkerStart::once;
  if (options.task_timeout) {
    const std::int64_t ns = Deadline::saturating_ns(*options.task_timeout);
    if (ns <= 0) {
      throw std::invalid_argument("Pool(): task_timeout must be a positive duration");
    }
    settings->task_timeout_ns = ns == Deadline::kNever ? 0 : ns;
  }
  return settings;
}

}  // namespace

PoolCore::PoolCore(mp::PoolOptions options)
    : settings_(make_settings(std::move(options))), supervisor_(settings_) {
  if (settings_->resident) resident_ = std::make_unique<ResidentWorkers>(settings_);
}

PoolCore::~PoolCore() = default;

void PoolCore::require_running(const char* call) const {
  std::scoped_lock guard(mutex_);
  if (state_ != 0) {
    throw std::invalid_argument(std::string(call) + ": the pool is " +
                                (state_ == 1 ? "closed" : "terminated") + "; make a new pool");
  }
}

void PoolCore::close() {
  {
    std::scoped_lock guard(mutex_);
    if (state_ == 0) state_ = 1;
  }
  if (resident_) resident_->close();
}

void PoolCore::terminate() {
  {
    std::scoped_lock guard(mutex_);
    state_ = 2;
  }
  supervisor_.terminate();
  if (resident_) resident_->terminate();
}

void PoolCore::join() {
  {
    std::scoped_lock guard(mutex_);
    if (state_ == 0) {
      throw std::invalid_argument(
          "Pool.join(): the pool is still running; call close() or terminate() first");
    }
  }
  supervisor_.join();
  if (resident_) resident_->join();
}

}  // namespace concur::detail
