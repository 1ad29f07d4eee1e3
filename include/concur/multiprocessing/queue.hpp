#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace concur::detail {

// Where SharedQueue::get() copies an item's bytes.
class ItemSink {
 public:
  // Room for an item of n bytes. May throw; the item then stays queued.
  virtual std::byte* prepare(std::size_t n) = 0;

 protected:
  ~ItemSink() = default;
};

// The untyped, process-shared part of mp::Queue. See src/queue.cpp for the
// layout, the crash-consistency journal and the waiting protocol.
//
// Items live in two FIFO segments, each older item before each newer one:
//   - the ring: kRingBytes of MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE memory
//     (pages are used only as items reach them) holding items of at most
//     kInlineMax bytes, copied in and out under the lock, no system call;
//   - the spill log: a memfd (made in the constructor, so every process
//     forked later shares it) holding what does not fit: larger items, and
//     every item put while the ring is full or the log is not empty (so
//     the order across both stays FIFO). Its pages are freed as it drains.
// So a queue holds items of any size and any number of them, bounded only
// by memory; put() on an unbounded queue never blocks.
class SharedQueue {
 public:
  static constexpr std::size_t kRingBytes = std::size_t{8} << 20;
  static constexpr std::size_t kInlineMax = std::size_t{64} << 10;

  explicit SharedQueue(std::size_t maxsize);
  ~SharedQueue();
  SharedQueue(const SharedQueue&) = delete;
  SharedQueue& operator=(const SharedQueue&) = delete;

  // False when the queue stayed full until the deadline. std::system_error
  // when the spill log cannot grow (out of memory); nothing is queued then.
  bool put(std::span<const std::byte> item, Deadline deadline);
  // Copies the oldest item into sink.prepare(size), then removes it; false
  // when the queue stayed empty until the deadline.
  bool get(ItemSink& sink, Deadline deadline);

  std::size_t qsize() const;
  bool full() const;
  std::size_t maxsize() const;

  bool task_done();  // false, changing nothing, when no task is unfinished
  void join();
  std::uint64_t unfinished() const;

  // For tests: where the items are now.
  struct Layout {
    std::uint64_t ring_items;
    std::uint64_t log_items;
    std::uint64_t log_file_bytes;  // memory the spill log holds
  };
  Layout layout() const;

  struct Control;

 private:
  Control* control_;
  std::byte* ring_;
  int log_fd_;
};

}  // namespace concur::detail

namespace concur::multiprocessing {

/// A FIFO queue shared by the threads of every process forked after it was
/// made.
/// - Python: multiprocessing.Queue.
/// - A cheap copyable handle: copies (also in forked children) refer to the
///   same queue; the shared memory is released when the last handle in the
///   last process is gone.
/// - Design: no feeder thread. put() returns once the item is in shared memory,
///   so a process may exit right after put() without losing it, and joining a
///   process that put items never waits for a reader (Python's
///   join-before-drain trap). Small items sit in a ring in shared memory,
///   larger ones (over 64 KiB) and overflow in a spill file (see
///   detail::SharedQueue): any size, any number. Trivially copyable items
///   cross as their bytes; others through the transfer layer.
/// - Robustness: a process killed at any point inside put() or get() -- even
///   while it holds the queue's lock -- loses nothing and duplicates nothing:
///   its lock is taken over and a journal finishes or discards its half-done
///   step, so an item is either still queued or was delivered to it.
/// - Thread-safety: every member may be called from any thread of any process.
/// - Blocks: put() while maxsize items are queued; get() while empty. A zero
///   timeout or block=false only looks. An uncontended put() or get() of a
///   small item makes no system call.
/// - Throws: concur::Full / concur::Empty when not blocking or when a timeout
///   runs out; std::invalid_argument for a negative timeout and for put() or
///   get() after close() in this process; concur::FrameError from get() if
///   an item cannot be decoded (it is removed).
template <class T>
class Queue {
  static_assert(transferable<T>,
                "Queue<T>: T must be transferable (see concur/multiprocessing/transfer.hpp)");

 public:
  /// Python: Queue(maxsize). maxsize 0: unbounded. Processes forked from now
  /// on share it.
  explicit Queue(std::size_t maxsize = 0)
      : core_(std::make_shared<detail::SharedQueue>(maxsize)),
        closed_(std::make_shared<std::atomic<bool>>(false)) {}

