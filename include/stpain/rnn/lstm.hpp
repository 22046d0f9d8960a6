#pragma once
// LSTM and LSTMCell with PyTorch's layout, names and semantics
// (torch.nn.LSTM(batch_first=True), torch.nn.LSTMCell), plus the conversion
// of Keras LSTM weights.
//
// One step, gates in the order i, f, g, o of the 4H rows of the weights:
//   z = x W_ih^T + b_ih + h W_hh^T + b_hh            [N, 4H] = [i | f | g | o]
//   i, f, o = sigmoid(z_i, z_f, z_o); g = tanh(z_g)
//   c' = f * c + i * g;  h' = o * tanh(c')
//
// Per layer and direction and per step, forward costs two GEMMs ([N, in] x
// [in, 4H] and [N, H] x [H, 4H]) and one fused gate kernel; backward the gate
// kernel and four GEMMs (dh_{t-1}, dx_t, dW_ih, dW_hh), each step's rows
// still in cache. The steps run in one parallel region: each thread takes
// its share of the batch through every step (lstm_sequence_forward).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "stpain/backend/cpu_gemm.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/module.hpp"

namespace stpain::backend {

// Rows of a matrix that need not be contiguous: row n starts at data + n * stride.
// The kernels below read one time step out of [N, T, ...] buffers this way.
template <class T>
struct StridedRows {
  T* data = nullptr;
  int64_t stride = 0;

  StridedRows() = default;
  StridedRows(T* d, int64_t s) : data(d), stride(s) {}
  // Mutable rows read as const ones.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  StridedRows(const StridedRows<U>& o) : data(o.data), stride(o.stride) {}

  T* operator[](int64_t n) const { return data + n * stride; }
  explicit operator bool() const { return data != nullptr; }
};

// dst[n][0, cols) = src[n][0, cols) for n < rows.
template <class T>
void copy_rows(cpu, int64_t rows, int64_t cols, StridedRows<const T> src, StridedRows<T> dst) {
  for (int64_t n = 0; n < rows; ++n) std::copy_n(src[n], cols, dst[n]);
}

// dst[n][0, cols) += src[n][0, cols) for n < rows.
template <class T>
void add_rows(cpu, int64_t rows, int64_t cols, StridedRows<const T> src, StridedRows<T> dst) {
  for (int64_t n = 0; n < rows; ++n) {
    const T* a = src[n];
    T* b = dst[n];
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) b[j] += a[j];
  }
}

namespace lstm_detail {
// Rows per parallel chunk: at least ~16K values, so the small per-step calls
// of a recurrent head stay on one thread.
inline int64_t row_grain(int64_t values_per_row) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, values_per_row));
}
}  // namespace lstm_detail

// The fused forward of one step for `batch` rows. gates[n] holds the
// pre-activations [z_i | z_f | z_g | z_o] (each `hidden` wide) without
// `bias` (4 * hidden values, may be null) and without `addend` (same layout,
// may be null); they are replaced by the activations [i | f | g | o], which
// is what backward needs. Then c[n] = f * c_prev[n] + i * g and
// h[n] = o * tanh(c[n]); h is also written to h_copy[n] when h_copy is set.
// lstm_gates_forward_rows does rows [n0, n1) on the calling thread;
// lstm_gates_forward splits the batch between the threads when it is large.
template <class T>
void lstm_gates_forward_rows(cpu, int64_t n0, int64_t n1, int64_t hidden, StridedRows<T> gates, const T* bias,
                             StridedRows<const T> addend, StridedRows<const T> c_prev, StridedRows<T> c,
                             StridedRows<T> h, StridedRows<T> h_copy) {
  const sigmoid_op sigmoid;
  const tanh_op tanh;
  // The four combinations of the optional inputs each get a branch-free loop.
  auto rows = [=]<bool HasBias, bool HasAddend>(int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      T* z = gates[n];
      const T* a = HasAddend ? addend[n] : nullptr;
      const T* cp = c_prev[n];
      T* cn = c[n];
      T* hn = h[n];
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) {
        T zi = z[j], zf = z[hidden + j], zg = z[2 * hidden + j], zo = z[3 * hidden + j];
        if constexpr (HasBias) {
          zi += bias[j];
          zf += bias[hidden + j];
          zg += bias[2 * hidden + j];
          zo += bias[3 * hidden + j];
        }
        if constexpr (HasAddend) {
          zi += a[j];
          zf += a[hidden + j];
          zg += a[2 * hidden + j];
          zo += a[3 * hidden + j];
        }
        const T i = sigmoid.value(zi), f = sigmoid.value(zf), g = tanh.value(zg), o = sigmoid.value(zo);
        const T cell = f * cp[j] + i * g;
        z[j] = i;
        z[hidden + j] = f;
        z[2 * hidden + j] = g;
        z[3 * hidden + j] = o;
        cn[j] = cell;
        hn[j] = o * tanh.value(cell);
      }
      if (h_copy) std::copy(hn, hn + hidden, h_copy[n]);
    }
  };
  if (bias && addend)
    rows.template operator()<true, true>(n0, n1);
  else if (bias)
    rows.template operator()<true, false>(n0, n1);
  else if (addend)
    rows.template operator()<false, true>(n0, n1);
  else
    rows.template operator()<false, false>(n0, n1);
}

