// Anonymous shared mappings for the process-shared objects.
#include "concur/detail/shared_block.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace concur::detail {

std::shared_ptr<void> map_shared(std::size_t bytes) {
  const std::size_t length = bytes == 0 ? 1 : bytes;
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw std::system_error(
        errno, std::generic_category(),
        "concur: mmap of " + std::to_string(length) + " bytes of shared memory failed");
  }
  return std::shared_ptr<void>(p, [length](void* q) { ::munmap(q, length); });
}

}  // namespace concur::detail
