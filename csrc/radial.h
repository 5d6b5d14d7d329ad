// Radial noise mu(w) ∝ exp(-(||w||_q / a)^beta): the scalar end of its log-ratio, shared by
// the CPU and CUDA kernels (UC_HD marks host/device code).
//
// A kernel reduces one sample row against one shift to l_q statistics of the shifted vectors;
// this header turns those into
//   a = (||w||_q / a)^beta - (||w - delta||_q / a)^beta     (X side, THEORY §2)
//   b = (||w + delta||_q / a)^beta - (||w||_q / a)^beta     (Y side, at w + delta)
// For finite q the statistic is S = sum |w_j|^q (so ||w||_q^beta = S^(beta/q)) and the shifted
// ones come as differences D = S' - S; for q = inf it is max |w_j|. The coordinates a shift
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

// energy(s_new) - energy(s) without cancelling the digits of two close large energies:
// energy(s) * expm1(expo * log(s_new / s)), with s_new / s = 1 + D / s for finite q.
template <int Q>
UC_HD double radial_energy_change(const RadialShape& r, double s, double s_new, double rel) {
  if (s <= 0.0) return radial_energy<Q>(r, s_new);
  const double expo = Q == kRadialQInf ? r.beta : r.beta / r.q;
  const double growth = Q == kRadialQInf ? log(s_new / s) : log1p(rel > -1.0 ? rel : -1.0);
  return radial_energy<Q>(r, s) * expm1(expo * growth);
}

// a and b of one (sample, shift) pair. base: statistic of w; tail: of the coordinates the
// kernel did not visit; back / fwd: the kernel's reductions of w - delta / w + delta over the
// visited ones (q = inf: their max; finite q: their sums minus the visited part of base).
template <int Q>
UC_HD void radial_log_ratio(const RadialShape& r, double base, double tail, double back,
                                   double fwd, double& a, double& b) {
  if constexpr (Q == kRadialQInf) {
    const double sb = back > tail ? back : tail, sf = fwd > tail ? fwd : tail;
    a = -radial_energy_change<Q>(r, base, sb, 0.0);
    b = radial_energy_change<Q>(r, base, sf, 0.0);
  } else {
    const double rb = base > 0.0 ? back / base : 0.0, rf = base > 0.0 ? fwd / base : 0.0;
    a = -radial_energy_change<Q>(r, base, base + back, rb);
    b = radial_energy_change<Q>(r, base, base + fwd, rf);
  }
}

}  // namespace uc
