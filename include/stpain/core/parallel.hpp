#pragma once
// Thread control and parallel loops on the CPU. OpenMP is the pool: OpenBLAS
// (its OpenMP build) shares it, so GEMM and stpain's loops never fight over
// the cores, and a GEMM called inside a parallel loop runs single-threaded.
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace stpain {

inline int num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Threads used by parallel_for and by GEMM from now on.
inline void set_num_threads(int n) {
  if (n < 1) n = 1;
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
  openblas_set_num_threads(n);
}

// Calls f(begin, end) over contiguous chunks of [0, n), in parallel when the
// work is worth it: chunks are at least `grain` iterations long.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  const int64_t threads = num_threads();
  const int64_t chunks = grain > 0 ? (n + grain - 1) / grain : n;
  if (threads <= 1 || chunks <= 1) {
    f(int64_t{0}, n);
    return;
  }
#if defined(_OPENMP)
  const int64_t parts = chunks < threads ? chunks : threads;
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(parts))
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t lo = n * p / parts, hi = n * (p + 1) / parts;
    if (lo < hi) f(lo, hi);
  }
#else
  f(int64_t{0}, n);
#endif
}

// Splits [0, n) into `parts` contiguous chunks run in parallel as
// f(part, begin, end): for reductions into one accumulator per part.
template <class F>
void parallel_chunks(int64_t n, int64_t parts, F&& f) {
  if (parts < 1) parts = 1;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(parts)) if (parts > 1)
#endif
  for (int64_t p = 0; p < parts; ++p) f(p, n * p / parts, n * (p + 1) / parts);
}

}  // namespace stpain