template <class T>
void lstm_gates_forward(cpu, int64_t batch, int64_t hidden, StridedRows<T> gates, const T* bias,
                        StridedRows<const T> addend, StridedRows<const T> c_prev, StridedRows<T> c,
                        StridedRows<T> h, StridedRows<T> h_copy) {
  parallel_for(batch, lstm_detail::row_grain(8 * hidden), [&](int64_t n0, int64_t n1) {
    lstm_gates_forward_rows(cpu{}, n0, n1, hidden, gates, bias, addend, c_prev, c, h, h_copy);
  });
}

// The fused backward of one step. gates[n] holds the activations
// [i | f | g | o] of the step, c[n] its cell state, c_prev[n] the one before.
// dh[n] = dL/dh_t is dh_next[n] (through the recurrence) + dh_out[n] (from
// the step's output; may be null). dc[n] holds dL/dc_t from the later steps
// on entry and dL/dc_{t-1} on exit. Writes dgates[n] = dL/dz, the gradient of
// the pre-activations.
// (lstm_gates_backward_rows: rows [n0, n1) on the calling thread.)
template <class T>
void lstm_gates_backward_rows(cpu, int64_t n0, int64_t n1, int64_t hidden, StridedRows<const T> gates,
                              StridedRows<const T> c, StridedRows<const T> c_prev, StridedRows<const T> dh_next,
                              StridedRows<const T> dh_out, StridedRows<T> dc, StridedRows<T> dgates) {
  const tanh_op tanh;
  auto rows = [=]<bool HasOut>(int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* a = gates[n];
      const T* cn = c[n];
      const T* cp = c_prev[n];
      const T* dhn = dh_next[n];
      const T* dho = HasOut ? dh_out[n] : nullptr;
      T* dcn = dc[n];
      T* dz = dgates[n];
#pragma omp simd
      for (int64_t j = 0; j < hidden; ++j) {
        T dh = dhn[j];
        if constexpr (HasOut) dh += dho[j];
        const T i = a[j], f = a[hidden + j], g = a[2 * hidden + j], o = a[3 * hidden + j];
        const T tc = tanh.value(cn[j]);
        const T dcell = dcn[j] + dh * o * (T(1) - tc * tc);
        dz[j] = dcell * g * i * (T(1) - i);
        dz[hidden + j] = dcell * cp[j] * f * (T(1) - f);
        dz[2 * hidden + j] = dcell * i * (T(1) - g * g);
        dz[3 * hidden + j] = dh * tc * o * (T(1) - o);
        dcn[j] = dcell * f;
      }
    }
  };
  if (dh_out)
    rows.template operator()<true>(n0, n1);
  else
    rows.template operator()<false>(n0, n1);
}

template <class T>
void lstm_gates_backward(cpu, int64_t batch, int64_t hidden, StridedRows<const T> gates, StridedRows<const T> c,
                         StridedRows<const T> c_prev, StridedRows<const T> dh_next, StridedRows<const T> dh_out,
                         StridedRows<T> dc, StridedRows<T> dgates) {
  parallel_for(batch, lstm_detail::row_grain(8 * hidden), [&](int64_t n0, int64_t n1) {
    lstm_gates_backward_rows(cpu{}, n0, n1, hidden, gates, c, c_prev, dh_next, dh_out, dc, dgates);
  });
}


// ---- One layer and direction over all steps --------------------------------
//
// x [N, S, in] batch-first. The batch splits between the threads once per
// call: each thread takes its rows through every step, its GEMMs on its own
// thread, so a sequence costs one parallel region instead of a few per step.
// What backward needs is stored time-major ([S, N, ...]): the rows of a step
// are contiguous. With many rows per thread (>= 64) the input products are
// made step by step while the step's rows are in cache (x_t's projection in
// forward; dx_t and dW_ih in backward); with few (a recurrent head over a
// small batch) they are one GEMM over all N*S rows, as packing the weights
// for a handful of rows would cost more than the product.

struct LstmSizes {
  int64_t batch = 0, steps = 0, in = 0, hidden = 0;
  bool reverse = false;
  // The time index of the s-th step processed.
  int64_t step(int64_t s) const { return reverse ? steps - 1 - s : s; }
};

// Time-major buffers of forward, [S, N, 4H] and [S, N, H]: the gate
// activations, the cell states, and h_{t-1} at every t (h0 at the first step).
template <class T>
struct LstmCache {
  T* gates = nullptr;
  T* cells = nullptr;
  T* h_prev = nullptr;
  const T* c0 = nullptr;  // [N, H]
};

// The weight gradients of one layer and direction (accumulated).
template <class T>
struct LstmGradients {
  T* w_ih = nullptr;
  T* w_hh = nullptr;
  T* b_ih = nullptr;  // null without biases
  T* b_hh = nullptr;
};

