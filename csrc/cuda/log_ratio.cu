// Log-ratio sums over noise samples stored on the device (float32 or float64).
#include "../common/families.h"
#include "log_ratio_kernel.cuh"

namespace uc {
namespace cuda {
namespace {

struct StoredEps {
  const void* eps;
  bool is_double;

  __device__ __forceinline__ double load(int64_t i, int64_t j, int64_t d, const double*) const {
    const int64_t k = i * d + j;
    return is_double ? __ldg(static_cast<const double*>(eps) + k)
                     : static_cast<double>(__ldg(static_cast<const float*>(eps) + k));
  }
};

}  // namespace

void log_ratio(const LogRatioProblem& problem, const void* eps, bool eps_is_double) {
  with_family(problem.family, [&](auto family) {
    launch_log_ratio<decltype(family)::value>(problem, StoredEps{eps, eps_is_double});
  });
}

}  // namespace cuda
}  // namespace uc
