// mp::Queue's shared core: a ring in shared memory, a spill log in a memfd,
// one process-shared lock, and futex sequence words to wait on.
//
// Layout. The Control block (its own MAP_SHARED|MAP_ANONYMOUS mapping)
// keeps everything a put or get of a small item writes in one cache line:
// the lock, the two wait words, the ring's state (head, bytes used, items),
// the spill log's item count, the unfinished-task count, and the journal of
// that state. Read-mostly fields (maxsize, waiter counts) sit in the next
// line, the spill log's offsets and their journal in another, the waiters'
// thread ids after that. So two processes passing items back and forth
// move one line between their caches per operation (plus the ring's bytes),
// not five.
//
// The ring is a separate mapping of kRingBytes (MAP_NORESERVE: only pages
// that items reach are ever backed); each record is an 8-byte length and
// the bytes, padded to 8, and may wrap around the ring's end. The spill log
// is a memfd; a record there is an 8-byte length and the bytes, at growing
// file offsets.
//
// FIFO across the two: an item goes to the ring only while the log is empty,
// so every ring item is older than every log item, and get() takes from the
// ring first. When the ring empties its head goes back to 0 (so a queue that
// rarely holds much touches few pages); when the log empties the file is
// truncated to 0; while it drains, consumed whole pages are punched out
// every kPunchBytes.
//
// Crash consistency. Every change of the state is a commit(): the new state
// is written to the journal, the journal is marked valid, the state is
// overwritten, the mark is cleared. A change that moves the log's offsets
// journals them too (mark 2). The bytes of an item are written (or read)
// before the commit that publishes (or removes) it. A process killed at any
// instruction while holding the lock leaves either the old state (no valid
// journal) or a valid journal; the next process to take the lock (the
// LockWord takes a dead holder's lock over and reports owner_died()) redoes
// the journal. So an item is never half queued, lost, or delivered twice.
//
// Waiting. put() advances items_seq and get() advances space_seq, both with
// the lock held. A waiter first spins for up to kSpinNs watching its word,
// without the lock (a producer facing a full queue waits for a batch of
// free slots, so that it does not fight the consumer for the lock on every
// item); then it records its thread id and a count in the waiter set, notes
// the word, releases the lock and futex-waits for the word to move. The
// other side wakes one waiter only while more are registered than wakes are
// pending (WaiterSet), so an uncontended put/get makes no system call, and a
// consumer freeing slot after slot wakes a blocked producer once. A waiter
// killed while asleep stays in the set until a full set drops the ids of
// threads that are gone; sleeps are cut into kSliceNs slices so that even a
// waiter woken and then killed before it took the item cannot strand the
// item while others sleep.
#include "concur/multiprocessing/queue.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <system_error>

#include "concur/detail/futex.hpp"
#include "concur/detail/lock_word.hpp"
#include "concur/detail/spin.hpp"
#include "fault_injection.hpp"

namespace concur::detail {

namespace {

constexpr std::uint64_t kRecordHeader = 8;
constexpr std::uint64_t kRingMask = SharedQueue::kRingBytes - 1;
static_assert((SharedQueue::kRingBytes & kRingMask) == 0, "the ring's size is a power of two");
static_assert(SharedQueue::kRingBytes <= UINT32_MAX, "ring positions are 32-bit");
constexpr std::uint64_t round8(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }

constexpr std::int64_t kSpinNs = 20'000;
constexpr std::int64_t kSliceNs = 100'000'000;
constexpr std::uint64_t kPunchBytes = std::uint64_t{1} << 20;
constexpr std::uint32_t kWaiterSlots = 30;

// What a put or get of a ring item changes: 24 bytes, so that it and its
// journal share one cache line with the lock.
struct HotState {
  std::uint32_t ring_head = 0;   // byte position of the oldest ring record
  std::uint32_t ring_used = 0;   // bytes of ring records
  std::uint32_t ring_count = 0;  // ring records
  std::uint32_t log_count = 0;   // log records
  std::uint64_t unfinished = 0;  // put and not yet task_done()
  std::uint64_t count() const { return std::uint64_t{ring_count} + log_count; }
};
static_assert(sizeof(HotState) == 24);

// The spill log's file offsets.
struct LogState {
  std::uint64_t head = 0;
  std::uint64_t tail = 0;
  std::uint64_t freed = 0;  // below this offset the log's pages were punched out
};

// The threads asleep (or about to sleep) on one wait word. Touched only
// with the lock held.
//
// `signaled` counts wakes sent and not yet taken up: a woken waiter takes
// one when it retakes the lock. A wake is sent only while more waiters are
// registered than wakes are pending, so a consumer that frees slot after
// slot wakes a blocked producer once, not once per slot (which on a busy or
// single core turns every item into a context switch).
struct WaiterSet {
  std::uint32_t count = 0;     // registered: ids in slots plus overflow
  std::uint32_t signaled = 0;  // wakes sent, not yet taken up
  std::uint32_t overflow = 0;  // registered when every slot was taken