namespace lstm_detail {
// How a sequence is split: `parts` threads take contiguous rows of the batch.
struct Split {
  int64_t parts = 1;
  bool per_step = false;  // the input products step by step
  Split(const LstmSizes& z) {
    const int64_t G = 4 * z.hidden, worth = z.batch * G * (z.hidden + z.in) / (int64_t{1} << 16);  // ~64K MACs a step each
    parts = std::clamp<int64_t>(worth, 1, std::max<int64_t>(1, std::min<int64_t>(num_threads(), z.batch)));
    per_step = z.batch / parts >= 64;
  }
};
// w [rows, cols] -> [cols, rows]
// (Scratch and weight copies are tensors: large blocks are recycled between
// calls instead of costing page faults.)
template <class T>
Tensor<T, cpu> transposed(const T* w, int64_t rows, int64_t cols) {
  Tensor<T, cpu> t = Tensor<T, cpu>::empty({cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.data()[c * rows + r] = w[r * cols + c];
  return t;
}
// dx (+)= dz w_ih for `rows` rows (dx row stride ldx).
template <class T>
void input_gradient(int64_t rows, int64_t in, int64_t G, const T* dz, const T* w_ih, T* dx, int64_t ldx, bool accumulate) {
  cpu::gemm(false, false, rows, in, G, T(1), dz, G, w_ih, in, accumulate ? T(1) : T(0), dx, ldx);
}
}  // namespace lstm_detail

// Forward through the steps. h0, c0 [N, H]; bias [4H] (b_ih + b_hh) or null.
// h_t goes to y[(n * S + t) * y_row_stride + j].
template <class T>
void lstm_sequence_forward(cpu, const LstmSizes& z, const T* x, const T* w_ih, const T* w_hh, const T* bias, const T* h0,
                           const LstmCache<T>& cache, T* y, int64_t y_row_stride) {
  const int64_t N = z.batch, S = z.steps, H = z.hidden, G = 4 * H, in = z.in;
  const lstm_detail::Split split(z);
  Tensor<T, cpu> xw;  // x w_ih^T + bias [N, S, 4H] for all steps at once
  if (!split.per_step) {
    xw = Tensor<T, cpu>::empty({N * S, G});
    cpu::gemm(false, true, N * S, G, in, T(1), x, in, w_ih, in, T(0), xw.data(), G);  // the bias: in the gate kernel
  }
  const PackedB<T> w_hh_packed = pack_b(w_hh, H, G, H);  // once for all steps and threads
  parallel_chunks(N, split.parts, [&](int64_t, int64_t n0, int64_t n1) {
    const int64_t rows = n1 - n0;
    Tensor<T, cpu> hw = Tensor<T, cpu>::empty({split.per_step ? rows : 0, G});  // h_{t-1} w_hh^T
    copy_rows(cpu{}, rows, H, StridedRows<const T>{h0 + n0 * H, H},
              StridedRows<T>{cache.h_prev + (z.step(0) * N + n0) * H, H});
    for (int64_t s = 0; s < S; ++s) {
      const int64_t t = z.step(s);
      T* gates = cache.gates + (t * N + n0) * G;
      const T* h_prev = cache.h_prev + (t * N + n0) * H;
      // z_t = x_t w_ih^T + bias + h_{t-1} w_hh^T: one product into gates, the other added by the gate kernel.
      StridedRows<const T> addend;
      if (split.per_step) {
        gemm_nt<T>(rows, G, in, x + (n0 * S + t) * in, S * in, w_ih, in, bias, gates, G);
        gemm_nt<T>(rows, h_prev, H, w_hh_packed, nullptr, hw.data(), G);
        addend = {hw.data(), G};
      } else {
        gemm_nt<T>(rows, h_prev, H, w_hh_packed, nullptr, gates, G);
        addend = {xw.data() + (n0 * S + t) * G, S * G};
      }
      StridedRows<T> h_copy;
      if (s + 1 < S) h_copy = {cache.h_prev + (z.step(s + 1) * N + n0) * H, H};
      const T* c_prev = s == 0 ? cache.c0 + n0 * H : cache.cells + (z.step(s - 1) * N + n0) * H;
      lstm_gates_forward_rows(cpu{}, 0, rows, H, StridedRows<T>{gates, G}, split.per_step ? nullptr : bias, addend,
                              StridedRows<const T>{c_prev, H}, StridedRows<T>{cache.cells + (t * N + n0) * H, H},
                              StridedRows<T>{y + (n0 * S + t) * y_row_stride, S * y_row_stride}, h_copy);
    }
  });
}

// Backward through the steps, last to first. dy: dL/dh_t at y's layout, or
// null. dh, dc [N, H]: dL/dh_n, dL/dc_n on entry, dL/dh0, dL/dc0 on exit.
// Writes dx [N, S, in] (adds to it when accumulate_dx) and accumulates the
// weight gradients.
template <class T>
void lstm_sequence_backward(cpu, const LstmSizes& z, const T* x, const T* w_ih, const T* w_hh, const LstmCache<T>& cache,
                            const T* dy, int64_t dy_row_stride, T* dh, T* dc, T* dx, bool accumulate_dx,
                            const LstmGradients<T>& grads) {
  using lstm_detail::input_gradient;
  const int64_t N = z.batch, S = z.steps, H = z.hidden, G = 4 * H, in = z.in;
  const lstm_detail::Split split(z);
  const PackedB<T> w_hh_t = pack_b(lstm_detail::transposed(w_hh, G, H).data(), G, H, G);  // [H, G], packed once
  // Per part, step by step: dW_ih [4H, in], dW_hh [4H, H], db [4H]. Otherwise dz of every step, time-major.
  std::vector<Tensor<T, cpu>> acc;
  for (int64_t p = 0; split.per_step && p < split.parts; ++p) acc.push_back(Tensor<T, cpu>::zeros({G * (in + H + 1)}));
  Tensor<T, cpu> dgates = Tensor<T, cpu>::empty({split.per_step ? 0 : S * N, G});
  parallel_chunks(N, split.parts, [&](int64_t part, int64_t n0, int64_t n1) {
    const int64_t rows = n1 - n0;
    Tensor<T, cpu> dz_step = Tensor<T, cpu>::empty({split.per_step ? rows : 0, G});
    for (int64_t s = S - 1; s >= 0; --s) {
      const int64_t t = z.step(s);
      T* dz = split.per_step ? dz_step.data() : dgates.data() + (t * N + n0) * G;
      StridedRows<const T> dh_out;
      if (dy) dh_out = {dy + (n0 * S + t) * dy_row_stride, S * dy_row_stride};
      const T* c_prev = s == 0 ? cache.c0 + n0 * H : cache.cells + (z.step(s - 1) * N + n0) * H;
      lstm_gates_backward_rows(cpu{}, 0, rows, H, StridedRows<const T>{cache.gates + (t * N + n0) * G, G},
                               StridedRows<const T>{cache.cells + (t * N + n0) * H, H}, StridedRows<const T>{c_prev, H},
                               StridedRows<const T>{dh + n0 * H, H}, dh_out, StridedRows<T>{dc + n0 * H, H},
                               StridedRows<T>{dz, G});
      // dL/dh_{t-1} = dz w_hh
      gemm_nt<T>(rows, dz, G, w_hh_t, nullptr, dh + n0 * H, H);
      if (!split.per_step) continue;
      // dx_t = dz w_ih; dW_ih += dz^T x_t; dW_hh += dz^T h_{t-1}; db += sum dz.
      T* dw_ih = acc[static_cast<size_t>(part)].data();
      input_gradient(rows, in, G, dz, w_ih, dx + (n0 * S + t) * in, S * in, accumulate_dx);
      cpu::gemm(true, false, G, in, rows, T(1), dz, G, x + (n0 * S + t) * in, S * in, T(1), dw_ih, in);
      cpu::gemm(true, false, G, H, rows, T(1), dz, G, cache.h_prev + (t * N + n0) * H, H, T(1), dw_ih + G * in, H);
      if (grads.b_ih) accumulate_column_sums(cpu{}, dz, dw_ih + G * (in + H), rows, G);
    }
  });
  if (split.per_step) {
    for (size_t p = 1; p < acc.size(); ++p) acc[0].array() += acc[p].array();
    const T* sum = acc[0].data();
    for (int64_t i = 0; i < G * in; ++i) grads.w_ih[i] += sum[i];
    for (int64_t i = 0; i < G * H; ++i) grads.w_hh[i] += sum[G * in + i];
    if (grads.b_ih)
      for (int64_t i = 0; i < G; ++i) {
        grads.b_ih[i] += sum[G * (in + H) + i];
        grads.b_hh[i] += sum[G * (in + H) + i];
      }
    return;
  }
  // Over all N*S rows at once: dW_hh (time-major, as h_prev), db, then in batch-first order dx and dW_ih.
  cpu::gemm(true, false, G, H, S * N, T(1), dgates.data(), G, cache.h_prev, H, T(1), grads.w_hh, H);
  if (grads.b_ih) {
    accumulate_column_sums(cpu{}, dgates.data(), grads.b_ih, S * N, G);
    accumulate_column_sums(cpu{}, dgates.data(), grads.b_hh, S * N, G);
  }
  Tensor<T, cpu> dz = Tensor<T, cpu>::empty({N * S, G});  // batch-first
  for (int64_t t = 0; t < S; ++t)
    for (int64_t n = 0; n < N; ++n) std::copy_n(dgates.data() + (t * N + n) * G, G, dz.data() + (n * S + t) * G);
  input_gradient(N * S, in, G, dz.data(), w_ih, dx, in, accumulate_dx);
  cpu::gemm(true, false, G, in, N * S, T(1), dz.data(), G, x, in, T(1), grads.w_ih, in);
}

}  // namespace stpain::backend

namespace stpain {

// Hidden and cell state. For LSTM both are [num_layers * directions, N, H]
// (torch's h_n / c_n; entry l * directions + d); for LSTMCell [N, H].
template <class T = float, class B = cpu>
struct LstmState {
  Tensor<T, B> h, c;
  bool defined() const { return h.defined() || c.defined(); }
};

// The weights of one LSTM layer and direction (or of an LSTMCell), as torch
// names them: weight_ih [4H, in], weight_hh [4H, H], bias_ih, bias_hh [4H].
template <class B, class T>
struct LstmWeights {
  Parameter<T, B> weight_ih, weight_hh, bias_ih, bias_hh;
  bool has_bias = true;

