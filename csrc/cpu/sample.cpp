// Multithreaded CPU sampler on the counter-based Philox stream of common/draw.h, the host+device
// code the CUDA sampler runs too, so eps_ij is the same pure function of (seed, i, j) on CPU and
// GPU, and a smaller sample set is a prefix of a larger one. The fused CPU log-ratio regenerates
// rows through sample_row, compiled here once, so its draws equal the stored ones bit for bit
// (compiled again in the AVX2 unit, FMA contraction would change the last bits).
#include "../common/draw.h"
#include "kernels.h"
#include "parallel.h"

#include <vector>

namespace uc {

void sample_row(int family, const double* params, uint64_t seed, int64_t row, int64_t n,
                double* out, bool single) {
  with_family(family, [&](auto tag) {
    constexpr int F = decltype(tag)::value;
    for (int64_t j = 0; j < n; ++j)
      out[j] = draw_sample<F>(seed, static_cast<uint64_t>(row), static_cast<uint32_t>(j), params,
                              single);
  });
}

void sample(int family, const double* params, uint64_t seed, int64_t num_samples, int64_t dim,
            void* out, bool single, int num_threads) {
  parallel_for(num_samples, num_threads, [&](int64_t begin, int64_t end) {
    std::vector<double> row(static_cast<size_t>(dim));
    for (int64_t i = begin; i < end; ++i) {
      sample_row(family, params, seed, i, dim, row.data(), single);
      for (int64_t j = 0; j < dim; ++j) {
        if (single)
          static_cast<float*>(out)[i * dim + j] = static_cast<float>(row[j]);  // already a float
        else
          static_cast<double*>(out)[i * dim + j] = row[j];
      }
    }
  });
}

}  // namespace uc
