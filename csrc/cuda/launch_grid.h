// Launch geometry shared by the log-ratio kernels (i.i.d. and radial): lanes per sample and a
// grid that fills the device once, its blocks then striding over the samples.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda_api.h"
#include "cuda_check.h"

namespace uc {
namespace cuda {

// Lanes that share one sample: the smallest power of two >= d, at most a warp, so that
// small d (down to d = 1) still fills every lane with work.
inline int lanes_per_sample(int64_t d) {
  int g = 1;
  while (g < 32 && g < d) g *= 2;
  return g;
}

// grid.x for `kernel` at `threads` per block: enough blocks (over grid_y rows) to be resident
// on every multiprocessor once, and no more than the samples need.
template <class Kernel>
int64_t sample_grid_x(Kernel kernel, int threads, int64_t num_samples, int64_t groups_per_block,
                      int64_t grid_y, int device, const char* what) {
  int resident = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, 0), what);
  const int64_t capacity = static_cast<int64_t>(std::max(resident, 1)) * multiprocessor_count(device);
  const int64_t sample_blocks = (num_samples + groups_per_block - 1) / groups_per_block;
  return std::max<int64_t>(
      1, std::min<int64_t>({sample_blocks, (capacity + grid_y - 1) / grid_y, 1ll << 30}));
}

}  // namespace cuda
}  // namespace uc
