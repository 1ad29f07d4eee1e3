// main returns while a non-daemon thread still runs: the program must wait
// for it, as Python does. The Thread object is heap-allocated and never
// destroyed, so only the exit handler can do the waiting.
#include <cstdio>

#include "concur/threading.hpp"

using namespace std::chrono_literals;

int main() {
  auto* release = new concur::threading::Event;
  auto* t = new concur::threading::Thread([release] {
    release->wait(200ms);  // a bounded pause, not a hand-off
    std::printf("thread finished\n");
    std::fflush(stdout);
  });
  t->start();
  std::printf("main returning\n");
  std::fflush(stdout);
  return 0;
}
