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
// Per layer and direction a sequence costs one GEMM [N*T, in] x [in, 4H] for
// the input projection of every step, then per step one GEMM [N, H] x [H, 4H]
// and one fused gate kernel. Backward through time mirrors it: per step the
// gate kernel and one GEMM [N, 4H] x [4H, H]; then one GEMM each for dW_ih,
// dW_hh and dx over all N*T rows.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

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
template <class T>
void lstm_gates_forward(cpu, int64_t batch, int64_t hidden, StridedRows<T> gates, const T* bias,
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
  parallel_for(batch, lstm_detail::row_grain(8 * hidden), [&](int64_t n0, int64_t n1) {
    if (bias && addend)
      rows.template operator()<true, true>(n0, n1);
    else if (bias)
      rows.template operator()<true, false>(n0, n1);
    else if (addend)
      rows.template operator()<false, true>(n0, n1);
    else
      rows.template operator()<false, false>(n0, n1);
  });
}

// The fused backward of one step. gates[n] holds the activations
// [i | f | g | o] of the step, c[n] its cell state, c_prev[n] the one before.
// dh[n] = dL/dh_t is dh_next[n] (through the recurrence) + dh_out[n] (from
// the step's output; may be null). dc[n] holds dL/dc_t from the later steps
// on entry and dL/dc_{t-1} on exit. Writes dgates[n] = dL/dz, the gradient of
// the pre-activations.
template <class T>
void lstm_gates_backward(cpu, int64_t batch, int64_t hidden, StridedRows<const T> gates, StridedRows<const T> c,
                         StridedRows<const T> c_prev, StridedRows<const T> dh_next, StridedRows<const T> dh_out,
                         StridedRows<T> dc, StridedRows<T> dgates) {
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
  parallel_for(batch, lstm_detail::row_grain(8 * hidden), [&](int64_t n0, int64_t n1) {
    if (dh_out)
      rows.template operator()<true>(n0, n1);
    else
      rows.template operator()<false>(n0, n1);
  });
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
    reverse_ = reverse;
    batch_ = x.size(0);
    steps_ = x.size(1);
    in_ = x.size(2);
    hidden_ = w.weight_hh.value.size(1);
    const int64_t N = batch_, S = steps_, H = hidden_, G = 4 * H;
    gates_ = tensor::empty({N, S, G});
    cells_ = tensor::empty({N, S, H});
    h_prev_ = tensor::empty({N, S, H});
    c0_ = tensor::empty({N, H});
    copy_rows(B{}, N, H, Rows<const T>{c0, H}, Rows<T>{c0_.data(), H});
    // z = x W_ih^T for all steps at once; the biases are added in the gate kernel.
    B::gemm(false, true, N * S, G, in_, T(1), x.data(), in_, w.weight_ih.value.data(), in_, T(0), gates_.data(), G);
    const T* bias = nullptr;
    if (w.has_bias) {
      bias_sum_ = w.bias_ih.value.clone();
      add_rows(B{}, 1, G, Rows<const T>{w.bias_hh.value.data(), G}, Rows<T>{bias_sum_.data(), G});
      bias = bias_sum_.data();
    }
    copy_rows(B{}, N, H, Rows<const T>{h0, H}, Rows<T>{h_prev_.data() + step(0) * H, S * H});
    for (int64_t s = 0; s < S; ++s) {
      const int64_t t = step(s);
      T* z = gates_.data() + t * G;
      // z_t += h_{t-1} W_hh^T
      B::gemm(false, true, N, G, H, T(1), h_prev_.data() + t * H, S * H, w.weight_hh.value.data(), H, T(1), z, S * G);
      Rows<T> h_copy;
      if (s + 1 < S) h_copy = {h_prev_.data() + step(s + 1) * H, S * H};
      lstm_gates_forward(B{}, N, H, Rows<T>{z, S * G}, bias, Rows<const T>{}, previous_cells(s),
                         Rows<T>{cells_.data() + t * H, S * H}, Rows<T>{y + t * y_row_stride, S * y_row_stride},
                         h_copy);
    }
    const int64_t last = step(S - 1);
    copy_rows(B{}, N, H, Rows<const T>{y + last * y_row_stride, S * y_row_stride}, Rows<T>{h_n, H});
    copy_rows(B{}, N, H, Rows<const T>{cells_.data() + last * H, S * H}, Rows<T>{c_n, H});
  }

  // dy: dL/dh_t at y layout (as forward's y), or null when no step output
  // was used. dh_n, dc_n [N, H]: gradients of the last state. Accumulates the
  // weight gradients, writes dx [N, T, in] (adds to it when accumulate_dx)
  // and dh0, dc0 [N, H].
  void backward(LstmWeights<B, T>& w, const T* dy, int64_t dy_row_stride, const T* dh_n, const T* dc_n, T* dx,
                bool accumulate_dx, T* dh0, T* dc0) {
    expect_forward_cache(x_, "LSTM");
    const int64_t N = batch_, S = steps_, H = hidden_, G = 4 * H;
    tensor dgates = tensor::empty({N, S, G});
    tensor dh_next = tensor::empty({N, H});
    copy_rows(B{}, N, H, Rows<const T>{dh_n, H}, Rows<T>{dh_next.data(), H});
    copy_rows(B{}, N, H, Rows<const T>{dc_n, H}, Rows<T>{dc0, H});  // dc0 carries dL/dc back through the steps
    for (int64_t s = S - 1; s >= 0; --s) {
      const int64_t t = step(s);
      T* dz = dgates.data() + t * G;
      Rows<const T> dh_out;
      if (dy) dh_out = {dy + t * dy_row_stride, S * dy_row_stride};
      lstm_gates_backward(B{}, N, H, Rows<const T>{gates_.data() + t * G, S * G},
                          Rows<const T>{cells_.data() + t * H, S * H}, previous_cells(s),
                          Rows<const T>{dh_next.data(), H}, dh_out, Rows<T>{dc0, H}, Rows<T>{dz, S * G});
      // dL/dh_{t-1} = dz_t W_hh
      B::gemm(false, false, N, H, G, T(1), dz, S * G, w.weight_hh.value.data(), H, T(0), dh_next.data(), H);
    }
    copy_rows(B{}, N, H, Rows<const T>{dh_next.data(), H}, Rows<T>{dh0, H});
    // Over all N*T rows at once: dW_ih += dz^T x, dW_hh += dz^T h_prev, db += sum dz, dx = dz W_ih.
    const int64_t rows = N * S;
    B::gemm(true, false, G, in_, rows, T(1), dgates.data(), G, x_.data(), in_, T(1), w.weight_ih.grad.data(), in_);
    B::gemm(true, false, G, H, rows, T(1), dgates.data(), G, h_prev_.data(), H, T(1), w.weight_hh.grad.data(), H);
    if (w.has_bias) {
      accumulate_column_sums(B{}, dgates.data(), w.bias_ih.grad.data(), rows, G);
      accumulate_column_sums(B{}, dgates.data(), w.bias_hh.grad.data(), rows, G);
    }
    B::gemm(false, false, rows, in_, G, T(1), dgates.data(), G, w.weight_ih.value.data(), in_,
            accumulate_dx ? T(1) : T(0), dx, in_);
  }

  bool has_cache() const { return x_.defined(); }

 private:
  // The time index of the s-th step processed.
  int64_t step(int64_t s) const { return reverse_ ? steps_ - 1 - s : s; }
  Rows<const T> previous_cells(int64_t s) const {
    if (s == 0) return {c0_.data(), hidden_};
    return {cells_.data() + step(s - 1) * hidden_, steps_ * hidden_};
  }

  tensor x_, gates_, cells_, h_prev_, c0_, bias_sum_;
  bool reverse_ = false;
  int64_t batch_ = 0, steps_ = 0, in_ = 0, hidden_ = 0;
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
