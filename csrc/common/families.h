// The i.i.d. noise families the kernels are compiled for: ids, parameter layout, and the one
// dispatcher from a run-time id to the compile-time family the kernels are instantiated for.
//
// Python builds the parameter array (unicr_fast/noise.py: family_id, kernel_params) and the
// kernels read it as raw doubles, so ids and layouts here must match that module. The checks
// of an array against this table live in checks.h (bindings only): this header builds no
// strings, because every kernel translation unit, host and device, includes it.
#pragma once

#include <stdexcept>
#include <type_traits>
#include <utility>

namespace uc {

enum Family : int {
  kGaussian = 0,
  kLaplace = 1,
  kHyperbolicSecant = 2,
  kGeneralNormal = 3,
  kUniform = 4,
  kCauchy = 5,
  kPareto = 6,
  kLaplaceGaussianMixture = 7,
  kExponentialMixture = 8,
  kNumFamilies = 9
};
constexpr int kMaxParams = 8;

// What the kernels assume of a parameter. Scales and shapes are divided by or raised to (> 0);
// the exp of a log mixture weight is a component's probability (<= 0); log normalisers only
// shift the log-density (any finite value). Entries a family does not read are unused (0).
enum ParamRole { kUnused = 0, kPositive, kLogWeight, kLogNorm };

struct ParamSpec {
  const char* name;
  ParamRole role;
};

struct FamilySpec {
  const char* name;  // unicr_fast.noise's name of the family
  ParamSpec params[kMaxParams];
};

// Indexed by family id; the kernel parameter layout of each family, in order.
constexpr FamilySpec kFamilies[] = {
    {"gaussian", {{"s", kPositive}, {"log normaliser", kLogNorm}}},
    {"laplace", {{"b", kPositive}, {"log normaliser", kLogNorm}}},
    {"hyperbolic_secant", {{"s", kPositive}, {"log normaliser", kLogNorm}}},
    {"general_normal", {{"a", kPositive}, {"beta", kPositive}, {"log normaliser", kLogNorm}}},
    {"uniform", {{"l", kPositive}, {"log normaliser", kLogNorm}}},
    {"cauchy", {{"g", kPositive}, {"log normaliser", kLogNorm}}},
    {"pareto", {{"s", kPositive}, {"alpha", kPositive}, {"log normaliser", kLogNorm}}},
    {"laplace_gaussian_mixture",
     {{"log w", kLogWeight}, {"log(1-w)", kLogWeight}, {"b", kPositive},
      {"log normaliser of the laplace part", kLogNorm}, {"s", kPositive},
      {"log normaliser of the gaussian part", kLogNorm}}},
    {"exponential_mixture",
     {{"log w", kLogWeight}, {"log(1-w)", kLogWeight}, {"a1", kPositive}, {"beta1", kPositive},
      {"log normaliser 1", kLogNorm}, {"a2", kPositive}, {"beta2", kPositive},
      {"log normaliser 2", kLogNorm}}},
};
static_assert(sizeof(kFamilies) / sizeof(kFamilies[0]) == kNumFamilies,
              "one table entry per family id");

template <int F>
using FamilyTag = std::integral_constant<int, F>;

namespace detail {
template <class Fn, int... F>
bool call_for_family(int family, Fn& fn, std::integer_sequence<int, F...>) {
  return ((family == F ? (fn(FamilyTag<F>{}), true) : false) || ...);
}
}  // namespace detail

// Calls fn(FamilyTag<F>{}) for the run-time family id, instantiating fn for every id of the
// table (a family without kernels fails to compile here). The bindings validate the id first
// (checks.h); the throw is a backstop, its message a literal so that no string code is emitted
// into the per-instruction-set kernel units.
template <class Fn>
void with_family(int family, Fn&& fn) {
  if (!detail::call_for_family(family, fn, std::make_integer_sequence<int, kNumFamilies>{}))
    throw std::invalid_argument("unicr_fast: not a compiled noise family id");
}

}  // namespace uc
