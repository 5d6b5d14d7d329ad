// Picks the fastest log-ratio build (i.i.d. and radial) the running CPU supports.
#include "kernels.h"

namespace uc {

static bool cpu_has_avx2() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(UC_HAVE_AVX2_BUILD)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

void log_ratio(const LogRatioArgs& args) {
#ifdef UC_HAVE_AVX2_BUILD
  static const bool use_avx2 = cpu_has_avx2();
  if (use_avx2) return avx2::log_ratio(args);
#endif
  base::log_ratio(args);
}

void log_ratio_radial(const RadialArgs& args) {
#ifdef UC_HAVE_AVX2_BUILD
  static const bool use_avx2 = cpu_has_avx2();
  if (use_avx2) return avx2::log_ratio_radial(args);
#endif
  base::log_ratio_radial(args);
}

}  // namespace uc
