#include "fork_page.hpp"

#include <atomic>
#include <new>

namespace concur::detail {

namespace {

constexpr std::size_t kPageSize = 4096;
alignas(kPageSize) unsigned char g_page[kPageSize];  // zero-filled, no constructor
std::atomic<std::size_t> g_used{0};

}  // namespace

void* fork_page_allocate(std::size_t size, std::size_t align) {
  std::size_t used = g_used.load(std::memory_order_relaxed);
  for (;;) {
    const std::size_t start = (used + align - 1) / align * align;
    if (start + size > kPageSize) return ::operator new(size, std::align_val_t{align});
    if (g_used.compare_exchange_weak(used, start + size, std::memory_order_relaxed)) {
      return g_page + start;
    }
  }
}

}  // namespace concur::detail
