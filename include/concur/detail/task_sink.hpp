// What a ThreadPool queues, and where a pool's lazy producers (imap) put
// their tasks. The sink is held by shared_ptr so that an imap range
// outliving its pool object still has somewhere valid to send (and to
// cancel) its work.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace concur::detail {

// One unit of a ThreadPool's work, allocated once with everything it needs
// (a std::function pair took up to four allocations per task, measured as
// the larger part of a tiny task's cost). Queued once, then either run() or
// cancel() is called exactly once, then release().
class TaskNode {
 public:
  TaskNode() = default;
  TaskNode(const TaskNode&) = delete;
  TaskNode& operator=(const TaskNode&) = delete;

  // Runs the work; catches its own exceptions.
  virtual void run() noexcept = 0;
  // Called instead of run() when the work will never run (terminate, or a
  // pool closed while a lazy producer still had work).
  virtual void cancel(std::exception_ptr why) noexcept = 0;
  // The queue's reference is given up; by default the node deletes itself.
  virtual void release() noexcept { delete this; }

  std::atomic<TaskNode*> next{nullptr};  // the queue's link

 protected:
  virtual ~TaskNode() = default;
};

struct ReleaseTask {
  void operator()(TaskNode* task) const noexcept { task->release(); }
};
// Owns a node until it is queued, run or cancelled.
using TaskPtr = std::unique_ptr<TaskNode, ReleaseTask>;

// A node made of two callables: run() and cancel(std::exception_ptr).
template <class Run, class Cancel>
class CallableTask final : public TaskNode {
 public:
  CallableTask(Run run, Cancel cancel) : run_(std::move(run)), cancel_(std::move(cancel)) {}
  void run() noexcept override { run_(); }
  void cancel(std::exception_ptr why) noexcept override { cancel_(std::move(why)); }

 private:
  Run run_;
  Cancel cancel_;
};

template <class Run, class Cancel>
TaskPtr make_task(Run&& run, Cancel&& cancel) {
  return TaskPtr(new CallableTask<std::decay_t<Run>, std::decay_t<Cancel>>(
      std::forward<Run>(run), std::forward<Cancel>(cancel)));
}

class TaskSink {
 public:
  virtual ~TaskSink() = default;
  // Queues a task; internal submissions from a producer registered before
  // close() are accepted until that producer is done. A task that cannot be
  // queued is cancelled at once.
  virtual void submit(TaskPtr task, bool from_producer) = 0;
  // A lazy producer keeps the workers alive after close() until it is done.
  virtual void producer_started() = 0;
  virtual void producer_done() = 0;
  virtual std::size_t workers() const = 0;
};

}  // namespace concur::detail