  LstmWeights() = default;
  // torch's default: every weight and bias U(-1/sqrt(H), 1/sqrt(H)).
  LstmWeights(int64_t input_size, int64_t hidden_size, bool bias) : has_bias(bias) {
    weight_ih = Parameter<T, B>::make({4 * hidden_size, input_size});
    weight_hh = Parameter<T, B>::make({4 * hidden_size, hidden_size});
    init_uniform_fan_in(weight_ih.value, hidden_size);
    init_uniform_fan_in(weight_hh.value, hidden_size);
    if (bias) {
      bias_ih = Parameter<T, B>::make({4 * hidden_size});
      bias_hh = Parameter<T, B>::make({4 * hidden_size});
      init_uniform_fan_in(bias_ih.value, hidden_size);
      init_uniform_fan_in(bias_hh.value, hidden_size);
    }
  }

  // f("weight_ih" + suffix, ...) in torch's state_dict order.
  template <class F>
  void visit(F&& f, const std::string& prefix, const std::string& suffix) {
    f(prefix + "weight_ih" + suffix, weight_ih);
    f(prefix + "weight_hh" + suffix, weight_hh);
    if (has_bias) {
      f(prefix + "bias_ih" + suffix, bias_ih);
      f(prefix + "bias_hh" + suffix, bias_hh);
    }
  }
};

namespace detail {

// One direction of one LSTM layer over a batch-first sequence: the forward
// pass, what it caches, and backward through time.
template <class B, class T>
class LstmRecurrence {
 public:
  using tensor = Tensor<T, B>;
  template <class U>
  using Rows = backend::StridedRows<U>;

