// A fixture for every test that makes processes, descriptors or shared
// memory. It records, before the test, the open descriptors
// (/proc/self/fd), the entries of /dev/shm and this process's children; after
// the test it checks, allowing a few seconds for concur's reaper to finish:
//   - no new child is left, neither running nor a zombie (a test that means
//     to leave a child running calls expect_children_left_running()), and no
//     older child has become a zombie;
//   - no descriptor is open that was not open before;
//   - nothing new is left in /dev/shm;
//   - no more threads run in this process than before (concur's own
//     helpers -- the reaper, the fork thread, a pool's supervisor -- end on
//     their own once their work is done).
// tests/hygiene_listener.cpp runs these checks around every test of every
// test binary, fixture or not; this fixture is for tests that need the
// opt-outs below.
// Children are found through /proc/<pid>/stat's parent field, so children
// forked by any thread of this process count. A new child still running
// after the bound is killed (so it cannot spoil later tests) and reported.
//
// Use:
//   class QueueTest : public concur::testing::HygieneTest {};
//   TEST_F(QueueTest, ...) { ... }
//   // a typed suite:
//   CONCUR_HYGIENE_TYPED_TEST_SUITE(LockTest, LockTypes);
//   TYPED_TEST(LockTest, ...) { ... }
// A fixture that overrides SetUp() or TearDown() calls HygieneTest's too.
// A fixture that cannot derive from HygieneTest holds a Hygiene and calls
// record() in SetUp() and check() in TearDown().
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace concur::testing {

inline std::set<std::string> list_dir(const std::string& path) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") out.insert(name);
    }
    ::closedir(d);
  }
  return out;
}

// The descriptors open in this process (without the one used to list them).
inline std::set<int> open_fds() {
  std::set<int> out;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const int fd = std::atoi(e->d_name);
      if (fd != own) out.insert(fd);
    }
    ::closedir(d);
  }
  return out;
}

// What a descriptor refers to, for messages.
inline std::string fd_target(int fd) {
  char buf[512];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("?");
}

// The state letter and parent pid of a process, from /proc/<pid>/stat;
// false if it is gone. Plain read(): a vanishing process makes read() fail.
inline bool read_stat(pid_t pid, char& state, pid_t& ppid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  const std::string text(buf, static_cast<std::size_t>(n));
  const auto paren = text.rfind(')');  // the name may hold spaces and ')'
  if (paren == std::string::npos) return false;
  std::istringstream rest(text.substr(paren + 1));
  long parent = 0;
  if (!(rest >> state >> parent)) return false;
  ppid = static_cast<pid_t>(parent);
  return true;
}

// The children of this process (forked by any of its threads), each with
// its state letter ('Z' for a zombie).
inline std::map<pid_t, char> children_states() {
  std::map<pid_t, char> out;
  const pid_t self = ::getpid();
  for (const auto& entry : list_dir("/proc")) {
    if (entry.empty() || entry[0] < '0' || entry[0] > '9') continue;
    const pid_t pid = static_cast<pid_t>(std::atoi(entry.c_str()));
    char state = 0;
    pid_t ppid = 0;
    if (read_stat(pid, state, ppid) && ppid == self) out[pid] = state;
  }
  return out;
}

// The threads of this process.
inline int thread_count() { return static_cast<int>(list_dir("/proc/self/task").size()); }

// The pids of our children that are zombies (ended, not reaped).
inline std::vector<int> zombie_children() {
  std::vector<int> zombies;
  for (const auto& [pid, state] : children_states()) {
    if (state == 'Z') zombies.push_back(pid);
  }
  return zombies;
}

// The checks, usable without the fixture.
class Hygiene {
 public:
  // How long check() waits for children, descriptors and /dev/shm entries
  // to go (concur reaps orphans on another thread).
  static constexpr auto kSettleBound = std::chrono::seconds(5);

  void record() {
    fds_ = open_fds();
    shm_ = list_dir("/dev/shm");
    children_ = children_states();
    threads_ = thread_count();
    allow_running_ = false;
    allow_threads_ = false;
  }

  // The test leaves children running on purpose: only zombies are checked.
  void expect_children_left_running() { allow_running_ = true; }
  // The test leaves threads running on purpose (daemon threads).
  void expect_threads_left_running() { allow_threads_ = true; }

  void check() {
    std::map<pid_t, char> left;
    std::set<int> new_fds;
    std::vector<std::string> new_shm;
    int threads = 0;
    const auto deadline = std::chrono::steady_clock::now() + kSettleBound;
    for (;;) {
      left = offending_children();
      new_fds = leaked_fds();
      new_shm = leaked_shm();
      threads = allow_threads_ ? 0 : thread_count() - threads_;
      if ((left.empty() && new_fds.empty() && new_shm.empty() && threads <= 0) ||
          std::chrono::steady_clock::now() > deadline) {
        break;
      }
      // Polling the end of cleanup another thread does, bounded: not a
      // hand-off the test relies on.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (const auto& [pid, state] : left) {
      ADD_FAILURE() << "child " << pid << " left "
                    << (state == 'Z' ? "a zombie" : std::string("running (state ") + state + ")");
      if (state != 'Z') ::kill(pid, SIGKILL);
    }
    for (int fd : new_fds) {
      ADD_FAILURE() << "descriptor " << fd << " leaked: " << fd_target(fd);
    }
    for (const auto& name : new_shm) ADD_FAILURE() << "left in /dev/shm: " << name;
    if (threads > 0) ADD_FAILURE() << threads << " more thread(s) running than before the test";
  }

 private:
  std::map<pid_t, char> offending_children() const {
    std::map<pid_t, char> out;
    for (const auto& [pid, state] : children_states()) {
      const auto before = children_.find(pid);
      const bool is_new = before == children_.end();
      if (state == 'Z' ? (is_new || before->second != 'Z') : (is_new && !allow_running_)) {
        out[pid] = state;
      }
    }
    return out;
  }

  std::set<int> leaked_fds() const {
    std::set<int> out;
    for (int fd : open_fds()) {
      if (!fds_.count(fd)) out.insert(fd);
    }
    return out;
  }

  std::vector<std::string> leaked_shm() const {
    std::vector<std::string> out;
    for (const auto& name : list_dir("/dev/shm")) {
      if (!shm_.count(name)) out.push_back(name);
    }
    return out;
  }

  std::set<int> fds_;
  std::set<std::string> shm_;
  std::map<pid_t, char> children_;
  int threads_ = 0;
  bool allow_running_ = false;
  bool allow_threads_ = false;
};

// The checks tests/hygiene_listener.cpp runs around every test; a test
// calls its expect_* members to leave children or threads running.
Hygiene& listener_hygiene();

class HygieneTest : public ::testing::Test, protected Hygiene {
 protected:
  void SetUp() override { record(); }
  void TearDown() override { check(); }
};

}  // namespace concur::testing

// Declares a typed fixture `Suite` that runs the hygiene checks around each
// test, and registers it for `Types` (a ::testing::Types<...>).
#define CONCUR_HYGIENE_TYPED_TEST_SUITE(Suite, Types)     \
  template <class T>                                      \
  class Suite : public ::concur::testing::HygieneTest {}; \
  TYPED_TEST_SUITE(Suite, Types)
