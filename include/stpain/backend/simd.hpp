#pragma once
// Register-level helpers for the hand-tiled CPU kernels (depthwise convolutions,
// the GEMM of cpu_gemm.hpp): one SIMD register as a GCC/Clang vector type, and
// compile-time unrolling. Kernels keep their accumulators in arrays of these
// vectors indexed by constants, through unroll() or through loops that GCC
// unrolls completely (#pragma GCC unroll): arrays indexed by run-time loop
// counters stay in memory. Check the assembly of a hot loop: with unroll()'s
// closure holding a large accumulator array, GCC 12 kept gemm_nt's 24
// accumulators in registers but also stored them all on every step (half
// the speed); its kernel uses the pragma loops.
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace stpain::backend::simd {

// The native SIMD width of the build (-march decides).
#if defined(__AVX512F__)
inline constexpr int64_t kVectorBytes = 64;
inline constexpr int kRegisters = 32;
#elif defined(__AVX__)
inline constexpr int64_t kVectorBytes = 32;
inline constexpr int kRegisters = 16;
#else
inline constexpr int64_t kVectorBytes = 16;
inline constexpr int kRegisters = 16;
#endif

// One register of T values.
template <class T>
struct Vector {
  static constexpr int64_t lanes = kVectorBytes / static_cast<int64_t>(sizeof(T));
  typedef T type __attribute__((vector_size(kVectorBytes)));
};

// f(std::integral_constant<int64_t, i>{}) for i = 0 .. N-1, unrolled.
// (Both levels are forced inline: with a large N, GCC would otherwise call the
// fold out of line and the accumulators it touches would live in memory.)
namespace detail {
template <class F, int64_t... I>
inline __attribute__((always_inline)) void unroll_fold(F& f, std::integer_sequence<int64_t, I...>) {
  (f(std::integral_constant<int64_t, I>{}), ...);
}
}  // namespace detail

template <int64_t N, class F>
inline __attribute__((always_inline)) void unroll(F&& f) {
  detail::unroll_fold(f, std::make_integer_sequence<int64_t, N>{});
}

// Unaligned vector load and store.
template <class V, class T>
inline __attribute__((always_inline)) V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
inline __attribute__((always_inline)) void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace stpain::backend::simd
