// Maps a runtime family id to the compile-time family the kernels are instantiated for.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "../noise.h"

namespace uc {
namespace cuda {

template <int F>
using FamilyTag = std::integral_constant<int, F>;

// Calls fn(FamilyTag<F>{}) for the family id (validated by the bindings; checked again here).
template <class Fn>
void with_family(int family, Fn&& fn) {
  switch (family) {
    case kGaussian: return fn(FamilyTag<kGaussian>{});
    case kLaplace: return fn(FamilyTag<kLaplace>{});
    case kHyperbolicSecant: return fn(FamilyTag<kHyperbolicSecant>{});
    case kGeneralNormal: return fn(FamilyTag<kGeneralNormal>{});
    case kUniform: return fn(FamilyTag<kUniform>{});
    case kCauchy: return fn(FamilyTag<kCauchy>{});
    case kPareto: return fn(FamilyTag<kPareto>{});
    case kLaplaceGaussianMixture: return fn(FamilyTag<kLaplaceGaussianMixture>{});
    case kExponentialMixture: return fn(FamilyTag<kExponentialMixture>{});
    default:
      throw std::invalid_argument("family id " + std::to_string(family) +
                                  " is not a compiled noise family");
  }
}

}  // namespace cuda
}  // namespace uc
