// main returns while a non-daemon child runs: the parent's exit waits for it.
#include <cstdio>

#include "concur/multiprocessing/process.hpp"
#include "concur/threading/event.hpp"

using namespace std::chrono_literals;

concur::multiprocessing::Process* child;  // reachable: never destroyed

int main() {
  child = new concur::multiprocessing::Process([] {
    concur::threading::Event().wait(200ms);  // a bounded pause, not a hand-off
    std::printf("child done\n");
    std::fflush(stdout);
  });
  child->start();
  std::printf("main returning\n");
  std::fflush(stdout);
  return 0;
}
