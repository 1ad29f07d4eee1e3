#pragma once

#include <cstdint>
#include <memory>

#include "concur/detail/lock_api.hpp"
#include "concur/detail/semaphore_word.hpp"
#include "concur/detail/shared_block.hpp"

namespace concur::multiprocessing {

/// A counter of permits shared by the threads of every process forked after it
/// was made.
/// - Python: multiprocessing.Semaphore.
/// - A cheap copyable handle: copies refer to the same semaphore.
/// - Thread-safety, blocking, errors: exactly as concur::threading::Semaphore
///   (the same algorithm on a word in shared memory, with shared futexes).
class Semaphore : public detail::SemaphoreApi<Semaphore> {
  using Word = detail::SemaphoreWord<detail::Scope::kShared>;

 public:
  /// The largest count (2^30 - 1), as threading::Semaphore::kMaxValue.
  static constexpr int kMaxValue = static_cast<int>(Word::kMaxValue);

  /// Starts with `value` permits (Python's default, 1), in fresh shared
  /// memory: processes forked from now on share it.
  explicit Semaphore(int value = 1) : Semaphore(value, UINT32_MAX) {}

 protected:
  /// For BoundedSemaphore: a release may not take the count past `bound`
  /// (UINT32_MAX: unbounded); the bound is kept in the shared memory too.
  Semaphore(int value, std::uint32_t bound)
      : shared_(detail::make_shared_object<Shared>(checked_value(value, kMaxValue), bound)) {}

 private:
  friend class detail::SemaphoreApi<Semaphore>;
  struct Shared {
    Shared(std::uint32_t value, std::uint32_t max) : word(value, max != UINT32_MAX), bound(max) {}
    Word word;
    const std::uint32_t bound;
  };
  Word& word() const { return shared_->word; }
  std::uint32_t bound() const { return shared_->bound; }

  std::shared_ptr<Shared> shared_;
};

/// A Semaphore that refuses to be released above its initial value.
/// - Python: multiprocessing.BoundedSemaphore.
/// - Throws: as threading::BoundedSemaphore; the bound is kept in shared memory,
///   so it holds in every process, through a Semaphore& and through unlock().
class BoundedSemaphore : public Semaphore {
 public:
  /// Starts with `value` permits, which is also the bound.
  explicit BoundedSemaphore(int value = 1)
      : Semaphore(value, static_cast<std::uint32_t>(value < 0 ? 0 : value)) {}
};

}  // namespace concur::multiprocessing
