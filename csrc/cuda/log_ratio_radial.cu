// Radial-noise log-ratios on the device (csrc/common/radial.h): per (sample, shift) pair the l_q
// statistics of w - delta and w + delta over the stored prefix, then the scalar formula.
#include <cuda_runtime.h>

#include <algorithm>

#include "../common/radial.h"
#include "cuda_api.h"
#include "cuda_check.h"
#include "launch_grid.h"

namespace uc {
namespace cuda {
namespace {

constexpr int kThreads = 256;
// Shifts per pass over a sample row: each loaded eps_ij (and |eps_ij|^q) serves this many.
// Finite q keeps four accumulators per shift, q = inf two: the same register budget.
template <int Q>
constexpr int kTileFor = Q == kRadialQInf ? 8 : 4;

template <int Q>
__device__ __forceinline__ double abs_pow(double x, double q) {
  const double m = fabs(x);
  if constexpr (Q == kRadialQ1) return m;
  else if constexpr (Q == kRadialQ2) return m * m;
  else return exp(q * log(m));   // log(0) = -inf -> 0
}

// The statistic's reduction: + for sums of |.|^q, max for q = inf.
template <int Q>
__device__ __forceinline__ double reduce(double u, double v) {
  if constexpr (Q == kRadialQInf) return u > v ? u : v;
  else return u + v;
}

template <int Q>
__device__ __forceinline__ double butterfly(double v, int lanes) {
  for (int off = lanes / 2; off > 0; off /= 2) v = reduce<Q>(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// A group of `lanes` threads owns sample i: lane l visits coordinates l, l + lanes, ...;
// the butterfly gives every lane the same totals (fixed order: deterministic).
template <int Q, typename T>
__global__ void __launch_bounds__(kThreads)
    radial_kernel(const T* __restrict__ eps, const double* __restrict__ shifts,
                  const double* __restrict__ tail, int64_t N, int64_t d, int64_t M,
                  RadialShape shape, double* __restrict__ a, double* __restrict__ b, int lanes) {
  constexpr int kTile = kTileFor<Q>;
  const int lane = threadIdx.x & (lanes - 1);
  const int group = threadIdx.x / lanes;
  const int groups_per_block = kThreads / lanes;
  const int64_t num_tiles = (M + kTile - 1) / kTile;
  for (int64_t tile = blockIdx.y; tile < num_tiles; tile += gridDim.y) {
    const int64_t m0 = tile * kTile;
    const int tile_shifts = static_cast<int>(min(static_cast<int64_t>(kTile), M - m0));
    for (int64_t first = static_cast<int64_t>(blockIdx.x) * groups_per_block; first < N;
         first += static_cast<int64_t>(gridDim.x) * groups_per_block) {
      const int64_t i = first + group;
      double own = 0.0, back[kTile], fwd[kTile], back_sum[kTile], fwd_sum[kTile];
#pragma unroll
      for (int mm = 0; mm < kTile; ++mm) back[mm] = fwd[mm] = back_sum[mm] = fwd_sum[mm] = 0.0;
      if (i < N) {
        for (int64_t j = lane; j < d; j += lanes) {
          const double x = static_cast<double>(__ldg(eps + i * d + j));
          const double xq = Q == kRadialQInf ? fabs(x) : abs_pow<Q>(x, shape.q);
          own = reduce<Q>(own, xq);
#pragma unroll
          for (int mm = 0; mm < kTile; ++mm) {
            if (mm < tile_shifts) {
              const double s = __ldg(shifts + (m0 + mm) * d + j);
              if constexpr (Q == kRadialQInf) {
                back[mm] = reduce<Q>(back[mm], fabs(x - s));
                fwd[mm] = reduce<Q>(fwd[mm], fabs(x + s));
              } else {
                // A zero entry adds exactly 0 to the differences (no fma residue).
                const double u = s != 0.0 ? abs_pow<Q>(x - s, shape.q) : xq;
                const double v = s != 0.0 ? abs_pow<Q>(x + s, shape.q) : xq;
                if (s != 0.0) {
                  back[mm] += u - xq;
                  fwd[mm] += v - xq;
                }
                back_sum[mm] += u;
                fwd_sum[mm] += v;
              }
            }
          }
        }
      }
      // Every lane of the warp reaches the shuffles (no early exit above).
      own = butterfly<Q>(own, lanes);
#pragma unroll
      for (int mm = 0; mm < kTile; ++mm) {
        back[mm] = butterfly<Q>(back[mm], lanes);
        fwd[mm] = butterfly<Q>(fwd[mm], lanes);
        if constexpr (Q != kRadialQInf) {
          back_sum[mm] = butterfly<Q>(back_sum[mm], lanes);
          fwd_sum[mm] = butterfly<Q>(fwd_sum[mm], lanes);
        }
      }
      if (i < N && lane == 0) {
        const double t = tail[i];
        const double base = radial_combine<Q>(t, own);
#pragma unroll
        for (int mm = 0; mm < kTile; ++mm) {
          if (mm < tile_shifts) {
            double la, lb;
            radial_log_ratio<Q>(shape, base, t, back[mm], fwd[mm], back_sum[mm], fwd_sum[mm],
                                la, lb);
            a[(m0 + mm) * N + i] = la;
            b[(m0 + mm) * N + i] = lb;
          }
        }
      }
    }
  }
}

template <int Q, typename T>
void launch(const RadialProblem& pr, const T* eps) {
  DeviceGuard guard(pr.launch.device);
  const int lanes = lanes_per_sample(pr.dim);
  const int64_t groups_per_block = kThreads / lanes;
  constexpr int kTile = kTileFor<Q>;
  const int64_t grid_y = std::min<int64_t>((pr.num_shifts + kTile - 1) / kTile, 65535);
  const int64_t grid_x = sample_grid_x(radial_kernel<Q, T>, kThreads, pr.num_samples,
                                       groups_per_block, grid_y, pr.launch.device,
                                       "cudaOccupancyMaxActiveBlocksPerMultiprocessor(radial)");
  radial_kernel<Q, T><<<dim3(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y)),
                        kThreads, 0, as_stream(pr.launch.stream)>>>(
      eps, pr.shifts, pr.tail, pr.num_samples, pr.dim, pr.num_shifts,
      RadialShape{pr.q, pr.beta, pr.scale}, pr.a, pr.b, lanes);
  check_launch("radial log_ratio kernel launch");
}

template <int Q>
void launch_q(const RadialProblem& pr, const void* eps, bool eps_is_double) {
  if (eps_is_double)
    launch<Q>(pr, static_cast<const double*>(eps));
  else
    launch<Q>(pr, static_cast<const float*>(eps));
}

}  // namespace

void log_ratio_radial(const RadialProblem& pr, const void* eps, bool eps_is_double) {
  switch (radial_q_class(pr.q)) {
    case kRadialQ1: return launch_q<kRadialQ1>(pr, eps, eps_is_double);
    case kRadialQ2: return launch_q<kRadialQ2>(pr, eps, eps_is_double);
    case kRadialQInf: return launch_q<kRadialQInf>(pr, eps, eps_is_double);
    default: return launch_q<kRadialQGeneral>(pr, eps, eps_is_double);
  }
}

}  // namespace cuda
}  // namespace uc
