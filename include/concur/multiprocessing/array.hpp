#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "concur/detail/shared_block.hpp"
#include "concur/multiprocessing/lock.hpp"

namespace concur::multiprocessing {

/// A fixed-size array of T in shared memory, without a lock.
/// - Python: multiprocessing.RawArray.
/// - T must be trivially copyable. Array(n) value-initializes (zeroes for plain
///   types); as with std::vector, `Array<int>{8}` holds one element, 8.
/// - A cheap copyable handle: copies refer to the same elements, also in
///   processes forked after it was made.
/// - Thread-safety: none of its own; see Array.
/// - Throws: std::length_error when n elements do not fit in memory's address
///   range; std::system_error when the shared mapping cannot be made.
template <class T>
class RawArray {
  static_assert(std::is_trivially_copyable_v<T>,
                "mp::RawArray<T> needs a trivially copyable T: its bytes are shared as they are");

 public:
  /// Python: RawArray(typecode, n): n value-initialized elements.
  explicit RawArray(std::size_t n) : RawArray(n, nullptr) {}
  /// Python: RawArray(typecode, sequence): a copy of `items`.
  RawArray(std::initializer_list<T> items) : RawArray(items.size(), items.begin()) {}

  /// Element i, unchecked, as std::vector's operator[].
  T& operator[](std::size_t i) { return data_.get()[i]; }
  /// Element i, unchecked.
  const T& operator[](std::size_t i) const { return data_.get()[i]; }
  /// Bounds-checked: std::out_of_range (Python: IndexError).
  T& at(std::size_t i) {
    if (i >= size_) {
      throw std::out_of_range("Array.at(): index " + std::to_string(i) + " out of range for size " +
                              std::to_string(size_));
    }
    return data_.get()[i];
  }
  /// The number of elements, fixed at construction (Python: len(a)).
  std::size_t size() const { return size_; }
  /// The first element in the shared mapping; the same bytes in every process.
  T* data() { return data_.get(); }
  /// The first element in the shared mapping.
  const T* data() const { return data_.get(); }
  /// For range-for and the standard algorithms.
  T* begin() { return data_.get(); }
  /// One past the last element.
  T* end() { return data_.get() + size_; }
  /// For range-for and the standard algorithms.
  const T* begin() const { return data_.get(); }
  /// One past the last element.
  const T* end() const { return data_.get() + size_; }

 private:
  RawArray(std::size_t n, const T* init) : size_(n) {
    if (n > (SIZE_MAX - 1) / sizeof(T)) throw std::length_error("Array(): too many elements");
    std::shared_ptr<void> block = detail::map_shared(n * sizeof(T));
    T* first = static_cast<T*>(block.get());
    for (std::size_t i = 0; i < n; ++i) ::new (first + i) T(init ? init[i] : T());
    data_ = std::shared_ptr<T>(std::move(block), first);
  }

  std::size_t size_;
  std::shared_ptr<T> data_;
};

/// A fixed-size array of T in shared memory, with a process-shared lock.
/// - Python: multiprocessing.Array (lock=True).
/// - Thread-safety: element access is not itself synchronized: hold
///   get_lock() around compound updates.
template <class T>
class Array : public RawArray<T> {
 public:
  /// Python: Array(typecode, n): n value-initialized elements and a fresh lock.
  explicit Array(std::size_t n) : RawArray<T>(n) {}
  /// Python: Array(typecode, sequence): a copy of `items` and a fresh lock.
  Array(std::initializer_list<T> items) : RawArray<T>(items) {}

  /// The mp::Lock made with the array, shared by its copies: hold it around
  /// compound updates.
  Lock& get_lock() { return lock_; }

 private:
  Lock lock_;
};

}  // namespace concur::multiprocessing
