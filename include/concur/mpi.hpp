// concur::mpi: the process Pool's members across the ranks of an MPI job.
// Built (target concur::mpi) when CMake finds MPI.
#pragma once

#include "concur/mpi/pool.hpp"
