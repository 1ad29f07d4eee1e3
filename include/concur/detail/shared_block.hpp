// Anonymous shared memory for the process-shared objects.
//
// Each object lives in its own MAP_SHARED|MAP_ANONYMOUS mapping made before
// fork, so it sits at the same virtual address in every process forked
// afterwards: raw pointers inside it (a Condition's waiter list) stay valid in
// all of them. The mapping is owned by a std::shared_ptr per process: copies
// of a handle share it, and this process unmaps it when its last handle goes;
// the kernel frees the pages when the last process has unmapped them.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace concur::detail {

// Zero-filled shared pages of at least `bytes`. std::system_error on failure.
std::shared_ptr<void> map_shared(std::size_t bytes);

// Constructs a T in fresh shared memory. T must not need its destructor run:
// a process that dies or unmaps never runs it.
template <class T, class... Args>
std::shared_ptr<T> make_shared_object(Args&&... args) {
  static_assert(std::is_trivially_destructible_v<T>,
                "an object in shared memory must be trivially destructible");
  std::shared_ptr<void> block = map_shared(sizeof(T));
  T* object = ::new (block.get()) T(std::forward<Args>(args)...);
  return std::shared_ptr<T>(std::move(block), object);
}

}  // namespace concur::detail
