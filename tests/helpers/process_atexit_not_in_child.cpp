// The parent's atexit handlers and static destructors must not run in a
// child: neither when the target returns nor (argument "exit") when it
// calls exit(5), which must still give exit code 5. Prints what runs; the
// exit status is 0 when the child's exit code was the expected one.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "concur/multiprocessing/process.hpp"

struct Static {
  ~Static() { std::printf("static destructor\n"); }
} static_object;

int main(int argc, char** argv) {
  const bool call_exit = argc > 1 && std::strcmp(argv[1], "exit") == 0;
  std::atexit([] { std::printf("parent atexit\n"); });
  concur::multiprocessing::Process p([call_exit] {
    std::printf("child ran\n");
    if (call_exit) std::exit(5);
  });
  p.start();
  p.join();
  return p.exitcode() == (call_exit ? 5 : 0) ? 0 : 1;
}
