// Fused log-ratio sums: each eps_ij is regenerated from (seed, i, j) by the Philox sampler
// (common/draw.h) where it is used, so memory stays O(N M) instead of O(N d) (THEORY §5).
#include "../common/draw.h"
#include "../common/families.h"
#include "log_ratio_kernel.cuh"

namespace uc {
namespace cuda {
namespace {

template <int F>
struct PhiloxEps {
  uint64_t seed;
  bool single;  // round as a float32 sample() would store it

  __device__ __forceinline__ double load(int64_t i, int64_t j, int64_t, const double* p) const {
    return draw_sample<F>(seed, static_cast<uint64_t>(i), static_cast<uint32_t>(j), p, single);
  }
};

}  // namespace

void log_ratio_philox(const LogRatioProblem& problem, uint64_t seed, bool single) {
  with_family(problem.family, [&](auto family) {
    constexpr int F = decltype(family)::value;
    launch_log_ratio<F>(problem, PhiloxEps<F>{seed, single});
  });
}

}  // namespace cuda
}  // namespace uc
