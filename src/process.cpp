// Processes: fork, sentinels (pidfd or pipe), reaping by pid only, names and
// identities, the parent's exit, the reaper for children whose Process
// object is gone, and the internal thread that forks daemon children for
// threads other than the main thread.
#include "concur/multiprocessing/process.hpp"

#include <cxxabi.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <new>
#include <stdexcept>
#include <system_error>
#include <typeinfo>

#ifdef __GLIBCXX__
#include <ext/stdio_sync_filebuf.h>
#endif

#include "concur/threading/thread.hpp"
#include "exception_text.hpp"
#include "fault_injection.hpp"
#include "fork_page.hpp"

namespace concur::detail {

struct ProcessState {
  const pid_t creator = ::getpid();  // Python's _parent_pid: only this process may use it
  std::function<void()> target;      // dropped in the parent once started, as Python
  mutable std::mutex mutex;          // guards all below
  std::string name;
  std::vector<int> identity;  // Python's _identity: {1} for Process-1, {1, 2} for Process-1:2
  bool daemon = false;
  bool starting = false;  // a start() is forking: a second one is refused
  bool started = false;
  bool closed = false;
  pid_t pid = 0;  // fixed once started
  // Forked by the fork thread, which lives until this child is reaped.
  std::atomic<bool> via_fork_thread{false};
  int sentinel = -1;  // a pidfd or the read end of a pipe; -1 once closed
  std::optional<int> exitcode;
};

// What the fork thread needs of Process's private members.
struct ProcessAccess {
  [[noreturn]] static void run_child(multiprocessing::Process& p, int sentinel_write) {
    p.run_child(sentinel_write);
  }
};

}  // namespace concur::detail

