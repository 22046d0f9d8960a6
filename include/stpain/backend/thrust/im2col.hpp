#pragma once
// Thrust kernels that lay patches out for a GEMM: PatchConv2d's patch matrix
// and TemporalConv's im2col over time, and their scatter-adds for backward.
//
// The layers call these qualified with explicit template arguments
// (backend::patch_copy<T, false>(B{}, ...)), which finds only overloads
// declared before the layer, so this header declares them before including
// the layers and must come before any other include of those layer headers
// (backend/thrust.hpp includes it first).
#include <type_traits>

#include "stpain/backend/thrust/policy.hpp"

namespace stpain {
enum class Layout;  // layers/patch_conv2d.hpp
}

namespace stpain::backend {

// cols[(n, to, v), (j, c)] = x[n, to*stride + j - pad, v, c] (0 outside); with
// Scatter, x[n, t, v, c] += every cols value it was copied to (one item per x
// value summing its taps: no two items write the same value).
template <class T, bool Scatter, thrust_backend P>
void temporal_im2col(P, std::conditional_t<Scatter, T*, const T*> x, std::conditional_t<Scatter, const T*, T*> cols,
                     int64_t n, int64_t t, int64_t v, int64_t c, int64_t k, int64_t stride, int64_t pad, int64_t to) {
  if constexpr (Scatter) {
    thrust_detail::for_n<P>(n * t * v * c, [=] STPAIN_HD(int64_t i) {
      const int64_t ch = i % c, node = (i / c) % v, ti = (i / (c * v)) % t, b = i / (c * v * t);
      T acc = 0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t q = ti + pad - j;  // o * stride
        if (q < 0 || q % stride != 0 || q / stride >= to) continue;
        acc += cols[((b * to + q / stride) * v + node) * k * c + j * c + ch];
      }
      x[i] += acc;
    });
  } else {
    thrust_detail::for_n<P>(n * to * v * k * c, [=] STPAIN_HD(int64_t i) {
      const int64_t ch = i % c, j = (i / c) % k, row = i / (c * k);
      const int64_t node = row % v, o = (row / v) % to, b = row / (v * to);
      const int64_t ti = o * stride + j - pad;
      cols[i] = ti < 0 || ti >= t ? T(0) : x[((b * t + ti) * v + node) * c + ch];
    });
  }
}

// Patches of x into p [N*Ho*Wo, K] (K ordered (c, kh, kw) for NCHW input,
// (kh, kw, c) for NHWC); with Scatter, p added back into x. Patches do not
// overlap, so one item per patch value never races. Defined below, after
// the layer header that defines Layout.
template <class T, bool Scatter, thrust_backend P>
void patch_copy(P, Layout layout, std::conditional_t<Scatter, T*, const T*> x,
                std::conditional_t<Scatter, const T*, T*> p, int64_t n, int64_t c, int64_t h, int64_t w, int64_t s,
                int64_t ho, int64_t wo);

}  // namespace stpain::backend

#include "stpain/graph/temporal_conv.hpp"
#include "stpain/layers/patch_conv2d.hpp"

namespace stpain::backend {

template <class T, bool Scatter, thrust_backend P>
void patch_copy(P, Layout layout, std::conditional_t<Scatter, T*, const T*> x,
                std::conditional_t<Scatter, const T*, T*> p, int64_t n, int64_t c, int64_t h, int64_t w, int64_t s,
                int64_t ho, int64_t wo) {
  const int64_t k = c * s * s;
  const bool nchw = layout == Layout::NCHW;
  thrust_detail::for_n<P>(n * ho * wo * k, [=] STPAIN_HD(int64_t i) {
    const int64_t col = i % k, ow = (i / k) % wo, oh = (i / (k * wo)) % ho, b = i / (k * wo * ho);
    int64_t at;
    if (nchw) {
      const int64_t kw = col % s, kh = (col / s) % s, ch = col / (s * s);
      at = ((b * c + ch) * h + oh * s + kh) * w + ow * s + kw;
    } else {
      const int64_t kh = col / (s * c), j = col % (s * c);
      at = ((b * h + oh * s + kh) * w + ow * s) * c + j;
    }
    auto* xs = x;  // captured outside the if constexpr (nvcc requires it)
    auto* ps = p;
    if constexpr (Scatter)
      xs[at] += ps[i];
    else
      ps[i] = xs[at];
  });
}

}  // namespace stpain::backend
