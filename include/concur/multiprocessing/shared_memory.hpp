#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace concur::multiprocessing {

/// A named block of shared memory that unrelated processes can attach to by
/// name.
/// - Python: multiprocessing.shared_memory.SharedMemory.
/// - Names: given without the leading '/', as Python shows them; a fresh unique
///   name "psm_<hex>" when made by size alone.
/// - Lifetime: the memory outlives every handle until unlink() is called by one
///   process (as in Python, call it once the block is no longer needed);
///   close() unmaps it in this process only. A cheap copyable handle.
/// - Throws: std::system_error with ENOENT (attach to a missing name), EEXIST
///   (create an existing one), or the errno of a failed call;
///   std::invalid_argument for create with size 0 or a bad name.
/// - Thread-safety: the handle's members may be called from any thread; the
///   bytes themselves are not synchronized.
class SharedMemory {
 public:
  /// Python: SharedMemory(name, create, size). create: a new block of `size`
  /// bytes (EEXIST if the name is taken); otherwise attaches to the block of
  /// that name (ENOENT if there is none) and takes its size from it.
  SharedMemory(std::string name, bool create, std::size_t size = 0);
  /// Python: SharedMemory(create=True, size=size): a new block under a fresh
  /// unique name.
  explicit SharedMemory(std::size_t size);

  /// Python: shm.buf: the mapped bytes. Empty after close().
  std::span<std::byte> buf() const;
  /// Python: shm.name: without the leading '/'; pass it to another process
  /// to attach.
  const std::string& name() const;
  /// Python: shm.size: the block's size in bytes.
  std::size_t size() const;
  /// Unmaps the block in this process, for every handle to it here; the block
  /// and other processes' mappings stay. Spans from buf() dangle afterwards.
  void close();
  /// Removes the name, so the memory goes once every process has unmapped it;
  /// call it once, from one process. A second call: std::system_error(ENOENT).
  void unlink();

 private:
  struct Mapping;
  std::shared_ptr<Mapping> mapping_;
};

}  // namespace concur::multiprocessing
