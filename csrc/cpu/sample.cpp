// Multithreaded CPU sampler on the counter-based Philox stream of csrc/cuda/draw.h (those
// headers are host+device), so eps_ij is the same pure function of (seed, i, j) on CPU and GPU,
// and a smaller sample set is a prefix of a larger one.
#include "../cuda/draw.h"
#include "../cuda/family_dispatch.h"
#include "kernels.h"
#include "parallel.h"

namespace uc {

void sample(int family, const double* params, uint64_t seed, int64_t num_samples, int64_t dim,
            void* out, bool single, int num_threads) {
  cuda::with_family(family, [&](auto tag) {
    constexpr int F = decltype(tag)::value;
    parallel_for(num_samples, num_threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        for (int64_t j = 0; j < dim; ++j) {
          const double x = cuda::draw_sample<F>(seed, static_cast<uint64_t>(i),
                                                static_cast<uint32_t>(j), params, single);
          if (single)
            static_cast<float*>(out)[i * dim + j] = static_cast<float>(x);  // already a float
          else
            static_cast<double*>(out)[i * dim + j] = x;
        }
    });
  });
}

}  // namespace uc
