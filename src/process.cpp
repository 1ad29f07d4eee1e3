// Processes: fork, reaping through pidfds, names, the parent's exit, and the
// reaper for children whose Process object is gone.
#include "concur/multiprocessing/process.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "exception_text.hpp"

namespace concur::detail {

struct ProcessState {
  std::function<void()> target;
  mutable std::mutex mutex;
  std::string name;
  std::vector<int> identity;  // Python's _identity: (1,) for Process-1, (1, 2) for Process-1:2
  bool daemon = false;
  bool started = false;
  bool closed = false;
  pid_t pid = 0;
  int pidfd = -1;
  std::optional<int> exitcode;
};

}  // namespace concur::detail

namespace concur::multiprocessing {

namespace {

using concur::detail::ProcessState;

// Status we cannot know: someone else (a waitpid(-1) elsewhere) reaped it.
constexpr int kUnknownExitcode = 255;

// Per process; replaced in a child after fork, never destroyed (children
// may still be reaped while the program exits).
struct Registry {
  std::mutex mutex;
  std::vector<std::shared_ptr<ProcessState>> children;  // started, not yet reaped
  bool exit_handler_installed = false;
  // The reaper: a thread that waits on orphans' pidfds.
  std::vector<std::shared_ptr<ProcessState>> orphans;
  bool reaper_running = false;
  int reaper_wakeup = -1;           // an eventfd
  Registry* before_fork = nullptr;  // kept reachable, never freed: see reset_in_child
};
Registry* registry = new Registry;

struct Identity {
  std::string name = "MainProcess";
  pid_t pid = ::getpid();
  bool daemon = false;
  std::vector<int> numbers;
  int counter = 0;
  std::optional<ProcessInfo> parent;
  std::mutex mutex;  // guards the fields above of the current `identity`
  Identity* before_fork = nullptr;
};
Identity* identity = new Identity;

void reset_in_child() {
  // Only the forking thread exists: the old locks may be held forever. Start
  // new ones and keep the old ones reachable (they are a few bytes).
  Registry* old = registry;
  registry = new Registry;
  registry->before_fork = old;
  Identity* previous = identity;
  identity = new Identity;
  identity->before_fork = previous;
  identity->name = previous->name;
  identity->pid = ::getpid();
  identity->numbers = previous->numbers;
  identity->parent = ProcessInfo{previous->name, previous->pid, previous->daemon};
}
[[maybe_unused]] const int kAtfork = ::pthread_atfork(nullptr, nullptr, &reset_in_child);

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// With s.mutex held. True once the child's exit status is known.
bool try_reap(ProcessState& s) {
  if (s.exitcode) return true;
  if (s.pid == 0) return false;
  siginfo_t info{};
  for (;;) {
    const int rc = ::waitid(P_PID, static_cast<id_t>(s.pid), &info, WEXITED | WNOHANG);
    if (rc == 0) {
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

void forget(const ProcessState* s) {
  std::scoped_lock guard(registry->mutex);
  auto& v = registry->children;
  v.erase(std::remove_if(v.begin(), v.end(), [s](const auto& p) { return p.get() == s; }), v.end());
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

// Waits until the child has ended or the deadline passes.
bool wait_reaped(const std::shared_ptr<ProcessState>& s, concur::detail::Deadline deadline) {
  for (;;) {
    if (reap_and_forget(s)) return true;
    if (deadline.is_never()) {
      // Sleep until the child ends without reaping it (WNOWAIT), so that
      // several joiners and is_alive() still agree on who reaps, under the
      // state's mutex. Faster to wake than a poll on the pidfd.
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(s->pid), &info, WEXITED | WNOWAIT) == 0 ||
          errno == ECHILD) {
        continue;
      }
    }
    int timeout_ms = -1;
    if (!deadline.is_never()) {
      const std::int64_t left = deadline.remaining_ns();
      if (left <= 0) return false;
      timeout_ms = static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, INT_MAX));
    }
    pollfd p{s->pidfd, POLLIN, 0};
    const int rc = ::poll(&p, 1, timeout_ms);
    if (rc == 0 && !deadline.is_never() && deadline.expired()) return reap_and_forget(s);
  }
}

std::vector<std::shared_ptr<ProcessState>> children_snapshot() {
  std::scoped_lock guard(registry->mutex);
  return registry->children;
}

// Python's _exit_function: terminate daemon children, then join them all.
void finish_children() {
  for (const auto& s : children_snapshot()) {
    std::scoped_lock guard(s->mutex);
    if (s->daemon && !try_reap(*s)) ::kill(s->pid, SIGTERM);
  }
  for (const auto& s : children_snapshot()) wait_reaped(s, concur::detail::Deadline::never());
}

void at_exit() { finish_children(); }

void install_exit_handler() {
  std::scoped_lock guard(registry->mutex);
  if (!registry->exit_handler_installed) {
    registry->exit_handler_installed = true;
    std::atexit(&at_exit);
  }
}

// The reaper thread: waits on every orphan's pidfd, reaps each as it ends,
// and ends itself when none is left.
void* reaper_main(void*) {
  for (;;) {
    std::vector<std::shared_ptr<ProcessState>> orphans;
    int wakeup;
    {
      std::scoped_lock guard(registry->mutex);
      if (registry->orphans.empty()) {
        registry->reaper_running = false;
        ::close(registry->reaper_wakeup);
        registry->reaper_wakeup = -1;
        return nullptr;
      }
      orphans = registry->orphans;
      wakeup = registry->reaper_wakeup;
    }
    std::vector<pollfd> fds{{wakeup, POLLIN, 0}};
    for (const auto& s : orphans) fds.push_back({s->pidfd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      eventfd_t ignored;
      ::eventfd_read(wakeup, &ignored);
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const auto& s = orphans[i - 1];
      if (!reap_and_forget(s)) continue;
      {
        std::scoped_lock guard(s->mutex);
        ::close(s->pidfd);
        s->pidfd = -1;
      }
      std::scoped_lock guard(registry->mutex);
      auto& v = registry->orphans;
      v.erase(std::remove(v.begin(), v.end(), s), v.end());
    }
  }
}

void adopt_orphan(std::shared_ptr<ProcessState> s) {
  std::scoped_lock guard(registry->mutex);
  registry->orphans.push_back(std::move(s));
  if (registry->reaper_wakeup < 0) registry->reaper_wakeup = ::eventfd(0, EFD_CLOEXEC);
  if (registry->reaper_running) {
    ::eventfd_write(registry->reaper_wakeup, 1);
    return;
  }
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  if (::pthread_create(&thread, &attr, &reaper_main, nullptr) == 0) registry->reaper_running = true;
  ::pthread_attr_destroy(&attr);
}

void require_open(const ProcessState& s, const char* call) {
  if (s.closed) {
    throw std::invalid_argument(std::string(call) + ": the process object is closed");
  }
}

std::string default_name(std::vector<int>& numbers_out) {
  std::scoped_lock guard(identity->mutex);
  numbers_out = identity->numbers;
  numbers_out.push_back(++identity->counter);
  std::string name = "Process-";
  for (std::size_t i = 0; i < numbers_out.size(); ++i) {
    if (i) name += ':';
    name += std::to_string(numbers_out[i]);
  }
  return name;
}

void flush_stdio() {
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(nullptr);
}

}  // namespace

Process::Process() : Process(ProcessOptions{}, std::function<void()>{}) {}

Process::Process(ProcessOptions options, std::function<void()> target)
    : state_(std::make_shared<ProcessState>()) {
  state_->target = std::move(target);
  std::string name = default_name(state_->identity);  // Python counts every Process
  state_->name = options.name.empty() ? std::move(name) : std::move(options.name);
  state_->daemon = options.daemon;
}

Process::~Process() {
  ProcessState& s = *state_;
  std::unique_lock guard(s.mutex);
  if (!s.started || s.closed) return;
  if (try_reap(s)) {
    guard.unlock();
    forget(&s);
    guard.lock();
    if (s.pidfd >= 0) ::close(s.pidfd);
    s.pidfd = -1;
    return;
  }
  guard.unlock();
  adopt_orphan(state_);  // runs on; reaped when it ends
}

void Process::run() {
  if (state_->target) state_->target();
}

void Process::start() {
  {
    std::scoped_lock guard(state_->mutex);
    require_open(*state_, "Process.start()");
    if (state_->started) {
      throw std::logic_error("Process.start(): cannot start a process twice; make a new Process");
    }
  }
  {
    std::scoped_lock guard(identity->mutex);
    if (identity->daemon) {
      throw std::logic_error(
          "Process.start(): daemonic processes are not allowed to have children");
    }
  }
  // Reap what has finished, as Python's start() does.
  for (const auto& s : children_snapshot()) reap_and_forget(s);
  install_exit_handler();

  const pid_t parent = ::getpid();
  flush_stdio();
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw std::system_error(errno, std::generic_category(), "Process.start(): fork failed");
  }
  if (pid == 0) {
    if (state_->daemon) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // The parent may have died before prctl: then we were re-parented.
      if (::getppid() != parent) ::_exit(1);
    }
    run_child();
  }
  const int pidfd = pidfd_open(pid);
  if (pidfd < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw std::system_error(err, std::generic_category(), "Process.start(): pidfd_open failed");
  }
  {
    std::scoped_lock guard(state_->mutex);
    state_->started = true;
    state_->pid = pid;
    state_->pidfd = pidfd;
  }
  std::scoped_lock guard(registry->mutex);
  registry->children.push_back(state_);
}