  // Where the ids are kept: out of the hot cache line.
  using Slots = std::uint32_t[kWaiterSlots];

  void add(std::uint32_t tid, Slots& slots) {
    if (!put_in_slot(tid, slots)) {
      purge_dead(slots);  // room held by killed waiters?
      if (!put_in_slot(tid, slots)) ++overflow;
    }
    ++count;
  }
  // Also for a waiter that timed out: it takes up a pending wake anyway,
  // which at worst makes a later wake go to a waiter that needed none.
  void remove(std::uint32_t tid, Slots& slots) {
    if (count > 0) --count;
    if (signaled > 0) --signaled;
    for (auto& slot : slots) {
      if (slot == tid) {
        slot = 0;
        return;
      }
    }
    if (overflow > 0) --overflow;
  }
  // After a take-over (the dead holder may have died inside add or remove),
  // or a purge: pending wakes are forgotten, so the next change wakes again.
  void recount(const Slots& slots) {
    count = overflow;
    for (auto slot : slots) count += slot != 0;
    signaled = 0;
  }
  void purge_dead(Slots& slots) {
    for (auto& slot : slots) {
      if (slot != 0 && !thread_alive(slot)) slot = 0;
    }
    recount(slots);
  }
  // With the lock held, after advancing `word`.
  void wake_one(std::atomic<std::uint32_t>& word) {
    if (count <= signaled) return;
    ++signaled;
    futex_wake(word, 1, Scope::kShared);
  }

 private:
  static bool put_in_slot(std::uint32_t tid, Slots& slots) {
    for (auto& slot : slots) {
      if (slot == 0) {
        slot = tid;
        return true;
      }
    }
    return false;
  }
};

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void pwrite_all(int fd, iovec* iov, int count, std::uint64_t offset) {
  while (count > 0) {
    const ssize_t n = ::pwritev(fd, iov, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("Queue.put(): writing an item to the queue's spill file failed");
    }
    offset += static_cast<std::uint64_t>(n);
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
}

void pread_all(int fd, void* out, std::size_t n, std::uint64_t offset) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("Queue.get(): reading an item from the queue's spill file failed");
    }
    if (r == 0) {
      throw std::system_error(EIO, std::generic_category(),
                              "Queue.get(): the queue's spill file is shorter than its index");
    }
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
}

Deadline slice_of(Deadline deadline) {
  const Deadline slice = Deadline::after(std::chrono::nanoseconds(kSliceNs));
  return slice.ns() < deadline.ns() ? slice : deadline;
}

// Spins until changed() or kSpinNs pass (or the deadline); true if changed.
template <class Changed>
bool spin_briefly(Changed changed, Deadline deadline) {
  const std::int64_t start = Deadline::monotonic_ns();
  const std::int64_t until = std::min(start + kSpinNs, deadline.ns());
  for (;;) {
    // Look only every few pauses: each look pulls the hot line away from
    // the process that is about to write it.
    for (int i = 0; i < 8; ++i) {
      if (changed()) return true;
      for (int k = 0; k < 8; ++k) cpu_relax();
    }
    if (Deadline::monotonic_ns() >= until) return changed();
  }
}

}  // namespace

struct alignas(64) SharedQueue::Control {
  static constexpr std::uint32_t kNoJournal = 0;
  static constexpr std::uint32_t kHotJournal = 1;   // hot_journal is the state to be
  static constexpr std::uint32_t kFullJournal = 2;  // and log_journal the log's

  explicit Control(std::uint64_t max) : maxsize(max) {}

