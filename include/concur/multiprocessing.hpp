/// \file
/// Python: import multiprocessing as mp  ->  namespace mp = concur::multiprocessing;
#pragma once

/// \namespace concur::multiprocessing
/// Python's multiprocessing module (the fork start method): processes, the
/// ways they talk (pipes, queues, shared memory), process-shared primitives,
/// and the pools.

#include "concur/errors.hpp"
#include "concur/multiprocessing/array.hpp"
#include "concur/multiprocessing/async_result.hpp"
#include "concur/multiprocessing/barrier.hpp"
#include "concur/multiprocessing/condition.hpp"
#include "concur/multiprocessing/connection.hpp"
#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/lock.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/pool_options.hpp"
#include "concur/multiprocessing/process.hpp"
#include "concur/multiprocessing/queue.hpp"
#include "concur/multiprocessing/rlock.hpp"
#include "concur/multiprocessing/semaphore.hpp"
#include "concur/multiprocessing/shared_memory.hpp"
#include "concur/multiprocessing/thread_pool.hpp"
#include "concur/multiprocessing/transfer.hpp"
#include "concur/multiprocessing/value.hpp"
