// mp::Queue's shared ring.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <system_error>

#include "concur/detail/condition_queue.hpp"
#include "concur/detail/lock_word.hpp"
#include "concur/detail/node_pool.hpp"
#include "concur/detail/queue_core.hpp"
#include "concur/detail/shared_block.hpp"

namespace concur::detail {

namespace {

constexpr std::size_t kHeaderBytes = 8;  // each item: its length, then its bytes
constexpr std::size_t round_up(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

// A waiter whose peer died while holding a node may miss one notify; every
// wait re-checks after at most this long, so that costs latency, not a hang.
constexpr std::int64_t kRecheckNs = 100'000'000;

Deadline slice_of(Deadline deadline) {
  const Deadline slice = Deadline::after(std::chrono::nanoseconds(kRecheckNs));
  return slice.ns() < deadline.ns() ? slice : deadline;
}

}  // namespace

struct QueueCore::Shared {
  explicit Shared(std::size_t max) : maxsize(max) {}
  LockWord<Scope::kShared> lock;
  ConditionQueue<Scope::kShared> not_empty;
  ConditionQueue<Scope::kShared> not_full;
  ConditionQueue<Scope::kShared> all_done;
  SharedNodePool<4096> nodes;
  const std::uint64_t maxsize;  // items; 0: unbounded
  std::uint64_t count = 0;      // items in the ring
  std::uint64_t head = 0;       // byte offsets, growing; position = offset % kRingBytes
  std::uint64_t tail = 0;
  std::uint64_t unfinished = 0;  // put and not yet task_done()

  // With the lock held: waits on `queue` until ready() or the deadline.
  template <class Ready>
  bool wait(ConditionQueue<Scope::kShared>& queue, Ready ready, Deadline deadline) {
    while (!ready()) {
      if (deadline.expired()) return false;
      PooledNode<SharedNodePool<4096>> node(nodes);
      queue.wait(
          node.node(), [this] { lock.release(); }, [this] { lock.acquire_spinning(); },
          slice_of(deadline));
    }
    return true;
  }
};

namespace {

struct Guard {
  explicit Guard(LockWord<Scope::kShared>& l) : lock(l) { lock.acquire(); }
  ~Guard() { lock.release(); }
  LockWord<Scope::kShared>& lock;
};

}  // namespace

QueueCore::QueueCore(std::size_t maxsize) {
  block_ = map_shared(sizeof(Shared));
  shared_ = ::new (block_.get()) Shared(maxsize);
  void* ring = ::mmap(nullptr, kRingBytes, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ring == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(), "Queue(): mmap of the ring failed");
  }
  ring_ = std::shared_ptr<void>(ring, [](void* p) { ::munmap(p, kRingBytes); });
  ring_bytes_ = static_cast<std::byte*>(ring);
}

QueueCore::~QueueCore() = default;

bool QueueCore::put(std::span<const std::byte> item, Deadline deadline) {
  if (item.size() > kMaxItemBytes) {
    throw std::length_error("Queue.put(): an item of " + std::to_string(item.size()) +
                            " bytes is larger than the queue's limit of " +
                            std::to_string(kMaxItemBytes) + "; send it through a Pipe");
  }
  const std::size_t need = kHeaderBytes + round_up(item.size());
  Shared& s = *shared_;
  Guard guard(s.lock);
  const bool ok = s.wait(
      s.not_full,
      [&] {
        return (s.maxsize == 0 || s.count < s.maxsize) && s.tail - s.head + need <= kRingBytes;
      },
      deadline);
  if (!ok) return false;
  // Write the bytes first; only then publish them by moving the tail, so a
  // producer killed mid-copy leaves no half item behind.
  auto write = [&](std::uint64_t offset, const void* data, std::size_t n) {
    const std::size_t at = offset % kRingBytes;
    const std::size_t first = std::min(n, kRingBytes - at);
    std::memcpy(ring_bytes_ + at, data, first);
    std::memcpy(ring_bytes_, static_cast<const std::byte*>(data) + first, n - first);
  };
  const std::uint64_t length = item.size();
  write(s.tail, &length, kHeaderBytes);
  write(s.tail + kHeaderBytes, item.data(), item.size());
  s.tail += need;
  ++s.count;
  ++s.unfinished;
  s.not_empty.notify(1);
  return true;
}

bool QueueCore::get(const Consumer& consume, Deadline deadline) {
  Shared& s = *shared_;
  Guard guard(s.lock);
  if (!s.wait(
          s.not_empty, [&] { return s.count > 0; }, deadline))
    return false;
  std::uint64_t length;
  const std::size_t at = s.head % kRingBytes;
  const std::size_t first_header = std::min(kHeaderBytes, kRingBytes - at);
  std::memcpy(&length, ring_bytes_ + at, first_header);
  std::memcpy(reinterpret_cast<std::byte*>(&length) + first_header, ring_bytes_,
              kHeaderBytes - first_header);
  const std::size_t body = (s.head + kHeaderBytes) % kRingBytes;
  const std::size_t first = std::min<std::size_t>(length, kRingBytes - body);
  consume(std::span<const std::byte>(ring_bytes_ + body, first),
          std::span<const std::byte>(ring_bytes_, length - first));
  // Removed only now: a consumer killed while copying leaves the item queued.
  s.head += kHeaderBytes + round_up(length);
  --s.count;
  s.not_full.notify(INT32_MAX);
  return true;
}

std::size_t QueueCore::qsize() const {
  Guard guard(shared_->lock);
  return shared_->count;
}

bool QueueCore::full() const {
  Guard guard(shared_->lock);
  return shared_->maxsize != 0 && shared_->count >= shared_->maxsize;
}

bool QueueCore::task_done() {
  Shared& s = *shared_;
  Guard guard(s.lock);
  if (s.unfinished == 0) return false;
  if (--s.unfinished == 0) s.all_done.notify(INT32_MAX);
  return true;
}

void QueueCore::join() {
  Shared& s = *shared_;
  Guard guard(s.lock);
  s.wait(
      s.all_done, [&] { return s.unfinished == 0; }, Deadline::never());
}

}  // namespace concur::detail
