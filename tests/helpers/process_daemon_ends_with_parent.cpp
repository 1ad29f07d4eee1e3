// Starts a daemon child that would block forever and prints its pid. With
// no argument main returns (a normal exit terminates the daemon child);
// with "hang" the parent blocks until it is killed (the kernel then kills
// the daemon child).
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "concur/multiprocessing/process.hpp"

concur::multiprocessing::Process* child;  // reachable: never destroyed

int main(int argc, char** argv) {
  child = new concur::multiprocessing::Process(concur::multiprocessing::ProcessOptions{"", true},
                                               [] { ::pause(); });
  child->start();
  std::printf("%d\n", *child->pid());
  std::fflush(stdout);
  if (argc > 1 && std::strcmp(argv[1], "hang") == 0) {
    for (;;) ::pause();
  }
  return 0;
}
