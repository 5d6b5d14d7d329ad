// The log-ratio kernel body, included by one translation unit per instruction set
// (log_ratio_base.cpp, log_ratio_avx2.cpp); UC_ISA names the namespace it lands in.
#include <algorithm>
#include <vector>

#include "../common/noise.h"
#include "kernels.h"
#include "parallel.h"

namespace uc {
namespace UC_ISA {
namespace {

// Length of the prefix of `row` that holds all its non-zero entries.
int64_t active_length(const double* row, int64_t dim) {
  int64_t n = dim;
  while (n > 0 && row[n - 1] == 0.0) --n;
  return n;
}

// Sums of the a- and b-terms over one sample row; kept as its own function so the compiler
// vectorises it as a unit (inlined into the m-loop it was left scalar by GCC 12).
template <int F>
__attribute__((noinline)) void row_sums(const double* x, const double* delta, const double* base,
                                        const double* params, int64_t n, double* out_a,
                                        double* out_b) {
  double acc_a = 0.0, acc_b = 0.0;
#pragma omp simd reduction(+ : acc_a, acc_b)
  for (int64_t j = 0; j < n; ++j) {
    double ta, tb;
    log_ratio_terms<F>(x[j], delta[j], base[j], params, ta, tb);
    acc_a += ta;
    acc_b += tb;
  }
  *out_a = acc_a;
  *out_b = acc_b;
}

// x . delta over one sample row (its own function for the same reason as row_sums).
__attribute__((noinline)) double row_dot(const double* x, const double* delta, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < n; ++j) acc += x[j] * delta[j];
  return acc;
}

// The kernel over rows that `load(i, x, n)` writes into x[0..n): stored samples or Philox draws.
// Gaussian log-ratios are linear in the noise, a = (x.delta - |delta|^2 / 2) / s^2 and
// b = (x.delta + |delta|^2 / 2) / s^2: one dot product per (row, shift), no per-term densities.
template <int F, class Load>
void run(const LogRatioArgs& g, Load load) {
  const int64_t N = g.num_samples, d = g.dim, M = g.num_shifts;
  std::vector<int64_t> active(static_cast<size_t>(M));
  std::vector<double> half_sq(static_cast<size_t>(M), 0.0);   // Gaussian: |delta|^2 / 2
  int64_t max_active = 0;
  for (int64_t m = 0; m < M; ++m) {
    active[m] = active_length(g.shifts + m * d, d);
    max_active = std::max(max_active, active[m]);
    const double* row = g.shifts + m * d;
    if constexpr (F == kGaussian) half_sq[m] = 0.5 * row_dot(row, row, active[m]);
  }
  double params[kMaxParams];
  std::copy(g.params, g.params + kMaxParams, params);
  const double inv_var = 1.0 / (params[0] * params[0]);   // used by the Gaussian branch only

  parallel_for(N, g.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<double> base(static_cast<size_t>(std::max<int64_t>(max_active, 1)));
    std::vector<double> x(base.size());
    double* xb = x.data();
    double* bb = base.data();
    for (int64_t i = begin; i < end; ++i) {
      load(i, xb, max_active);
      if constexpr (F == kGaussian) {
        for (int64_t m = 0; m < M; ++m) {
          const double dot = row_dot(xb, g.shifts + m * d, active[m]);
          g.a[m * N + i] = (dot - half_sq[m]) * inv_var;
          g.b[m * N + i] = (dot + half_sq[m]) * inv_var;
        }
        continue;
      }
#pragma omp simd
      for (int64_t j = 0; j < max_active; ++j) bb[j] = LogPdf<F>::eval(xb[j], params);
      for (int64_t m = 0; m < M; ++m)
        row_sums<F>(xb, g.shifts + m * d, bb, params, active[m], g.a + m * N + i, g.b + m * N + i);
    }
  });
}

template <int F, typename T>
void run_stored(const LogRatioArgs& g) {
  const T* eps = static_cast<const T*>(g.eps);
  run<F>(g, [&](int64_t i, double* x, int64_t n) {
    const T* row = eps + i * g.eps_row_stride;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) x[j] = static_cast<double>(row[j]);
  });
}

// eps_ij regenerated from (seed, i, j) exactly as sample() stores it (rounded to float when
// !eps_is_double), so a sample set too large to keep never exists in memory.
template <int F>
void run_philox(const LogRatioArgs& g) {
  run<F>(g, [&](int64_t i, double* x, int64_t n) {
    sample_row(g.family, g.params, g.seed, i, n, x, !g.eps_is_double);
  });
}

template <int F>
void run_family(const LogRatioArgs& g) {
  if (g.philox)
    run_philox<F>(g);
  else if (g.eps_is_double)
    run_stored<F, double>(g);
  else
    run_stored<F, float>(g);
}

}  // namespace

void log_ratio(const LogRatioArgs& g) {
  with_family(g.family, [&](auto family) { run_family<decltype(family)::value>(g); });
}

}  // namespace UC_ISA
}  // namespace uc
