#pragma once
// Thrust kernels of Linear (GEMM + bias) and the channels-last depthwise
// convolution of ConvNeXt blocks: one item per output value (forward, input
// gradient) or per (tap, channel) filter gradient, looping over the rest.
#include "stpain/backend/thrust/elementwise.hpp"
#include "stpain/layers/depthwise_conv2d_nhwc.hpp"
#include "stpain/layers/linear.hpp"

namespace stpain::backend {

// y = x W^T (+ bias) through the policy's GEMM.
template <thrust_backend P, class T>
void linear_forward(P p, const T* x, const T* w, const T* bias, T* y, int64_t rows, int64_t in, int64_t out) {
  P::gemm(false, true, rows, out, in, T(1), x, in, w, in, T(0), y, out);
  if (bias) add_bias(p, y, bias, rows, out);
}

// y[n, oh, ow, c] = bias[c] + sum_{kh, kw} x[n, oh + kh - pad, ow + kw - pad, c] * w[kh, kw, c]
template <thrust_backend P, class T>
void depthwise_conv_nhwc(P, const T* x, const T* w, const T* bias, T* y, int64_t n, int64_t h, int64_t wd,
                         int64_t c, int64_t k, int64_t pad, int64_t ho, int64_t wo) {
  thrust_detail::for_n<P>(n * ho * wo * c, [=] STPAIN_HD(int64_t i) {
    const int64_t ch = i % c, ow = (i / c) % wo, oh = (i / (c * wo)) % ho, b = i / (c * wo * ho);
    T acc = bias ? bias[ch] : T(0);
    for (int64_t kh = 0; kh < k; ++kh) {
      const int64_t ih = oh + kh - pad;
      if (ih < 0 || ih >= h) continue;
      for (int64_t kw = 0; kw < k; ++kw) {
        const int64_t iw = ow + kw - pad;
        if (iw < 0 || iw >= wd) continue;
        acc += x[((b * h + ih) * wd + iw) * c + ch] * w[(kh * k + kw) * c + ch];
      }
    }
    y[i] = acc;
  });
}

// dw[kh, kw, c] += sum over outputs of x under the tap * dy; db[c] += sum dy
// (db may be null).
template <thrust_backend P, class T>
void depthwise_conv_nhwc_weight_grad(P, const T* x, const T* dy, T* dw, T* db, int64_t n, int64_t h, int64_t wd,
                                     int64_t c, int64_t k, int64_t pad, int64_t ho, int64_t wo) {
  thrust_detail::for_n<P>(k * k * c, [=] STPAIN_HD(int64_t i) {
    const int64_t ch = i % c, tap = i / c, kh = tap / k, kw = tap % k;
    T acc = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t oh = 0; oh < ho; ++oh) {
        const int64_t ih = oh + kh - pad;
        if (ih < 0 || ih >= h) continue;
        for (int64_t ow = 0; ow < wo; ++ow) {
          const int64_t iw = ow + kw - pad;
          if (iw < 0 || iw >= wd) continue;
          acc += x[((b * h + ih) * wd + iw) * c + ch] * dy[((b * ho + oh) * wo + ow) * c + ch];
        }
      }
    dw[i] += acc;
  });
  if (db) accumulate_column_sums(P{}, dy, db, n * ho * wo, c);
}

}  // namespace stpain::backend
