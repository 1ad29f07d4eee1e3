// Every exception concur throws that is not a standard one, in one place.
//
// Python's exceptions map to C++ types as follows (see API.md):
//   ValueError                 -> std::invalid_argument
//   RuntimeError (misuse)      -> std::logic_error
//   TimeoutError               -> concur::TimeoutError
//   threading.BrokenBarrierError -> concur::BrokenBarrierError
//   queue.Empty / queue.Full   -> concur::Empty / concur::Full
//   EOFError                   -> concur::EOFError
//   BrokenPipeError            -> concur::BrokenPipeError
//   OSError and its subclasses -> std::system_error carrying the errno
#pragma once

#include <stdexcept>
#include <string>

namespace concur {

// Python: TimeoutError. A bounded wait ran out before the result was ready.
class TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  TimeoutError() : std::runtime_error("operation timed out") {}
};

// Python: threading.BrokenBarrierError. The barrier was reset, aborted, timed
// out, or its action threw while this thread was waiting (or arrived later).
class BrokenBarrierError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  BrokenBarrierError() : std::runtime_error("Barrier.wait(): the barrier is broken; call reset()") {}
};

// Python: queue.Empty. get() without blocking, or with a timeout, found no item.
class Empty : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  Empty() : std::runtime_error("Queue.get(): the queue is empty") {}
};

// Python: queue.Full. put() without blocking, or with a timeout, found no room.
class Full : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  Full() : std::runtime_error("Queue.put(): the queue is full") {}
};

// Python: EOFError. recv() on a connection whose peer closed, with nothing left.
class EOFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  EOFError() : std::runtime_error("Connection.recv(): the other end was closed and no data is left") {}
};

// Python: BrokenPipeError. send() to a connection whose peer closed.
class BrokenPipeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  BrokenPipeError() : std::runtime_error("Connection.send(): the other end was closed") {}
};

}  // namespace concur
