// Portable build of the log-ratio kernel (baseline x86-64 / any ISA).
#define UC_ISA base
#include "log_ratio_impl.h"