namespace concur::multiprocessing {

namespace {

using concur::detail::Deadline;
using concur::detail::ProcessState;
namespace fault = concur::detail::fault;

// The status of a child that code outside concur reaped first.
constexpr int kUnknownExitcode = 255;

// ---------------------------------------------------------------------------
// Per-process state. In a child of fork each structure is replaced by a new
// one (the locks of the old one may belong to threads that do not exist
// there); the old one is kept reachable and never freed. Nothing here is
// ever destroyed: children may still be reaped while the program exits.

struct Registry {
  std::mutex mutex;  // guards all below; held across fork (see before_fork)
  std::vector<std::shared_ptr<ProcessState>> children;  // started, not yet reaped
  // Children whose Process object is gone; the reaper thread polls them.
  std::vector<std::shared_ptr<ProcessState>> orphans;
  bool reaper_running = false;
  int reaper_wakeup = -1;  // an eventfd; open while the reaper runs
  Registry* before_fork = nullptr;
  // Set when a child is listed: until then finish_children has nothing to
  // do, and a fork child that started none ends without taking the lock
  // (one page of code less to fault in: fork_page.hpp).
  std::atomic<bool> listed_any{false};
};

struct Identity {
  std::mutex mutex;  // guards all below; held across fork
  std::string name = "MainProcess";
  pid_t pid = ::getpid();  // whose identity this is; not getpid() after a raw clone
  bool daemon = false;
  std::vector<int> numbers;  // Python's _identity of this process
  int counter = 0;           // Python's _process_counter: the last number given
  std::optional<ProcessInfo> parent;
  const ProcessState* self = nullptr;  // in a concur child: its own Process object
  int sentinel_write = -1;  // pipe sentinel: the write end this process holds for its parent
};

// How to fork one child.
struct ForkPlan {
  Process* process = nullptr;
  pid_t parent = 0;
  bool daemon = false;
  int pipe_read = -1;
  int pipe_write = -1;
  // Set when the fork thread forks for another thread: that thread's
  // attributes, for the child.
  bool for_caller = false;
  sigset_t mask{};
  bool has_affinity = false;
  cpu_set_t affinity{};
  char comm[17] = {};
};

struct ForkJob {
  ForkPlan plan;
  pid_t result = -1;
  int error = 0;
  bool done = false;
};

// The fork thread's queue. The thread exists while a job waits or a child
// it forked is not yet reaped: its end would send PR_SET_PDEATHSIG.
struct Forker {
  std::mutex mutex;  // guards all below; held across fork
  std::condition_variable work;
  std::condition_variable finished;
  std::vector<ForkJob*> jobs;
  int live = 0;  // children it forked, not yet reaped
  bool running = false;
  Forker* before_fork = nullptr;
};

std::atomic<Registry*> g_registry{nullptr};
std::atomic<Identity*> g_identity{nullptr};
std::atomic<Forker*> g_forker{nullptr};
std::atomic<bool> g_exit_handler{false};  // per program: fork copies the registration
std::atomic<int> g_sentinel_mode{0};      // 0 not probed, 1 pidfd, 2 pipe

void before_fork();
void after_fork_in_parent();
void after_fork_in_child();

// Runs at static initialization (kInitialized), so that a bare fork() before
// any use of concur still gives the child an identity of its own.
void initialize() {
  static const bool done = [] {
    // The first three live on the fork page (fork_page.hpp).
    struct FirstState {
      Identity identity;
      Registry registry;
      Forker forker;
    };
    auto* first = new (concur::detail::fork_page_allocate(sizeof(FirstState), alignof(FirstState)))
        FirstState;  // never destroyed (see above)
    // run_child copies the child's numbers in: no allocation in the child.
    first->identity.numbers.reserve(8);
    g_identity.store(&first->identity, std::memory_order_release);
    g_registry.store(&first->registry, std::memory_order_release);
    g_forker.store(&first->forker, std::memory_order_release);
    ::pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
    return true;
  }();
  (void)done;
}

Registry& registry() {
  initialize();
  return *g_registry.load(std::memory_order_acquire);
}
Identity& identity() {
  initialize();
  return *g_identity.load(std::memory_order_acquire);
}
Forker& forker() {
  initialize();
  return *g_forker.load(std::memory_order_acquire);
}

[[maybe_unused]] const bool kInitialized = [] {
  initialize();
  return true;
}();

// Holding the three locks across fork() gives the child consistent
// structures. No code path holds two of them at once, or one of them (or a
// ProcessState's) while it forks.
CONCUR_FORK_PATH void before_fork() {
  if (Identity* i = g_identity.load(std::memory_order_acquire)) i->mutex.lock();
  if (Registry* r = g_registry.load(std::memory_order_acquire)) r->mutex.lock();
  if (Forker* f = g_forker.load(std::memory_order_acquire)) f->mutex.lock();
}

CONCUR_FORK_PATH void after_fork_in_parent() {
  if (Forker* f = g_forker.load(std::memory_order_acquire)) f->mutex.unlock();
  if (Registry* r = g_registry.load(std::memory_order_acquire)) r->mutex.unlock();
  if (Identity* i = g_identity.load(std::memory_order_acquire)) i->mutex.unlock();
}

// Only the forking thread exists now, and it holds the three locks. A
// structure that lists the parent's children, or whose condition variables
// another thread of the parent may have been waiting on, is replaced by a
// new one (the old one is kept reachable, never freed); otherwise the child
// keeps it and only its fields change. The common case, a parent with no
// other live child and no fork thread at work, thus allocates nothing in the
// child: every allocation there costs copy-on-write faults, and they were a
// third of what Process start+join cost beyond a bare fork (measured with
// perf, docs/benchmarks.md).
CONCUR_FORK_PATH void after_fork_in_child() {
  Identity* identity = g_identity.load(std::memory_order_acquire);
  Registry* old_registry = g_registry.load(std::memory_order_acquire);
  Forker* old_forker = g_forker.load(std::memory_order_acquire);
  if (identity == nullptr) return;

  // A thread that is gone here may have held a child's lock: the parent's
  // Process objects stay usable in the child (name(), pid()).
  for (const auto* list : {&old_registry->children, &old_registry->orphans}) {
    for (const auto& s : *list) concur::detail::reset_if_held(s->mutex);
  }

  // The child's own identity; as Python after os.fork(), it keeps the
  // parent's name and counter until run_child sets them.
  identity->parent = ProcessInfo{identity->name, identity->pid, identity->daemon};
  identity->pid = ::getpid();
  identity->self = nullptr;
  // A pipe sentinel's write end is for the process it reports on only.
  if (identity->sentinel_write >= 0) ::close(identity->sentinel_write);
  identity->sentinel_write = -1;

  if (!old_registry->children.empty() || !old_registry->orphans.empty() ||
      old_registry->reaper_running) {
    auto* fresh_registry = new Registry;
    fresh_registry->before_fork = old_registry;
    g_registry.store(fresh_registry, std::memory_order_release);
  } else {
    old_registry->listed_any.store(false, std::memory_order_relaxed);  // it lists nothing
  }
  if (!old_forker->jobs.empty() || old_forker->live != 0 || old_forker->running) {
    auto* fresh_forker = new Forker;
    fresh_forker->before_fork = old_forker;
    g_forker.store(fresh_forker, std::memory_order_release);
  }
  // This thread took these locks in before_fork (a lock left held would
  // also confuse TSan).
  old_forker->mutex.unlock();
  old_registry->mutex.unlock();
  identity->mutex.unlock();
}

// ---------------------------------------------------------------------------
// Small system helpers.

int pidfd_open(pid_t pid) {
  if (fault::inject(fault::Call::kPidfdOpen)) return -1;
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

bool use_pidfd() {
  int mode = g_sentinel_mode.load(std::memory_order_acquire);
  if (mode == 0) {
    const int fd = pidfd_open(::getpid());
    if (fd >= 0) ::close(fd);
    int expected = 0;
    g_sentinel_mode.compare_exchange_strong(expected, fd >= 0 ? 1 : 2);
    mode = g_sentinel_mode.load(std::memory_order_acquire);
  }
  return mode == 1;
}

pid_t gettid_now() { return ::gettid(); }

void sleep_ns(std::int64_t ns) {
  if (ns <= 0) return;
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// A standard stream that writes straight into its C stream (the default,
// sync_with_stdio(true)) holds nothing of its own: flushing stdout and
// stderr empties it. Telling so reads two pointers, where flush() would run libstdc++ code
// that a fresh child has to fault in page by page.
CONCUR_FORK_PATH bool holds_no_buffer(std::ostream& stream) {
#ifdef __GLIBCXX__
  std::streambuf* const buffer = stream.rdbuf();
  return buffer != nullptr && typeid(*buffer) == typeid(__gnu_cxx::stdio_sync_filebuf<char>);
#else
  (void)stream;
  return false;
#endif
}

// True when the C stream may hold output not yet written. With glibc it
// reads the put area's two pointers, without the stream's lock: fflush
// takes the lock, a write to a page that every fork makes copy-on-write,
// and in a fresh child it is one more page of libc code to fault in. A
// stale answer (another thread printing at that very moment) only moves
// that text to just after the fork instead of just before.
CONCUR_FORK_PATH bool may_hold_output(std::FILE* stream) {
#ifdef __GLIBC__
  if (__atomic_load_n(&stream->_mode, __ATOMIC_RELAXED) > 0) return true;  // wide: let fflush tell
  return __atomic_load_n(&stream->_IO_write_ptr, __ATOMIC_RELAXED) !=
         __atomic_load_n(&stream->_IO_write_base, __ATOMIC_RELAXED);
#else
  (void)stream;
  return true;
#endif
}

// stdout and stderr, C and C++, as CPython flushes sys.stdout and
// sys.stderr before fork and at the end of a child (util._flush_std_streams).
// Other FILE streams are the program's to flush: a child ends with _exit and
// never writes out what the parent had buffered in them.
CONCUR_FORK_PATH void flush_stdio() {
  try {
    for (std::ostream* stream : {&std::cout, &std::cerr, &std::clog}) {
      if (!holds_no_buffer(*stream)) stream->flush();
    }
  } catch (...) {  // a stream set to throw: flushing is best effort, as in Python
  }
  for (std::FILE* stream : {stdout, stderr}) {
    if (may_hold_output(stream)) std::fflush(stream);
  }
}

// ---------------------------------------------------------------------------
// Reaping. waitid() always names one pid: concur never reaps a child it did
// not start. Until a child is reaped its pid cannot be reused, so kill() and
// waitid() on it reach that child.

// With s.mutex held. True once the child's exit status is known.
bool try_reap(ProcessState& s) {
  if (s.exitcode) return true;
  if (s.pid <= 0) return false;
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(s.pid), &info, WEXITED | WNOHANG) == 0) {
      if (info.si_pid != s.pid) return false;  // still running
      s.exitcode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == ECHILD) {
      s.exitcode = kUnknownExitcode;
      return true;
    }
    return false;
  }
}

// A child forked by the fork thread is reaped: the thread may end once
// none is left.
void release_fork_thread(ProcessState& s) {
  if (!s.via_fork_thread.exchange(false)) return;
  Forker& f = forker();
  {
    std::scoped_lock guard(f.mutex);
    --f.live;
  }
  f.work.notify_all();
}

// After a child is reaped (or closed): off the list of children.
void forget(ProcessState* s) {
  {
    Registry& r = registry();
    std::scoped_lock guard(r.mutex);
    auto& v = r.children;
    v.erase(std::remove_if(v.begin(), v.end(), [s](const auto& p) { return p.get() == s; }),
            v.end());
  }
  release_fork_thread(*s);
}

bool reap_and_forget(const std::shared_ptr<ProcessState>& s) {
  bool done;
  {
    std::scoped_lock guard(s->mutex);
    done = try_reap(*s);
  }
  if (done) forget(s.get());
  return done;
}

// Waits until the child has ended and is reaped, or the deadline passes.
bool wait_reaped(const std::shared_ptr<ProcessState>& s, Deadline deadline) {
  std::int64_t backoff_ns = 100'000;
  for (;;) {
    if (reap_and_forget(s)) return true;
    if (deadline.is_never()) {
      // Sleep until the child ends without reaping it (WNOWAIT), so that
      // whoever reaps does it under the state's lock. A signal handler's
      // EINTR just loops. Wakes faster than a poll on the sentinel.
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(s->pid), &info, WEXITED | WNOWAIT) == 0 ||
          errno == EINTR || errno == ECHILD) {
        continue;
      }
    }
    const std::int64_t left = deadline.remaining_ns();
    if (left <= 0) return false;
    int sentinel;
    {
      std::scoped_lock guard(s->mutex);
      sentinel = s->sentinel;
    }
    const int timeout_ms =
        deadline.is_never()
            ? -1
            : static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, INT_MAX));
    pollfd p{sentinel, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) > 0 && !reap_and_forget(s)) {
      // Readable, yet running: a pipe sentinel whose child called exec().
      // Look at its status with a growing pause instead.
      sleep_ns(std::min(backoff_ns, deadline.remaining_ns()));
      backoff_ns = std::min<std::int64_t>(backoff_ns * 2, 10'000'000);
    }
  }
}

