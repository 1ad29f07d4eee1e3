// std::exit while a non-daemon thread runs: the exit handler waits for it.
#include <cstdio>
#include <cstdlib>

#include "concur/threading.hpp"

using namespace std::chrono_literals;

int main() {
  concur::threading::Event release;
  concur::threading::Thread t([&release] {
    release.wait(200ms);
    std::printf("thread finished\n");
    std::fflush(stdout);
  });
  t.start();
  std::exit(3);
}
