#pragma once
// Thrust kernels of the NCHW Conv2d (layers/conv2d.hpp), general and
// depthwise: direct loops, one item per output value (forward), per input
// value (input gradient), per filter value and per output channel (filter
// and bias gradients, which accumulate). Depthwise is the general kernel with
// groups == channels. Correct everywhere, not tuned: the cpu backend's
// im2col + GEMM and vector-tiled depthwise planes are its fast path.
#include "stpain/backend/thrust/policy.hpp"
#include "stpain/layers/conv2d.hpp"

namespace stpain::backend {

namespace thrust_detail {

// Conv2dGeometry as plain numbers a device lambda can copy and use.
struct ConvSizes {
  int64_t n, c, h, w, o, oh, ow, kh, kw, sh, sw, ph, pw, cpg, opg;  // cpg / opg: channels per group
  explicit ConvSizes(const Conv2dGeometry& g)
      : n(g.batch), c(g.in_channels), h(g.height), w(g.width), o(g.out_channels), oh(g.out_height),
        ow(g.out_width), kh(g.kernel_h), kw(g.kernel_w), sh(g.stride_h), sw(g.stride_w), ph(g.pad_h), pw(g.pad_w),
        cpg(g.in_per_group()), opg(g.out_per_group()) {}
};

}  // namespace thrust_detail

// y[b, o, i, j] = bias[o] + sum over the group's input channels and taps of
// x[b, c, i*sh - ph + ki, j*sw - pw + kj] * w[o, c, ki, kj]. bias may be null.
template <thrust_backend P, class T>
void conv2d_forward(P, const Conv2dGeometry& g, const T* x, const T* weight, const T* bias, T* y) {
  const thrust_detail::ConvSizes s(g);
  thrust_detail::for_n<P>(s.n * s.o * s.oh * s.ow, [=] STPAIN_HD(int64_t idx) {
    const int64_t j = idx % s.ow, i = idx / s.ow % s.oh, o = idx / (s.ow * s.oh) % s.o, b = idx / (s.ow * s.oh * s.o);
    const int64_t c0 = o / s.opg * s.cpg;
    T acc = bias ? bias[o] : T(0);
    for (int64_t c = 0; c < s.cpg; ++c)
      for (int64_t ki = 0; ki < s.kh; ++ki) {
        const int64_t ih = i * s.sh - s.ph + ki;
        if (ih < 0 || ih >= s.h) continue;
        for (int64_t kj = 0; kj < s.kw; ++kj) {
          const int64_t iw = j * s.sw - s.pw + kj;
          if (iw < 0 || iw >= s.w) continue;
          acc += x[((b * s.c + c0 + c) * s.h + ih) * s.w + iw] * weight[((o * s.cpg + c) * s.kh + ki) * s.kw + kj];
        }
      }
    y[idx] = acc;
  });
}

// dx overwritten; dweight and dbias (may be null) accumulate.
template <thrust_backend P, class T>
void conv2d_backward(P, const Conv2dGeometry& g, const T* x, const T* weight, const T* dy, T* dx, T* dweight,
                     T* dbias) {
  const thrust_detail::ConvSizes s(g);
  // dx[b, c, ih, iw]: every output of c's group whose window covers (ih, iw).
  thrust_detail::for_n<P>(s.n * s.c * s.h * s.w, [=] STPAIN_HD(int64_t idx) {
    const int64_t iw = idx % s.w, ih = idx / s.w % s.h, c = idx / (s.w * s.h) % s.c, b = idx / (s.w * s.h * s.c);
    const int64_t o0 = c / s.cpg * s.opg, cl = c % s.cpg;
    T acc = 0;
    for (int64_t o = o0; o < o0 + s.opg; ++o)
      for (int64_t ki = 0; ki < s.kh; ++ki) {
        const int64_t ti = ih + s.ph - ki;  // = i * sh for the output row i using this tap
        if (ti < 0 || ti % s.sh != 0 || ti / s.sh >= s.oh) continue;
        for (int64_t kj = 0; kj < s.kw; ++kj) {
          const int64_t tj = iw + s.pw - kj;
          if (tj < 0 || tj % s.sw != 0 || tj / s.sw >= s.ow) continue;
          acc += weight[((o * s.cpg + cl) * s.kh + ki) * s.kw + kj] *
                 dy[((b * s.o + o) * s.oh + ti / s.sh) * s.ow + tj / s.sw];
        }
      }
    dx[idx] = acc;
  });
  // dweight[o, c, ki, kj] += sum over images and outputs of x under the tap * dy.
  thrust_detail::for_n<P>(s.o * s.cpg * s.kh * s.kw, [=] STPAIN_HD(int64_t idx) {
    const int64_t kj = idx % s.kw, ki = idx / s.kw % s.kh, cl = idx / (s.kw * s.kh) % s.cpg,
                  o = idx / (s.kw * s.kh * s.cpg);
    const int64_t c = o / s.opg * s.cpg + cl;
    T acc = 0;
    for (int64_t b = 0; b < s.n; ++b)
      for (int64_t i = 0; i < s.oh; ++i) {
        const int64_t ih = i * s.sh - s.ph + ki;
        if (ih < 0 || ih >= s.h) continue;
        for (int64_t j = 0; j < s.ow; ++j) {
          const int64_t iw = j * s.sw - s.pw + kj;
          if (iw < 0 || iw >= s.w) continue;
          acc += x[((b * s.c + c) * s.h + ih) * s.w + iw] * dy[((b * s.o + o) * s.oh + i) * s.ow + j];
        }
      }
    dweight[idx] += acc;
  });
  if (dbias)
    thrust_detail::for_n<P>(s.o, [=] STPAIN_HD(int64_t o) {
      T acc = 0;
      for (int64_t b = 0; b < s.n; ++b)
        for (int64_t r = 0; r < s.oh * s.ow; ++r) acc += dy[(b * s.o + o) * s.oh * s.ow + r];
      dbias[o] += acc;
    });
}

template <thrust_backend P, class T>
void depthwise_conv2d_forward(P p, const Conv2dGeometry& g, const T* x, const T* weight, const T* bias, T* y) {
  conv2d_forward(p, g, x, weight, bias, y);
}

template <thrust_backend P, class T>
void depthwise_conv2d_backward(P p, const Conv2dGeometry& g, const T* x, const T* weight, const T* dy, T* dx,
                               T* dweight, T* dbias) {
  conv2d_backward(p, g, x, weight, dy, dx, dweight, dbias);
}

}  // namespace stpain::backend