  // x [N, T, in]. h0, c0: [N, H] contiguous. Writes h_t to y[(n * T + t) *
  // y_row_stride + j] (the layer output, where a bidirectional layer puts its
  // two directions side by side) and the last state to h_n, c_n [N, H].
  void forward(const tensor& x, LstmWeights<B, T>& w, bool reverse, const T* h0, const T* c0, T* y,
               int64_t y_row_stride, T* h_n, T* c_n) {
    x_ = x;
    sizes_ = {x.size(0), x.size(1), x.size(2), w.weight_hh.value.size(1), reverse};
    const int64_t N = sizes_.batch, S = sizes_.steps, H = sizes_.hidden, G = 4 * H;
    gates_ = tensor::empty({S, N, G});
    cells_ = tensor::empty({S, N, H});
    h_prev_ = tensor::empty({S, N, H});
    c0_ = tensor::empty({N, H});
    copy_rows(B{}, N, H, Rows<const T>{c0, H}, Rows<T>{c0_.data(), H});
    const T* bias = nullptr;
    if (w.has_bias) {
      bias_sum_ = w.bias_ih.value.clone();
      add_rows(B{}, 1, G, Rows<const T>{w.bias_hh.value.data(), G}, Rows<T>{bias_sum_.data(), G});
      bias = bias_sum_.data();
    }
    lstm_sequence_forward(B{}, sizes_, x.data(), w.weight_ih.value.data(), w.weight_hh.value.data(), bias, h0, cache(),
                          y, y_row_stride);
    const int64_t last = sizes_.step(S - 1);
    copy_rows(B{}, N, H, Rows<const T>{y + last * y_row_stride, S * y_row_stride}, Rows<T>{h_n, H});
    copy_rows(B{}, N, H, Rows<const T>{cells_.data() + last * N * H, H}, Rows<T>{c_n, H});
  }

  // dy: dL/dh_t at y layout (as forward's y), or null when no step output
  // was used. dh_n, dc_n [N, H]: gradients of the last state. Accumulates the
  // weight gradients, writes dx [N, T, in] (adds to it when accumulate_dx)
  // and dh0, dc0 [N, H].
  void backward(LstmWeights<B, T>& w, const T* dy, int64_t dy_row_stride, const T* dh_n, const T* dc_n, T* dx,
                bool accumulate_dx, T* dh0, T* dc0) {
    expect_forward_cache(x_, "LSTM");
    const int64_t N = sizes_.batch, H = sizes_.hidden;
    // dh0 and dc0 carry dL/dh and dL/dc back through the steps.
    copy_rows(B{}, N, H, Rows<const T>{dh_n, H}, Rows<T>{dh0, H});
    copy_rows(B{}, N, H, Rows<const T>{dc_n, H}, Rows<T>{dc0, H});
    const backend::LstmGradients<T> grads{w.weight_ih.grad.data(), w.weight_hh.grad.data(),
                                          w.has_bias ? w.bias_ih.grad.data() : nullptr,
                                          w.has_bias ? w.bias_hh.grad.data() : nullptr};
    lstm_sequence_backward(B{}, sizes_, x_.data(), w.weight_ih.value.data(), w.weight_hh.value.data(), cache(), dy,
                           dy_row_stride, dh0, dc0, dx, accumulate_dx, grads);
  }

  bool has_cache() const { return x_.defined(); }

 private:
  backend::LstmCache<T> cache() { return {gates_.data(), cells_.data(), h_prev_.data(), c0_.data()}; }

  tensor x_, gates_, cells_, h_prev_, c0_, bias_sum_;
  backend::LstmSizes sizes_;
};

}  // namespace detail

// torch.nn.LSTMCell: one step. forward(x [N, in], {h [N, H], c [N, H]})
// returns h' [N, H]; state() gives {h', c'}. Without a state, h = c = 0.
// backward(dh') (or backward(dh', dc')) returns dx and leaves the gradients
// of the incoming state in state_grad().
template <class B = cpu, class T = float>
class LSTMCell : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  using State = LstmState<T, B>;
  struct Options {
    int64_t input_size = 0;
    int64_t hidden_size = 0;
    bool bias = true;
  };

