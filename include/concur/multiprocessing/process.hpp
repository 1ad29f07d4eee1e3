#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/bind_target.hpp"
#include "concur/detail/deadline.hpp"

namespace concur::detail {
struct ProcessState;
}

namespace concur::multiprocessing {

struct ProcessOptions {
  std::string name;  // empty: "Process-N" ("Process-1:2" for a child's child, as Python)
  bool daemon = false;
};

// What current_process(), parent_process() and active_children() report.
struct ProcessInfo {
  std::string name;
  pid_t pid;
  bool daemon;
};

// A child process made by fork that runs target(args...) or an overridden
// run(), then ends. Python: multiprocessing.Process with the fork start method.
// Thread-safety: every member may be called from any thread of the parent.
// Blocks: join() until the child ends; a zero or negative timeout only looks.
// Throws: std::logic_error for start() twice, join() before start() or from
//   the child itself, set_daemon() after start(), close() while the child
//   runs, a daemon process starting children; std::invalid_argument for any
//   call after close() (Python: ValueError); std::system_error when fork or
//   pidfd_open fails.
// In the child: the arguments and the whole program state are the parent's
//   as at start(). An exception escaping the target prints "Process NAME:"
//   with its type and message to the child's stderr and gives exit code 1.
//   stdio is flushed before fork so nothing is printed twice, and the child
//   ends with _exit, so the parent's atexit handlers and static destructors
//   never run in it (unless the target itself calls exit()). A child that
//   finishes its target terminates its own daemon children and joins the
//   others, as in Python.
// exitcode(): none while running or before start; 0; 1 if the target threw;
//   N after exit(N); -SIG if killed by signal SIG.
// Lifetime: destroying a Process does not stop its child; concur reaps it.
//   No child is left a zombie. At the parent's normal exit, daemon children
//   are terminated and the others joined; if the parent is killed, daemon
//   children get SIGKILL from the kernel (PR_SET_PDEATHSIG). The kernel sends
//   that signal when the *thread* that called start() ends: start daemon
//   children from a thread that lives as long as they should.
class Process {
 public:
  template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, ProcessOptions>) explicit Process(F&& target,
                                                                              Args&&... args)
      : Process(ProcessOptions{}, std::forward<F>(target), std::forward<Args>(args)...) {}
  template <class F, class... Args>
  Process(ProcessOptions options, F&& target, Args&&... args)
      : Process(std::move(options),
                concur::detail::bind_target(std::forward<F>(target), std::forward<Args>(args)...)) {
  }
  Process();
  virtual ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Calls target(args...) in the child; with no target, does nothing.
  virtual void run();
  void start();
  void join();
  template <class Rep, class Period>
  [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(concur::detail::Deadline::after(timeout));
  }
  bool is_alive();
  std::optional<int> exitcode();
  std::optional<pid_t> pid() const;
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  void close();
  // A descriptor (a pidfd) that becomes readable when the child ends.
  int sentinel() const;
  const std::string& name() const;
  void set_name(std::string name);
  bool daemon() const;
  void set_daemon(bool daemon);

 protected:
  Process(ProcessOptions options, std::function<void()> target);

 private:
  bool join_until(concur::detail::Deadline deadline);
  void send(int signal);
  [[noreturn]] void run_child();

  std::shared_ptr<concur::detail::ProcessState> state_;
};

// The CPUs this process may run on: its affinity mask, further limited by a
// cgroup v2 cpu.max quota. At least 1.
int cpu_count();
// The children still running (finished ones are reaped first), as Python.
std::vector<ProcessInfo> active_children();
// The calling process: "MainProcess" in the program's first process; in a
// child of a bare fork(), the forking process's name with the child's pid.
ProcessInfo current_process();
// None in the main process.
std::optional<ProcessInfo> parent_process();

}  // namespace concur::multiprocessing
