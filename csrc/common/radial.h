// Radial noise mu(w) ∝ exp(-(||w||_q / a)^beta): the scalar end of its log-ratio, shared by
// the CPU and CUDA kernels (UC_HD marks host/device code).
//
// A kernel reduces one sample row against one shift to l_q statistics of the shifted vectors;
// this header turns those into
//   a = (||w||_q / a)^beta - (||w - delta||_q / a)^beta     (X side, THEORY §2)
//   b = (||w + delta||_q / a)^beta - (||w||_q / a)^beta     (Y side, at w + delta)
// For finite q the statistic is S = sum |w_j|^q (so ||w||_q^beta = S^(beta/q)) and the shifted
// ones come both as differences D = S' - S and as sums; for q = inf it is max |w_j|. The coordinates a shift
// leaves alone enter through `tail` (their sum / max), so a k-sparse shift costs k terms.
#pragma once

#include <cmath>

#include "noise.h"   // UC_HD

namespace uc {

enum RadialQClass { kRadialQ1 = 0, kRadialQ2 = 1, kRadialQInf = 2, kRadialQGeneral = 3 };

UC_HD int radial_q_class(double q) {
  if (q == 1.0) return kRadialQ1;
  if (q == 2.0) return kRadialQ2;
  if (std::isinf(q)) return kRadialQInf;
  return kRadialQGeneral;
}

struct RadialShape {
  double q, beta, scale;   // scale: the a of the density
};

// The statistic of a whole vector from its tail and its prefix part.
template <int Q>
UC_HD double radial_combine(double tail, double prefix) {
  if constexpr (Q == kRadialQInf) return tail > prefix ? tail : prefix;
  else return tail + prefix;
}

// (||w|| / a)^beta from the statistic s.
template <int Q>
UC_HD double radial_energy(const RadialShape& r, double s) {
  if (s <= 0.0) return 0.0;
  const double expo = Q == kRadialQInf ? r.beta : r.beta / r.q;
  return exp(expo * log(s) - r.beta * log(r.scale));
}

// energy(s_new) - energy(s), given g = log(energy(s_new) / energy(s)) computed accurately by the
// caller. Close energies (|g| <= 1) keep their digits as energy(s) expm1(g); far apart, the plain
// difference cancels at most one digit and cannot multiply 0 by inf when energy(s) underflows.
template <int Q>
UC_HD double radial_energy_change(const RadialShape& r, double s, double s_new, double g) {
  if (s <= 0.0) return radial_energy<Q>(r, s_new);
  if (fabs(g) <= 1.0) return radial_energy<Q>(r, s) * expm1(g);
  return radial_energy<Q>(r, s_new) - radial_energy<Q>(r, s);
}

// q = inf: s, s_new are maxima; g = beta log(s_new / s) from the two logs (no overflow of the
// ratio for tiny s).
UC_HD double radial_max_energy_change(const RadialShape& r, double s, double s_new) {
  const double g = s > 0.0 ? r.beta * (log(s_new) - log(s)) : 0.0;
  return radial_energy_change<kRadialQInf>(r, s, s_new, g);
}

// Finite q: shifted = sum of |w_j +- delta_j|^q over the visited coordinates and diff = shifted
// minus their part of base. A small change of a large statistic keeps its digits through diff
// (g = beta/q log1p(diff / base)); a large one (the new statistic far below base, which the 1/q
// root still maps to a sizeable energy for large q) is taken from tail + shifted directly.
template <int Q>
UC_HD double radial_sum_energy_change(const RadialShape& r, double base, double tail, double diff,
                                      double shifted) {
  const bool small = base > 0.0 && fabs(diff) <= 0.5 * base;
  const double s_new = small ? base + diff : tail + shifted;
  const double expo = r.beta / r.q;
  const double g = small ? expo * log1p(diff / base)
                         : (base > 0.0 ? expo * (log(s_new) - log(base)) : 0.0);
  return radial_energy_change<Q>(r, base, s_new, g);
}

// a and b of one (sample, shift) pair. base: statistic of w; tail: of the coordinates the
// kernel did not visit. q = inf: back / fwd are the maxima of |w - delta| / |w + delta| over the
// visited coordinates (the *_sum arguments unused). Finite q: back / fwd are the sums of
// |w -+ delta|^q minus |w|^q over them, back_sum / fwd_sum the sums of |w -+ delta|^q.
template <int Q>
UC_HD void radial_log_ratio(const RadialShape& r, double base, double tail, double back,
                            double fwd, double back_sum, double fwd_sum, double& a, double& b) {
  if constexpr (Q == kRadialQInf) {
    a = -radial_max_energy_change(r, base, back > tail ? back : tail);
    b = radial_max_energy_change(r, base, fwd > tail ? fwd : tail);
  } else {
    a = -radial_sum_energy_change<Q>(r, base, tail, back, back_sum);
    b = radial_sum_energy_change<Q>(r, base, tail, fwd, fwd_sum);
  }
}

}  // namespace uc
