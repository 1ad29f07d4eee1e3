// The driver of a pool's resident workers (WorkerStart::once): one thread
// that hands out the calls' chunks, reads the answers, notices deaths and
// overrunning tasks through the pool engine (PoolRunner), replaces workers
// and finishes the calls. See include/concur/detail/resident.hpp.
#include "concur/detail/resident.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <string>
#include <thread>

#include "concur/detail/shared_block.hpp"
#include "fault_injection.hpp"

namespace concur::detail {

namespace {

// Chunks queued on one worker's pipe: the next is there when one ends, so
// a worker does not wait a round trip between chunks.
constexpr std::size_t kTasksPerWorker = 4;
// A second chunk is queued only when its frame is this small: the driver
// could otherwise block sending it while the worker blocks sending its
// answer to the first (both pipes full).
constexpr std::size_t kPipelinedFrameBytes = 64 * 1024;
// A chunk should take at least this long to run: handing one out and
// reading its answer costs about 10-15 us here (a map of 100 trivial items
// took 115 us in 8 chunks and 36 us in 2), so chunks of quick items are
// made larger, once a call has shown how quick they are.
constexpr double kChunkTargetNs = 200'000;
// A call whose items all take less than this together goes to one worker
// in one chunk: a second worker's round trip would cost more than it saves.
constexpr double kOneChunkNs = 20'000;
// How long an idle worker looks for its next chunk before it sleeps.
constexpr std::int64_t kWorkerLingerNs = 100'000;
// Chunks known to run faster than this may wait behind another on a
// worker's socket (see quick()).
constexpr double kQuickChunkNs = 1'000'000;

}  // namespace

struct ResidentWorkers::State final : PoolWork {
  explicit State(std::shared_ptr<const PoolSettings> s) : settings(std::move(s)) {
    const auto workers = static_cast<std::size_t>(settings->processes);
    slot_memory = map_shared(sizeof(PoolSlot) * workers);
    slots = ::new (slot_memory.get()) PoolSlot[workers];
    in_flight.resize(workers);
    runner = std::make_unique<PoolRunner>(settings, *this, settings->processes, slots);
  }
  ~State() override {
    runner.reset();  // kills and reaps any worker left
  }

  // --- any thread ------------------------------------------------------------
  void wake() const { wake_fd.wake(); }

  // --- in a worker process --------------------------------------------------
  void run_worker(WorkerLink& link) override {
    int tasks = 0;
    for (;;) {
      // The next chunk of a run of small calls comes within microseconds:
      // look for it a little while, yielding the core, before sleeping in
      // the kernel, whose wake-up costs tens of microseconds here.
      const std::int64_t until = Deadline::monotonic_ns() + kWorkerLingerNs;
      while (!link.ready() && Deadline::monotonic_ns() < until) ::sched_yield();
      auto frame = link.recv();
      if (!frame) return;  // the pool is closing
      auto task = decode<ResidentTask>(*frame);
      reinterpret_cast<ResidentEntry>(task.entry)(task, link);
      if (link.max_tasks() > 0 && ++tasks >= link.max_tasks()) return;
    }
  }

  // --- on the driver thread -------------------------------------------------
  void on_frame(int position, std::span<const std::byte> frame) override {
    auto report = decode<ResidentReport>(frame);
    auto& queue = in_flight[static_cast<std::size_t>(position)];
    if (queue.empty() || queue.front().id != report.call || queue.front().first != report.first) {
      throw FrameError("Pool: a worker answered a task it was not given");
    }
    const Task task = std::move(queue.front());
    queue.pop_front();
    if (report.placement == Placement::kNoAccess || report.remote_errno != 0) {
      // Not allowed here (a seccomp filter, a ptrace policy): from now on
      // the items and results go through the socket.
      caller_memory_open = false;
    }
    if (report.compute_ns > 0 && task.count > 0) {
      std::scoped_lock guard(timing_mutex);
      double& per_item = ns_per_item[task.entry];
      const double seen = static_cast<double>(report.compute_ns) / static_cast<double>(task.count);
      per_item = per_item == 0 ? seen : 0.75 * per_item + 0.25 * seen;
    }
    task.call->on_report(report, task.count);
  }