  LSTMCell(int64_t input_size, int64_t hidden_size, bool bias = true)
      : LSTMCell(Options{input_size, hidden_size, bias}) {}
  explicit LSTMCell(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.input_size > 0 && o.hidden_size > 0, ShapeError, describe(), ": sizes must be positive");
    weights_ = LstmWeights<B, T>(o.input_size, o.hidden_size, o.bias);
  }

  tensor forward(const tensor& x) { return forward(x, State{}); }
  tensor forward(const tensor& x, const State& state) {
    STPAIN_CHECK(x.rank() == 2 && x.size(1) == opt_.input_size, ShapeError, describe(), ": input ", x.shape().str(),
                 " is not [batch, ", opt_.input_size, "]");
    const int64_t N = x.size(0), H = opt_.hidden_size;
    const Shape state_shape{N, H};
    tensor h = state.h.defined() ? state.h : tensor::zeros(state_shape);
    tensor c = state.c.defined() ? state.c : tensor::zeros(state_shape);
    expect_shape(h.shape(), state_shape, describe() + ": h");
    expect_shape(c.shape(), state_shape, describe() + ": c");
    state_ = {tensor::empty(state_shape), tensor::empty(state_shape)};
    tensor scratch = tensor::empty(state_shape);  // h' in the "sequence output" layout
    recurrence_.forward(x.reshape({N, 1, opt_.input_size}), weights_, false, h.data(), c.data(), scratch.data(), H,
                        state_.h.data(), state_.c.data());
    return state_.h;
  }

  tensor backward(const tensor& dh) { return backward(dh, tensor()); }
  // dc: gradient of c' (empty: zero).
  tensor backward(const tensor& dh, const tensor& dc) {
    STPAIN_CHECK(recurrence_.has_cache(), Error, describe(), ": backward() called before forward()");
    expect_shape(dh.shape(), state_.h.shape(), describe() + ".backward dh");
    const tensor dc_in = dc.defined() ? dc : tensor::zeros(state_.c.shape());
    expect_shape(dc_in.shape(), state_.c.shape(), describe() + ".backward dc");
    const int64_t N = dh.size(0);
    tensor dx = tensor::empty({N, opt_.input_size});
    state_grad_ = {tensor::empty(state_.h.shape()), tensor::empty(state_.c.shape())};
    recurrence_.backward(weights_, nullptr, 0, dh.data(), dc_in.data(), dx.data(), false, state_grad_.h.data(),
                         state_grad_.c.data());
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    weights_.visit(f, prefix, "");
  }

  // {h', c'} of the last forward.
  const State& state() const { return state_; }
  // {dL/dh, dL/dc} of the incoming state, after backward.
  const State& state_grad() const { return state_grad_; }
  LstmWeights<B, T>& weights() { return weights_; }
  const Options& options() const { return opt_; }
  std::string describe() const {
    return "LSTMCell(" + std::to_string(opt_.input_size) + ", " + std::to_string(opt_.hidden_size) + ")";
  }

 private:
  Options opt_;
  LstmWeights<B, T> weights_;
  detail::LstmRecurrence<B, T> recurrence_;
  State state_, state_grad_;
};

