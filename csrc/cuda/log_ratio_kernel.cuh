// The log-ratio kernel body (THEORY §5), shared by the stored-eps launcher (log_ratio.cu) and
// the fused Philox launcher (log_ratio_philox.cu); they differ only in where eps_ij comes from.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "../common/noise.h"
#include "cuda_api.h"
#include "cuda_check.h"
#include "launch_grid.h"

namespace uc {
namespace cuda {

constexpr int kLogRatioThreads = 256;
// Shifts handled per pass over the samples: each eps_ij (loaded or regenerated) and its
// log phi are reused for this many shifts, at the cost of 2 x 16 float64 accumulators.
constexpr int kShiftTile = 16;

// Grid: blockIdx.y walks tiles of kShiftTile shifts, blockIdx.x strides over groups of
// samples. A group of `lanes` threads owns one sample i; lane l sums coordinates l, l + lanes,
// ... and an xor butterfly combines the lanes, so each sum has a fixed order (deterministic).
// Coordinates at or past a shift's last non-zero entry add exactly 0 and are skipped.
template <int F, class Source>
__global__ void __launch_bounds__(kLogRatioThreads)
    log_ratio_kernel(const Source source, const double* __restrict__ shifts, int64_t N,
                     int64_t d, int64_t M, const __grid_constant__ NoiseParams params,
                     double* __restrict__ a, double* __restrict__ b, int lanes) {
  __shared__ unsigned long long active[kShiftTile];
  const double* p = params.v;
  const int lane = threadIdx.x & (lanes - 1);
  const int group = threadIdx.x / lanes;
  const int groups_per_block = kLogRatioThreads / lanes;
  const int64_t num_tiles = (M + kShiftTile - 1) / kShiftTile;

  for (int64_t tile = blockIdx.y; tile < num_tiles; tile += gridDim.y) {
    const int64_t m0 = tile * kShiftTile;
    const int tile_shifts = static_cast<int>(min(static_cast<int64_t>(kShiftTile), M - m0));
    __syncthreads();  // the previous tile is done reading active[]
    if (threadIdx.x < kShiftTile) active[threadIdx.x] = 0;
    __syncthreads();
    for (int mm = 0; mm < tile_shifts; ++mm) {
      const double* row = shifts + (m0 + mm) * d;
      unsigned long long last = 0;
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        if (row[j] != 0.0) last = j + 1;
      if (last) atomicMax(&active[mm], last);
    }
    __syncthreads();
    int64_t len = 0;
    for (int mm = 0; mm < tile_shifts; ++mm) len = max(len, static_cast<int64_t>(active[mm]));

    for (int64_t first = static_cast<int64_t>(blockIdx.x) * groups_per_block; first < N;
         first += static_cast<int64_t>(gridDim.x) * groups_per_block) {
      const int64_t i = first + group;
      double acc_a[kShiftTile], acc_b[kShiftTile];
#pragma unroll
      for (int mm = 0; mm < kShiftTile; ++mm) acc_a[mm] = acc_b[mm] = 0.0;
      if (i < N) {
        for (int64_t j = lane; j < len; j += lanes) {
          const double x = source.load(i, j, d, p);
          const double base = LogPdf<F>::eval(x, p);
#pragma unroll
          for (int mm = 0; mm < kShiftTile; ++mm) {
            if (j < static_cast<int64_t>(active[mm])) {  // 0 for the tile's missing shifts
              double ta, tb;
              log_ratio_terms<F>(x, __ldg(shifts + (m0 + mm) * d + j), base, p, ta, tb);
              acc_a[mm] += ta;
              acc_b[mm] += tb;
            }
          }
        }
      }
      // Every lane of the warp reaches the shuffles (no early exit above).
#pragma unroll
      for (int mm = 0; mm < kShiftTile; ++mm) {
        for (int off = lanes / 2; off > 0; off /= 2) {
          acc_a[mm] += __shfl_xor_sync(0xffffffffu, acc_a[mm], off);
          acc_b[mm] += __shfl_xor_sync(0xffffffffu, acc_b[mm], off);
        }
      }
      if (i < N && lane == 0) {
#pragma unroll
        for (int mm = 0; mm < kShiftTile; ++mm) {
          if (mm < tile_shifts) {
            a[(m0 + mm) * N + i] = acc_a[mm];
            b[(m0 + mm) * N + i] = acc_b[mm];
          }
        }
      }
    }
  }
}

// Enqueues log_ratio_kernel<F> with enough blocks to fill the device once (the blocks then
// stride over the samples), on the problem's device and stream.
template <int F, class Source>
void launch_log_ratio(const LogRatioProblem& pr, const Source& source) {
  DeviceGuard guard(pr.launch.device);
  const int lanes = lanes_per_sample(pr.dim);
  const int64_t groups_per_block = kLogRatioThreads / lanes;
  const int64_t tiles = (pr.num_shifts + kShiftTile - 1) / kShiftTile;
  const int64_t grid_y = std::min<int64_t>(tiles, 65535);
  const int64_t grid_x = sample_grid_x(log_ratio_kernel<F, Source>, kLogRatioThreads,
                                       pr.num_samples, groups_per_block, grid_y, pr.launch.device,
                                       "cudaOccupancyMaxActiveBlocksPerMultiprocessor(log_ratio)");
  log_ratio_kernel<F, Source>
      <<<dim3(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y)), kLogRatioThreads, 0,
         as_stream(pr.launch.stream)>>>(source, pr.shifts, pr.num_samples, pr.dim,
                                        pr.num_shifts, pr.params, pr.a, pr.b, lanes);
  check_launch("log_ratio kernel launch");
}

}  // namespace cuda
}  // namespace uc
