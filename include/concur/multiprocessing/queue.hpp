#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

#include "concur/detail/deadline.hpp"
#include "concur/detail/queue_core.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace concur::multiprocessing {

// A FIFO queue shared by the threads of every process forked after it was
// made. Python: multiprocessing.Queue.
// A cheap copyable handle: copies refer to the same queue.
// Design: the items live in a ring in shared memory, under a process-shared
//   lock, with the Condition algorithm's FIFO waiter queues. There is no
//   feeder thread: put() returns once the item is in the queue, so a process
//   may exit right after put() without losing it, and joining a process that
//   put items never waits for a reader (Python's join-before-drain trap).
//   Trivially copyable items are copied as bytes; others go through the
//   transfer layer (cereal). An item is removed only once it has been copied
//   out, so a consumer killed mid-get loses nothing and a producer killed
//   mid-put leaves no half item.
// Thread-safety: every member may be called from any thread of any process.
// Blocks: put() while full (maxsize items, or the ring's 256 MiB of bytes);
//   get() while empty; a zero timeout only looks.
// Throws: concur::Full / concur::Empty when not blocking or when a timeout
//   runs out; std::invalid_argument for a negative timeout and for put/get
//   after close() in this process; std::length_error for an item over 128 MiB.
template <class T>
class Queue {
 public:
  explicit Queue(std::size_t maxsize = 0)
      : core_(std::make_shared<detail::QueueCore>(maxsize)),
        closed_(std::make_shared<std::atomic<bool>>(false)) {}

  void put(const T& item, bool block = true) {
    put_until(item, block ? detail::Deadline::never() : detail::Deadline::now_only());
  }
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    put_until(item, detail::checked_timeout(timeout, "Queue.put()"));
  }
  T get(bool block = true) {
    return get_until(block ? detail::Deadline::never() : detail::Deadline::now_only());
  }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_until(detail::checked_timeout(timeout, "Queue.get()"));
  }
  void put_nowait(const T& item) { put(item, false); }
  T get_nowait() { return get(false); }

  std::size_t qsize() const { return core_->qsize(); }
  bool empty() const { return qsize() == 0; }
  bool full() const { return core_->full(); }
  // This process puts (and gets) no more through this queue.
  void close() { closed_->store(true); }

 protected:
  detail::QueueCore& core() { return *core_; }

 private:
  void check_open(const char* call) const {
    if (closed_->load()) {
      throw std::invalid_argument(std::string(call) + ": the queue is closed in this process");
    }
  }

  void put_until(const T& item, detail::Deadline deadline) {
    check_open("Queue.put()");
    bool ok;
    if constexpr (trivially_transferable<T>) {
      ok = core_->put(
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(&item), sizeof(T)),
          deadline);
    } else {
      const std::vector<std::byte> bytes = detail::encode(item);
      ok = core_->put(bytes, deadline);
    }
    if (!ok) throw Full();
  }

  T get_until(detail::Deadline deadline) {
    check_open("Queue.get()");
    if constexpr (trivially_transferable<T>) {
      T value;
      bool sized = true;
      const bool ok = core_->get(
          [&](std::span<const std::byte> a, std::span<const std::byte> b) {
            if (a.size() + b.size() != sizeof(T)) {
              sized = false;
              return;
            }
            std::memcpy(static_cast<void*>(&value), a.data(), a.size());
            std::memcpy(reinterpret_cast<std::byte*>(&value) + a.size(), b.data(), b.size());
          },
          deadline);
      if (!ok) throw Empty();
      if (!sized) throw FrameError("Queue.get(): the item does not have the size of the type");
      return value;
    } else {
      std::vector<std::byte> bytes;
      const bool ok = core_->get(
          [&](std::span<const std::byte> a, std::span<const std::byte> b) {
            bytes.resize(a.size() + b.size());
            std::memcpy(bytes.data(), a.data(), a.size());
            std::memcpy(bytes.data() + a.size(), b.data(), b.size());
          },
          deadline);
      if (!ok) throw Empty();
      return detail::decode<T>(bytes);  // outside the lock
    }
  }

  std::shared_ptr<detail::QueueCore> core_;
  std::shared_ptr<std::atomic<bool>> closed_;
};

// A Queue whose users mark each item done; join() waits until all are.
// Python: multiprocessing.JoinableQueue.
// Throws: as Queue, and std::invalid_argument from task_done() called more
//   often than items were put.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  using Queue<T>::Queue;

  void task_done() {
    if (!this->core().task_done()) {
      throw std::invalid_argument(
          "JoinableQueue.task_done(): called more times than items were put");
    }
  }
  // Until every item put has been marked done.
  void join() { this->core().join(); }
};

}  // namespace concur::multiprocessing
