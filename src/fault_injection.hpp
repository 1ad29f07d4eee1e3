// The fault-injection seam: every system call of concur that can fail for
// want of a resource goes through inject() first. In the library that
// programs link, inject() is a constant false and compiles away. In the
// test build of the library (CMake target concur_fault_injection, defining
// CONCUR_FAULT_INJECTION) a test arms a call to fail with the errno of its
// choice, to prove that each failure ends in a clear exception and leaves
// the library usable, with nothing leaked (tests/faults/injection_test.cpp).
#pragma once

namespace concur::detail::fault {

enum class Call : int {
  kFork,
  kMmap,        // every mapping concur makes: shared blocks, Queue, SharedMemory
  kSocketpair,  // Pipe and the pools' worker links
  kPipe,        // the sentinel pipe where there is no pidfd
  kEventfd,
  kMemfd,
  kShmOpen,
  kPidfdOpen,
  kFutexWait,  // fails as a spurious wake-up would (EINTR or EAGAIN)
  kProcessVm,  // a resident worker's process_vm_readv/writev of the caller's memory
  kCount,
};

#ifdef CONCUR_FAULT_INJECTION
// True when this call must fail now; errno is then set to the armed error.
bool inject(Call call) noexcept;

// The next `times` calls after the next `skip` fail with `error`.
void arm(Call call, int error, int times = 1, int skip = 0) noexcept;
// Every `period`-th call fails with `error` until disarmed.
void arm_every(Call call, int error, int period) noexcept;
void disarm_all() noexcept;
// How many calls failed by injection since the last disarm_all().
int injected(Call call) noexcept;
#else
constexpr bool inject(Call) noexcept { return false; }
#endif

}  // namespace concur::detail::fault