void Process::run_child() {
  {
    std::scoped_lock guard(identity->mutex);
    identity->name = state_->name;
    identity->daemon = state_->daemon;
    identity->numbers = state_->identity;
    identity->counter = 0;
  }
  int code = 0;
  try {
    run();
  } catch (...) {
    const std::string text = "Process " + state_->name + ":\n" +
                             concur::detail::describe_exception(std::current_exception()) + "\n";
    std::fwrite(text.data(), 1, text.size(), stderr);
    code = 1;
  }
  try {
    finish_children();
  } catch (...) {
  }
  flush_stdio();
  ::_exit(code);
}

void Process::join() { join_until(concur::detail::Deadline::never()); }

bool Process::join_until(concur::detail::Deadline deadline) {
  {
    std::scoped_lock guard(state_->mutex);
    require_open(*state_, "Process.join()");
    if (!state_->started) {
      throw std::logic_error("Process.join(): can only join a started process; call start() first");
    }
  }
  if (state_->pid == ::getpid())
    throw std::logic_error("Process.join(): a process cannot join itself");
  return wait_reaped(state_, deadline);
}

bool Process::is_alive() {
  std::scoped_lock guard(state_->mutex);
  require_open(*state_, "Process.is_alive()");
  if (!state_->started) return false;
  if (state_->pid == ::getpid()) return true;
  return !try_reap(*state_);
}

