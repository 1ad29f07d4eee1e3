// POSIX shared memory (shm_open) for mp::SharedMemory.
#include "concur/multiprocessing/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include "fault_injection.hpp"

namespace concur::multiprocessing {

struct SharedMemory::Mapping {
  std::string name;
  std::size_t size = 0;
  void* addr = nullptr;
  std::mutex mutex;  // guards addr against a concurrent close()

  ~Mapping() { unmap(); }
  void unmap() {
    std::scoped_lock guard(mutex);
    if (addr != nullptr) ::munmap(addr, size == 0 ? 1 : size);
    addr = nullptr;
  }
};

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

std::string unique_name() {
  unsigned char bytes[8];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "SharedMemory(): getrandom failed");
    }
    got += static_cast<std::size_t>(n);
  }
  std::string name = "psm_";
  char hex[3];
  for (unsigned char b : bytes) {
    std::snprintf(hex, sizeof hex, "%02x", b);
    name += hex;
  }
  return name;
}

std::string posix_name(const std::string& name) { return "/" + name; }

}  // namespace

SharedMemory::SharedMemory(std::string name, bool create, std::size_t size) {
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  if (name.empty() || name.find('/') != std::string::npos) {
    throw std::invalid_argument("SharedMemory(): name must be non-empty and contain no '/'");
  }
  if (create && size == 0) {
    throw std::invalid_argument(
        "SharedMemory(): size must be a positive number when creating a block");
  }
  const int flags = create ? (O_CREAT | O_EXCL | O_RDWR) : O_RDWR;
  using concur::detail::fault::Call;
  using concur::detail::fault::inject;
  const int fd =
      inject(Call::kShmOpen) ? -1 : ::shm_open(posix_name(name).c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno(errno, "SharedMemory(): shm_open(\"" + name + "\") failed");
  auto mapping = std::make_shared<Mapping>();
  mapping->name = name;
  try {
    if (create) {
      if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        const int err = errno;
        ::shm_unlink(posix_name(name).c_str());
        throw_errno(err, "SharedMemory(): ftruncate failed");
      }
    } else {
      struct stat st {};
      if (::fstat(fd, &st) != 0) throw_errno(errno, "SharedMemory(): fstat failed");
      size = static_cast<std::size_t>(st.st_size);
    }
    mapping->size = size;
    void* addr = inject(Call::kMmap)
                     ? MAP_FAILED
                     : ::mmap(nullptr, size == 0 ? 1 : size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      if (create) ::shm_unlink(posix_name(name).c_str());
      throw_errno(err, "SharedMemory(): mmap failed");
    }
    mapping->addr = addr;
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // the mapping keeps the memory; no descriptor stays open
  mapping_ = std::move(mapping);
}

SharedMemory::SharedMemory(std::size_t size) {
  if (size == 0) {
    throw std::invalid_argument(
        "SharedMemory(): size must be a positive number when creating a block");
  }
  for (;;) {
    try {
      *this = SharedMemory(unique_name(), true, size);
      return;
    } catch (const std::system_error& e) {
      if (e.code().value() != EEXIST) throw;
    }
  }
}

std::span<std::byte> SharedMemory::buf() const {
  if (mapping_->addr == nullptr) return {};
  return {static_cast<std::byte*>(mapping_->addr), mapping_->size};
}
const std::string& SharedMemory::name() const { return mapping_->name; }
std::size_t SharedMemory::size() const { return mapping_->size; }
void SharedMemory::close() { mapping_->unmap(); }
void SharedMemory::unlink() {
  if (::shm_unlink(posix_name(mapping_->name).c_str()) != 0) {
    throw_errno(errno, "SharedMemory.unlink(): shm_unlink(\"" + mapping_->name + "\") failed");
  }
}

}  // namespace concur::multiprocessing