CONCUR_FORK_PATH std::vector<std::shared_ptr<ProcessState>> children_snapshot() {
  Registry& r = registry();
  std::scoped_lock guard(r.mutex);
  return r.children;
}

}  // namespace
}  // namespace concur::multiprocessing

namespace concur::detail {
// Python's threading._shutdown(), in src/thread.cpp: waits for every
// non-daemon thread but the main one and the caller, then joins the
// finished threads nobody joined.
void threading_shutdown();
}  // namespace concur::detail

namespace concur::multiprocessing {
namespace {

// In a child before it ends, and at the program's exit.
CONCUR_FORK_PATH void wait_for_non_daemon_threads() { concur::detail::threading_shutdown(); }

// Python's util._exit_function(): terminate the daemon children, then join
// every child.
CONCUR_FORK_PATH void finish_children() {
  if (!registry().listed_any.load(std::memory_order_acquire)) return;
  for (const auto& s : children_snapshot()) {
    std::scoped_lock guard(s->mutex);
    if (s->daemon && !try_reap(*s)) ::kill(s->pid, SIGTERM);
  }
  for (const auto& s : children_snapshot()) wait_reaped(s, Deadline::never());
}

// At the normal exit of a program that started children, in Python's
// order: first the threads, then the children.
void at_exit() {
  wait_for_non_daemon_threads();
  finish_children();
}

void install_exit_handler() {
  // Loaded first: a compare-and-swap writes its page even when it fails,
  // and after every fork that write is a copy-on-write fault.
  if (g_exit_handler.load(std::memory_order_acquire)) return;
  bool expected = false;
  if (g_exit_handler.compare_exchange_strong(expected, true)) std::atexit(&at_exit);
}

// Starts a detached thread that takes none of the program's signals.
bool start_internal_thread(void* (*body)(void*), void* arg) {
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  const int rc = ::pthread_create(&thread, &attr, body, arg);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::pthread_attr_destroy(&attr);
  errno = rc;
  return rc == 0;
}

// ---------------------------------------------------------------------------
// The reaper: a thread that exists while some child runs whose Process
// object is gone. It polls their sentinels, reaps each as it ends, closes
// its sentinel, and ends itself when none is left. It holds a lock only for
// a few instructions at a time, never while it polls.

void* reaper_main(void* arg) {
  Registry& r = *static_cast<Registry*>(arg);  // a fork child never runs this thread
  for (;;) {
    std::vector<std::shared_ptr<ProcessState>> orphans;
    int wakeup;
    {
      std::scoped_lock guard(r.mutex);
      if (r.orphans.empty()) {
        r.reaper_running = false;
        ::close(r.reaper_wakeup);
        r.reaper_wakeup = -1;
        return nullptr;
      }
      orphans = r.orphans;
      wakeup = r.reaper_wakeup;
    }
    std::vector<pollfd> fds{{wakeup, POLLIN, 0}};
    for (const auto& s : orphans) {
      std::scoped_lock guard(s->mutex);  // only the reaper closes an orphan's sentinel
      fds.push_back({s->sentinel, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      eventfd_t ignored;
      ::eventfd_read(wakeup, &ignored);
    }
    bool exec_pending = false;
    for (std::size_t k = 1; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) continue;
      const auto& s = orphans[k - 1];
      if (!reap_and_forget(s)) {
        exec_pending = true;  // a pipe sentinel whose child called exec()
        continue;
      }
      {
        std::scoped_lock guard(s->mutex);
        if (s->sentinel >= 0) ::close(s->sentinel);
        s->sentinel = -1;
      }
      std::scoped_lock guard(r.mutex);
      auto& v = r.orphans;
      v.erase(std::remove(v.begin(), v.end(), s), v.end());
    }
    if (exec_pending) sleep_ns(10'000'000);
  }
}

void adopt_orphan(std::shared_ptr<ProcessState> s) {
  Registry& r = registry();
  std::scoped_lock guard(r.mutex);
  r.orphans.push_back(std::move(s));
  r.listed_any.store(true, std::memory_order_release);
  if (r.reaper_running) {
    ::eventfd_write(r.reaper_wakeup, 1);
    return;
  }
  r.reaper_wakeup = fault::inject(fault::Call::kEventfd) ? -1 : ::eventfd(0, EFD_CLOEXEC);
  if (r.reaper_wakeup >= 0) {
    r.reaper_running = start_internal_thread(&reaper_main, &r);
    if (r.reaper_running) return;
    ::close(r.reaper_wakeup);
    r.reaper_wakeup = -1;
  }
  // No thread: the orphan is still in the children list, reaped by the next
  // start(), active_children() or the exit handler.
  r.orphans.pop_back();
}

// ---------------------------------------------------------------------------
// Fork: on the calling thread, or on the fork thread for a daemon child
// started by a thread that may end before it (PR_SET_PDEATHSIG fires when
// the forking *thread* ends).

// In the parent returns the pid, or -1 with errno set; the child never
// returns.
CONCUR_FORK_PATH pid_t fork_now(const ForkPlan& plan) {
  flush_stdio();
  const pid_t pid = fault::inject(fault::Call::kFork) ? -1 : ::fork();
  if (pid != 0) return pid;
  if (plan.for_caller) {
    if (plan.has_affinity) ::sched_setaffinity(0, sizeof plan.affinity, &plan.affinity);
    ::prctl(PR_SET_NAME, plan.comm, 0, 0, 0);
  }
  if (plan.daemon) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    // The parent may have died before prctl: we were re-parented already.
    if (::getppid() != plan.parent) ::_exit(1);
  }
  // The fork thread takes no signals; the child takes the caller's.
  if (plan.for_caller) ::pthread_sigmask(SIG_SETMASK, &plan.mask, nullptr);
  if (plan.pipe_read >= 0) ::close(plan.pipe_read);
  concur::detail::ProcessAccess::run_child(*plan.process, plan.pipe_write);
}

void* forker_main(void* arg) {
  Forker& f = *static_cast<Forker*>(arg);  // a fork child never runs this thread
  for (;;) {
    ForkJob* job;
    {
      std::unique_lock guard(f.mutex);
      f.work.wait(guard, [&] { return !f.jobs.empty() || f.live == 0; });
      if (f.jobs.empty()) {
        f.running = false;  // every child it forked is reaped
        return nullptr;
      }
      job = f.jobs.front();
      f.jobs.erase(f.jobs.begin());
    }
    const pid_t pid = fork_now(job->plan);  // holds no lock
    const int error = errno;
    {
      std::scoped_lock guard(f.mutex);
      job->result = pid;
      job->error = error;
      job->done = true;
      if (pid > 0) ++f.live;
    }
    f.finished.notify_all();
  }
}

pid_t fork_on_fork_thread(ForkPlan plan) {
  plan.for_caller = true;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &plan.mask);
  plan.has_affinity = ::sched_getaffinity(0, sizeof plan.affinity, &plan.affinity) == 0;
  ::prctl(PR_GET_NAME, plan.comm, 0, 0, 0);
  Forker& f = forker();
  ForkJob job{plan};
  std::unique_lock guard(f.mutex);
  if (!f.running) {
    if (!start_internal_thread(&forker_main, &f)) return -1;
    f.running = true;
  }
  f.jobs.push_back(&job);
  f.work.notify_one();
  f.finished.wait(guard, [&] { return job.done; });
  errno = job.error;
  return job.result;
}

// ---------------------------------------------------------------------------
// Checks and names.

void require_open(const ProcessState& s, const char* call) {
  if (s.closed) {
    throw std::invalid_argument(std::string(call) +
                                ": the process object is closed; make a new Process");
  }
}

void require_creator(const ProcessState& s, const char* call, const char* what) {
  if (s.creator != ::getpid()) {
    throw std::logic_error(std::string(call) + ": " + what +
                           "; only the process that created the Process object may do this");
  }
}

// True in a concur child for its own Process object.
bool is_self(const ProcessState& s) {
  Identity& i = identity();
  std::scoped_lock guard(i.mutex);
  return i.self == &s && i.pid == ::getpid();
}

std::string default_name(std::vector<int>& numbers_out, bool& daemon_out) {
  Identity& i = identity();
  std::scoped_lock guard(i.mutex);
  numbers_out = i.numbers;
  numbers_out.push_back(++i.counter);
  daemon_out = i.daemon;
  std::string name = "Process-";
  for (std::size_t k = 0; k < numbers_out.size(); ++k) {
    if (k) name += ':';
    name += std::to_string(numbers_out[k]);
  }
  return name;
}

// The end of a concur child: no SIGPIPE from a last flush into a closed
// pipe (Python ignores SIGPIPE), then _exit.
CONCUR_FORK_PATH [[noreturn]] void end_child(int code) {
  sigset_t pipe_only;
  ::sigemptyset(&pipe_only);
  ::sigaddset(&pipe_only, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
  flush_stdio();
  ::_exit(code);
}

// exit(N) in a concur child ends it as the end of run() does, with code N,
// before the handlers the parent registered can run.
CONCUR_FORK_PATH [[maybe_unused]] void child_on_exit(int status, void*) {
  {
    Identity& i = identity();
    std::scoped_lock guard(i.mutex);
    if (i.self == nullptr || i.pid != ::getpid()) return;  // a bare fork of the child
  }
  finish_children();
  wait_for_non_daemon_threads();
  end_child(status);
}

}  // namespace

}  // namespace concur::multiprocessing

