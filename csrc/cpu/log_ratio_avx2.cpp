// AVX2+FMA build of the log-ratio kernels (i.i.d. and radial); compiled with -mavx2 -mfma, called only where the CPU has them.
#define UC_ISA avx2
#include "log_ratio_impl.h"
#include "radial_impl.h"
