// Anonymous shared mappings for the process-shared objects.
#include "concur/detail/shared_block.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include "fault_injection.hpp"

namespace concur::detail {

std::shared_ptr<void> map_shared(std::size_t bytes) {
  const std::size_t length = bytes == 0 ? 1 : bytes;
  void* p = fault::inject(fault::Call::kMmap)
                ? MAP_FAILED
                : ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw std::system_error(
        errno, std::generic_category(),
        "concur: mmap of " + std::to_string(length) + " bytes of shared memory failed");
  }
  return std::shared_ptr<void>(p, [length](void* q) { ::munmap(q, length); });
}

namespace {

// The whole pages inside [begin, begin + bytes), or inside its page-rounded
// hull when `outward`.
std::pair<std::uintptr_t, std::uintptr_t> page_range(void* begin, std::size_t bytes, bool outward) {
  static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<std::uintptr_t>(begin);
  const std::uintptr_t last = first + bytes;
  if (outward) return {first & ~(page - 1), (last + page - 1) & ~(page - 1)};
  return {(first + page - 1) & ~(page - 1), last & ~(page - 1)};
}

// Smaller buffers are not worth the system calls (and a VMA split).
constexpr std::size_t kMinHiddenBytes = std::size_t{64} << 10;

}  // namespace

void prefault_for_writing(void* begin, std::size_t bytes) noexcept {
#ifdef MADV_POPULATE_WRITE
  if (begin == nullptr || bytes == 0) return;
  const auto [from, to] = page_range(begin, bytes, true);
  ::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
#else
  (void)begin;
  (void)bytes;
#endif
}

HiddenFromFork::HiddenFromFork(void* begin, std::size_t bytes) noexcept {
  if (begin == nullptr || bytes < kMinHiddenBytes) return;
  const auto [from, to] = page_range(begin, bytes, false);
  if (to <= from) return;
  if (::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTFORK) == 0) {
    pages_ = reinterpret_cast<void*>(from);
    length_ = to - from;
  }
}

HiddenFromFork::~HiddenFromFork() {
  if (pages_ != nullptr) ::madvise(pages_, length_, MADV_DOFORK);
}

}  // namespace concur::detail
