#pragma once
// Thrust kernels of the LSTM: strided row copies and the fused gate step
// (one item per (row, hidden unit)). The recurrence itself is the layer's
// own loop of GEMMs (P::gemm) and these kernels.
#include "stpain/backend/thrust/elementwise.hpp"
#include "stpain/rnn/lstm.hpp"

namespace stpain::backend {

template <thrust_backend P, class T>
void copy_rows(P, int64_t rows, int64_t cols, StridedRows<const T> src, StridedRows<T> dst) {
  const T* s = src.data;
  T* d = dst.data;
  const int64_t ss = src.stride, ds = dst.stride;
  thrust_detail::for_n<P>(rows * cols, [=] STPAIN_HD(int64_t i) { d[(i / cols) * ds + i % cols] = s[(i / cols) * ss + i % cols]; });
}

template <thrust_backend P, class T>
void add_rows(P, int64_t rows, int64_t cols, StridedRows<const T> src, StridedRows<T> dst) {
  const T* s = src.data;
  T* d = dst.data;
  const int64_t ss = src.stride, ds = dst.stride;
  thrust_detail::for_n<P>(rows * cols, [=] STPAIN_HD(int64_t i) { d[(i / cols) * ds + i % cols] += s[(i / cols) * ss + i % cols]; });
}

// See lstm_gates_forward(cpu, ...) in rnn/lstm.hpp: gates[n] [z_i|z_f|z_g|z_o]
// (+ bias, + addend) become [i|f|g|o]; c = f c_prev + i g; h = o tanh(c).
template <thrust_backend P, class T>
void lstm_gates_forward(P, int64_t batch, int64_t hidden, StridedRows<T> gates, const T* bias,
                        StridedRows<const T> addend, StridedRows<const T> c_prev, StridedRows<T> c, StridedRows<T> h,
                        StridedRows<T> h_copy) {
  T* z0 = gates.data;
  const T* a0 = addend.data;
  const T* cp0 = c_prev.data;
  T* c0 = c.data;
  T* h0 = h.data;
  T* hc0 = h_copy.data;
  const int64_t zs = gates.stride, as = addend.stride, cps = c_prev.stride, cs = c.stride, hs = h.stride,
                hcs = h_copy.stride;
  thrust_detail::for_n<P>(batch * hidden, [=] STPAIN_HD(int64_t u) {
    const int64_t n = u / hidden, j = u % hidden;
    T* z = z0 + n * zs;
    T zi = z[j], zf = z[hidden + j], zg = z[2 * hidden + j], zo = z[3 * hidden + j];
    if (bias) {
      zi += bias[j];
      zf += bias[hidden + j];
      zg += bias[2 * hidden + j];
      zo += bias[3 * hidden + j];
    }
    if (a0) {
      const T* a = a0 + n * as;
      zi += a[j];
      zf += a[hidden + j];
      zg += a[2 * hidden + j];
      zo += a[3 * hidden + j];
    }
    const thrust_detail::sigmoid_fn sigmoid;
    const T i = sigmoid.value(zi), f = sigmoid.value(zf), g = thrust_detail::tanh_(zg), o = sigmoid.value(zo);
    const T cell = f * cp0[n * cps + j] + i * g;
    z[j] = i;
    z[hidden + j] = f;
    z[2 * hidden + j] = g;
    z[3 * hidden + j] = o;
    c0[n * cs + j] = cell;
    const T hv = o * thrust_detail::tanh_(cell);
    h0[n * hs + j] = hv;
    if (hc0) hc0[n * hcs + j] = hv;
  });
}

// See lstm_gates_backward(cpu, ...): dgates = dL/dz; dc holds dL/dc_t on
// entry and dL/dc_{t-1} on exit; dh_out may be null.
template <thrust_backend P, class T>
void lstm_gates_backward(P, int64_t batch, int64_t hidden, StridedRows<const T> gates, StridedRows<const T> c,
                         StridedRows<const T> c_prev, StridedRows<const T> dh_next, StridedRows<const T> dh_out,
                         StridedRows<T> dc, StridedRows<T> dgates) {
  const T* a0 = gates.data;
  const T* c0 = c.data;
  const T* cp0 = c_prev.data;
  const T* dhn0 = dh_next.data;
  const T* dho0 = dh_out.data;
  T* dc0 = dc.data;
  T* dz0 = dgates.data;
  const int64_t as = gates.stride, cs = c.stride, cps = c_prev.stride, dhns = dh_next.stride, dhos = dh_out.stride,
                dcs = dc.stride, dzs = dgates.stride;
  thrust_detail::for_n<P>(batch * hidden, [=] STPAIN_HD(int64_t u) {
    const int64_t n = u / hidden, j = u % hidden;
    T dh = dhn0[n * dhns + j];
    if (dho0) dh += dho0[n * dhos + j];
    const T* a = a0 + n * as;
    const T i = a[j], f = a[hidden + j], g = a[2 * hidden + j], o = a[3 * hidden + j];
    const T tc = thrust_detail::tanh_(c0[n * cs + j]);
    const T dcell = dc0[n * dcs + j] + dh * o * (T(1) - tc * tc);
    T* dz = dz0 + n * dzs;
    dz[j] = dcell * g * i * (T(1) - i);
    dz[hidden + j] = dcell * cp0[n * cps + j] * f * (T(1) - f);
    dz[2 * hidden + j] = dcell * i * (T(1) - g * g);
    dz[3 * hidden + j] = dh * tc * o * (T(1) - o);
    dc0[n * dcs + j] = dcell * f;
  });
}

}  // namespace stpain::backend
