// Host-side entry points of the CUDA module; bindings.cpp validates every argument and
// exposes them to Python. Kernels are enqueued on the given stream and return immediately;
// a CUDA error at launch throws std::runtime_error.
#pragma once

#include <cstdint>

#include "../common/families.h"

namespace uc {
namespace cuda {

int device_count();
int multiprocessor_count(int device);

// Where a kernel runs: a device index and a cudaStream_t (0 = legacy default stream).
struct Launch {
  int device;
  void* stream;
};

// Kernel parameters in the layout of csrc/common/families.h, passed to kernels by value.
struct NoiseParams {
  double v[kMaxParams];
};

// THEORY §5 for N samples of dimension d and M shifts (M x d, float64, device):
//   a[m, i] = sum_j log phi(eps_ij - delta_mj) - log phi(eps_ij)
//   b[m, i] = sum_j log phi(eps_ij) - log phi(eps_ij + delta_mj)
// float64 accumulation, a and b M x N on the device. Same semantics as the CPU kernel.
struct LogRatioProblem {
  int64_t num_samples, dim;
  const double* shifts;
  int64_t num_shifts;
  int family;
  NoiseParams params;
  double* a;
  double* b;
  Launch launch;
};

// eps: N x d row-major on the device, float64 or float32.
void log_ratio(const LogRatioProblem& problem, const void* eps, bool eps_is_double);

// Fused: eps_ij is regenerated from (seed, i, j), exactly as sample() would store it in the
// given precision (float32 when single), so N x d noise never exists in memory.
void log_ratio_philox(const LogRatioProblem& problem, uint64_t seed, bool single);

// Radial noise (csrc/common/radial.h): the CPU kernel's semantics (csrc/cpu/kernels.h, RadialArgs)
// with eps N x d row-major on the device and tail (N), shifts, a, b on the device too.
struct RadialProblem {
  int64_t num_samples, dim;
  const double* shifts;
  int64_t num_shifts;
  const double* tail;
  double q, beta, scale;
  double* a;
  double* b;
  Launch launch;
};
void log_ratio_radial(const RadialProblem& problem, const void* eps, bool eps_is_double);

// I.i.d. draws of a family into out (N x d row-major on the device; float32 when single,
// else float64), Philox stream (seed, i, j): the numbers log_ratio_philox regenerates.
struct SampleRequest {
  int family;
  NoiseParams params;
  uint64_t seed;
  int64_t num_samples, dim;
  void* out;
  bool single;
};
void sample(const SampleRequest& request, Launch launch);

// The same draws computed on the host (out: host float64 array holding the values rounded
// as `single` says): a reference of the sampler that needs no GPU. Equal to the device draws
// up to the last ulps of the host and device math libraries.
void sample_host(const SampleRequest& request);

// Tie-aware threshold statistics per row, the semantics of csrc/cpu/kernels.h; all pointers
// on the device. A row whose inputs are invalid (p outside its range, NaN or +inf in a, NaN
// in b) gets NaN statistics: the caller validated them, and checking again on the host would
// need a synchronisation.
struct ThresholdProblem {
  const double* a;
  const double* b;
  int64_t num_rows, num_samples;
  const double* p_a;
  const double* p_b;
  double tie_rtol;
  double* stats;
};
void threshold_stats(const ThresholdProblem& problem, Launch launch);

}  // namespace cuda
}  // namespace uc
