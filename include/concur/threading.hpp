/// \file
/// Python: import threading  ->  namespace th = concur::threading;
#pragma once

/// \namespace concur::threading
/// Python's threading module: threads and the synchronization primitives
/// between the threads of one process.

#include "concur/errors.hpp"
#include "concur/threading/barrier.hpp"
#include "concur/threading/condition.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"
#include "concur/threading/rlock.hpp"
#include "concur/threading/semaphore.hpp"
#include "concur/threading/thread.hpp"
#include "concur/threading/timer.hpp"