void concur::detail::set_sentinel_mode_for_testing(int mode) {
  concur::multiprocessing::g_sentinel_mode.store(mode, std::memory_order_release);
}

namespace concur::multiprocessing {

// ---------------------------------------------------------------------------
// Process.

Process::Process() : Process(ProcessOptions{}, std::function<void()>{}, kInheritDaemon) {}

Process::Process(ProcessOptions options, std::function<void()> target, DaemonSource source)
    : state_(std::make_shared<ProcessState>()) {
  bool inherited = false;
  std::string name = default_name(state_->identity, inherited);  // Python counts every Process
  state_->target = std::move(target);
  state_->name = options.name.empty() ? std::move(name) : std::move(options.name);
  state_->daemon = source == kInheritDaemon ? inherited : options.daemon;
}

Process::~Process() {
  ProcessState& s = *state_;
  if (s.creator != ::getpid()) return;  // the parent's object, copied into a child
  bool reaped;
  {
    std::scoped_lock guard(s.mutex);
    if (!s.started || s.closed) return;
    reaped = try_reap(s);
    if (reaped && s.sentinel >= 0) {
      ::close(s.sentinel);
      s.sentinel = -1;
    }
  }
  if (reaped) {
    forget(&s);
  } else {
    adopt_orphan(state_);  // runs on; reaped when it ends
  }
}

CONCUR_FORK_PATH void Process::run() {
  if (state_->target) state_->target();
}

void Process::start() {
  ProcessState& s = *state_;
  const auto require_unstarted = [&s] {
    require_open(s, "Process.start()");
    if (s.started || s.starting) {
      throw std::logic_error("Process.start(): cannot start a process twice; make a new Process");
    }
  };
  {
    std::scoped_lock guard(s.mutex);
    require_unstarted();
  }
  require_creator(s, "Process.start()",
                  "can only start a process object created by the current process");
  {
    Identity& i = identity();
    std::scoped_lock guard(i.mutex);
    if (i.daemon) {
      throw std::logic_error(
          "Process.start(): daemonic processes are not allowed to have children");
    }
  }
  bool daemon;
  {
    std::scoped_lock guard(s.mutex);
    require_unstarted();  // again: another thread may have started it meanwhile
    s.starting = true;
    daemon = s.daemon;
  }
  struct Unclaim {
    ProcessState& s;
    bool armed = true;
    ~Unclaim() {
      if (!armed) return;
      std::scoped_lock guard(s.mutex);
      s.starting = false;
    }
  } unclaim{s};

  // Reap what has ended, as Python's start() does (_cleanup).
  for (const auto& c : children_snapshot()) reap_and_forget(c);
  install_exit_handler();

  ForkPlan plan;
  plan.process = this;
  plan.parent = ::getpid();
  plan.daemon = daemon;
  const bool pidfd = use_pidfd();
  if (!pidfd) {
    int fds[2];
    if (fault::inject(fault::Call::kPipe) || ::pipe2(fds, O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::generic_category(),
                              "Process.start(): cannot make the sentinel pipe");
    }
    plan.pipe_read = fds[0];
    plan.pipe_write = fds[1];
  }

  const bool via_fork_thread = daemon && gettid_now() != ::getpid();
  const pid_t pid = via_fork_thread ? fork_on_fork_thread(plan) : fork_now(plan);
  if (pid < 0) {
    const int err = errno;
    if (!pidfd) {
      ::close(plan.pipe_read);
      ::close(plan.pipe_write);
    }
    throw std::system_error(err, std::generic_category(), "Process.start(): fork failed");
  }
  s.via_fork_thread = via_fork_thread;

  int sentinel = plan.pipe_read;
  std::optional<int> exitcode;
  if (pidfd) {
    sentinel = pidfd_open(pid);
    if (sentinel < 0 && errno == ESRCH) {
      // Already reaped by code outside concur: its status is lost.
      exitcode = kUnknownExitcode;
      sentinel = fault::inject(fault::Call::kEventfd)
                     ? -1
                     : ::eventfd(1, EFD_CLOEXEC);  // readable, as a sentinel of an ended child
    }
    if (sentinel < 0) {
      const int err = errno;
      ::kill(pid, SIGKILL);
      siginfo_t info{};
      while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED) != 0 && errno == EINTR) {
      }
      release_fork_thread(s);
      throw std::system_error(err, std::generic_category(),
                              "Process.start(): cannot open a pidfd for the child");
    }
  } else {
    ::close(plan.pipe_write);
  }

  std::function<void()> dropped;
  {
    std::scoped_lock guard(s.mutex);
    s.started = true;
    s.starting = false;
    s.pid = pid;
    s.sentinel = sentinel;
    s.exitcode = exitcode;
    dropped = std::move(s.target);  // Python's start() deletes _target and _args
    s.target = nullptr;
  }
  unclaim.armed = false;
  if (exitcode) {
    release_fork_thread(s);
  } else {
    Registry& r = registry();
    std::scoped_lock guard(r.mutex);
    r.children.push_back(state_);
    r.listed_any.store(true, std::memory_order_release);
  }
}