std::optional<int> Process::exitcode() {
  std::scoped_lock guard(state_->mutex);
  require_open(*state_, "Process.exitcode()");
  if (!state_->started) return std::nullopt;
  try_reap(*state_);
  return state_->exitcode;
}

std::optional<pid_t> Process::pid() const {
  std::scoped_lock guard(state_->mutex);
  if (!state_->started) return std::nullopt;
  return state_->pid;
}

void Process::send(int signal) {
  std::scoped_lock guard(state_->mutex);
  require_open(*state_, "Process.terminate()");
  // Until reaped the pid cannot be reused, so this reaches our child.
  if (state_->started && !try_reap(*state_)) ::kill(state_->pid, signal);
}

void Process::terminate() { send(SIGTERM); }
void Process::kill() { send(SIGKILL); }

void Process::close() {
  {
    std::scoped_lock guard(state_->mutex);
    if (state_->closed) return;
    if (state_->started && !try_reap(*state_)) {
      throw std::logic_error(
          "Process.close(): the process is still running; join() or terminate() it first");
    }
    if (state_->pidfd >= 0) ::close(state_->pidfd);
    state_->pidfd = -1;
    state_->closed = true;
    state_->target = nullptr;
  }
  forget(state_.get());
}

int Process::sentinel() const {
  std::scoped_lock guard(state_->mutex);
  require_open(*state_, "Process.sentinel()");
  if (!state_->started)
    throw std::invalid_argument("Process.sentinel(): the process is not started");
  return state_->pidfd;
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
  require_open(*state_, "Process.set_daemon()");
  if (state_->started) {
    throw std::logic_error(
        "Process.set_daemon(): cannot change the daemon flag of a started process");
  }
  state_->daemon = daemon;
}

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
  std::scoped_lock guard(identity->mutex);
  return ProcessInfo{identity->name, ::getpid(), identity->daemon};
}

std::optional<ProcessInfo> parent_process() {
  std::scoped_lock guard(identity->mutex);
  return identity->parent;
}

}  // namespace concur::multiprocessing
