// fork_pids: one program, two processes. A Process forks a child; the child
// and the parent each print their process id, and the child's change to a
// global variable stays in the child.
//
// The Python it translates (the os.fork idiom, then its multiprocessing form):
//
//   import os
//   newpid = os.fork()
//   if newpid == 0:
//       child()                  # then os._exit(0)
//   else:
//       parent()
//
//   p = multiprocessing.Process(target=child)
//   p.start(); p.join(5); print(p.exitcode)
//
// A fork copies the whole address space: the child starts with the parent's
// variables, and from then on each process writes only its own copy. To
// send something back, use shared memory (here an mp::Value, see
// shared_value.cpp) or a Pipe or Queue (queue_workers.cpp).
//
// Exits 1 if the child's report does not match what the parent knows of it.
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "concur/concur.hpp"

namespace mp = concur::multiprocessing;  // import multiprocessing as mp
using namespace std::chrono_literals;

int g_visits = 0;  // an ordinary global: each process has its own after the fork

// What the child reports to its parent: written by the child into shared
// memory, read by the parent after join().
struct Report {
  pid_t pid;
  pid_t parent;
  int visits;
};

int main() {
  mp::Value<Report> report;  // made before the fork, so the child shares it

  mp::Process child([report]() mutable {
    ++g_visits;  // the child's copy
    report.value() = Report{::getpid(), ::getppid(), g_visits};
    std::printf("child : pid %d, parent %d, g_visits %d\n", static_cast<int>(::getpid()),
                static_cast<int>(::getppid()), g_visits);
  });
  child.start();  // fork(); stdio is flushed first, so nothing is printed twice
  // Every wait is bounded: a child that hangs fails the program instead.
  if (!child.join(5s)) {
    child.kill();
    child.join();
    std::printf("fork_pids: the child did not end within 5 s\n");
    return 1;
  }

  const Report r = report.value();  // join() came after the child's write
  std::printf("parent: pid %d, child %d ended with exit code %d; g_visits here %d\n",
              static_cast<int>(::getpid()), static_cast<int>(child.pid().value_or(-1)),
              child.exitcode().value_or(-1), g_visits);

  const bool ok = child.exitcode() == 0 && r.pid == child.pid() && r.parent == ::getpid() &&
                  r.visits == 1 && g_visits == 0;
  if (!ok) {
    std::printf("fork_pids: the child's report does not match\n");
    return 1;
  }
  return 0;
}
