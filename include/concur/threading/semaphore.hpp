#pragma once

#include <cstdint>

#include "concur/detail/lock_api.hpp"
#include "concur/detail/semaphore_word.hpp"

namespace concur::threading {

/// A counter of permits; acquire() takes one, release() gives some back.
/// - Python: threading.Semaphore.
/// - Thread-safety: every member may be called from any thread.
/// - Blocks: acquire() while the count is 0; acquire(false) and a zero or
///   negative timeout never block (Python's Semaphore takes a negative timeout
///   as "do not wait").
/// - Throws: std::invalid_argument for value < 0 or > kMaxValue and n < 1;
///   std::overflow_error when a release would pass kMaxValue (2^30 - 1).
/// - Size: one 32-bit word. release() makes no system call unless a thread is
///   asleep in acquire(). release() is a release operation, a successful
///   acquire() an acquire operation.
class Semaphore : public detail::SemaphoreApi<Semaphore> {
  using Word = detail::SemaphoreWord<detail::Scope::kPrivate>;

 public:
  /// The largest count (2^30 - 1): the word's other bits flag waiters and a bound.
  static constexpr int kMaxValue = static_cast<int>(Word::kMaxValue);

  /// Starts with `value` permits (Python's default, 1).
  explicit Semaphore(int value = 1) : word_(checked_value(value, kMaxValue), false) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

 protected:
  /// For BoundedSemaphore: `bounded` sets the word's flag that makes
  /// release() check the bound it keeps.
  Semaphore(int value, bool bounded) : word_(checked_value(value, kMaxValue), bounded) {}

 private:
  friend class detail::SemaphoreApi<Semaphore>;
  Word& word() { return word_; }
  const Word& word() const { return word_; }
  std::uint32_t bound() const;

  Word word_;
};

/// A Semaphore that refuses to be released above its initial value.
/// - Python: threading.BoundedSemaphore.
/// - Thread-safety, blocking: as Semaphore.
/// - Throws: as Semaphore, and std::invalid_argument from a release that would
///   pass the initial value, leaving the value unchanged. The bound holds also
///   through a Semaphore& and through unlock(): the word carries a flag that
///   sends Semaphore::release to the bound kept here.
class BoundedSemaphore : public Semaphore {
 public:
  /// Starts with `value` permits, which is also the bound.
  explicit BoundedSemaphore(int value = 1) : Semaphore(value, true), bound_(value) {}

 private:
  friend class Semaphore;
  int bound_;
};

// The downcast runs only when the word's bounded flag says the object is a
// BoundedSemaphore; GCC cannot see that and warns on plain Semaphores.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
inline std::uint32_t Semaphore::bound() const {
  return word_.bounded()
             ? static_cast<std::uint32_t>(static_cast<const BoundedSemaphore*>(this)->bound_)
             : UINT32_MAX;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace concur::threading
