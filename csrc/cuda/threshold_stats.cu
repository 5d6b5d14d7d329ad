// Tie-aware threshold statistics per row (semantics: csrc/cpu/kernels.h), one block per row.
//
// t_A and t_B are order statistics of the row of a: both are found together by an MSD radix
// select, 8 passes of 8 bits over the order-preserving uint64 image of the doubles, so the
// result is an element of the row, bit for bit. A final pass counts the six tie-aware masses.
#include <algorithm>
#include <climits>

#include "cuda_api.h"
#include "cuda_check.h"

namespace uc {
namespace cuda {
namespace {

constexpr int kStatsThreads = 512;
constexpr int kBins = 256;
constexpr unsigned kNoBin = kBins;  // an element that is not a candidate of this select
constexpr int kNumStats = 8;

// Unsigned keys ordered like the doubles. -0.0 and +0.0 compare equal, so they share the key
// of +0.0 (a selected zero is reported as +0.0).
__device__ __forceinline__ unsigned long long order_key(double v) {
  const long long bits = __double_as_longlong(v == 0.0 ? 0.0 : v);
  return bits < 0 ? ~static_cast<unsigned long long>(bits)
                  : static_cast<unsigned long long>(bits) | (1ull << 63);
}

__device__ __forceinline__ double from_order_key(unsigned long long key) {
  return __longlong_as_double(static_cast<long long>(key >> 63 ? key & ~(1ull << 63) : ~key));
}

// ceil(p n) as csrc/cpu/threshold_stats.cpp computes it; the explicit roundings keep nvcc
// from contracting p n - 1e-6 into an FMA, which could move the rank by one.
__device__ __forceinline__ int64_t quantile_rank(double p, int64_t n, int64_t lo) {
  const double k = ceil(__dsub_rn(__dmul_rn(p, static_cast<double>(n)), 1e-6));
  return min(n, max(lo, static_cast<int64_t>(k)));
}

__device__ __forceinline__ double tie_tolerance(double t, double rtol) {
  return isfinite(t) ? rtol * fmax(1.0, fabs(t)) : 0.0;
}

__device__ __forceinline__ bool is_tie(double v, double t, double tol) {
  return v == t || fabs(v - t) <= tol;
}

// Lanes with the same bin add their votes with one shared atomic (warp-aggregated), which
// matters because most keys of a row share their leading digits. All 32 lanes must call.
__device__ __forceinline__ void add_to_histogram(unsigned* hist, unsigned bin) {
  const unsigned peers = __match_any_sync(0xffffffffu, bin);
  if (bin != kNoBin && static_cast<int>(threadIdx.x & 31) == __ffs(peers) - 1)
    atomicAdd(&hist[bin], __popc(peers));
}

// One warp: the bin holding the candidate of 0-based rank *rank becomes the next digit of
// *prefix, and *rank becomes the rank inside that bin.
__device__ void choose_digit(const unsigned* hist, int shift, unsigned long long* prefix,
                             int64_t* rank) {
  const int lane = threadIdx.x & 31;
  const int64_t r = *rank;  // read by every lane before the shuffles, written after them
  unsigned count[kBins / 32];
  unsigned sum = 0;
#pragma unroll
  for (int q = 0; q < kBins / 32; ++q) sum += (count[q] = hist[lane * (kBins / 32) + q]);
  unsigned inclusive = sum;
#pragma unroll
  for (int off = 1; off < 32; off *= 2) {
    const unsigned t = __shfl_up_sync(0xffffffffu, inclusive, off);
    if (lane >= off) inclusive += t;
  }
  const int64_t below_lane = inclusive - sum;
  if (below_lane <= r && r < static_cast<int64_t>(inclusive)) {
    int64_t below = below_lane;
    int q = 0;
    while (below + count[q] <= r) below += count[q++];
    *prefix |= static_cast<unsigned long long>(lane * (kBins / 32) + q) << shift;
    *rank = r - below;
  }
}

__device__ __forceinline__ unsigned long long warp_sum(unsigned long long v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

__global__ void __launch_bounds__(kStatsThreads)
    threshold_stats_kernel(const double* __restrict__ a, const double* __restrict__ b, int64_t M,
                           int64_t N, const double* __restrict__ p_a,
                           const double* __restrict__ p_b, double tie_rtol,
                           double* __restrict__ stats) {
  __shared__ unsigned hist[2][kBins];
  __shared__ unsigned long long prefix[2];  // selected high digits of t_A's and t_B's keys
  __shared__ int64_t rank[2];               // rank of the target among the candidates
  __shared__ unsigned long long totals[6];
  const double inf = __longlong_as_double(0x7ff0000000000000ll);
  const int warp = threadIdx.x / 32;

  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    const double* am = a + m * N;
    const double* bm = b + m * N;
    double* s = stats + m * kNumStats;
    const double pa = p_a[m], pb = p_b[m];
    __syncthreads();  // the previous row is done with the shared state
    if (!(pa > 0.0 && pa <= 1.0 && pb >= 0.0 && pb <= 1.0)) {
      if (threadIdx.x < kNumStats) s[threadIdx.x] = __longlong_as_double(0x7ff8000000000000ll);
      continue;
    }
    const int64_t k_b = quantile_rank(pb, N, 0);
    const bool want_b = k_b > 0;
    if (threadIdx.x == 0) {
      prefix[0] = prefix[1] = 0;
      rank[0] = quantile_rank(pa, N, 1) - 1;  // t_A: the k_a-th smallest
      rank[1] = N - k_b;                      // t_B: the k_b-th largest
    }
    if (threadIdx.x < 6) totals[threadIdx.x] = 0;

    for (int pass = 0; pass < 8; ++pass) {
      const int shift = 56 - 8 * pass;
      const unsigned long long high = pass == 0 ? 0ull : ~0ull << (shift + 8);
      for (int k = threadIdx.x; k < 2 * kBins; k += blockDim.x) hist[k / kBins][k % kBins] = 0;
      __syncthreads();
      const unsigned long long pre_a = prefix[0], pre_b = prefix[1];
      for (int64_t first = 0; first < N; first += blockDim.x) {  // uniform: whole warps call
        const int64_t i = first + threadIdx.x;
        const unsigned long long key = i < N ? order_key(am[i]) : 0;
        const unsigned digit = static_cast<unsigned>(key >> shift) & (kBins - 1);
        add_to_histogram(hist[0], i < N && (key & high) == pre_a ? digit : kNoBin);
        if (want_b) add_to_histogram(hist[1], i < N && (key & high) == pre_b ? digit : kNoBin);
      }
      __syncthreads();
      if (warp == 0 || (warp == 1 && want_b))
        choose_digit(hist[warp], shift, &prefix[warp], &rank[warp]);
      __syncthreads();
    }

    const double t_a = from_order_key(prefix[0]);
    const double t_b = want_b ? from_order_key(prefix[1]) : inf;
    const double tol_a = tie_tolerance(t_a, tie_rtol), tol_b = tie_tolerance(t_b, tie_rtol);
    unsigned long long c[6] = {0, 0, 0, 0, 0, 0};
    bool bad = false;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
      const double x = am[i], y = bm[i];
      bad |= isnan(x) || x == inf || isnan(y);
      const bool xa_tie = is_tie(x, t_a, tol_a), xb_tie = is_tie(x, t_b, tol_b);
      c[0] += x < t_a && !xa_tie;
      c[1] += xa_tie;
      c[2] += y < t_a && !is_tie(y, t_a, tol_a);
      c[3] += x > t_b && !xb_tie;
      c[4] += xb_tie;
      c[5] += y == inf || (y > t_b && !is_tie(y, t_b, tol_b));
    }
#pragma unroll
    for (int q = 0; q < 6; ++q) {
      const unsigned long long v = warp_sum(c[q]);
      if ((threadIdx.x & 31) == 0) atomicAdd(&totals[q], v);
    }
    bad = __syncthreads_or(bad);  // also orders the atomics above before the reads below
    if (threadIdx.x == 0) {
      // count * (1/N), as the CPU kernel and torch's CUDA mean compute it.
      const double inv = 1.0 / static_cast<double>(N);
      const double row[kNumStats] = {t_a,  totals[0] * inv, totals[1] * inv, totals[2] * inv,
                                     t_b,  totals[3] * inv, totals[4] * inv, totals[5] * inv};
      for (int q = 0; q < kNumStats; ++q)
        s[q] = bad ? __longlong_as_double(0x7ff8000000000000ll) : row[q];
    }
  }
}

}  // namespace

void threshold_stats(const ThresholdProblem& pr, Launch launch) {
  DeviceGuard guard(launch.device);
  const int64_t grid = std::min<int64_t>(pr.num_rows, INT_MAX);
  threshold_stats_kernel<<<static_cast<unsigned>(grid), kStatsThreads, 0,
                           as_stream(launch.stream)>>>(pr.a, pr.b, pr.num_rows, pr.num_samples,
                                                       pr.p_a, pr.p_b, pr.tie_rtol, pr.stats);
  check_launch("threshold_stats kernel launch");
}

}  // namespace cuda
}  // namespace uc
