// main returns while a non-daemon child runs: the normal exit joins it.
// Prints the child's pid, then "main returned" from an atexit handler
// registered after start() (so it runs before concur's handler), which also
// lets the child go on; the child prints "child done". When this program
// has exited, its child must be gone: it was joined (and reaped).
#include <cstdio>
#include <cstdlib>

#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/process.hpp"

namespace mp = concur::multiprocessing;

mp::Event go;
mp::Process* child;  // reachable: never destroyed

int main() {
  child = new mp::Process([] {
    go.wait();
    std::printf("child done\n");
  });
  child->start();
  std::printf("%d\n", *child->pid());
  std::fflush(stdout);
  std::atexit([] {
    std::printf("main returned\n");
    std::fflush(stdout);
    go.set();
  });
  return 0;
}