CONCUR_FORK_PATH void Process::run_child(int sentinel_write) {
  ProcessState& s = *state_;
  // A thread of the parent may have held this lock at the fork. Reading s
  // needs no lock here: only this thread exists until the target starts
  // one, and start() took the lock before it forked. Not taking it leaves
  // the Process object's page unwritten (fork_page.hpp).
  concur::detail::reset_if_held(s.mutex);
  std::string name;
  {
    Identity& i = identity();  // the child's own (after_fork_in_child); no lock, as above
    i.name = s.name;
    i.daemon = s.daemon;
    i.numbers = s.identity;
    i.counter = 0;
    i.self = &s;
    i.sentinel_write = sentinel_write;
  }
#ifdef __GLIBC__
  ::on_exit(&child_on_exit, nullptr);
#endif
  int code = 0;
  std::exception_ptr error;
  try {
    run();
  } catch (abi::__forced_unwind&) {
    throw;  // pthread_exit() in the target: let the thread end
  } catch (...) {
    error = std::current_exception();
    code = 1;
  }
  // Python's _bootstrap: _exit_function() first, then the traceback, then
  // threading._shutdown().
  try {
    finish_children();
  } catch (...) {
  }
  if (error) {
    {
      std::scoped_lock guard(s.mutex);
      name = s.name;
    }
    std::string text = "Process " + name + ":\n";
    try {
      text += concur::detail::describe_exception(error) + "\n";
    } catch (...) {
      text += "unknown exception\n";
    }
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  }
  wait_for_non_daemon_threads();
  end_child(code);
}