  std::size_t chunksize_for(std::uint64_t entry, std::size_t items) {
    const auto workers = static_cast<std::size_t>(settings->processes);
    const std::size_t python = auto_chunksize(items, workers);
    double per_item = 0;
    {
      std::scoped_lock guard(timing_mutex);
      const auto it = ns_per_item.find(entry);
      if (it != ns_per_item.end()) per_item = it->second;
    }
    if (per_item <= 0) return python;
    if (per_item * static_cast<double>(items) < kOneChunkNs) return std::max<std::size_t>(items, 1);
    const std::size_t one_each = (items + workers - 1) / workers;  // every worker gets a chunk
    const double wanted = kChunkTargetNs / per_item;
    const std::size_t target = wanted >= static_cast<double>(one_each) ? one_each
                                                                        : static_cast<std::size_t>(wanted) + 1;
    return std::max(python, target);
  }

  void on_worker_end(int position, std::uint64_t item, std::exception_ptr failure) override {
    auto queue = std::move(in_flight[static_cast<std::size_t>(position)]);
    in_flight[static_cast<std::size_t>(position)].clear();
    bool running = true;  // the first chunk is the one it was running
    for (auto& task : queue) {
      task.call->on_lost(task.first, task.count, running ? item : kNoItem,
                         running ? failure : nullptr);
      running = false;
    }
  }

  void fail_remaining(int pid, int exitcode) override {
    for (auto& call : active) call.call->fail_unfinished(nullptr, pid, exitcode);
  }

  bool wants_worker() override {
    if (draining) return false;
    if (warming) return true;
    // Idle, a dead worker is replaced when the next call comes: a worker
    // that keeps dying (its initializer) then costs nothing meanwhile.
    return std::any_of(active.begin(), active.end(), [](const Active& a) { return !a.call->done(); });
  }

  bool complete() override { return draining && active.empty(); }

  void fail_all(const std::exception_ptr& error) {
    for (auto& call : active) call.call->fail_unfinished(error, 0, 0);
  }

  void finish_done() {
    bool finished = false;
    for (auto it = active.begin(); it != active.end();) {
      if (it->call->done()) {
        it->call->finish();
        it = active.erase(it);
        finished = true;
      } else {
        ++it;
      }
    }
    if (finished) {
      // A caller waiting for the right to drive may be waiting for this.
      { std::scoped_lock guard(mutex); }
      changed.notify_all();
    }
  }

  // True when chunks of this function are known to run in under
  // kQuickChunkNs: only those are queued behind another on a worker's
  // socket. A slow chunk gains nothing from it (a round trip is far
  // shorter) and would wait there while another worker may be idle.
  bool quick(std::uint64_t entry, std::uint64_t count) {
    std::scoped_lock guard(timing_mutex);
    const auto it = ns_per_item.find(entry);
    return it != ns_per_item.end() && it->second * static_cast<double>(count) < kQuickChunkNs;
  }

  // Hands out chunks, oldest call first, one per worker in turn: every
  // idle worker gets one before any gets a second.
  void dispatch() {
    const auto positions = runner->live_positions();
    for (std::size_t depth = 1; depth <= kTasksPerWorker; ++depth) {
      for (const int position : positions) {
        auto& queue = in_flight[static_cast<std::size_t>(position)];
        if (queue.size() >= depth) continue;
        // Judged by the chunk it would wait behind (before anything is
        // encoded): a call's chunks are alike.
        if (!queue.empty() && !quick(queue.back().entry, queue.back().count)) continue;
        ResidentTask task;
        task.caller_pid = caller_memory_open ? self_pid : 0;
        std::uint64_t count = 0;
        Active* from = nullptr;
        for (auto& call : active) {
          bool got = false;
          try {
            got = call.call->next_task(task, count);
          } catch (...) {
            // Whatever a call throws fails that call, not the driver.
            call.call->fail_unfinished(std::current_exception(), 0, 0);
          }
          if (got) {
            from = &call;
            break;
          }
        }
        if (from == nullptr) return;  // nothing left to hand out
        task.call = from->id;
        const auto frame = encode(task);
        if (!queue.empty() && frame.size() > kPipelinedFrameBytes) {
          from->call->on_lost(task.first, count, kNoItem, nullptr);  // back to the front
          continue;
        }
        if (!runner->send(position, frame)) {
          from->call->on_lost(task.first, count, kNoItem, nullptr);  // it died: its end comes
          continue;
        }
        queue.push_back(Task{from->call, from->id, task.first, count, task.entry});
      }
    }
  }

