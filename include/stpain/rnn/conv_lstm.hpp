#pragma once
// ConvLSTM2d: an LSTM whose gates come from a 2-D convolution (Shi et al.
// 2015, without peepholes), over sequences of NCHW frames [N, T, C, H, W].
//
//   [z_i | z_f | z_g | z_o] = conv(concat(x_t, h_{t-1}))   [N, 4 Hc, H, W], 'same' padding
//   c_t = sigmoid(z_f) c_{t-1} + sigmoid(z_i) tanh(z_g);  h_t = sigmoid(z_o) tanh(c_t)
//
// Parameters "conv.weight" [4 Hc, C + Hc, k, k] (input channels first, then
// hidden channels) and "conv.bias" [4 Hc], as a torch.nn.Conv2d(C + Hc, 4 Hc,
// k, padding=k // 2) over torch.cat([x_t, h], 1) names them. This is Keras'
// ConvLSTM2D(padding='same') with the kernel and recurrent kernel stacked
// along the input channels (channels first here, channels last in Keras).
//
// As in LSTM, the convolution is split by linearity: the input part of every
// step is one convolution over all N*T frames, the hidden part one
// convolution per step; backward mirrors it. Steps are processed time-major.
#include <string>

#include "stpain/layers/conv2d.hpp"
#include "stpain/rnn/lstm.hpp"

namespace stpain {

// x [N, T, C, H, W] -> [N, T, Hc, H, W] (return_sequences) or [N, Hc, H, W]
// (the last hidden state). forward(x, {h0, c0}) starts from a given state
// ([N, Hc, H, W] each; zeros by default); final_state() gives (h_T, c_T),
// backward(dy, d_final) takes their gradients, initial_state_grad() then
// holds those of (h0, c0).
template <class B = cpu, class T = float>
class ConvLSTM2d : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  using State = LstmState<T, B>;
  template <class U>
  using Rows = backend::StridedRows<U>;
  struct Options {
    int64_t in_channels = 0;
    int64_t hidden_channels = 0;
    int64_t kernel_size = 3;  // odd: 'same' padding of kernel_size / 2 on every side
    bool bias = true;
    bool return_sequences = true;
  };

  ConvLSTM2d(int64_t in_channels, int64_t hidden_channels, int64_t kernel_size = 3, bool return_sequences = true)
      : ConvLSTM2d(Options{.in_channels = in_channels,
                           .hidden_channels = hidden_channels,
                           .kernel_size = kernel_size,
                           .return_sequences = return_sequences}) {}
  explicit ConvLSTM2d(const Options& o) : conv(make_conv(o)), opt_(o) {}

  tensor forward(const tensor& x) { return forward(x, State{}); }

