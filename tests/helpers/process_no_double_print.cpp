// Text buffered before start() must be printed once, not once more by the child.
#include <cstdio>
#include <iostream>

#include "concur/multiprocessing/process.hpp"

int main() {
  std::printf("buffered-before-fork ");
  std::cout << "cout-before-fork ";
  concur::multiprocessing::Process p([] { std::printf("child\n"); });
  p.start();
  p.join();
  std::printf("parent\n");
  return *p.exitcode();
}
