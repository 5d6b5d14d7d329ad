// Portable build of the log-ratio kernels (i.i.d. and radial) (baseline x86-64 / any ISA).
#define UC_ISA base
#include "log_ratio_impl.h"
#include "radial_impl.h"