  tensor forward(const tensor& x, const State& initial) {
    STPAIN_CHECK(x.rank() == 5 && x.size(2) == opt_.in_channels && x.size(1) > 0, ShapeError, describe(), ": input ",
                 x.shape().str(), " is not [batch, time >= 1, ", opt_.in_channels, ", height, width]");
    const int64_t N = x.size(0), S = x.size(1), C = opt_.in_channels, Hc = opt_.hidden_channels;
    height_ = x.size(3);
    width_ = x.size(4);
    const int64_t HW = height_ * width_, hidden = Hc * HW, G = 4 * hidden, frame = C * HW;
    const Shape state_shape{N, Hc, height_, width_};
    const tensor h0 = initial.h.defined() ? initial.h : tensor::zeros(state_shape);
    const tensor c0 = initial.c.defined() ? initial.c : tensor::zeros(state_shape);
    expect_shape(h0.shape(), state_shape, describe() + ": initial h0 [batch, hidden_channels, height, width]");
    expect_shape(c0.shape(), state_shape, describe() + ": initial c0 [batch, hidden_channels, height, width]");
    batch_ = N;
    steps_ = S;
    split_weight();
    // Time-major copies: the convolutions want each step's frames contiguous.
    x_ = tensor::empty({S, N, C, height_, width_});
    for (int64_t t = 0; t < S; ++t)
      copy_rows(B{}, N, frame, Rows<const T>{x.data() + t * frame, S * frame}, Rows<T>{x_.data() + t * N * frame, frame});
    gates_ = tensor::empty({S, N, 4 * Hc, height_, width_});
    cells_ = tensor::empty({S, N, Hc, height_, width_});
    h_prev_ = tensor::empty({S, N, Hc, height_, width_});
    c0_ = c0.clone();
    conv2d_forward(B{}, geometry(S * N, C), x_.data(), weight_x_.data(), opt_.bias ? conv.bias.value.data() : nullptr,
                   gates_.data());
    copy_rows(B{}, 1, N * hidden, Rows<const T>{h0.data(), 0}, Rows<T>{h_prev_.data(), 0});
    final_ = {tensor::empty(state_shape), tensor::empty(state_shape)};
    tensor y = opt_.return_sequences ? tensor::empty({N, S, Hc, height_, width_}) : tensor::empty(state_shape);
    tensor recurrent = tensor::empty({N, 4 * Hc, height_, width_});
    const Conv2dGeometry g_h = geometry(N, Hc);
    for (int64_t t = 0; t < S; ++t) {
      conv2d_forward(B{}, g_h, h_prev_.data() + t * N * hidden, weight_h_.data(), static_cast<const T*>(nullptr),
                     recurrent.data());
      Rows<T> h_out = opt_.return_sequences ? Rows<T>{y.data() + t * hidden, S * hidden} : Rows<T>{y.data(), hidden};
      Rows<T> h_copy;
      if (t + 1 < S) h_copy = {h_prev_.data() + (t + 1) * N * hidden, hidden};
      lstm_gates_forward(B{}, N, hidden, Rows<T>{gates_.data() + t * N * G, G}, static_cast<const T*>(nullptr),
                         Rows<const T>{recurrent.data(), G}, previous_cells(t),
                         Rows<T>{cells_.data() + t * N * hidden, hidden}, h_out, h_copy);
    }
    const Rows<const T> last_h = opt_.return_sequences ? Rows<const T>{y.data() + (S - 1) * hidden, S * hidden}
                                                       : Rows<const T>{y.data(), hidden};
    copy_rows(B{}, N, hidden, last_h, Rows<T>{final_.h.data(), hidden});
    copy_rows(B{}, 1, N * hidden, Rows<const T>{cells_.data() + (S - 1) * N * hidden, 0}, Rows<T>{final_.c.data(), 0});
    return y;
  }

  tensor backward(const tensor& dy) { return backward(dy, State{}); }

  // d_final: gradients of final_state() (either may be empty: zero).
  tensor backward(const tensor& dy, const State& d_final) {
    expect_forward_cache(x_, "ConvLSTM2d");
    const int64_t N = batch_, S = steps_, C = opt_.in_channels, Hc = opt_.hidden_channels;
    const int64_t HW = height_ * width_, hidden = Hc * HW, G = 4 * hidden, frame = C * HW;
    const Shape state_shape{N, Hc, height_, width_};
    expect_shape(dy.shape(), opt_.return_sequences ? Shape{N, S, Hc, height_, width_} : state_shape,
                 describe() + ".backward dy");
    tensor dh_next = d_final.h.defined() ? d_final.h.clone() : tensor::zeros(state_shape);
    expect_shape(dh_next.shape(), state_shape, describe() + ".backward d h_T");
    initial_grad_ = {tensor::empty(state_shape), d_final.c.defined() ? d_final.c.clone() : tensor::zeros(state_shape)};
    expect_shape(initial_grad_.c.shape(), state_shape, describe() + ".backward d c_T");
    if (!opt_.return_sequences) add_rows(B{}, N, hidden, Rows<const T>{dy.data(), hidden}, Rows<T>{dh_next.data(), hidden});
    tensor dgates = tensor::empty(gates_.shape());
    tensor dweight_x = tensor::zeros(weight_x_.shape()), dweight_h = tensor::zeros(weight_h_.shape());
    const Conv2dGeometry g_h = geometry(N, Hc);
    for (int64_t t = S - 1; t >= 0; --t) {
      T* dz = dgates.data() + t * N * G;
      Rows<const T> dh_out;
      if (opt_.return_sequences) dh_out = {dy.data() + t * hidden, S * hidden};
      // initial_grad_.c carries dL/dc back through the steps.
      lstm_gates_backward(B{}, N, hidden, Rows<const T>{gates_.data() + t * N * G, G},
                          Rows<const T>{cells_.data() + t * N * hidden, hidden}, previous_cells(t),
                          Rows<const T>{dh_next.data(), hidden}, dh_out, Rows<T>{initial_grad_.c.data(), hidden},
                          Rows<T>{dz, G});
      // dL/dh_{t-1} through the hidden half of the convolution; its filter gradient accumulates.
      conv2d_backward(B{}, g_h, h_prev_.data() + t * N * hidden, weight_h_.data(), dz, dh_next.data(),
                      dweight_h.data(), static_cast<T*>(nullptr));
    }
    initial_grad_.h = dh_next;
    // The input half over all frames at once.
    tensor dx_time_major = tensor::empty(x_.shape());
    conv2d_backward(B{}, geometry(S * N, C), x_.data(), weight_x_.data(), dgates.data(), dx_time_major.data(),
                    dweight_x.data(), opt_.bias ? conv.bias.grad.data() : nullptr);
    const int64_t taps = opt_.kernel_size * opt_.kernel_size, row = (C + Hc) * taps;
    add_rows(B{}, 4 * Hc, C * taps, Rows<const T>{dweight_x.data(), C * taps}, Rows<T>{conv.weight.grad.data(), row});
    add_rows(B{}, 4 * Hc, Hc * taps, Rows<const T>{dweight_h.data(), Hc * taps},
             Rows<T>{conv.weight.grad.data() + C * taps, row});
    tensor dx = tensor::empty({N, S, C, height_, width_});
    for (int64_t t = 0; t < S; ++t)
      copy_rows(B{}, N, frame, Rows<const T>{dx_time_major.data() + t * N * frame, frame},
                Rows<T>{dx.data() + t * frame, S * frame});
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    conv.visit_parameters(f, prefix + "conv.");
  }

