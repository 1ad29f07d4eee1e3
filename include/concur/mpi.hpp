/// \file
/// concur::mpi: the process Pool's members across the ranks of an MPI job.
/// Built (target concur::mpi) when CMake finds MPI.
#pragma once

/// \namespace concur::mpi
/// The process Pool's members across the ranks of an MPI job: no Python
/// standard-library counterpart (mpi4py.futures is the nearest).

#include "concur/mpi/pool.hpp"
