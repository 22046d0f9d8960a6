#pragma once
// Kernels without a thrust version yet: the thrust policies run the cpu kernel
// on the same memory, after P::synchronize(). Correct wherever the policy's
// memory is readable on the host (thrust_host/thrust_omp: host memory; cuda:
// managed memory), and slow on a GPU (pages migrate to the host and back).
// docs/gpu.md lists them; giving one a thrust version means deleting its line.
// Included first by backend/thrust.hpp, so that layers calling a kernel
// qualified (backend::name(B{}, ...)) see these too.
#include <utility>

#include "stpain/backend/thrust/policy.hpp"

#define STPAIN_THRUST_HOST_FALLBACK(kernel)                \
  template <thrust_backend P, class... A>                   \
  decltype(auto) kernel(P, A&&... args) {                   \
    P::synchronize();                                       \
    return kernel(cpu{}, std::forward<A>(args)...);         \
  }

namespace stpain::backend {

// Fused sequence kernels of the LSTM, the temporal convolution and the
// neighbour attention (rnn/lstm.hpp, graph/temporal_conv.hpp,
// graph/neighbour_attention.hpp), where those layers use them.
STPAIN_THRUST_HOST_FALLBACK(lstm_sequence_forward)
STPAIN_THRUST_HOST_FALLBACK(lstm_sequence_backward)
STPAIN_THRUST_HOST_FALLBACK(temporal_conv_forward)
STPAIN_THRUST_HOST_FALLBACK(temporal_conv_backward)

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

#undef STPAIN_THRUST_HOST_FALLBACK
