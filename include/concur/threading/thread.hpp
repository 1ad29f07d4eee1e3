#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
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
struct ThreadState;
}

namespace concur::threading {

/// Python: Thread(name=..., daemon=...), the keyword arguments besides the target.
struct ThreadOptions {
  std::string name;  ///< empty: "Thread-N", numbered consecutively
  std::optional<bool>
      daemon;  ///< unset: inherit the creating thread's flag (the main thread's is false)
};

/// What current_thread(), main_thread() and enumerate() report: a copy taken
/// at the call, not a live view (Python returns the Thread object itself).
struct ThreadInfo {
  /// Python: Thread.name.
  std::string name;
  /// Python: Thread.ident: the pthread_t, as get_ident() returns it.
  std::uint64_t ident;
  /// Python: Thread.native_id: the kernel's thread id (gettid).
  std::int64_t native_id;
  /// Python: Thread.daemon.
  bool daemon;
};

/// Python: threading.ExceptHookArgs, what the excepthook receives.
struct ExceptHookArgs {
  /// The exception that escaped the target (Python: exc_type, exc_value, exc_traceback).
  std::exception_ptr exception;
  /// The name of the thread it escaped from (Python: thread.name).
  std::string thread_name;
};
/// Python: the callable assigned to threading.excepthook.
using ExceptHook = std::function<void(const ExceptHookArgs&)>;

/// A thread of control that runs target(args...) or an overridden run().
/// - Python: threading.Thread.
/// - Thread-safety: every member may be called from any thread; several
///   threads may join() the same Thread.
/// - Blocks: start() until the new thread runs (so ident() is set); join()
///   until the thread has ended and the OS thread is gone (its thread_local
///   objects destroyed); a zero or negative join timeout only looks.
/// - Throws: std::logic_error for start() twice, join() before start() or from
///   the thread itself, set_daemon() after start(); std::system_error when
///   the system cannot make a thread.
/// - Lifetime: the arguments are copied at construction, as Python binds them.
///   Destroying a running non-daemon Thread joins it; a running daemon Thread
///   is detached and runs on (safe at any time for a Thread with a target or
///   a Timer; for a subclass that overrides run() it waits for run() to end).
///   A subclass that overrides run() must be joined before its own destructor
///   finishes: its members die before ~Thread runs.
/// - An exception escaping the target goes to the excepthook (set_excepthook),
///   in that thread, before join() returns; it never terminates the program.
/// - The program waits for every running non-daemon thread when main returns
///   or exit() is called, as Python does; daemon threads never hold it.
/// - In a child of fork(), as in Python, the forking thread is the main thread
///   and every other Thread has ended: is_alive() is false, join() returns.
class Thread {
 public:
  /// Python: Thread(target=f, args=(...)); not started yet.
  /// target(args...) must be callable with the stored copies (as lvalues);
  /// std::ref(x) passes x by reference.
  template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, ThreadOptions> &&
           !std::is_base_of_v<Thread, std::decay_t<F>> &&
           std::is_invocable_v<std::decay_t<F>&,
                               std::unwrap_ref_decay_t<Args>&...>) explicit Thread(F&& target,
                                                                                   Args&&... args)
      : Thread(ThreadOptions{}, std::forward<F>(target), std::forward<Args>(args)...) {}
  /// Python: Thread(target=f, args=(...), name=..., daemon=...): as above,
  /// with a name and a daemon flag.
  template <class F, class... Args>
  requires std::is_invocable_v < std::decay_t<F>
  &, std::unwrap_ref_decay_t<Args>&... > Thread(ThreadOptions options, F&& target, Args&&... args)
      : Thread(std::move(options),
               concur::detail::bind_target(std::forward<F>(target), std::forward<Args>(args)...)) {}
  /// For a subclass that overrides run(): no target.
  Thread();
  /// A running non-daemon thread is joined; a running daemon one is detached
  /// and runs on (see Lifetime above).
  virtual ~Thread();
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;

  /// Calls target(args...) once; with no target, does nothing. An override
  /// runs in the new thread; start() picks it from the object as it is then.
  virtual void run();
  /// Runs run() in a new thread; returns once it runs. Twice: std::logic_error;
  /// std::system_error when the system cannot make a thread.
  void start();
  /// Waits until the thread has ended and its OS thread is gone. Before start()
  /// or from the thread itself: std::logic_error.
  void join();
  /// As join(), waiting at most `timeout`; true when the thread has ended
  /// (Python returns None and leaves the check to is_alive()).
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_until(concur::detail::Deadline::after(timeout));
  }
  /// True from the return of start() until run() has returned and the
  /// excepthook is done.
  bool is_alive() const;

  /// Default "Thread-N". The reference stays valid until set_name() or the
  /// Thread's destruction; another thread's set_name() races with reading it.
  const std::string& name() const;
  /// Python: thread.name = ...; allowed at any time, used by the excepthook.
  void set_name(std::string name);
  /// Python: Thread.daemon. A daemon thread does not hold the program at exit.
  bool daemon() const;
  /// Python: thread.daemon = ...; after start(): std::logic_error.
  void set_daemon(bool daemon);
  /// Python: Thread.ident: the pthread_t. Set once started, empty before.
  std::optional<std::uint64_t> ident() const;
  /// Python: Thread.native_id: the kernel's thread id. Set once started.
  std::optional<std::int64_t> native_id() const;

 protected:
  /// For a subclass (Timer) that runs `target` without overriding run().
  Thread(ThreadOptions options, std::function<void()> target);

 private:
  bool join_until(concur::detail::Deadline deadline);

  std::shared_ptr<concur::detail::ThreadState> state_;
};

/// Python: threading.get_ident(): the calling thread's identifier (pthread_self).
std::uint64_t get_ident();
/// Python: threading.get_native_id(): the kernel's id for the calling thread.
std::int64_t get_native_id();
/// Python: threading.active_count(). The number of threads alive: the main
/// thread, threads concur started, and foreign threads that have called
/// current_thread() (until they end).
int active_count();
/// Python: threading.current_thread(). In a thread concur did not start: a
/// name "Dummy-N" (counted from 1, apart from Thread-N) and daemon true.
ThreadInfo current_thread();
/// Python: threading.main_thread(): the thread that started the program, or
/// in a child of fork() the thread that forked.
ThreadInfo main_thread();
/// Python: threading.enumerate(): every thread active_count() counts.
std::vector<ThreadInfo> enumerate();
/// Python: threading.excepthook = hook. Returns the previous hook; an empty
/// function restores the default, which prints "Exception in thread NAME:"
/// and the exception's type and message.
ExceptHook set_excepthook(ExceptHook hook);
/// The default hook, callable directly (Python: threading.__excepthook__).
void default_excepthook(const ExceptHookArgs& args);

}  // namespace concur::threading
