#pragma once
// Kernels that run on the host for the thrust policies, after
// P::synchronize(): correct wherever the policy's memory is readable on the
// host (thrust_host/thrust_omp: host memory; cuda: managed memory), slow on a
// GPU (pages migrate). docs/gpu.md lists them. Included first by
// backend/thrust.hpp, so that layers calling a kernel qualified
// (backend::name(B{}, ...)) see these too.
#include "stpain/backend/thrust/policy.hpp"

namespace stpain::backend {

// out[0, f) = sum_e coef[e] rows[index[e] * f + (0, f)]: NeighbourAttention
// calls it per row from a host loop with `index` in host memory, so it runs
// on the host; plain loops, since the cpu kernel's vector code does not
// compile under nvcc.
template <thrust_backend P, class T>
void weighted_row_sum(P, const T* coef, const int64_t* index, int64_t edges, const T* rows, int64_t f, T* out) {
  P::synchronize();
  for (int64_t i = 0; i < f; ++i) out[i] = T(0);
  for (int64_t e = 0; e < edges; ++e)
    for (int64_t i = 0; i < f; ++i) out[i] += coef[e] * rows[index[e] * f + i];
}

}  // namespace stpain::backend