  // One round of the work, by whoever drives (holds `driving`): takes in
  // the new calls, finishes those that are done, hands out chunks, waits
  // for the workers, reads their answers, replaces dead ones. False once
  // the work is over for good (terminated, or closed and drained). While
  // answers are due it looks for them a while before sleeping, yielding the
  // core between looks: a plain spin took a core from the workers (three
  // threads on two cores) and made a small map twice as slow, measured;
  // yielding made it faster (44 -> 34 us for 100 items).
  bool iterate() {
    bool stop_now = false;
    bool closed = false;
    {
      std::scoped_lock guard(mutex);
      stop_now = terminating;
      closed = closing;
      while (!inbox.empty()) {
        active.push_back(Active{std::move(inbox.front()), next_id++});
        inbox.pop_front();
      }
    }
    if (stop_now || over) {
      // Also a call that came in while the end was under way: it fails
      // rather than wait for workers that are gone.
      if (stop_now) runner->kill_all();
      fail_all(std::make_exception_ptr(std::runtime_error(
          stop_now ? "Pool.terminate(): the task was stopped before it finished"
                   : "Pool: the pool was closed before the task could run")));
      finish_done();
      over = true;
      return false;
    }
    finish_done();
    if (closed && active.empty()) draining = true;
    if (draining) {
      if (!close_sent) {
        runner->close_all();  // each worker ends after its current chunk
        close_sent = true;
      }
      if (runner->live_count() == 0) {
        over = true;
        return false;
      }
    }
    replace_workers();  // before dispatch: with none alive, poll would wait for nothing
    dispatch();

    fds.assign(1, pollfd{wake_fd.fd(), POLLIN, 0});
    runner->collect(fds);
    int rc = 0;
    if (std::any_of(in_flight.begin(), in_flight.end(), [](const auto& q) { return !q.empty(); })) {
      // Answers due: look for them a while, yielding the core to the
      // workers, before sleeping in poll.
      const std::int64_t until = Deadline::monotonic_ns() + kWorkerLingerNs;
      while ((rc = ::poll(fds.data(), fds.size(), 0)) == 0 && Deadline::monotonic_ns() < until) {
        ::sched_yield();
      }
    }
    if (rc == 0) rc = ::poll(fds.data(), fds.size(), poll_timeout_ms(runner->next_deadline_ns()));
    if (rc < 0 && errno != EINTR) {
      fail_all(std::make_exception_ptr(std::system_error(errno, std::generic_category(), "Pool: poll")));
      return true;
    }
    if (rc > 0 && (fds[0].revents & POLLIN) != 0) wake_fd.drain();
    try {
      runner->handle(fds.data() + 1, fds.size() - 1);
    } catch (const std::exception&) {
      fail_all(std::current_exception());  // a corrupt answer: nothing of it can be trusted
    }
    replace_workers();
    finish_done();
    return true;
  }

  void replace_workers() {
    try {
      runner->start_workers();
    } catch (const std::system_error&) {
      // None alive and none can be forked (EAGAIN, ENOMEM, EMFILE).
      fail_all(std::current_exception());
    }
  }

