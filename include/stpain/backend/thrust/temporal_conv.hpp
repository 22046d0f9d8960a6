#pragma once
// Thrust kernels of TemporalConv (graph/temporal_conv.hpp) in the plain form:
// im2col rows [(n, to, v), (j, c)] times the weight laid out [out, (j, c)],
// one GEMM each way through the policy's gemm, and the scatter-add of the
// im2col for the input gradient. (The cpu kernel's blocked, output-side and
// per-tap forms are its own speed-ups; the sums are the same.)
#include "stpain/backend/thrust/elementwise.hpp"
#include "stpain/backend/thrust/im2col.hpp"
#include "stpain/graph/temporal_conv.hpp"

namespace stpain::backend {

namespace thrust_detail {
// The weight [out, in, k] (torch's layout) as [out, (j, c)], the im2col order.
template <class P, class T>
Tensor<T, P> taps_last_weight(const TemporalConvShape& s, const T* w) {
  Tensor<T, P> wm = Tensor<T, P>::empty({s.out, s.k * s.in});
  T* d = wm.data();
  const int64_t in = s.in, k = s.k;
  for_n<P>(s.out * k * in, [=] STPAIN_HD(int64_t i) {
    const int64_t c = i % in, j = i / in % k, o = i / (in * k);
    d[i] = w[(o * in + c) * k + j];
  });
  return wm;
}

template <class P, class T>
Tensor<T, P> im2col_rows(const TemporalConvShape& s, const T* x) {
  Tensor<T, P> cols = Tensor<T, P>::empty({s.n * s.to * s.v, s.k * s.in});
  temporal_im2col<T, false>(P{}, x, cols.data(), s.n, s.t, s.v, s.in, s.k, s.stride, s.pad, s.to);
  return cols;
}
}  // namespace thrust_detail

// y [n, to, v, out] = conv(x [n, t, v, in]) + bias; weight [out, in, k], bias [out] or null.
template <thrust_backend P, class T>
void temporal_conv_forward(P p, const TemporalConvShape& s, const T* x, const T* weight, const T* bias, T* y) {
  const int64_t rows = s.n * s.to * s.v, width = s.k * s.in;
  const Tensor<T, P> wm = thrust_detail::taps_last_weight<P>(s, weight);
  const Tensor<T, P> cols = thrust_detail::im2col_rows<P>(s, x);
  P::gemm(false, true, rows, s.out, width, T(1), cols.data(), width, wm.data(), width, T(0), y, s.out);
  if (bias) add_bias(p, y, bias, rows, s.out);
}

// dx overwritten; dweight [out, in, k] and dbias (may be null) accumulate.
template <thrust_backend P, class T>
void temporal_conv_backward(P p, const TemporalConvShape& s, const T* x, const T* weight, const T* dy, T* dx,
                            T* dweight, T* dbias) {
  const int64_t rows = s.n * s.to * s.v, width = s.k * s.in;
  const Tensor<T, P> wm = thrust_detail::taps_last_weight<P>(s, weight);
  // dx: the im2col gradient dy wm, scattered back onto the frames it came from.
  Tensor<T, P> dcols = Tensor<T, P>::empty({rows, width});
  P::gemm(false, false, rows, width, s.out, T(1), dy, s.out, wm.data(), width, T(0), dcols.data(), width);
  thrust_detail::for_n<P>(s.n * s.t * s.v * s.in, [=] STPAIN_HD(int64_t i) { dx[i] = T(0); });
  temporal_im2col<T, true>(p, dx, dcols.data(), s.n, s.t, s.v, s.in, s.k, s.stride, s.pad, s.to);
  // dweight: dy^T cols in the [out, (j, c)] order, added into [out, in, k].
  const Tensor<T, P> cols = thrust_detail::im2col_rows<P>(s, x);
  Tensor<T, P> dwm = Tensor<T, P>::empty({s.out, width});
  P::gemm(true, false, s.out, width, rows, T(1), dy, s.out, cols.data(), width, T(0), dwm.data(), width);
  const T* g = dwm.data();
  const int64_t in = s.in, k = s.k;
  thrust_detail::for_n<P>(s.out * in * k, [=] STPAIN_HD(int64_t i) {
    const int64_t j = i % k, c = i / k % in, o = i / (k * in);
    dweight[i] += g[(o * k + j) * in + c];
  });
  if (dbias) accumulate_column_sums(p, dy, dbias, rows, s.out);
}

}  // namespace stpain::backend