void Process::join() { (void)join_until(Deadline::never()); }

bool Process::join_until(Deadline deadline) {
  ProcessState& s = *state_;
  {
    std::scoped_lock guard(s.mutex);
    require_open(s, "Process.join()");
  }
  require_creator(s, "Process.join()", "can only join a child process");
  {
    std::scoped_lock guard(s.mutex);
    if (!s.started) {
      throw std::logic_error("Process.join(): can only join a started process; call start() first");
    }
  }
  return wait_reaped(state_, deadline);
}

bool Process::is_alive() {
  ProcessState& s = *state_;
  {
    std::scoped_lock guard(s.mutex);
    require_open(s, "Process.is_alive()");
  }
  if (is_self(s)) return true;
  require_creator(s, "Process.is_alive()", "can only test a child process");
  {
    std::scoped_lock guard(s.mutex);
    if (!s.started) return false;
  }
  return !reap_and_forget(state_);
}

std::optional<int> Process::exitcode() {
  ProcessState& s = *state_;
  if (is_self(s)) return std::nullopt;
  {
    std::scoped_lock guard(s.mutex);
    if (s.closed || !s.started) return std::nullopt;  // Python: None once closed
    if (s.creator != ::getpid()) return s.exitcode;   // not ours to reap here
  }
  reap_and_forget(state_);
  std::scoped_lock guard(s.mutex);
  return s.exitcode;
}