  // Takes the right to drive if nobody has it. Under `mutex`.
  bool take_drive(std::unique_lock<std::mutex>&) {
    if (driving) return false;
    driving = true;
    return true;
  }
  void release_drive() {
    {
      std::scoped_lock guard(mutex);
      driving = false;
      left_work = !active.empty() || over;
    }
    changed.notify_all();
  }

  // The driver thread: drives while asynchronous calls (or calls a waiting
  // caller left) are in, drains the workers after close(), ends them at
  // terminate().
  void loop() {
    for (;;) {
      {
        std::unique_lock guard(mutex);
        changed.wait(guard, [this] {
          return !driving && (terminating || closing || left_work || !inbox.empty());
        });
        take_drive(guard);
        left_work = false;
      }
      bool going = true;
      while (going) {
        going = iterate();
        if (going && active.empty()) {
          std::scoped_lock guard(mutex);
          if (inbox.empty() && !closing && !terminating) break;  // idle: sleep until called
        }
      }
      release_drive();
      if (!going) return;
    }
  }

  // A caller that waits for its call: it drives itself while nobody else
  // does (no thread hop on the way in or out), else waits for its result or
  // for the right to drive.
  void run_waiting(std::shared_ptr<ResidentCall> call, threading::Event& done) {
    {
      std::scoped_lock guard(mutex);
      if (closing || terminating) {
        throw std::invalid_argument("Pool: the pool is closed; make a new pool");
      }
      inbox.push_back(std::move(call));
    }
    wake();  // whoever drives now takes it in
    for (;;) {
      {
        std::unique_lock guard(mutex);
        changed.wait(guard, [&] { return done.is_set() || !driving; });
        if (done.is_set()) return;
        take_drive(guard);
      }
      bool going = true;
      while (going && !done.is_set()) going = iterate();
      release_drive();
      if (done.is_set() || !going) return;
    }
  }

  struct Active {
    std::shared_ptr<ResidentCall> call;
    std::uint64_t id = 0;
  };
  struct Task {
    std::shared_ptr<ResidentCall> call;  // kept alive until answered or lost
    std::uint64_t id = 0;
    std::uint64_t first = 0;
    std::uint64_t count = 0;
    std::uint64_t entry = 0;  // which function: its items' speed is recorded by it
  };

  // Shared, under mutex.
  std::mutex mutex;
  std::condition_variable changed;  // driving released, work left, a call finished
  std::deque<std::shared_ptr<ResidentCall>> inbox;
  bool closing = false;
  bool terminating = false;
  bool driving = false;    // a thread runs iterate(); only it touches what follows below
  bool left_work = false;  // the last driver left calls unfinished (or the end)
  std::mutex join_mutex;  // one joiner at a time
  std::mutex timing_mutex;
  std::map<std::uint64_t, double> ns_per_item;  // by task entry: how quick its items were
  std::thread driver;

