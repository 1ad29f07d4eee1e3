// Where a pool's lazy producers (imap) put their tasks. Held by shared_ptr
// so that an imap range outliving its pool object still has somewhere valid
// to send (and to cancel) its work.
#pragma once

#include <exception>
#include <functional>

namespace concur::detail {

class TaskSink {
 public:
  using Task = std::function<void()>;
  // Called instead of the task when it will never run (terminate).
  using Cancel = std::function<void(std::exception_ptr)>;

  virtual ~TaskSink() = default;
  // Queues a task; internal submissions from a producer registered before
  // close() are accepted until that producer is done.
  virtual void submit(Task task, Cancel cancel, bool from_producer) = 0;
  // A lazy producer keeps the workers alive after close() until it is done.
  virtual void producer_started() = 0;
  virtual void producer_done() = 0;
  virtual std::size_t workers() const = 0;
};

}  // namespace concur::detail
