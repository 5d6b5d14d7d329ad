// Tie-aware threshold statistics per row (see kernels.h), O(N) per row via nth_element.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace uc {

int64_t quantile_rank(double p, int64_t n, int64_t lo) {
  // p * n carries a relative rounding error below 2^-52; n < 2^31 keeps it under 1e-6.
  const double k = std::ceil(p * static_cast<double>(n) - 1e-6);
  return std::min<int64_t>(n, std::max<int64_t>(lo, static_cast<int64_t>(k)));
}

namespace {

double tie_tolerance(double t, double rtol) {
  return std::isfinite(t) ? rtol * std::max(1.0, std::fabs(t)) : 0.0;
}

bool is_tie(double v, double t, double tol) { return v == t || std::fabs(v - t) <= tol; }

}  // namespace

void threshold_stats(const double* a, const double* b, int64_t M, int64_t N, const double* p_a,
                     const double* p_b, double tie_rtol, double* stats, int num_threads) {
  const double inf = std::numeric_limits<double>::infinity();
  parallel_for(M, num_threads, [&](int64_t begin, int64_t end) {
    std::vector<double> buf(static_cast<size_t>(N));
    for (int64_t m = begin; m < end; ++m) {
      const double* am = a + m * N;
      const double* bm = b + m * N;
      std::copy(am, am + N, buf.begin());
      const int64_t k_a = quantile_rank(p_a[m], N, 1);
      std::nth_element(buf.begin(), buf.begin() + (k_a - 1), buf.end());
      const double t_a = buf[k_a - 1];
      const int64_t k_b = quantile_rank(p_b[m], N, 0);
      double t_b = inf;
      if (k_b > 0) {
        std::nth_element(buf.begin(), buf.begin() + (N - k_b), buf.end());
        t_b = buf[N - k_b];
      }
      const double tol_a = tie_tolerance(t_a, tie_rtol), tol_b = tie_tolerance(t_b, tie_rtol);
      int64_t x_lt_a = 0, x_eq_a = 0, y_lt_a = 0, x_gt_b = 0, x_eq_b = 0, y_gt_b = 0;
      for (int64_t i = 0; i < N; ++i) {
        const double x = am[i], y = bm[i];
        const bool xa_tie = is_tie(x, t_a, tol_a), xb_tie = is_tie(x, t_b, tol_b);
        x_lt_a += (x < t_a && !xa_tie);
        x_eq_a += xa_tie;
        x_gt_b += (x > t_b && !xb_tie);
        x_eq_b += xb_tie;
        y_lt_a += (y < t_a && !is_tie(y, t_a, tol_a));
        y_gt_b += (y == inf) || (y > t_b && !is_tie(y, t_b, tol_b));
      }
      const double inv = 1.0 / static_cast<double>(N);
      double* s = stats + m * kNumStats;
      s[0] = t_a;
      s[1] = x_lt_a * inv;
      s[2] = x_eq_a * inv;
      s[3] = y_lt_a * inv;
      s[4] = t_b;
      s[5] = x_gt_b * inv;
      s[6] = x_eq_b * inv;
      s[7] = y_gt_b * inv;
    }
  });
}

}  // namespace uc