  /// Python: put(obj, block=True). Waits for room while the queue is full;
  /// put(item, false) throws concur::Full instead. Returns once the item is
  /// in shared memory.
  void put(const T& item, bool block = true) {
    check_open("Queue.put()");
    put_until(item, block ? detail::Deadline::never() : detail::Deadline::now_only());
  }
  /// Python: put(obj, timeout=t). Waits at most `timeout` for room, then
  /// concur::Full; a negative timeout: std::invalid_argument.
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    check_open("Queue.put()");
    put_until(item, detail::checked_timeout(timeout, "Queue.put()"));
  }
  /// Python: get(block=True). Waits for an item and removes the oldest;
  /// get(false) throws concur::Empty instead of waiting.
  T get(bool block = true) {
    check_open("Queue.get()");
    return get_until(block ? detail::Deadline::never() : detail::Deadline::now_only());
  }
  /// Python: get(timeout=t). Waits at most `timeout` for an item, then
  /// concur::Empty; a negative timeout: std::invalid_argument.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    check_open("Queue.get()");
    return get_until(detail::checked_timeout(timeout, "Queue.get()"));
  }
  /// Python: put_nowait(obj): put(item, false).
  void put_nowait(const T& item) { put(item, false); }
  /// Python: get_nowait(): get(false).
  T get_nowait() { return get(false); }

  /// Exact at the moment of the call (Python's is approximate).
  std::size_t qsize() const { return core_->qsize(); }
  /// qsize() == 0 at the moment of the call.
  bool empty() const { return qsize() == 0; }
  /// maxsize items are queued at the moment of the call; never for an
  /// unbounded queue.
  bool full() const { return core_->full(); }
  /// This process puts (and gets) no more through this queue; every handle
  /// in this process sees it, processes forked earlier do not. Twice: nothing.
  void close() { closed_->store(true, std::memory_order_relaxed); }

 protected:
  /// For JoinableQueue: the shared queue with its count of unfinished tasks.
  detail::SharedQueue& core() const { return *core_; }

 private:
  void check_open(const char* call) const {
    if (closed_->load(std::memory_order_relaxed)) {
      throw std::invalid_argument(std::string(call) + ": the queue is closed in this process");
    }
  }

  void put_until(const T& item, detail::Deadline deadline) {
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
    if constexpr (trivially_transferable<T> && sizeof(T) <= 4096) {
      struct Sink final : detail::ItemSink {
        std::byte* prepare(std::size_t n) override {
          if (n != sizeof(T)) {
            throw FrameError("Queue.get(): the item has " + std::to_string(n) +
                             " bytes where the type needs " + std::to_string(sizeof(T)));
          }
          return bytes;
        }
        alignas(T) std::byte bytes[sizeof(T)];
      } sink;
      if (!core_->get(sink, deadline)) throw Empty();
      return detail::decode<T>(std::span<const std::byte>(sink.bytes, sizeof(T)));
    } else {
      struct Sink final : detail::ItemSink {
        std::byte* prepare(std::size_t n) override {
          bytes.reset(new std::byte[n]);  // not zero-filled: every byte is copied in
          size = n;
          return bytes.get();
        }
        std::unique_ptr<std::byte[]> bytes;
        std::size_t size = 0;
      } sink;
      if (!core_->get(sink, deadline)) throw Empty();
      // Decoded outside the lock.
      return detail::decode<T>(std::span<const std::byte>(sink.bytes.get(), sink.size));
    }
  }

  std::shared_ptr<detail::SharedQueue> core_;
  std::shared_ptr<std::atomic<bool>> closed_;
};

/// A Queue whose consumers mark each item done; join() waits until all are.
/// - Python: multiprocessing.JoinableQueue.
/// - The count of unfinished tasks lives in shared memory with the queue:
///   put() raises it (in the same step that queues the item), task_done()
///   lowers it, in any process.
/// - Blocks: join() until every item put so far has been marked done.
/// - Throws: as Queue, and std::invalid_argument from task_done() called more
///   often than items were put.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  using Queue<T>::Queue;

  /// Python: task_done(). Marks one item got earlier as processed; more
  /// calls than items put: std::invalid_argument, changing nothing.
  void task_done() {
    if (!this->core().task_done()) {
      throw std::invalid_argument("JoinableQueue.task_done(): called too many times");
    }
  }
  /// Python: join(). Waits until every item put so far, by any process, has
  /// been marked done.
  void join() { this->core().join(); }
};

}  // namespace concur::multiprocessing
