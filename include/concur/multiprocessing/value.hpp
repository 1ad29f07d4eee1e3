#pragma once

#include <memory>
#include <type_traits>

#include "concur/detail/shared_block.hpp"
#include "concur/multiprocessing/lock.hpp"

namespace concur::multiprocessing {

/// One T in shared memory, without a lock.
/// - Python: multiprocessing.RawValue.
/// - T must be trivially copyable: its bytes are all there is to share.
/// - A cheap copyable handle: copies, also in processes forked after it was
///   made, refer to the same value.
/// - Thread-safety: none of its own; guard it (see Value) or use atomics.
template <class T>
class RawValue {
  static_assert(std::is_trivially_copyable_v<T>,
                "mp::RawValue<T> needs a trivially copyable T: its bytes are shared as they are");

 public:
  /// Python: RawValue(typecode, initial), in fresh shared memory.
  explicit RawValue(T initial = T{}) : value_(detail::make_shared_object<T>(initial)) {}

  /// Python: v.value. The T in shared memory itself: writes through it are
  /// seen by every process that shares it.
  T& value() { return *value_; }
  /// Python: v.value, read.
  const T& value() const { return *value_; }

 private:
  std::shared_ptr<T> value_;
};

/// One T in shared memory, with a process-shared lock that guards it.
/// - Python: multiprocessing.Value (lock=True).
/// - Thread-safety: reading or writing value() is not itself synchronized:
///   hold get_lock() around compound updates
///   (`std::scoped_lock g(v.get_lock()); ++v.value();`), as in Python, where
///   `v.value += 1` is not atomic either.
template <class T>
class Value : public RawValue<T> {
 public:
  /// Python: Value(typecode, initial): the value and a fresh lock.
  explicit Value(T initial = T{}) : RawValue<T>(initial) {}

  /// The mp::Lock made with the value, shared by its copies.
  Lock& get_lock() { return lock_; }

 private:
  Lock lock_;
};

}  // namespace concur::multiprocessing
