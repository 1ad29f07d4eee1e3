// A daemon thread blocked forever must not keep the program alive.
#include <cstdio>

#include "concur/threading.hpp"

int main() {
  auto* never = new concur::threading::Event;
  auto* t = new concur::threading::Thread(concur::threading::ThreadOptions{"", true},
                                          [never] { never->wait(); });
  t->start();
  std::printf("main returning\n");
  std::fflush(stdout);
  return 0;
}
