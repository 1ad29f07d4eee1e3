// How the threaded examples end when one of their checks fails: each names
// its invariant in the comment at its top and calls fail() when it breaks.
#pragma once

#include <cstdio>
#include <cstdlib>

// Prints why on stdout and ends the program at once with exit code 1.
// std::_Exit, not exit() or a return from main: a normal exit waits for
// every non-daemon thread still running, as Python's does, and a thread that
// is stuck would then hold the failing program forever.
[[noreturn]] inline void fail(const char* why) {
  std::printf("FAILED: %s\n", why);
  std::fflush(stdout);
  std::_Exit(1);
}
