#include <concur/concur.hpp>
#include <cstdio>
#include <mutex>

int main() {
  concur::threading::Lock lock;
  int value = 0;
  concur::threading::Thread t([&] {
    std::scoped_lock guard(lock);
    ++value;
  });
  t.start();
  t.join();
  std::printf("consumer ok (%d)\n", value);
  return value == 1 ? 0 : 1;
}
