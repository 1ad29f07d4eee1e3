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

// Maps the pages of [begin, begin + bytes) that are not yet present, ready
// for writing, in one system call (MADV_POPULATE_WRITE) instead of a page
// fault each. Best effort: does nothing where the kernel lacks it.
void prefault_for_writing(void* begin, std::size_t bytes) noexcept;

// Keeps the whole pages inside [begin, begin + bytes) out of the children
// forked while it lives (MADV_DONTFORK), and gives them back to later forks
// when it ends. For a buffer the caller fills once its workers are done:
// fork write-protects every private page of the caller, so without this each
// page of the buffer costs a copy-on-write fault when it is written; with
// it, they stay writable and fork copies fewer page tables. The pages must
// not be used by those children (nothing of a fresh buffer is).
class HiddenFromFork {
 public:
  HiddenFromFork(void* begin, std::size_t bytes) noexcept;
  ~HiddenFromFork();
  HiddenFromFork(const HiddenFromFork&) = delete;
  HiddenFromFork& operator=(const HiddenFromFork&) = delete;

 private:
  void* pages_ = nullptr;
  std::size_t length_ = 0;
};

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