std::optional<pid_t> Process::pid() const {
  ProcessState& s = *state_;
  {
    std::scoped_lock guard(s.mutex);
    require_open(s, "Process.pid()");
  }
  if (is_self(s)) return ::getpid();
  std::scoped_lock guard(s.mutex);
  if (!s.started) return std::nullopt;
  return s.pid;
}

void Process::send(int signal, const char* call) {
  ProcessState& s = *state_;
  {
    std::scoped_lock guard(s.mutex);
    require_open(s, call);
    if (!s.started) {
      throw std::logic_error(std::string(call) + ": the process has not been started");
    }
  }
  require_creator(s, call, "can only signal a child process");
  bool reaped;
  {
    std::scoped_lock guard(s.mutex);
    reaped = try_reap(s);
    if (!reaped) ::kill(s.pid, signal);  // unreaped: the pid is still this child's
  }
  if (reaped) forget(&s);
}

void Process::terminate() { send(SIGTERM, "Process.terminate()"); }
void Process::kill() { send(SIGKILL, "Process.kill()"); }

void Process::close() {
  ProcessState& s = *state_;
  std::function<void()> dropped;
  {
    std::scoped_lock guard(s.mutex);
    if (s.closed) return;
    if (s.starting || (s.started && (s.creator != ::getpid() ? !s.exitcode : !try_reap(s)))) {
      throw std::invalid_argument(
          "Process.close(): cannot close a process while it is still running; join() or "
          "terminate() it first");
    }
    if (s.sentinel >= 0) ::close(s.sentinel);
    s.sentinel = -1;
    s.closed = true;
    dropped = std::move(s.target);
    s.target = nullptr;
  }
  forget(&s);
}

