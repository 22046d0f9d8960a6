#pragma once
// Measures the machine's single-precision FMA peak (GFLOP/s) with a register-
// resident kernel: independent FMA chains, no memory traffic. The measured
// figure is what "percent of peak" in the benchmarks is relative to.
#include <immintrin.h>

#include <chrono>
#include <cstdint>

#include "stpain/core/parallel.hpp"

namespace stpain::bench {

// FLOPs per call of fma_kernel.
#if defined(__AVX512F__)
inline constexpr int kLanes = 16;
#else
inline constexpr int kLanes = 8;
#endif
inline constexpr int kChains = 12;

__attribute__((noinline)) inline float fma_kernel(int64_t iters) {
#if defined(__AVX512F__)
  using V = __m512;
  auto set1 = [](float v) { return _mm512_set1_ps(v); };
  auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
  auto sum = [](V v) {
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    float s = 0;
    for (float x : t) s += x;
    return s;
  };
#else
  using V = __m256;
  auto set1 = [](float v) { return _mm256_set1_ps(v); };
  auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
  auto sum = [](V v) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
  };
#endif
  V acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = set1(0.01f * static_cast<float>(c));
  const V a = set1(0.999999f), b = set1(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = fma(acc[c], a, b);
  float s = 0;
  for (int c = 0; c < kChains; ++c) s += sum(acc[c]);
  return s;
}

// Peak GFLOP/s on `threads` threads (best of a few runs).
inline double measure_peak_gflops(int threads) {
  const int64_t iters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    volatile float sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    { sink = sink + fma_kernel(iters); }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = 2.0 * kLanes * kChains * static_cast<double>(iters) * threads;
    if (flops / s / 1e9 > best) best = flops / s / 1e9;
  }
  return best;
}

}  // namespace stpain::bench
