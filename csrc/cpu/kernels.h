// CPU kernel entry points. Inputs are validated by the callers in bindings.cpp.
#pragma once

#include <cstdint>

namespace uc {

// THEORY §5: for samples eps (N x d, rows contiguous, eps_row_stride elements apart, so a
// column prefix of a wider sample matrix needs no copy) and shifts (M x d, row-major, float64),
//   a[m, i] = sum_j log phi(eps_ij - delta_mj) - log phi(eps_ij)
//   b[m, i] = sum_j log phi(eps_ij) - log phi(eps_ij + delta_mj)
// accumulated in float64. Outputs a and b are M x N. Coordinates past the last non-zero
// entry of a shift contribute exactly 0 and are skipped. With `philox` set, eps is not read:
// eps_ij is regenerated from (seed, i, j) as sample() would store it (float when
// !eps_is_double), for sample sets too large to keep.
struct LogRatioArgs {
  const void* eps;
  bool eps_is_double;
  bool philox;
  uint64_t seed;
  int64_t num_samples, dim, eps_row_stride;
  const double* shifts;
  int64_t num_shifts;
  int family;
  const double* params;
  double* a;
  double* b;
  int num_threads;
};
void log_ratio(const LogRatioArgs& args);

// The same, built for a given instruction set; log_ratio() picks one at run time.
namespace base { void log_ratio(const LogRatioArgs& args); }
namespace avx2 { void log_ratio(const LogRatioArgs& args); }

// Radial noise (csrc/common/radial.h): for samples eps (N x d prefix of wider rows, as above),
// shifts (M x d) and tail[i], the l_q statistic of row i's coordinates beyond the prefix,
//   a[m, i] = (||w_i||_q / s)^beta - (||w_i - delta_m||_q / s)^beta
//   b[m, i] = (||w_i + delta_m||_q / s)^beta - (||w_i||_q / s)^beta      (s = scale).
struct RadialArgs {
  const void* eps;
  bool eps_is_double;
  int64_t num_samples, dim, eps_row_stride;
  const double* shifts;
  int64_t num_shifts;
  const double* tail;
  double q, beta, scale;
  double* a;
  double* b;
  int num_threads;
};
void log_ratio_radial(const RadialArgs& args);
namespace base { void log_ratio_radial(const RadialArgs& args); }
namespace avx2 { void log_ratio_radial(const RadialArgs& args); }

// Tie-aware threshold statistics (THEORY §3, §5), one row of 8 doubles per shift:
//   t_A, P_X(L < t_A), P_X(L = t_A), P_Y(L < t_A), t_B, P_X(L > t_B), P_X(L = t_B), P_Y(L > t_B)
// where "= t" means |L - t| <= tie_rtol * max(1, |t|) (exact equality when t is infinite),
// t_A is the ceil(p_a N)-th smallest of a, and t_B the ceil(p_b N)-th largest (+inf if p_b N = 0).
// P_Y(L > t_B) always counts b = +inf (Y-mass outside X's support).
constexpr int kNumStats = 8;
void threshold_stats(const double* a, const double* b, int64_t num_rows, int64_t num_samples,
                     const double* p_a, const double* p_b, double tie_rtol, double* stats,
                     int num_threads);

// Pooled worst-case probabilities (docs/theory.md §5), one row of 4 doubles per shift:
//   t_A, P_Y(S_A), t_B, P_Y(S_B)
// estimated from the 2N values {a_i} u {b_i} as one sample of (X + Y) / 2, value v weighted by
// 1 / (1 + e^v) towards X and e^v / (1 + e^v) towards Y (self-normalised). t_A: the value
// whose X-mass strictly above is <= 1 - p_a < X-mass at or above; t_B: X-mass strictly above
// < p_b <= at or above (t_B = +inf when p_b = 0). Tie sets as in threshold_stats; the worst
// classifier takes the fraction residual / P_X(tie) of a tie set's Y-mass. P_Y(S_B) always
// includes the Y-mass at L = +inf.
constexpr int kNumPooledStats = 4;
void pooled_stats(const double* a, const double* b, int64_t num_rows, int64_t num_samples,
                  const double* p_a, const double* p_b, double tie_rtol, double* stats,
                  int num_threads);

// I.i.d. draws of a noise family into out (N x d, float32 if single else float64), element
// (i, j) a pure function of (seed, i, j): the Philox stream the CUDA module uses too.
void sample(int family, const double* params, uint64_t seed, int64_t num_samples, int64_t dim,
            void* out, bool single, int num_threads);

// Row `row` of that sample set (n leading coordinates) into out as doubles (float-rounded
// when single): what the fused log-ratio kernel regenerates.
void sample_row(int family, const double* params, uint64_t seed, int64_t row, int64_t n,
                double* out, bool single);

// Quantile rank shared with the Python reference: ceil(p N), guarded against p N landing a
// rounding error above an integer, clamped to [lo, N].
int64_t quantile_rank(double p, int64_t n, int64_t lo);

}  // namespace uc
