// The Philox noise sampler: one thread per stored element, values from common/draw.h, so that
// sample() and the fused log-ratio kernel see the same eps_ij for the same seed.
#include <algorithm>

#include "../common/draw.h"
#include "../common/families.h"
#include "cuda_api.h"
#include "cuda_check.h"

namespace uc {
namespace cuda {
namespace {

constexpr int kSampleThreads = 256;

template <int F>
__global__ void __launch_bounds__(kSampleThreads)
    sample_kernel(const __grid_constant__ NoiseParams params, uint64_t seed, int64_t N, int64_t d,
                  void* out, bool single) {
  const int64_t total = N * d;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += stride) {
    const int64_t i = k / d;
    const double x = draw_sample<F>(seed, static_cast<uint64_t>(i),
                                    static_cast<uint32_t>(k - i * d), params.v, single);
    if (single)
      static_cast<float*>(out)[k] = static_cast<float>(x);  // exact: x is a float already
    else
      static_cast<double*>(out)[k] = x;
  }
}

}  // namespace

void sample(const SampleRequest& r, Launch launch) {
  DeviceGuard guard(launch.device);
  with_family(r.family, [&](auto family) {
    constexpr int F = decltype(family)::value;
    int resident = 0;
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, sample_kernel<F>,
                                                        kSampleThreads, 0),
          "cudaOccupancyMaxActiveBlocksPerMultiprocessor(sample)");
    const int64_t capacity =
        static_cast<int64_t>(std::max(resident, 1)) * multiprocessor_count(launch.device);
    const int64_t needed = (r.num_samples * r.dim + kSampleThreads - 1) / kSampleThreads;
    const int64_t grid = std::max<int64_t>(1, std::min(needed, capacity));
    sample_kernel<F><<<static_cast<unsigned>(grid), kSampleThreads, 0, as_stream(launch.stream)>>>(
        r.params, r.seed, r.num_samples, r.dim, r.out, r.single);
    check_launch("sample kernel launch");
  });
}

void sample_host(const SampleRequest& r) {
  with_family(r.family, [&](auto family) {
    constexpr int F = decltype(family)::value;
    double* out = static_cast<double*>(r.out);
    for (int64_t i = 0; i < r.num_samples; ++i)
      for (int64_t j = 0; j < r.dim; ++j)
        out[i * r.dim + j] = draw_sample<F>(r.seed, static_cast<uint64_t>(i),
                                            static_cast<uint32_t>(j), r.params.v, r.single);
  });
}

}  // namespace cuda
}  // namespace uc
