#pragma once
// Thrust kernels of the LSTM: strided row copies, the fused gate step (one
// item per (row, hidden unit)), and a layer's pass over all steps: a loop of
// GEMMs (P::gemm) and those kernels.
#include "stpain/backend/thrust/elementwise.hpp"
#include "stpain/backend/thrust/shape.hpp"
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

// ---- One layer and direction over all steps (see lstm_sequence_forward(cpu, ...))
// The input products of all steps are one GEMM; each step is the recurrent
// GEMM over the whole batch and the gate kernel.

template <thrust_backend P, class T>
void lstm_sequence_forward(P p, const LstmSizes& z, const T* x, const T* w_ih, const T* w_hh, const T* bias,
                           const T* h0, const LstmCache<T>& cache, T* y, int64_t y_row_stride) {
  const int64_t N = z.batch, S = z.steps, H = z.hidden, G = 4 * H, in = z.in;
  Tensor<T, P> xw = Tensor<T, P>::empty({N * S, G});  // x w_ih^T, batch-first
  P::gemm(false, true, N * S, G, in, T(1), x, in, w_ih, in, T(0), xw.data(), G);
  copy_rows(p, N, H, StridedRows<const T>{h0, H}, StridedRows<T>{cache.h_prev + z.step(0) * N * H, H});
  for (int64_t s = 0; s < S; ++s) {
    const int64_t t = z.step(s);
    T* gates = cache.gates + t * N * G;
    P::gemm(false, true, N, G, H, T(1), cache.h_prev + t * N * H, H, w_hh, H, T(0), gates, G);
    StridedRows<T> h_copy;
    if (s + 1 < S) h_copy = {cache.h_prev + z.step(s + 1) * N * H, H};
    const T* c_prev = s == 0 ? cache.c0 : cache.cells + z.step(s - 1) * N * H;
    lstm_gates_forward(p, N, H, StridedRows<T>{gates, G}, bias, StridedRows<const T>{xw.data() + t * G, S * G},
                       StridedRows<const T>{c_prev, H}, StridedRows<T>{cache.cells + t * N * H, H},
                       StridedRows<T>{y + t * y_row_stride, S * y_row_stride}, h_copy);
  }
}

template <thrust_backend P, class T>
void lstm_sequence_backward(P p, const LstmSizes& z, const T* x, const T* w_ih, const T* w_hh, const LstmCache<T>& cache,
                            const T* dy, int64_t dy_row_stride, T* dh, T* dc, T* dx, bool accumulate_dx,
                            const LstmGradients<T>& grads) {
  const int64_t N = z.batch, S = z.steps, H = z.hidden, G = 4 * H, in = z.in;
  Tensor<T, P> dgates = Tensor<T, P>::empty({S * N, G});  // time-major, as the cache
  for (int64_t s = S - 1; s >= 0; --s) {
    const int64_t t = z.step(s);
    T* dz = dgates.data() + t * N * G;
    StridedRows<const T> dh_out;
    if (dy) dh_out = {dy + t * dy_row_stride, S * dy_row_stride};
    const T* c_prev = s == 0 ? cache.c0 : cache.cells + z.step(s - 1) * N * H;
    lstm_gates_backward(p, N, H, StridedRows<const T>{cache.gates + t * N * G, G},
                        StridedRows<const T>{cache.cells + t * N * H, H}, StridedRows<const T>{c_prev, H},
                        StridedRows<const T>{dh, H}, dh_out, StridedRows<T>{dc, H}, StridedRows<T>{dz, G});
    P::gemm(false, false, N, H, G, T(1), dz, G, w_hh, H, T(0), dh, H);  // dL/dh_{t-1} = dz w_hh
  }
  P::gemm(true, false, G, H, S * N, T(1), dgates.data(), G, cache.h_prev, H, T(1), grads.w_hh, H);
  if (grads.b_ih) {
    accumulate_column_sums(p, dgates.data(), grads.b_ih, S * N, G);
    accumulate_column_sums(p, dgates.data(), grads.b_hh, S * N, G);
  }
  Tensor<T, P> dz = Tensor<T, P>::empty({N * S, G});  // batch-first, as x
  swap_middle_axes(p, dgates.data(), dz.data(), 1, S, N, G);
  P::gemm(false, false, N * S, in, G, T(1), dz.data(), G, w_ih, in, accumulate_dx ? T(1) : T(0), dx, in);
  P::gemm(true, false, G, in, N * S, T(1), dz.data(), G, x, in, T(1), grads.w_ih, in);
}

}  // namespace stpain::backend