  // The driver thread's (the constructor's before it starts).
  std::shared_ptr<const PoolSettings> settings;
  WakeFd wake_fd;
  std::shared_ptr<void> slot_memory;
  PoolSlot* slots = nullptr;
  std::unique_ptr<PoolRunner> runner;
  std::list<Active> active;
  std::vector<std::deque<Task>> in_flight;  // by worker position
  std::uint64_t next_id = 1;
  bool warming = true;
  bool draining = false;
  bool close_sent = false;
  bool over = false;  // terminated, or drained after close()
  bool caller_memory_open = true;  // workers may read and write this process's memory
  const std::uint64_t self_pid = static_cast<std::uint64_t>(::getpid());  // once, not per chunk
  std::vector<pollfd> fds;
};

namespace {

// Copies between this worker and the caller, whole or not at all: a
// partial transfer (a page boundary the kernel stopped at) goes on from
// where it stopped. 0, or the errno.
template <bool kRead>
int transfer_caller(std::uint64_t pid, void* local, std::uint64_t remote, std::size_t bytes) noexcept {
  auto* here = static_cast<char*>(local);
  while (bytes > 0) {
    if (fault::inject(fault::Call::kProcessVm)) return errno;
    iovec mine{here, bytes};
    iovec theirs{reinterpret_cast<void*>(remote), bytes};
    const ssize_t moved = kRead ? ::process_vm_readv(static_cast<pid_t>(pid), &mine, 1, &theirs, 1, 0)
                                : ::process_vm_writev(static_cast<pid_t>(pid), &mine, 1, &theirs, 1, 0);
    if (moved < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (moved == 0) return EFAULT;
    here += moved;
    remote += static_cast<std::uint64_t>(moved);
    bytes -= static_cast<std::size_t>(moved);
  }
  return 0;
}

}  // namespace

Placement read_remote_items(const ResidentTask& task, std::size_t offset, void* local, std::size_t bytes,
                            int& error) noexcept {
  error = transfer_caller<true>(task.caller_pid, local, task.remote_items + offset, bytes);
  // The flag is read after the items: if it still says open, the call had
  // not finished when the read ended, so the items were the call's. A
  // call that finished may have handed its items back (freed, reused):
  // nothing read then is used.
  std::uint8_t open = 0;
  const int flag_error = transfer_caller<true>(task.caller_pid, &open, task.remote_open, 1);
  if (flag_error == 0 && open == 0) return Placement::kCallClosed;
  if (error == 0) error = flag_error;
  return error == 0 ? Placement::kInPlace : Placement::kNoAccess;
}

int write_remote_results(const ResidentTask& task, std::size_t offset, const void* local,
                         std::size_t bytes) noexcept {
  return transfer_caller<false>(task.caller_pid, const_cast<void*>(local), task.remote_results + offset,
                                bytes);
}

void refuse_resident(const char* call, bool callable_copyable) {
  throw std::invalid_argument(
      std::string(call) +
      (callable_copyable
           ? ": this pool's workers were forked when it was made (WorkerStart::once), so the "
             "items are sent to them, and this item type cannot cross a process boundary "
             "(see concur::multiprocessing::transferable); use WorkerStart::per_call"
           : ": this pool's workers were forked when it was made (WorkerStart::once), so f is "
             "copied into them byte for byte and must be trivially copyable (a function, or a "
             "lambda capturing only references and trivially copyable values); use "
             "WorkerStart::per_call"));
}

ResidentWorkers::ResidentWorkers(std::shared_ptr<const PoolSettings> settings)
    : state_(std::make_shared<State>(std::move(settings))) {
  // Forked here, in the thread that makes the pool: they hold the program
  // as it is now.
  state_->runner->start_workers();
  state_->warming = false;
  // The driver blocks every signal, so that signals go to the program's own
  // threads (docs/guarantees.md, "Signals").
  sigset_t all;
  sigset_t old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    State* s = state_.get();
    state_->driver = std::thread([s] { s->loop(); });
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

ResidentWorkers::~ResidentWorkers() {
  terminate();
  join();
}

void ResidentWorkers::submit(std::shared_ptr<ResidentCall> call) {
  {
    std::scoped_lock guard(state_->mutex);
    if (state_->closing || state_->terminating) {
      throw std::invalid_argument("Pool: the pool is closed; make a new pool");
    }
    state_->inbox.push_back(std::move(call));
  }
  state_->wake();
  state_->changed.notify_all();
}

std::size_t ResidentWorkers::chunksize_for(std::uint64_t entry, std::size_t items) {
  return state_->chunksize_for(entry, items);
}

void ResidentWorkers::run(std::shared_ptr<ResidentCall> call, threading::Event& done) {
  state_->run_waiting(std::move(call), done);
}

void ResidentWorkers::close() {
  {
    std::scoped_lock guard(state_->mutex);
    state_->closing = true;
  }
  state_->wake();
  state_->changed.notify_all();
}

void ResidentWorkers::terminate() {
  {
    std::scoped_lock guard(state_->mutex);
    state_->terminating = true;
  }
  state_->wake();
  state_->changed.notify_all();
}

void ResidentWorkers::join() {
  std::scoped_lock guard(state_->join_mutex);
  if (state_->driver.joinable()) state_->driver.join();
}

}  // namespace concur::detail
