// The parent's atexit handlers and static destructors must not run in a child.
#include <cstdio>
#include <cstdlib>

#include "concur/multiprocessing/process.hpp"

struct Static {
  ~Static() { std::printf("static destructor\n"); }
} static_object;

int main() {
  std::atexit([] { std::printf("parent atexit\n"); });
  concur::multiprocessing::Process p([] { std::printf("child ran\n"); });
  p.start();
  p.join();
  return *p.exitcode();
}
