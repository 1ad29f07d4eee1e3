// For tests/faults/parent_killed_test.cpp: starts children, prints one line
// of pids, then blocks until it is killed. Modes:
//   main       a daemon child started by the main thread; prints "CHILD"
//   thread     a daemon child started by a thread that then ends; "CHILD"
//   nested     a non-daemon child that starts a daemon grandchild and
//              blocks; prints "CHILD GRANDCHILD" (the test kills CHILD)
//   nondaemon  a non-daemon child; prints "CHILD"
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "concur/multiprocessing/process.hpp"

namespace mp = concur::multiprocessing;

[[noreturn]] void block_forever() {
  for (;;) ::pause();
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "main";
  // Reachable to the end: never destroyed.
  static std::unique_ptr<mp::Process> child;
  if (std::strcmp(mode, "main") == 0 || std::strcmp(mode, "nondaemon") == 0) {
    child = std::make_unique<mp::Process>(mp::ProcessOptions{"", std::strcmp(mode, "main") == 0},
                                          [] { block_forever(); });
    child->start();
    std::printf("%d\n", *child->pid());
  } else if (std::strcmp(mode, "thread") == 0) {
    std::thread([] {
      child = std::make_unique<mp::Process>(mp::ProcessOptions{"", true}, [] { block_forever(); });
      child->start();
    }).join();
    std::printf("%d\n", *child->pid());
  } else if (std::strcmp(mode, "nested") == 0) {
    int fds[2];
    if (::pipe(fds) != 0) return 2;
    child = std::make_unique<mp::Process>([fds] {
      mp::Process grandchild(mp::ProcessOptions{"", true}, [] { block_forever(); });
      grandchild.start();
      const int pid = *grandchild.pid();
      if (::write(fds[1], &pid, sizeof pid) != sizeof pid) ::_exit(2);
      block_forever();
    });
    child->start();
    ::close(fds[1]);
    int grandchild = 0;
    if (::read(fds[0], &grandchild, sizeof grandchild) != sizeof grandchild) return 2;
    std::printf("%d %d\n", *child->pid(), grandchild);
    std::fflush(stdout);
    child->join();  // returns once the test kills the child
    return 0;
  } else {
    return 2;
  }
  std::fflush(stdout);
  block_forever();
}
