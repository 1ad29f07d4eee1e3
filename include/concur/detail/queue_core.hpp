// The shared part of mp::Queue, untyped: a byte ring in shared memory under
// a process-shared LockWord, with FIFO waiter queues for "not empty", "not
// full" and "all tasks done" (the Condition algorithm, nodes from a pool in
// the same mapping).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "concur/detail/deadline.hpp"

namespace concur::detail {

class QueueCore {
 public:
  // Ring bytes reserved (virtual, pages are used only as items arrive); an
  // item may take at most half of it.
  static constexpr std::size_t kRingBytes = std::size_t{256} << 20;
  static constexpr std::size_t kMaxItemBytes = kRingBytes / 2;

  explicit QueueCore(std::size_t maxsize);
  ~QueueCore();
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  // False when the deadline passed first (full).
  bool put(std::span<const std::byte> item, Deadline deadline);
  // Calls consume(first, second) with the item's bytes (two pieces when they
  // wrap around the ring's end) while the item is still in the ring; the
  // item is removed only after consume returns. False when the deadline
  // passed first (empty).
  using Consumer = std::function<void(std::span<const std::byte>, std::span<const std::byte>)>;
  bool get(const Consumer& consume, Deadline deadline);

  std::size_t qsize() const;
  bool full() const;

  // JoinableQueue.
  bool task_done();  // false when called more often than items were put
  void join();

 private:
  struct Shared;
  std::shared_ptr<void> block_;  // the control block's mapping
  std::shared_ptr<void> ring_;   // the ring's mapping
  Shared* shared_;
  std::byte* ring_bytes_;
};

}  // namespace concur::detail