int Process::sentinel() const {
  ProcessState& s = *state_;
  std::scoped_lock guard(s.mutex);
  require_open(s, "Process.sentinel()");
  if (!s.started) {
    throw std::invalid_argument(
        "Process.sentinel(): the process is not started; call start() first");
  }
  return s.sentinel;
}

const std::string& Process::name() const {
  std::scoped_lock guard(state_->mutex);
  return state_->name;
}

void Process::set_name(std::string name) {
  std::scoped_lock guard(state_->mutex);
  state_->name = std::move(name);
}

bool Process::daemon() const {
  std::scoped_lock guard(state_->mutex);
  return state_->daemon;
}

void Process::set_daemon(bool daemon) {
  std::scoped_lock guard(state_->mutex);
  if (state_->started || state_->starting) {
    throw std::logic_error("Process.set_daemon(): the process has already started");
  }
  state_->daemon = daemon;
}

// ---------------------------------------------------------------------------
// Module functions.

std::vector<ProcessInfo> active_children() {
  std::vector<ProcessInfo> out;
  for (const auto& s : children_snapshot()) {
    if (reap_and_forget(s)) continue;
    std::scoped_lock guard(s->mutex);
    out.push_back(ProcessInfo{s->name, s->pid, s->daemon});
  }
  return out;
}

ProcessInfo current_process() {
  Identity& i = identity();
  std::scoped_lock guard(i.mutex);
  return ProcessInfo{i.name, ::getpid(), i.daemon};
}

std::optional<ProcessInfo> parent_process() {
  Identity& i = identity();
  std::scoped_lock guard(i.mutex);
  // A raw clone that ran no fork handler: the identity is the forking
  // process's.
  if (i.pid != ::getpid()) return ProcessInfo{i.name, i.pid, i.daemon};
  return i.parent;
}

}  // namespace concur::multiprocessing
