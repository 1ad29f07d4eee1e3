// Children for the cross-process tests: fork, run a function, _exit with
// its result; the parent waits with a bound and kills on expiry. A child
// never returns into GoogleTest and never runs an assertion.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <optional>

#include "test_support.hpp"

namespace concur::testing {

// Runs body() in a child; its return value is the exit code, an exception
// gives 99.
inline pid_t fork_child(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
    }
    ::_exit(code);
  }
  return pid;
}

// The child's wait status, or nullopt (after killing and reaping it) if it
// did not end within the bound.
inline std::optional<int> wait_child(pid_t pid,
                                     std::chrono::steady_clock::duration bound = kTestTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return std::nullopt;
    }
    ::usleep(200);  // polling a child's end: not synchronization of the test's logic
  }
}

// The exit code of a child that exited normally, -1 otherwise.
inline int exit_code(const std::optional<int>& status) {
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

}  // namespace concur::testing
