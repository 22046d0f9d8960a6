#pragma once
// TemporalConv: a convolution over time only, on channels-last landmark
// sequences [N, T, V, C]: y[n, t, v] = b + sum_j W_j x[n, t*stride + j - pad, v],
// the (k, 1) convolution of ST-GCN and of the paper's block. Padding "same"
// by default (as Keras and torch: total k - 1, the smaller half first).
// Parameters keep torch's Conv2d layout over (N, C, T, V): weight [out, in, k, 1].
// Computed as im2col over time + one GEMM, like PatchConv2d.
#include "stpain/layers/module.hpp"

namespace stpain {

namespace backend {
// cols[(n, to, v), (j, c)] = x[n, to*stride + j - pad, v, c] (0 outside), or the
// reverse scatter-add when Scatter.
template <class T, bool Scatter>
void temporal_im2col(cpu, std::conditional_t<Scatter, T*, const T*> x, std::conditional_t<Scatter, const T*, T*> cols,
                     int64_t n, int64_t t, int64_t v, int64_t c, int64_t k, int64_t stride, int64_t pad, int64_t to) {
  parallel_for(n * v, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / v, node = r % v;
      for (int64_t o = 0; o < to; ++o) {
        auto* row = cols + ((b * to + o) * v + node) * k * c;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t ti = o * stride + j - pad;
          auto* dst = row + j * c;
          if (ti < 0 || ti >= t) {
            if constexpr (!Scatter) std::fill(dst, dst + c, T(0));
            continue;
          }
          auto* src = x + ((b * t + ti) * v + node) * c;
          for (int64_t ch = 0; ch < c; ++ch) {
            if constexpr (Scatter) src[ch] += dst[ch]; else dst[ch] = src[ch];
          }
        }
      }
    }
  });
}
}  // namespace backend

template <class B = cpu, class T = float>
class TemporalConv : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t kernel_size = 9;
    int64_t stride = 1;
    int64_t padding = -1;  // -1: "same" ((k - 1) / 2 before, the rest after)
    bool bias = true;
  };

  TemporalConv(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1)
      : TemporalConv(Options{in_channels, out_channels, kernel_size, stride}) {}
  explicit TemporalConv(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel_size > 0 && o.stride > 0, ShapeError,
                 describe(), ": sizes must be positive");
    if (opt_.padding < 0) opt_.padding = (o.kernel_size - 1) / 2;
    const int64_t fan_in = o.in_channels * o.kernel_size;
    weight = Parameter<T, B>::make({o.out_channels, o.in_channels, o.kernel_size, 1});
    init_uniform_fan_in(weight.value, fan_in);
    if (o.bias) {
      this->bias = Parameter<T, B>::make({o.out_channels});
      init_uniform_fan_in(this->bias.value, fan_in);
    }
  }

  // Output length: (T + total padding - k) / stride + 1, total padding = k - 1 for "same".
  int64_t output_length(int64_t t) const {
    const int64_t total = opt_.padding + (opt_.kernel_size - 1 - opt_.padding);
    return (t + total - opt_.kernel_size) / opt_.stride + 1;
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4 && x.size(3) == opt_.in_channels, ShapeError, describe(), ": input ", x.shape().str(),
                 " is not [N, T, V, ", opt_.in_channels, "]");
    input_shape_ = x.shape();
    const int64_t n = x.size(0), t = x.size(1), v = x.size(2), to = output_length(t);
    STPAIN_CHECK(to > 0, ShapeError, describe(), ": input ", x.shape().str(), " is shorter than the kernel");
    const int64_t k = opt_.kernel_size * opt_.in_channels, rows = n * to * v;
    cols_ = tensor::empty({rows, k});
    backend::temporal_im2col<T, false>(B{}, x.data(), cols_.data(), n, t, v, opt_.in_channels, opt_.kernel_size,
                                       opt_.stride, opt_.padding, to);
    tensor y = tensor::empty({n, to, v, opt_.out_channels});
    B::gemm(false, true, rows, opt_.out_channels, k, T(1), cols_.data(), k, time_major_weight().data(), k, T(0),
            y.data(), opt_.out_channels);
    if (opt_.bias) add_bias(B{}, y.data(), bias.value.data(), rows, opt_.out_channels);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(cols_, "TemporalConv");
    const int64_t n = input_shape_[0], t = input_shape_[1], v = input_shape_[2], to = output_length(t);
    const int64_t cin = opt_.in_channels, kk = opt_.kernel_size, k = kk * cin, rows = n * to * v;
    expect_shape(dy.shape(), Shape{n, to, v, opt_.out_channels}, describe() + ".backward dy");
    tensor dw = tensor::empty({opt_.out_channels, k});
    B::gemm(true, false, opt_.out_channels, k, rows, T(1), dy.data(), opt_.out_channels, cols_.data(), k, T(0),
            dw.data(), k);
    for (int64_t o = 0; o < opt_.out_channels; ++o)
      for (int64_t j = 0; j < kk; ++j)
        for (int64_t c = 0; c < cin; ++c) weight.grad[(o * cin + c) * kk + j] += dw[o * k + j * cin + c];
    if (opt_.bias) accumulate_column_sums(B{}, dy.data(), bias.grad.data(), rows, opt_.out_channels);
    tensor dcols = tensor::empty({rows, k});
    B::gemm(false, false, rows, k, opt_.out_channels, T(1), dy.data(), opt_.out_channels, time_major_weight().data(),
            k, T(0), dcols.data(), k);
    tensor dx = tensor::zeros(input_shape_);
    backend::temporal_im2col<T, true>(B{}, dx.data(), dcols.data(), n, t, v, cin, kk, opt_.stride, opt_.padding, to);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
    if (opt_.bias) f(prefix + "bias", bias);
  }
  const Options& options() const { return opt_; }
  std::string describe() const {
    return detail::concat("TemporalConv(", opt_.in_channels, " -> ", opt_.out_channels, ", k=", opt_.kernel_size,
                          ", stride=", opt_.stride, ")");
  }

  Parameter<T, B> weight, bias;

 private:
  // weight [out, in, k, 1] -> [out, (k, in)], the im2col column order.
  const tensor& time_major_weight() {
    const int64_t cin = opt_.in_channels, kk = opt_.kernel_size;
    if (!weight_tm_.defined()) weight_tm_ = tensor::empty({opt_.out_channels, kk * cin});
    for (int64_t o = 0; o < opt_.out_channels; ++o)
      for (int64_t c = 0; c < cin; ++c)
        for (int64_t j = 0; j < kk; ++j) weight_tm_[(o * kk + j) * cin + c] = weight.value[(o * cin + c) * kk + j];
    return weight_tm_;
  }

  Options opt_;
  tensor cols_, weight_tm_;
  Shape input_shape_;
};

}  // namespace stpain
