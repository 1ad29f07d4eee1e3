// For the tests that run the process_* helper programs: start one with its
// stdout and stderr on a pipe, read what it prints, wait for its end with a
// bound; and tell whether some pid has stopped running. Every wait is
// bounded; none is a sleep.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "test_support.hpp"

extern char** environ;

namespace concur::testing {

struct Spawned {
  pid_t pid = -1;
  int out = -1;  // the read end of its stdout and stderr
};

inline Spawned spawn_helper(const std::string& name, const char* arg = nullptr) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  const std::string path = std::string(CONCUR_HELPER_DIR) + "/" + name;
  char* argv[] = {const_cast<char*>(path.c_str()), const_cast<char*>(arg), nullptr};
  Spawned s;
  EXPECT_EQ(::posix_spawn(&s.pid, path.c_str(), &actions, nullptr, argv, environ), 0) << path;
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  s.out = fds[0];
  return s;
}

// One line, without its newline; what there is if the bound passes.
inline std::string read_line(int fd, std::chrono::milliseconds bound = kTestTimeout) {
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  char c;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    if (::read(fd, &c, 1) != 1 || c == '\n') break;
    line += c;
  }
  return line;
}

// Everything up to end of file (every writer closed), or the bound.
inline std::string read_all(int fd, std::chrono::milliseconds bound = kTestTimeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  char buf[512];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// The wait status of a child of ours once it has ended; nullopt (after
// killing and reaping it) if it has not ended within the bound.
inline std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds bound = kTestTimeout) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool ended = true;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    ended = ::poll(&p, 1, static_cast<int>(bound.count())) == 1;
    ::close(pidfd);
  }
  if (!ended) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!ended) return std::nullopt;
  return status;
}

// Gone, or a zombie its parent has not reaped yet: it runs no more.
inline bool pid_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const char state = proc_state("/proc/" + std::to_string(pid) + "/stat");
  return state == 0 || state == 'Z';
}

// pid_gone(pid) within the bound; polled, as nothing signals us about a
// process that is not our child.
inline bool gone_within(pid_t pid, std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pid_gone(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return pid_gone(pid);
    ::usleep(200);  // polling a foreign process's end, bounded: not a hand-off
  }
  return true;
}

}  // namespace concur::testing
