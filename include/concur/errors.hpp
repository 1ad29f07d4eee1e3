/// \file
/// Every exception concur throws that is not a standard one, in one place.
///
/// Python's exceptions map to C++ types as follows (see API.md):
///
///     ValueError                 -> std::invalid_argument
///     RuntimeError (misuse)      -> std::logic_error
///     TimeoutError               -> concur::TimeoutError
///     threading.BrokenBarrierError -> concur::BrokenBarrierError
///     queue.Empty / queue.Full   -> concur::Empty / concur::Full
///     EOFError                   -> concur::EOFError
///     BrokenPipeError            -> concur::BrokenPipeError
///     OSError and its subclasses -> std::system_error carrying the errno
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace concur {

/// Python: TimeoutError. A bounded wait ran out before the result was ready.
/// Thrown by AsyncResult::get(timeout), and by a Pool task that runs past
/// PoolOptions::task_timeout.
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// With the message "operation timed out".
  TimeoutError() : std::runtime_error("operation timed out") {}
};

/// Python: threading.BrokenBarrierError. The barrier was reset, aborted, timed
/// out, or its action threw while this thread was waiting (or arrived later).
class BrokenBarrierError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// With a message that says to call reset().
  BrokenBarrierError()
      : std::runtime_error("Barrier.wait(): the barrier is broken; call reset()") {}
};

/// Python: queue.Empty. get() without blocking, or with a timeout, found no item.
class Empty : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// With the message "Queue.get(): the queue is empty".
  Empty() : std::runtime_error("Queue.get(): the queue is empty") {}
};

/// Python: queue.Full. put() without blocking, or with a timeout, found no room.
class Full : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// With the message "Queue.put(): the queue is full".
  Full() : std::runtime_error("Queue.put(): the queue is full") {}
};

/// Python: EOFError. recv() on a connection whose peer closed, with nothing left.
class EOFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// With a message that says the other end was closed and no data is left.
  EOFError()
      : std::runtime_error("Connection.recv(): the other end was closed and no data is left") {}
};

/// Python: BrokenPipeError. send() to a connection whose peer closed; concur
/// never lets SIGPIPE kill the sender.
class BrokenPipeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// With a message that says the other end was closed.
  BrokenPipeError() : std::runtime_error("Connection.send(): the other end was closed") {}
};

/// A message that arrived but cannot be decoded: truncated, corrupt (its
/// checksum does not match), of another type than the receiver expects, or
/// larger than the receiver accepts. Python raises pickle's UnpicklingError
/// or EOFError in such cases; concur names the fault.
class FrameError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Python: multiprocessing.pool.RemoteTraceback wrapped around the worker's
/// exception. Thrown by a process Pool when `f` threw in a worker: the
/// exception itself cannot cross the process boundary, so its demangled type
/// name (e.g. "std::domain_error"), its message and the index of the failing
/// item come instead. what() holds all three.
class RemoteError : public std::runtime_error {
 public:
  /// what() becomes "TYPE: MESSAGE (item INDEX)".
  RemoteError(std::string type_name, std::string message, std::size_t index)
      : std::runtime_error(type_name + ": " + message + " (item " + std::to_string(index) + ")"),
        type_name_(std::move(type_name)),
        message_(std::move(message)),
        index_(index) {}
  /// The demangled C++ type of what the worker threw, e.g. "std::domain_error"
  /// (also for a non-std exception, such as "int").
  const std::string& type_name() const noexcept { return type_name_; }
  /// The worker exception's what(), alone; empty when it was not a std::exception.
  const std::string& message() const noexcept { return message_; }
  /// The failing item's position in the input; 0 for apply and apply_async.
  std::size_t index() const noexcept { return index_; }

 private:
  std::string type_name_;
  std::string message_;
  std::size_t index_;
};

/// A worker process died (a signal, abort, _exit) while it ran the task for
/// item index(). exitcode() follows Process::exitcode(): N after exit(N), -SIG
/// after a signal. The pool replaced the worker and stays usable. Python has
/// no counterpart: its Pool hangs when a worker dies mid-task.
class WorkerLostError : public std::runtime_error {
 public:
  /// what() names the pid, the item and the exit code.
  WorkerLostError(std::size_t index, int pid, int exitcode)
      : std::runtime_error("worker process " + std::to_string(pid) +
                           " died while running the task for item " + std::to_string(index) +
                           " (exit code " + std::to_string(exitcode) + ")"),
        index_(index),
        pid_(pid),
        exitcode_(exitcode) {}
  /// With a what() of the caller's: an MPI rank that was lost, whose exit
  /// code rank 0 cannot know (0).
  WorkerLostError(std::size_t index, int pid, int exitcode, const std::string& what)
      : std::runtime_error(what), index_(index), pid_(pid), exitcode_(exitcode) {}
  /// The position in the input of the item whose task the worker was running.
  std::size_t index() const noexcept { return index_; }
  /// The dead worker's process id (already reaped).
  int pid() const noexcept { return pid_; }
  /// N after exit(N) or _exit(N), -SIG after signal SIG.
  int exitcode() const noexcept { return exitcode_; }

 private:
  std::size_t index_;
  int pid_;
  int exitcode_;
};

}  // namespace concur

namespace concur::multiprocessing {
using concur::FrameError;
using concur::RemoteError;
using concur::WorkerLostError;
}  // namespace concur::multiprocessing
