// Starts a daemon child that would block forever, prints its pid and lets
// main return: the normal exit terminates the daemon child.
#include <unistd.h>

#include <cstdio>

#include "concur/multiprocessing/process.hpp"

concur::multiprocessing::Process* child;  // reachable: never destroyed

int main() {
  child =
      new concur::multiprocessing::Process(concur::multiprocessing::ProcessOptions{"", true}, [] {
        for (;;) ::pause();
      });
  child->start();
  std::printf("%d\n", *child->pid());
  std::fflush(stdout);
  return 0;
}
