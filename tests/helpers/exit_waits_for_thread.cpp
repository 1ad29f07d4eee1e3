// main returns while a non-daemon thread still runs: the program must wait
// for it, as Python does. The Thread object is heap-allocated and never
// destroyed, so only the exit handler can do the waiting.
#include <cstdio>

#include "concur/threading.hpp"

using namespace std::chrono_literals;

// Reachable from globals, so never destroyed and never reported as leaked.
concur::threading::Event* release;
concur::threading::Thread* t;

int main() {
  release = new concur::threading::Event;
  t = new concur::threading::Thread([] {
    release->wait(200ms);  // a bounded pause, not a hand-off
    std::printf("thread finished\n");
    std::fflush(stdout);
  });
  t->start();
  std::printf("main returning\n");
  std::fflush(stdout);
  return 0;
}
