#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/bind_target.hpp"
#include "concur/detail/deadline.hpp"

namespace concur::detail {
struct ProcessState;
struct ProcessAccess;
// For tests: 0 probes the kernel (the default), 1 uses pidfds, 2 uses the
// pipe sentinel of kernels without pidfd_open. Applies to later start()s.
void set_sentinel_mode_for_testing(int mode);
// cpu_count()'s cgroup part, for tests: the CPU limit of a process whose
// /proc/self/cgroup and /proc/self/mountinfo read as given, with the file
// system under fs_root ("" for the real one); 0 when no quota applies.
int cgroup_cpu_limit(std::string_view cgroup_text, std::string_view mountinfo_text,
                     const std::string& fs_root);
}  // namespace concur::detail

namespace concur::multiprocessing {

/// Python: Process(name=..., daemon=...), the keyword arguments besides the target.
struct ProcessOptions {
  std::string name;  ///< empty: "Process-N" ("Process-1:2" for a child's child, as Python)
  /// Python: daemon=True: terminated when the parent exits or dies, and may
  /// not start children of its own.
  bool daemon = false;
};

/// What current_process(), parent_process() and active_children() report: a
/// copy taken at the call (Python returns the Process object itself).
struct ProcessInfo {
  /// Python: Process.name.
  std::string name;
  /// Python: Process.pid.
  pid_t pid;
  /// Python: Process.daemon.
  bool daemon;
};

/// A child process made by fork that runs target(args...) or an overridden
/// run(), then ends.
/// - Python: multiprocessing.Process with the fork start method.
/// - Thread-safety: every member may be called from any thread of the process
///   that created the object; several threads may join() it at once.
/// - Blocks: start() for the fork; join() until the child has ended; a zero,
///   negative or past timeout only looks, a huge one waits forever.
/// - Throws: std::logic_error for start() twice, join() before start(); join(),
///   start(), is_alive(), terminate() or kill() from a process other than the
///   one that created the object (e.g. the child joining itself); set_daemon()
///   after start(), terminate()/kill() before start(), a daemon process
///   starting children; std::invalid_argument (a std::logic_error, Python's
///   ValueError) for close() while the child runs, sentinel() before start(),
///   and start(), join(), is_alive(), pid(), terminate(), kill(), sentinel()
///   after close(); std::system_error when fork, a descriptor or a thread
///   cannot be made.
///
/// - The child: the arguments and the whole program state are the parent's as
///   at start(); start() flushes C stdio and std::cout/cerr/clog first, so
///   buffered text is printed once. The child runs run(); an exception escaping
///   it prints `"Process NAME:\n"` and `"TYPE: message"` (demangled, as the last
///   line of Python's traceback) to stderr and gives exit code 1. Then, as
///   Python's child bootstrap does, it terminates its own daemon children,
///   joins the others, waits for its non-daemon concur threads, flushes stdio
///   and ends with _exit: the parent's atexit handlers and static destructors
///   never run in it. exit(N) called by the target gives exit code N the same
///   way: concur's on_exit handler, registered in the child, runs first and
///   ends the child with _exit(N), so only handlers registered in the child
///   after it started run (glibc; elsewhere exit() runs every handler).
///   Unlike Python, which points the child's sys.stdin at /dev/null, the
///   child keeps descriptor 0 and stdin as they were (their buffered input
///   included): read stdin in one process only.
/// - exitcode(): none before start and while running (and after close(), as
///   Python); 0; 1 if run() threw; N after exit(N) or _exit(N); -SIG if killed
///   by signal SIG; 255 if code outside concur reaped the child first (e.g. a
///   waitpid(-1) of the program's own: concur only ever waits for its own
///   children by pid).
/// - sentinel(): a pidfd (pidfd_open); on kernels without it, the read end of
///   a pipe whose write end only the child holds (it is closed in the child's
///   own children). Readable once the child has ended, and stays readable.
///
/// - Lifetime: destroying a Process does not stop its child: the child runs on
///   and concur reaps it (from join/start/active_children calls and a small
///   internal thread that exists only while such orphans run). No child is
///   left a zombie. At the parent's normal exit (main returns or exit()),
///   after waiting for non-daemon concur threads as Python does, daemon
///   children get SIGTERM and every child is joined.
/// - Daemon children also get PR_SET_PDEATHSIG(SIGKILL), checked against the
///   parent's pid right after prctl() (the parent may die during fork), so a
///   killed parent takes them along. The kernel sends that signal when the
///   *thread* that forked ends, so a daemon child started from any thread
///   but the main thread is forked by an internal thread of concur that lives
///   until every child it forked is reaped. The child runs on that thread's
///   copy: the caller's signal mask, CPU affinity and thread name are copied
///   to it, but thread_local variables are the internal thread's, and its
///   stack is the default size. A main thread that calls pthread_exit()
///   still takes its daemon children along. Non-daemon children outlive a
///   killed parent, as in Python.
class Process {
 public:
  /// Python: Process(target=f, args=(...)); not started yet.
  /// The arguments are copied (decayed) at construction, as Python binds
  /// them; std::ref(x) passes x by reference. The child's daemon flag is the
  /// calling process's, as Python (false unless called in a daemon child,
  /// where start() is refused anyway).
  template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, ProcessOptions> &&
           !std::is_base_of_v<Process, std::decay_t<F>> &&
           std::is_invocable_v<std::decay_t<F>&,
                               std::unwrap_ref_decay_t<Args>&...>) explicit Process(F&& target,
                                                                                    Args&&... args)
      : Process(ProcessOptions{},
                concur::detail::bind_target(std::forward<F>(target), std::forward<Args>(args)...),
                kInheritDaemon) {}
  /// Python: Process(target=f, args=(...), name=..., daemon=...): as above,
  /// with the name and daemon flag of `options`.
  template <class F, class... Args>
  requires std::is_invocable_v < std::decay_t<F>
  &, std::unwrap_ref_decay_t<Args>&... > Process(ProcessOptions options, F&& target, Args&&... args)
      : Process(std::move(options),
                concur::detail::bind_target(std::forward<F>(target), std::forward<Args>(args)...),
                kOptionsDaemon) {}
  /// For subclasses that override run().
  Process();
  /// Does not stop the child: it runs on and concur reaps it (see Lifetime).
  virtual ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// Calls target(args...) in the child; with no target, does nothing. The
  /// parent drops its copy of the target once the child is started (Python's
  /// start() deletes _target), so captured handles are released there.
  virtual void run();
  /// Forks; the child runs run() and ends (see The child). Returns in the
  /// parent once the child exists.
  void start();
  /// Waits until the child has ended and reaps it; exitcode() is set then.
  void join();
  /// As join(), waiting at most `timeout`; true when the child has ended
  /// (Python returns None and leaves the check to exitcode()).
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(concur::detail::Deadline::after(timeout));
  }
  /// Reaps the child if it has ended; never blocks. True in the child for
  /// its own Process object.
  bool is_alive();
  /// Python: Process.exitcode; the values are in the class description. Reaps
  /// the child if it has ended; never blocks.
  std::optional<int> exitcode();
  /// Python: Process.pid: empty before start(); in the child, its own pid.
  std::optional<pid_t> pid() const;
  void terminate();  ///< SIGTERM; nothing once the child has ended
  void kill();       ///< SIGKILL; nothing once the child has ended
  /// Releases the sentinel; twice is harmless.
  void close();
  /// Python: Process.sentinel: a descriptor to poll() or select() on with
  /// others; owned by the Process (close() closes it).
  int sentinel() const;
  /// Default "Process-N". The reference stays valid until set_name() or the
  /// object's end.
  const std::string& name() const;
  /// Python: p.name = ...; also after start(), in this process only.
  void set_name(std::string name);
  /// Python: Process.daemon.
  bool daemon() const;
  /// Python: p.daemon = ...; after start(): std::logic_error.
  void set_daemon(bool daemon);

 private:
  enum DaemonSource { kInheritDaemon, kOptionsDaemon };
  Process(ProcessOptions options, std::function<void()> target, DaemonSource daemon);
  bool join_until(concur::detail::Deadline deadline);
  void send(int signal, const char* call);
  [[noreturn]] void run_child(int sentinel_write);
  friend struct concur::detail::ProcessAccess;

  std::shared_ptr<concur::detail::ProcessState> state_;
};

/// Python: multiprocessing.cpu_count(), but as os.process_cpu_count() has it:
/// the CPUs this process may run on: its affinity mask, further limited by a
/// cgroup v2 cpu.max quota (ceil(quota / period), looked up from this
/// process's cgroup up to the root). At least 1.
int cpu_count();
/// Python: multiprocessing.active_children(). The children of this process
/// still running, in start order; those that ended are reaped first, as
/// Python does.
std::vector<ProcessInfo> active_children();
/// Python: multiprocessing.current_process(). The calling process:
/// "MainProcess" in the program's first process, the Process name in a
/// concur child. In a child of a bare fork() (or any process concur did not
/// start), the forking process's name and daemon flag with the calling
/// process's own pid.
ProcessInfo current_process();
/// Python: multiprocessing.parent_process(). None in the main process; in a
/// concur child its parent; in a child of a bare fork() the forking process.
std::optional<ProcessInfo> parent_process();

}  // namespace concur::multiprocessing
