// concur quickstart: every primitive of concur::threading in a small, real
// scenario (examples/primitives.hpp), each the line-by-line translation of
// its Python idiom.
#include <cstdio>

#include "concur/concur.hpp"
#include "primitives.hpp"

int main() {
  std::printf("concur quickstart (main thread: %s)\n",
              concur::threading::current_thread().name.c_str());
  scenarios::producer_consumer();
  scenarios::connection_limit();
  scenarios::phases();
  scenarios::reentrant();
  scenarios::shutdown();
  scenarios::daemon_thread();
  return 0;
}