// torch.nn.LSTM(batch_first=True): x [N, T, input_size] -> [N, T, H * D]
// (return_sequences, torch's output) or [N, H * D] (the last state: torch's
// h_n of the top layer, directions concatenated; for a bidirectional LSTM the
// backward half is its state after reading t = 0, as Keras'
// Bidirectional(LSTM(return_sequences=False)) gives). D = 2 when
// bidirectional, the forward direction first in every concatenation.
// Dropout (train mode only) applies to the output of every layer but the last.
//
// forward(x, {h0, c0}) starts from a given state, [num_layers * D, N, H]
// each (torch's order: layer-major, direction-minor); forward(x) from zeros.
// final_state() gives (h_n, c_n) in the same layout; backward(dy, d_final)
// takes gradients of them too, and initial_state_grad() then holds the
// gradients of (h0, c0).
template <class B = cpu, class T = float>
class LSTM : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  using State = LstmState<T, B>;
  template <class U>
  using Rows = backend::StridedRows<U>;
  struct Options {
    int64_t input_size = 0;
    int64_t hidden_size = 0;
    int64_t num_layers = 1;
    bool bidirectional = false;
    double dropout = 0.0;
    bool return_sequences = true;
    bool bias = true;
  };

  LSTM(int64_t input_size, int64_t hidden_size, bool return_sequences = true)
      : LSTM(Options{.input_size = input_size, .hidden_size = hidden_size, .return_sequences = return_sequences}) {}
  explicit LSTM(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.input_size > 0 && o.hidden_size > 0 && o.num_layers > 0, ShapeError, describe(),
                 ": input_size, hidden_size and num_layers must be positive");
    STPAIN_CHECK(o.dropout >= 0.0 && o.dropout <= 1.0, Error, describe(), ": dropout must be in [0, 1], got ",
                 o.dropout);
    for (int64_t l = 0; l < o.num_layers; ++l) {
      const int64_t in = l == 0 ? o.input_size : o.hidden_size * directions();
      for (int64_t d = 0; d < directions(); ++d) weights_.emplace_back(in, o.hidden_size, o.bias);
    }
    recurrences_.resize(weights_.size());
    for (int64_t l = 0; l + 1 < o.num_layers; ++l) dropouts_.emplace_back(o.dropout);
  }

  tensor forward(const tensor& x) { return forward(x, State{}); }

  tensor forward(const tensor& x, const State& initial) {
    STPAIN_CHECK(x.rank() == 3 && x.size(2) == opt_.input_size && x.size(1) > 0, ShapeError, describe(),
                 ": input ", x.shape().str(), " is not [batch, time >= 1, ", opt_.input_size, "] (batch_first)");
    const int64_t N = x.size(0), S = x.size(1), H = opt_.hidden_size, D = directions();
    const Shape state_shape{opt_.num_layers * D, N, H};
    const tensor h0 = initial.h.defined() ? initial.h : tensor::zeros(state_shape);
    const tensor c0 = initial.c.defined() ? initial.c : tensor::zeros(state_shape);
    expect_shape(h0.shape(), state_shape, describe() + ": initial h0 [num_layers * directions, batch, hidden]");
    expect_shape(c0.shape(), state_shape, describe() + ": initial c0 [num_layers * directions, batch, hidden]");
    final_ = {tensor::empty(state_shape), tensor::empty(state_shape)};
    layer_inputs_.assign(static_cast<size_t>(opt_.num_layers), tensor());
    tensor input = x;
    tensor out;
    for (int64_t l = 0; l < opt_.num_layers; ++l) {
      if (l > 0) {
        dropouts_[l - 1].train(this->training_);
        input = dropouts_[l - 1].forward(out);
      }
      layer_inputs_[l] = input;
      out = tensor::empty({N, S, D * H});
      for (int64_t d = 0; d < D; ++d) {
        const int64_t k = l * D + d;
        recurrences_[k].forward(input, weights_[k], d == 1, h0.data() + k * N * H, c0.data() + k * N * H,
                                out.data() + d * H, D * H, final_.h.data() + k * N * H, final_.c.data() + k * N * H);
      }
    }
    batch_ = N;
    if (opt_.return_sequences) return out;
    // The top layer's h_n, directions side by side.
    tensor last = tensor::empty({N, D * H});
    for (int64_t d = 0; d < D; ++d)
      copy_rows(B{}, N, H, Rows<const T>{final_.h.data() + ((opt_.num_layers - 1) * D + d) * N * H, H},
                Rows<T>{last.data() + d * H, D * H});
    return last;
  }

  tensor backward(const tensor& dy) { return backward(dy, State{}); }

  // d_final: gradients of final_state() (either may be empty: zero).
  tensor backward(const tensor& dy, const State& d_final) {
    STPAIN_CHECK(!layer_inputs_.empty() && layer_inputs_[0].defined(), Error, describe(),
                 ": backward() called before forward()");
    const tensor& x = layer_inputs_[0];
    const int64_t N = batch_, S = x.size(1), H = opt_.hidden_size, D = directions(), L = opt_.num_layers;
    const Shape out_shape = opt_.return_sequences ? Shape{N, S, D * H} : Shape{N, D * H};
    expect_shape(dy.shape(), out_shape, describe() + ".backward dy");
    const Shape state_shape{L * D, N, H};
    tensor dh_n = d_final.h.defined() ? d_final.h.clone() : tensor::zeros(state_shape);
    const tensor dc_n = d_final.c.defined() ? d_final.c : tensor::zeros(state_shape);
    expect_shape(dh_n.shape(), state_shape, describe() + ".backward d h_n");
    expect_shape(dc_n.shape(), state_shape, describe() + ".backward d c_n");
    if (!opt_.return_sequences) {  // the output is the top layer's h_n
      for (int64_t d = 0; d < D; ++d)
        add_rows(B{}, N, H, Rows<const T>{dy.data() + d * H, D * H}, Rows<T>{dh_n.data() + ((L - 1) * D + d) * N * H, H});
    }
    initial_grad_ = {tensor::empty(state_shape), tensor::empty(state_shape)};
    // dL/d(layer output) of the current layer: [N, S, D * H], or none for
    // the top layer when only its last state was returned.
    tensor d_out = opt_.return_sequences ? dy : tensor();
    tensor dx;
    for (int64_t l = L - 1; l >= 0; --l) {
      dx = tensor::empty(layer_inputs_[l].shape());
      for (int64_t d = 0; d < D; ++d) {
        const int64_t k = l * D + d;
        recurrences_[k].backward(weights_[k], d_out.defined() ? d_out.data() + d * H : nullptr, D * H,
                                 dh_n.data() + k * N * H, dc_n.data() + k * N * H, dx.data(), d > 0,
                                 initial_grad_.h.data() + k * N * H, initial_grad_.c.data() + k * N * H);
      }
      if (l > 0) d_out = dropouts_[l - 1].backward(dx);
    }
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    for (int64_t l = 0; l < opt_.num_layers; ++l)
      for (int64_t d = 0; d < directions(); ++d)
        weights_[l * directions() + d].visit(f, prefix, "_l" + std::to_string(l) + (d ? "_reverse" : ""));
  }

  // (h_n, c_n) of the last forward: [num_layers * D, N, H].
  const State& final_state() const { return final_; }
  // Gradients of (h0, c0) after backward: [num_layers * D, N, H].
  const State& initial_state_grad() const { return initial_grad_; }
  // The weights of layer `layer`, direction 0 (forward) or 1 (reverse).
  LstmWeights<B, T>& weights(int64_t layer, int64_t direction = 0) {
    STPAIN_CHECK(layer >= 0 && layer < opt_.num_layers && direction >= 0 && direction < directions(), Error,
                 describe(), ": no layer ", layer, " direction ", direction);
    return weights_[layer * directions() + direction];
  }
  int64_t directions() const { return opt_.bidirectional ? 2 : 1; }
  int64_t output_size() const { return opt_.hidden_size * directions(); }
  const Options& options() const { return opt_; }
  std::string describe() const {
    return "LSTM(" + std::to_string(opt_.input_size) + ", " + std::to_string(opt_.hidden_size) +
           ", num_layers=" + std::to_string(opt_.num_layers) + (opt_.bidirectional ? ", bidirectional" : "") +
           (opt_.return_sequences ? "" : ", last state") + ")";
  }

 private:
  Options opt_;
  std::vector<LstmWeights<B, T>> weights_;  // [layer * D + direction]
  std::vector<detail::LstmRecurrence<B, T>> recurrences_;
  std::vector<Dropout<B, T>> dropouts_;     // after every layer but the last
  std::vector<tensor> layer_inputs_;        // what each layer read (after dropout)
  State final_, initial_grad_;
  int64_t batch_ = 0;
};

