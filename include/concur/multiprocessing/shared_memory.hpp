#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace concur::multiprocessing {

// A named block of shared memory that unrelated processes can attach to by
// name. Python: multiprocessing.shared_memory.SharedMemory.
// Names: given without the leading '/', as Python shows them; a fresh unique
//   name "psm_<hex>" when made by size alone.
// Lifetime: the memory outlives every handle until unlink() is called by one
//   process (as in Python, call it once the block is no longer needed);
//   close() unmaps it in this process only. A cheap copyable handle.
// Throws: std::system_error with ENOENT (attach to a missing name), EEXIST
//   (create an existing one), or the errno of a failed call;
//   std::invalid_argument for create with size 0 or a bad name.
// Thread-safety: the handle's members may be called from any thread; the
//   bytes themselves are not synchronized.
class SharedMemory {
 public:
  SharedMemory(std::string name, bool create, std::size_t size = 0);
  explicit SharedMemory(std::size_t size);

  // Empty after close().
  std::span<std::byte> buf() const;
  const std::string& name() const;
  std::size_t size() const;
  void close();
  void unlink();

 private:
  struct Mapping;
  std::shared_ptr<Mapping> mapping_;
};

}  // namespace concur::multiprocessing