  // The hot line: written by every put and get.
  LockWord<Scope::kShared> lock;
  std::atomic<std::uint32_t> items_seq{0};  // advanced by every put
  std::atomic<std::uint32_t> space_seq{0};  // advanced by every get
  std::atomic<std::uint32_t> journal{kNoJournal};
  HotState state;
  HotState hot_journal;
  // Read-mostly: written only when someone waits.
  alignas(64) WaiterSet getters;
  WaiterSet putters;
  WaiterSet joiners;
  std::atomic<std::uint32_t> done_seq{0};  // advanced when unfinished reaches 0
  const std::uint64_t maxsize;             // items; 0: unbounded
  // The spill log: touched only when it is used.
  alignas(64) LogState log;
  LogState log_journal;
  alignas(64) WaiterSet::Slots getter_ids = {};
  WaiterSet::Slots putter_ids = {};
  WaiterSet::Slots joiner_ids = {};

  // With the lock held: makes `next` the state, atomically with respect to
  // the death of this process (see the file comment). The signal fences
  // keep the compiler from moving the stores across the marks; the CPU
  // retires a killed thread's stores in order.
  void commit(const HotState& next) {
    hot_journal = next;
    journal.store(kHotJournal, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    state = next;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    journal.store(kNoJournal, std::memory_order_release);
  }
  void commit(const HotState& next, const LogState& next_log) {
    hot_journal = next;
    log_journal = next_log;
    journal.store(kFullJournal, std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    state = next;
    log = next_log;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    journal.store(kNoJournal, std::memory_order_release);
  }

  // With the lock just taken over from a dead holder.
  void recover() {
    const std::uint32_t j = journal.load(std::memory_order_acquire);
    if (j != kNoJournal) {
      state = hot_journal;
      if (j == kFullJournal) log = log_journal;
      journal.store(kNoJournal, std::memory_order_release);
    }
    getters.recount(getter_ids);
    putters.recount(putter_ids);
    joiners.recount(joiner_ids);
    // The dead holder may have changed the state without waking anyone.
    items_seq.fetch_add(1, std::memory_order_relaxed);
    space_seq.fetch_add(1, std::memory_order_relaxed);
    done_seq.fetch_add(1, std::memory_order_relaxed);
    futex_wake(items_seq, kWakeAll, Scope::kShared);
    futex_wake(space_seq, kWakeAll, Scope::kShared);
    futex_wake(done_seq, kWakeAll, Scope::kShared);
  }
};
static_assert(offsetof(SharedQueue::Control, getters) == 64,
              "the lock, the wait words, the state and its journal fill one cache line");

namespace {

using Control = SharedQueue::Control;

// The queue's lock, held for a scope; it can be let go and taken back.
class Held {
 public:
  explicit Held(Control& c) : c_(c) { lock(); }
  ~Held() {
    if (held_) c_.lock.release();
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

  // The lock is held for tens of nanoseconds, so a contender first spins a
  // little, looking at the word only every few pauses (each look pulls the
  // hot line away from the holder), then sleeps in the LockWord, which also
  // takes over the lock of a holder that died. Measured
  // (bench/ipc_bench.cpp): sleeping at once costs two futex calls per
  // collision, about half the throughput between two processes; looking at
  // every pause costs as much.
  void lock() {
    if (!c_.lock.try_acquire() && !spin_for_lock()) c_.lock.acquire();
    held_ = true;
    if (c_.lock.owner_died()) c_.recover();
  }
  void unlock() {
    held_ = false;
    c_.lock.release();
  }

 private:
  static constexpr int kLockSpins = 64;

  bool spin_for_lock() {
    for (int i = 0; i < kLockSpins; ++i) {
      for (int k = 0; k < 4; ++k) cpu_relax();
      if (!c_.lock.locked() && c_.lock.try_acquire()) return true;
    }
    return false;
  }

  Control& c_;
  bool held_ = false;
};

// Waits, with the lock held on entry and on return, until `ready()` or the
// deadline; true if ready. `word` is advanced by each change that may make
// it ready. First a spin without the lock, until the word has advanced by
// `batch` (or kSpinNs passed); then sleeps, registered in `waiters`.
template <class Ready>
bool wait_until_ready(Held& held, std::atomic<std::uint32_t>& word, WaiterSet& waiters,
                      WaiterSet::Slots& ids, std::uint32_t batch, Ready ready, Deadline deadline) {
  bool spun = false;
  while (!ready()) {
    if (deadline.is_now_only() || deadline.expired()) return false;
    const std::uint32_t seen = word.load(std::memory_order_relaxed);
    if (!spun) {
      spun = true;
      held.unlock();
      spin_briefly([&] { return word.load(std::memory_order_relaxed) - seen >= batch; }, deadline);
      held.lock();
      continue;
    }
    const std::uint32_t tid = current_tid();
    waiters.add(tid, ids);
    held.unlock();
    futex_wait(word, seen, Scope::kShared, slice_of(deadline));
    held.lock();
    waiters.remove(tid, ids);
  }
  return true;
}

}  // namespace

SharedQueue::SharedQueue(std::size_t maxsize) {
  using concur::detail::fault::Call;
  using concur::detail::fault::inject;
  void* control = inject(Call::kMmap) ? MAP_FAILED
                                      : ::mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE,
                                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (control == MAP_FAILED) throw_errno("Queue(): mmap of the control block failed");
  void* ring = inject(Call::kMmap) ? MAP_FAILED
                                   : ::mmap(nullptr, kRingBytes, PROT_READ | PROT_WRITE,
                                            MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ring == MAP_FAILED) {
    const int err = errno;
    ::munmap(control, sizeof(Control));
    throw std::system_error(err, std::generic_category(), "Queue(): mmap of the ring failed");
  }
  const int fd = inject(Call::kMemfd) ? -1 : ::memfd_create("concur-queue", MFD_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    ::munmap(control, sizeof(Control));
    ::munmap(ring, kRingBytes);
    throw std::system_error(err, std::generic_category(),
                            "Queue(): memfd_create of the spill file failed");
  }
  control_ = ::new (control) Control(maxsize);
  ring_ = static_cast<std::byte*>(ring);
  log_fd_ = fd;
}

SharedQueue::~SharedQueue() {
  // Control is trivially destructible: nothing to run, only unmap.
  ::munmap(control_, sizeof(Control));
  ::munmap(ring_, kRingBytes);
  ::close(log_fd_);
}

static_assert(std::is_trivially_destructible_v<SharedQueue::Control>,
              "the control block lives in shared memory and is never destroyed");

bool SharedQueue::put(std::span<const std::byte> item, Deadline deadline) {
  Control& c = *control_;
  Held held(c);
  // A producer that found the queue full spins until a batch of slots is
  // free (or the spin ends) rather than take each slot as it frees.
  const auto batch = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(c.maxsize / 4, 1, 64));
  const bool room = wait_until_ready(
      held, c.space_seq, c.putters, c.putter_ids, batch,
      [&] { return c.maxsize == 0 || c.state.count() < c.maxsize; }, deadline);
  if (!room) return false;

  HotState next = c.state;
  const std::uint64_t length = item.size();
  const std::uint64_t need = kRecordHeader + round8(length);
  ++next.unfinished;
  if (next.log_count == 0 && length <= kInlineMax && next.ring_used + need <= kRingBytes) {
    // The header never wraps (positions and sizes are multiples of 8); the
    // bytes may.
    const std::uint64_t at = (std::uint64_t{next.ring_head} + next.ring_used) & kRingMask;
    std::memcpy(ring_ + at, &length, kRecordHeader);
    const std::uint64_t body = (at + kRecordHeader) & kRingMask;
    const std::size_t first = static_cast<std::size_t>(std::min(length, kRingBytes - body));
    if (first > 0) std::memcpy(ring_ + body, item.data(), first);
    if (length > first) std::memcpy(ring_, item.data() + first, length - first);
    next.ring_used += static_cast<std::uint32_t>(need);
    ++next.ring_count;
    c.commit(next);
  } else {
    if (next.log_count == UINT32_MAX) {
      throw std::length_error("Queue.put(): the queue already holds " +
                              std::to_string(next.count()) + " items");
    }
    LogState log = c.log;
    std::uint64_t header = length;
    iovec iov[2] = {{&header, kRecordHeader},
                    {const_cast<std::byte*>(item.data()), static_cast<std::size_t>(length)}};
    pwrite_all(log_fd_, iov, length == 0 ? 1 : 2, log.tail);
    log.tail += kRecordHeader + length;
    ++next.log_count;
    c.commit(next, log);
  }
  c.items_seq.fetch_add(1, std::memory_order_relaxed);
  c.getters.wake_one(c.items_seq);
  return true;
}

bool SharedQueue::get(ItemSink& sink, Deadline deadline) {
  Control& c = *control_;
  Held held(c);
  if (!wait_until_ready(
          held, c.items_seq, c.getters, c.getter_ids, 1, [&] { return c.state.count() > 0; },
          deadline)) {
    return false;
  }

  HotState next = c.state;
  if (next.ring_count > 0) {
    const std::uint64_t at = next.ring_head;
    std::uint64_t length;
    std::memcpy(&length, ring_ + at, kRecordHeader);
    if (length > kInlineMax || kRecordHeader + round8(length) > next.ring_used) {
      throw std::system_error(EIO, std::generic_category(),
                              "Queue.get(): the queue's shared ring is corrupt");
    }
    std::byte* out = sink.prepare(static_cast<std::size_t>(length));
    const std::uint64_t body = (at + kRecordHeader) & kRingMask;
    const std::size_t first = static_cast<std::size_t>(std::min(length, kRingBytes - body));
    if (first > 0) std::memcpy(out, ring_ + body, first);
    if (length > first) std::memcpy(out + first, ring_, length - first);
    const auto taken = static_cast<std::uint32_t>(kRecordHeader + round8(length));
    next.ring_head = static_cast<std::uint32_t>((at + taken) & kRingMask);
    next.ring_used -= taken;
    if (--next.ring_count == 0) next.ring_head = 0;
    c.commit(next);
  } else {
    LogState log = c.log;
    std::uint64_t length;
    pread_all(log_fd_, &length, kRecordHeader, log.head);
    if (length > log.tail - log.head - kRecordHeader) {
      throw std::system_error(EIO, std::generic_category(),
                              "Queue.get(): the queue's spill file index is corrupt");
    }
    std::byte* out = sink.prepare(static_cast<std::size_t>(length));
    pread_all(log_fd_, out, static_cast<std::size_t>(length), log.head + kRecordHeader);
    log.head += kRecordHeader + length;
    bool truncate = false;
    std::uint64_t punch_from = 0, punch_to = 0;
    if (--next.log_count == 0) {
      log = LogState{};
      truncate = true;
    } else if (log.head - log.freed >= kPunchBytes) {
      const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
      punch_from = log.freed;
      punch_to = log.head / page * page;
      log.freed = punch_to;
    }
    c.commit(next, log);
    // Freeing memory may fail harmlessly; a process killed before it leaves
    // the pages until the log next empties.
    if (truncate) {
      [[maybe_unused]] const int rc = ::ftruncate(log_fd_, 0);
    } else if (punch_to > punch_from) {
      ::fallocate(log_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(punch_from), static_cast<off_t>(punch_to - punch_from));
    }
  }
  c.space_seq.fetch_add(1, std::memory_order_relaxed);
  c.putters.wake_one(c.space_seq);
  return true;
}

std::size_t SharedQueue::qsize() const {
  Held held(*control_);
  return static_cast<std::size_t>(control_->state.count());
}

bool SharedQueue::full() const {
  Held held(*control_);
  return control_->maxsize != 0 && control_->state.count() >= control_->maxsize;
}

std::size_t SharedQueue::maxsize() const { return static_cast<std::size_t>(control_->maxsize); }

bool SharedQueue::task_done() {
  Control& c = *control_;
  Held held(c);
  if (c.state.unfinished == 0) return false;
  HotState next = c.state;
  --next.unfinished;
  c.commit(next);
  if (next.unfinished == 0) {
    c.done_seq.fetch_add(1, std::memory_order_relaxed);
    if (c.joiners.count > 0) futex_wake(c.done_seq, kWakeAll, Scope::kShared);
  }
  return true;
}

void SharedQueue::join() {
  Control& c = *control_;
  Held held(c);
  while (c.state.unfinished > 0) {
    const std::uint32_t seen = c.done_seq.load(std::memory_order_relaxed);
    const std::uint32_t tid = current_tid();
    c.joiners.add(tid, c.joiner_ids);
    held.unlock();
    futex_wait(c.done_seq, seen, Scope::kShared, slice_of(Deadline::never()));
    held.lock();
    c.joiners.remove(tid, c.joiner_ids);
  }
}

std::uint64_t SharedQueue::unfinished() const {
  Held held(*control_);
  return control_->state.unfinished;
}

SharedQueue::Layout SharedQueue::layout() const {
  Layout out{};
  {
    Held held(*control_);
    out.ring_items = control_->state.ring_count;
    out.log_items = control_->state.log_count;
  }
  struct stat st {};
  if (::fstat(log_fd_, &st) == 0)
    out.log_file_bytes = static_cast<std::uint64_t>(st.st_blocks) * 512;
  return out;
}

}  // namespace concur::detail
