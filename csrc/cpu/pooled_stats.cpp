// Pooled worst-case probabilities per row (see kernels.h; docs/theory.md §5): the 2N values
// a_i, b_i as one sample of (X + Y) / 2 with balance weights, thresholds by weighted selection.
// O(N) expected per row; the torch reference is thresholds.pooled_stats_reference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace uc {

namespace {

struct Point {
  double v, wx, wy;  // log-ratio value, weight towards X (1 / (1 + e^v)) and Y (e^v / (1 + e^v))
};

// Both balance weights from one exp, without overflow or cancellation at any v in [-inf, inf].
Point weighted(double v) {
  const double e = std::exp(-std::fabs(v));  // in [0, 1]
  const double small = e / (1.0 + e), large = 1.0 / (1.0 + e);
  return v >= 0 ? Point{v, small, large} : Point{v, large, small};
}

// The value v* whose X-mass strictly above is <= target and at or above is > target
// (inclusive = false), or strictly above < target and at or above >= target (inclusive = true):
// the p-quantile of the weighted sample counted from the top. Three-way quickselect on the
// values; reorders pts. Falls back to the smallest value when the target exceeds the mass.
double select_from_top(std::vector<Point>& pts, double target, bool inclusive) {
  auto lo = pts.begin(), hi = pts.end();
  double above = 0.0;  // X-mass of the points above the current range
  double value = lo->v;
  while (lo != hi) {
    const double a = lo->v, b = (lo + (hi - lo) / 2)->v, c = (hi - 1)->v;
    const double pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    // [lo, gt) > pivot, [gt, lt) == pivot, [lt, hi) < pivot
    auto gt = std::partition(lo, hi, [pivot](const Point& p) { return p.v > pivot; });
    auto lt = std::partition(gt, hi, [pivot](const Point& p) { return p.v == pivot; });
    double m_gt = 0.0, m_eq = 0.0;
    for (auto it = lo; it != gt; ++it) m_gt += it->wx;
    for (auto it = gt; it != lt; ++it) m_eq += it->wx;
    const bool go_up = inclusive ? above + m_gt >= target : above + m_gt > target;
    const bool here = inclusive ? above + m_gt + m_eq >= target : above + m_gt + m_eq > target;
    value = pivot;
    if (go_up && gt != lo) {
      hi = gt;
    } else if (here || go_up || lt == hi) {
      return pivot;
    } else {
      above += m_gt + m_eq;
      lo = lt;
    }
  }
  return value;
}

double tie_tolerance(double t, double rtol) {
  return std::isfinite(t) ? rtol * std::max(1.0, std::fabs(t)) : 0.0;
}

// X- and Y-masses strictly above t's tie set and inside it.
struct Masses {
  double x_above = 0, x_tie = 0, y_above = 0, y_tie = 0;
};

Masses masses_around(const std::vector<Point>& pts, double t, double rtol) {
  const double tol = tie_tolerance(t, rtol);
  Masses m;
  for (const Point& p : pts) {
    const bool tie = p.v == t || std::fabs(p.v - t) <= tol;
    if (tie) {
      m.x_tie += p.wx;
      m.y_tie += p.wy;
    } else if (p.v > t) {
      m.x_above += p.wx;
      m.y_above += p.wy;
    }
  }
  return m;
}

// The fraction of the tie set the worst classifier needs (residual X-mass / tie X-mass),
// applied to the tie set's Y-mass: e^t x residual on a true atom, never more than the set.
double tie_share(double residual, const Masses& m) {
  if (!(m.x_tie > 0)) return 0.0;
  return std::min(1.0, std::max(0.0, residual / m.x_tie)) * m.y_tie;
}

}  // namespace

void pooled_stats(const double* a, const double* b, int64_t M, int64_t N, const double* p_a,
                  const double* p_b, double tie_rtol, double* stats, int num_threads) {
  const double inf = std::numeric_limits<double>::infinity();
  parallel_for(M, num_threads, [&](int64_t begin, int64_t end) {
    std::vector<Point> pts(static_cast<size_t>(2 * N));
    for (int64_t m = begin; m < end; ++m) {
      double wx = 0.0, wy = 0.0, y_inf = 0.0;
      for (int64_t i = 0; i < N; ++i) {
        pts[i] = weighted(a[m * N + i]);
        pts[N + i] = weighted(b[m * N + i]);
      }
      for (const Point& p : pts) {
        wx += p.wx;
        wy += p.wy;
        if (p.v == inf) y_inf += p.wy;
      }
      // Class A: the lowest values up to X-mass p_a, i.e. all but X-mass 1 - p_a from the top.
      const double q_a = std::max(0.0, 1.0 - p_a[m]) * wx;
      const double t_a = select_from_top(pts, q_a, false);
      const Masses ma = masses_around(pts, t_a, tie_rtol);
      const double py_sa =
          1.0 - (ma.y_above + ma.y_tie) / wy + tie_share(ma.x_above + ma.x_tie - q_a, ma) / wy;
      // Runner-up: the highest values up to X-mass p_b, plus L = +inf (no X-mass) always.
      double t_b = inf, py_sb = y_inf / wy;
      if (p_b[m] > 0) {
        const double q_b = p_b[m] * wx;
        t_b = select_from_top(pts, q_b, true);
        const Masses mb = masses_around(pts, t_b, tie_rtol);
        py_sb = (mb.y_above + tie_share(q_b - mb.x_above, mb)) / wy;
      }
      double* s = stats + m * kNumPooledStats;
      s[0] = t_a;
      s[1] = std::min(1.0, std::max(0.0, py_sa));
      s[2] = t_b;
      s[3] = std::min(1.0, std::max(0.0, py_sb));
    }
  });
}

}  // namespace uc
