// A daemon thread blocked forever must not keep the program alive.
#include <cstdio>

#include "concur/threading.hpp"

// Reachable from globals, so never destroyed and never reported as leaked.
concur::threading::Event* never;
concur::threading::Thread* t;

int main() {
  never = new concur::threading::Event;
  t = new concur::threading::Thread(concur::threading::ThreadOptions{"", true},
                                    [] { never->wait(); });
  t->start();
  std::printf("main returning\n");
  std::fflush(stdout);
  return 0;
}
