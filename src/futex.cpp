// Linux futex system calls: the only place concur sleeps or wakes.
#include "concur/detail/futex.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include "fault_injection.hpp"
#include "fork_page.hpp"

namespace concur::detail {

constinit thread_local std::uint32_t t_cached_tid = 0;

namespace {

int op(int base, Scope scope) {
  return scope == Scope::kPrivate ? (base | FUTEX_PRIVATE_FLAG) : base;
}

// After fork the child's only thread has a new kernel id; forget the old one.
CONCUR_FORK_PATH void forget_tid_in_child() { t_cached_tid = 0; }

[[maybe_unused]] const int kAtforkRegistered =
    pthread_atfork(nullptr, nullptr, &forget_tid_in_child);

}  // namespace

std::uint32_t load_tid_slow() {
  t_cached_tid = static_cast<std::uint32_t>(::gettid());
  return t_cached_tid;
}

bool thread_alive(std::uint32_t tid) {
  // /proc/<tid> exists for every live thread, also one of another process
  // and one that is not a group leader. A dead leader lingers as a zombie
  // until reaped: state Z (or X) counts as gone.
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%u/stat", tid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT && errno != ESRCH;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return stat_says_alive(buf);
}

bool stat_says_alive(const char* stat_text) {
  const char* paren = std::strrchr(stat_text, ')');
  if (paren == nullptr || paren[1] == '\0' || paren[2] == '\0') return true;
  const char state = paren[2];
  return state != 'Z' && state != 'X' && state != 'x';
}

WaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, Scope scope,
                      Deadline deadline) {
  if (deadline.is_now_only()) return WaitResult::kTimedOut;
  timespec ts{};
  timespec* abs = nullptr;
  if (!deadline.is_never()) {
    ts.tv_sec = static_cast<time_t>(deadline.ns() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(deadline.ns() % 1'000'000'000);
    abs = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a wait
  // that is interrupted and resumed keeps its original bound.
  const long rc =
      fault::inject(fault::Call::kFutexWait)
          ? -1
          : ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
                      op(FUTEX_WAIT_BITSET, scope), expected, abs, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return WaitResult::kWoken;
  switch (errno) {
    case EAGAIN:
      return WaitResult::kValueChanged;
    case ETIMEDOUT:
      return WaitResult::kTimedOut;
    default:
      return WaitResult::kInterrupted;
  }
}

int futex_wake(std::atomic<std::uint32_t>& word, int count, Scope scope) {
  const long rc = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
                            op(FUTEX_WAKE, scope), count, nullptr, nullptr, 0);
  return rc < 0 ? 0 : static_cast<int>(rc);
}

}  // namespace concur::detail
