/// \file
/// Everything concur offers. Python: import threading, multiprocessing.
#pragma once

/// \mainpage concur
/// Python's `threading` and `multiprocessing`, in C++20: the same concepts,
/// names and semantics, built on Linux futexes, with the traps Python users
/// hit fixed.
///
/// - concur::threading (`<concur/threading.hpp>`): Thread, Timer, Lock, RLock,
///   Condition, Semaphore, BoundedSemaphore, Event, Barrier.
/// - concur::multiprocessing (`<concur/multiprocessing.hpp>`): fork-based
///   Process, Pipe and Connection, Queue, shared Value and Array,
///   SharedMemory, the process-shared primitives, Pool and ThreadPool.
/// - concur::mpi (`<concur/mpi.hpp>`, target concur::mpi): the Pool's members
///   across the ranks of an MPI job.
/// - The exceptions (`<concur/errors.hpp>`): namespace concur.
///
/// Every class opens with its Python counterpart, its thread-safety, when it
/// blocks and what it throws. The README and docs/ of the repository say how
/// to build and use it, and where it differs from Python.

/// \namespace concur
/// Python's threading and multiprocessing in C++20; the exceptions
/// (errors.hpp) live here.

#include "concur/errors.hpp"
#include "concur/multiprocessing.hpp"
#include "concur/threading.hpp"