  // (h_T, c_T) of the last forward: [N, Hc, H, W].
  const State& final_state() const { return final_; }
  // Gradients of (h0, c0) after backward: [N, Hc, H, W].
  const State& initial_state_grad() const { return initial_grad_; }
  const Options& options() const { return opt_; }
  std::string describe() const {
    return "ConvLSTM2d(" + std::to_string(opt_.in_channels) + ", " + std::to_string(opt_.hidden_channels) +
           ", kernel_size=" + std::to_string(opt_.kernel_size) + (opt_.return_sequences ? "" : ", last state") + ")";
  }

  // Holds "weight" and "bias" (and torch's initialisation for them).
  Conv2d<B, T> conv;

 private:
  static Conv2d<B, T> make_conv(const Options& o) {
    STPAIN_CHECK(o.in_channels > 0 && o.hidden_channels > 0 && o.kernel_size > 0 && o.kernel_size % 2 == 1,
                 ShapeError, "ConvLSTM2d(", o.in_channels, ", ", o.hidden_channels, ", kernel_size=", o.kernel_size,
                 "): channels must be positive and the kernel size odd ('same' padding)");
    return Conv2d<B, T>(o.in_channels + o.hidden_channels, 4 * o.hidden_channels, o.kernel_size, 1,
                        o.kernel_size / 2, 1, o.bias);
  }

  // A stride-1 'same' convolution of `batch` frames of `channels` channels to 4 Hc.
  Conv2dGeometry geometry(int64_t batch, int64_t channels) const {
    Conv2dGeometry g;
    g.batch = batch;
    g.in_channels = channels;
    g.height = g.out_height = height_;
    g.width = g.out_width = width_;
    g.out_channels = 4 * opt_.hidden_channels;
    g.kernel_h = g.kernel_w = opt_.kernel_size;
    g.pad_h = g.pad_w = opt_.kernel_size / 2;
    return g;
  }

  // conv.weight [4Hc, C + Hc, k, k] -> its input half [4Hc, C, k, k] and hidden half [4Hc, Hc, k, k].
  void split_weight() {
    const int64_t C = opt_.in_channels, Hc = opt_.hidden_channels, k = opt_.kernel_size, taps = k * k;
    const int64_t row = (C + Hc) * taps;
    weight_x_ = tensor::empty({4 * Hc, C, k, k});
    weight_h_ = tensor::empty({4 * Hc, Hc, k, k});
    copy_rows(B{}, 4 * Hc, C * taps, Rows<const T>{conv.weight.value.data(), row}, Rows<T>{weight_x_.data(), C * taps});
    copy_rows(B{}, 4 * Hc, Hc * taps, Rows<const T>{conv.weight.value.data() + C * taps, row},
              Rows<T>{weight_h_.data(), Hc * taps});
  }

  Rows<const T> previous_cells(int64_t t) const {
    const int64_t hidden = opt_.hidden_channels * height_ * width_;
    if (t == 0) return {c0_.data(), hidden};
    return {cells_.data() + (t - 1) * batch_ * hidden, hidden};
  }

  Options opt_;
  int64_t batch_ = 0, steps_ = 0, height_ = 0, width_ = 0;
  tensor x_, gates_, cells_, h_prev_, c0_, weight_x_, weight_h_;  // x_ and the caches are time-major
  State final_, initial_grad_;
};

}  // namespace stpain