// ---- Keras weights ------------------------------------------------------------
//
// A Keras (TF 2.x) LSTM layer stores kernel [in, 4H], recurrent_kernel [H, 4H]
// and bias [4H], the 4H columns in gate order i, f, c, o, and computes
//   z = x kernel + h recurrent_kernel + bias;  z_i, z_f, z_c, z_o = split(z, 4)
//   i = sigmoid(z_i); f = sigmoid(z_f); c' = f * c + i * tanh(z_c)
//   o = sigmoid(z_o); h' = o * tanh(c')
// (LSTMCell._compute_carry_and_output_fused). Keras' "c" block is the cell
// candidate, torch's g, and the blocks come in the same order, so the
// conversion is a transpose with no reordering: weight_ih = kernel^T,
// weight_hh = recurrent_kernel^T, bias_ih = bias, bias_hh = 0. It holds for
// Keras' defaults activation='tanh', recurrent_activation='sigmoid' (the
// only ones torch has; Keras 1 and tf.keras 1.x defaulted to hard_sigmoid).
// unit_forget_bias only initialises the bias, so it changes nothing here.
// A Keras Bidirectional wrapper holds forward_layer and backward_layer
// weights: they go to direction 0 and 1 (torch's "_reverse") of one layer.

// Copies a Keras LSTM's weights into `w` (an LSTM layer's direction or an
// LSTMCell's weights). bias may be empty for use_bias=False (w must then have
// no bias, or its biases are set to zero).
template <class B, class T, class U>
void load_keras_lstm_weights(LstmWeights<B, T>& w, const Tensor<U, B>& kernel, const Tensor<U, B>& recurrent_kernel,
                             const Tensor<U, B>& bias = {}) {
  static_assert(B::host_accessible, "load Keras weights on the host, then move the layer");
  const int64_t G = w.weight_ih.value.size(0), H = G / 4, in = w.weight_ih.value.size(1);
  expect_shape(kernel.shape(), Shape{in, G}, "Keras LSTM kernel [input, 4 * units]");
  expect_shape(recurrent_kernel.shape(), Shape{H, G}, "Keras LSTM recurrent_kernel [units, 4 * units]");
  for (int64_t r = 0; r < G; ++r) {
    for (int64_t k = 0; k < in; ++k) w.weight_ih.value[r * in + k] = static_cast<T>(kernel[k * G + r]);
    for (int64_t k = 0; k < H; ++k) w.weight_hh.value[r * H + k] = static_cast<T>(recurrent_kernel[k * G + r]);
  }
  if (bias.defined()) {
    STPAIN_CHECK(w.has_bias, Error, "Keras LSTM bias given for an LSTM without biases");
    expect_shape(bias.shape(), Shape{G}, "Keras LSTM bias [4 * units]");
  }
  if (!w.has_bias) return;
  for (int64_t r = 0; r < G; ++r) {
    w.bias_ih.value[r] = bias.defined() ? static_cast<T>(bias[r]) : T(0);
    w.bias_hh.value[r] = T(0);
  }
}

// The same for layer `layer`, direction 0 (Keras' forward_layer or a plain
// LSTM) or 1 (a Bidirectional's backward_layer) of an LSTM.
template <class B, class T, class U>
void load_keras_lstm(LSTM<B, T>& lstm, int64_t layer, int64_t direction, const Tensor<U, B>& kernel,
                     const Tensor<U, B>& recurrent_kernel, const Tensor<U, B>& bias = {}) {
  load_keras_lstm_weights(lstm.weights(layer, direction), kernel, recurrent_kernel, bias);
}

}  // namespace stpain
