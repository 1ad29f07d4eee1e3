// Everything concur offers. Python: import threading, multiprocessing.
#pragma once

#include "concur/errors.hpp"
#include "concur/multiprocessing.hpp"
#include "concur/threading.hpp"
