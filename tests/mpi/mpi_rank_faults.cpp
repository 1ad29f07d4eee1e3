// A serving rank that dies or hangs never leaves rank 0 waiting forever.
// Modes (tests/CMakeLists.txt runs each under mpirun -np 3):
//   stuck  the serving ranks block in f; rank 0, with set_timeout(3 s), gets
//          std::runtime_error, prints it, and its pool's destructor ends the
//          job with MPI_Abort (the stuck ranks can never finalize)
//   die    a serving rank ends with _exit(3) inside f; Open MPI's launcher
//          sees it and ends the whole job: mpirun exits non-zero, in bounded
//          time
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "concur/mpi.hpp"

int block_forever(int) {
  for (;;) ::pause();
}
int exit_on_3(int x) {
  if (x == 3) ::_exit(3);
  return x;
}

int main(int argc, char** argv) {
  const bool stuck = argc > 1 && std::strcmp(argv[1], "stuck") == 0;
  concur::mpi::Pool pool;
  if (!pool.is_master()) return pool.serve();
  pool.set_timeout(std::chrono::seconds(3));
  try {
    if (stuck) {
      (void)pool.map(block_forever, std::vector<int>{1, 2}, 1);
    } else {
      (void)pool.map(exit_on_3, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}, 1);
    }
    std::printf("rank 0: no error\n");
  } catch (const std::runtime_error& e) {
    std::printf("rank 0 got: %s\n", e.what());
  }
  std::fflush(stdout);
  return 0;
}
