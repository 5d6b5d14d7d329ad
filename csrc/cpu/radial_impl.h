// The radial-noise log-ratio kernel body (see kernels.h: RadialArgs), included by the same
// per-instruction-set translation units as log_ratio_impl.h; UC_ISA names the namespace.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/radial.h"
#include "../common/vecmath.h"
#include "kernels.h"
#include "parallel.h"

namespace uc {
namespace UC_ISA {
namespace {

// |x|^q for the exponent classes the kernel specialises (q = 1, 2 need no exp/log).
template <int Q>
UC_ALWAYS_INLINE double abs_pow(double x, double q) {
  const double m = x < 0.0 ? -x : x;
  if constexpr (Q == kRadialQ1) return m;
  else if constexpr (Q == kRadialQ2) return m * m;
  else return vexp(q * vlog(m));   // vlog(0) = -inf -> 0
}

// Over one row prefix and one shift: the l_q statistics of x - delta and x + delta. q = inf:
// their maxima. Finite q: their sums of |.|^q (*_sum) and those sums minus the sum of |x|^q
// (back / fwd), taken term by term so that a small change of a large norm keeps its digits.
template <int Q>
__attribute__((noinline)) void shifted_stats(const double* x, const double* xq, const double* delta,
                                             double q, int64_t n, double* back, double* fwd,
                                             double* back_sum, double* fwd_sum) {
  if constexpr (Q == kRadialQInf) {
    double mb = 0.0, mf = 0.0;
#pragma omp simd reduction(max : mb, mf)
    for (int64_t j = 0; j < n; ++j) {
      const double u = std::fabs(x[j] - delta[j]), v = std::fabs(x[j] + delta[j]);
      mb = u > mb ? u : mb;
      mf = v > mf ? v : mf;
    }
    *back = mb;
    *fwd = mf;
    *back_sum = *fwd_sum = 0.0;
  } else {
    double db = 0.0, df = 0.0, sb = 0.0, sf = 0.0;
#pragma omp simd reduction(+ : db, df, sb, sf)
    for (int64_t j = 0; j < n; ++j) {
      // A zero entry adds exactly 0 to the differences: the select keeps a contracted
      // fma(m, m, -xq) from leaving the rounding error of xq behind (zero shift: L = 0 exactly).
      const bool moved = delta[j] != 0.0;
      const double u = moved ? abs_pow<Q>(x[j] - delta[j], q) : xq[j];
      const double v = moved ? abs_pow<Q>(x[j] + delta[j], q) : xq[j];
      db += moved ? u - xq[j] : 0.0;
      df += moved ? v - xq[j] : 0.0;
      sb += u;
      sf += v;
    }
    *back = db;
    *fwd = df;
    *back_sum = sb;
    *fwd_sum = sf;
  }
}

template <int Q, typename T>
void run(const RadialArgs& g) {
  const T* eps = static_cast<const T*>(g.eps);
  const int64_t N = g.num_samples, d = g.dim, M = g.num_shifts;
  const RadialShape shape{g.q, g.beta, g.scale};
  parallel_for(N, g.num_threads, [&](int64_t begin, int64_t end) {
    std::vector<double> x(static_cast<size_t>(d)), xq(static_cast<size_t>(d));
    double* xb = x.data();
    double* qb = xq.data();
    for (int64_t i = begin; i < end; ++i) {
      const T* row = eps + i * g.eps_row_stride;
      double own = 0.0;   // statistic of the row prefix itself
      if constexpr (Q == kRadialQInf) {
        for (int64_t j = 0; j < d; ++j) {
          xb[j] = static_cast<double>(row[j]);
          own = std::max(own, std::fabs(xb[j]));
        }
      } else {
#pragma omp simd reduction(+ : own)
        for (int64_t j = 0; j < d; ++j) {
          xb[j] = static_cast<double>(row[j]);
          qb[j] = abs_pow<Q>(xb[j], g.q);
          own += qb[j];
        }
      }
      const double base = radial_combine<Q>(g.tail[i], own);
      for (int64_t m = 0; m < M; ++m) {
        double back, fwd, back_sum, fwd_sum;
        shifted_stats<Q>(xb, qb, g.shifts + m * d, g.q, d, &back, &fwd, &back_sum, &fwd_sum);
        double la, lb;
        radial_log_ratio<Q>(shape, base, g.tail[i], back, fwd, back_sum, fwd_sum, la, lb);
        g.a[m * N + i] = la;
        g.b[m * N + i] = lb;
      }
    }
  });
}

template <int Q>
void run_q(const RadialArgs& g) {
  if (g.eps_is_double)
    run<Q, double>(g);
  else
    run<Q, float>(g);
}

}  // namespace

void log_ratio_radial(const RadialArgs& g) {
  switch (radial_q_class(g.q)) {
    case kRadialQ1: return run_q<kRadialQ1>(g);
    case kRadialQ2: return run_q<kRadialQ2>(g);
    case kRadialQInf: return run_q<kRadialQInf>(g);
    default: return run_q<kRadialQGeneral>(g);
  }
}

}  // namespace UC_ISA
}  // namespace uc
