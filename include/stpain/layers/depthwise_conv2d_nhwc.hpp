#pragma once
// DepthwiseConv2dNHWC: a depthwise k x k convolution (stride 1) on channels-last
// input [N, H, W, C], the layout ConvNeXt stages use on the CPU: each output
// pixel is a sum of k*k input pixels times per-channel weights, so the inner
// loop runs over contiguous channels.
// Parameters keep PyTorch's layout and names: weight [C, 1, k, k], bias [C].
#include <array>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain::backend {

// y[n, oh, ow, c] = bias[c] + sum_{kh, kw} x[n, oh + kh - pad, ow + kw - pad, c] * w[kh, kw, c]
// (w channels-last: [k, k, C]); out-of-range input pixels count as zero.
template <class T>
void depthwise_conv_nhwc(cpu, const T* x, const T* w, const T* bias, T* y, int64_t n, int64_t h, int64_t wd,
                         int64_t c, int64_t k, int64_t pad, int64_t ho, int64_t wo) {
  parallel_for(n * ho, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / ho, oh = r % ho;
      T* out = y + r * wo * c;
      for (int64_t ow = 0; ow < wo; ++ow) {
        T* o = out + ow * c;
        if (bias) {
#pragma omp simd
          for (int64_t ch = 0; ch < c; ++ch) o[ch] = bias[ch];
        } else {
#pragma omp simd
          for (int64_t ch = 0; ch < c; ++ch) o[ch] = T(0);
        }
      }
      for (int64_t kh = 0; kh < k; ++kh) {
        const int64_t ih = oh + kh - pad;
        if (ih < 0 || ih >= h) continue;
        const T* in = x + (b * h + ih) * wd * c;
        for (int64_t kw = 0; kw < k; ++kw) {
          const T* wk = w + (kh * k + kw) * c;
          // Output columns whose input column ow + kw - pad is inside the image.
          const int64_t lo = std::max<int64_t>(0, pad - kw), hi = std::min<int64_t>(wo, wd + pad - kw);
          for (int64_t ow = lo; ow < hi; ++ow) {
            T* o = out + ow * c;
            const T* i = in + (ow + kw - pad) * c;
#pragma omp simd
            for (int64_t ch = 0; ch < c; ++ch) o[ch] += i[ch] * wk[ch];
          }
        }
      }
    }
  });
}

// dw[kh, kw, c] += sum x[n, oh + kh - pad, ow + kw - pad, c] * dy[n, oh, ow, c]; db[c] += sum dy.
template <class T>
void depthwise_conv_nhwc_weight_grad(cpu, const T* x, const T* dy, T* dw, T* db, int64_t n, int64_t h,
                                     int64_t wd, int64_t c, int64_t k, int64_t pad, int64_t ho, int64_t wo) {
  const int64_t rows = n * ho, parts = std::min<int64_t>(num_threads(), rows);
  std::vector<std::vector<T>> partial(static_cast<size_t>(parts), std::vector<T>(static_cast<size_t>((k * k + 1) * c)));
  parallel_chunks(rows, parts, [&](int64_t part, int64_t r0, int64_t r1) {
    T* acc = partial[static_cast<size_t>(part)].data();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / ho, oh = r % ho;
      const T* g = dy + r * wo * c;
      T* acc_bias = acc + k * k * c;
      for (int64_t ow = 0; ow < wo; ++ow) {
#pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) acc_bias[ch] += g[ow * c + ch];
      }
      for (int64_t kh = 0; kh < k; ++kh) {
        const int64_t ih = oh + kh - pad;
        if (ih < 0 || ih >= h) continue;
        const T* in = x + (b * h + ih) * wd * c;
        for (int64_t kw = 0; kw < k; ++kw) {
          T* a = acc + (kh * k + kw) * c;
          const int64_t lo = std::max<int64_t>(0, pad - kw), hi = std::min<int64_t>(wo, wd + pad - kw);
          for (int64_t ow = lo; ow < hi; ++ow) {
            const T* i = in + (ow + kw - pad) * c;
            const T* gg = g + ow * c;
#pragma omp simd
            for (int64_t ch = 0; ch < c; ++ch) a[ch] += i[ch] * gg[ch];
          }
        }
      }
    }
  });
  for (const auto& p : partial) {
    for (int64_t j = 0; j < k * k * c; ++j) dw[j] += p[static_cast<size_t>(j)];
    if (db)
      for (int64_t ch = 0; ch < c; ++ch) db[ch] += p[static_cast<size_t>(k * k * c + ch)];
  }
}

}  // namespace stpain::backend

namespace stpain {

template <class B = cpu, class T = float>
class DepthwiseConv2dNHWC : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t channels = 0;
    int64_t kernel_size = 7;
    int64_t padding = -1;  // -1: kernel_size / 2 ("same" for odd kernels)
    bool bias = true;
  };

  DepthwiseConv2dNHWC(int64_t channels, int64_t kernel_size, int64_t padding = -1, bool bias = true)
      : DepthwiseConv2dNHWC(Options{channels, kernel_size, padding, bias}) {}
  explicit DepthwiseConv2dNHWC(const Options& o) : opt_(o) {
    if (opt_.padding < 0) opt_.padding = opt_.kernel_size / 2;
    STPAIN_CHECK(o.channels > 0 && o.kernel_size > 0, ShapeError, "DepthwiseConv2dNHWC: channels ", o.channels,
                 " and kernel_size ", o.kernel_size, " must be positive");
    weight = Parameter<T, B>::make({o.channels, 1, o.kernel_size, o.kernel_size});
    init_uniform_fan_in(weight.value, o.kernel_size * o.kernel_size);
    if (o.bias) {
      this->bias = Parameter<T, B>::make({o.channels});
      init_uniform_fan_in(this->bias.value, o.kernel_size * o.kernel_size);
    }
  }

  tensor forward(const tensor& x) {
    check_input(x);
    input_ = x;
    const auto [n, h, w, c] = dims(x);
    const int64_t k = opt_.kernel_size, p = opt_.padding, ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1;
    tensor y = tensor::empty({n, ho, wo, c});
    depthwise_conv_nhwc(B{}, x.data(), channels_last_weight(false).data(), opt_.bias ? bias.value.data() : nullptr,
                        y.data(), n, h, w, c, k, p, ho, wo);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "DepthwiseConv2dNHWC");
    const auto [n, h, w, c] = dims(input_);
    const int64_t k = opt_.kernel_size, p = opt_.padding, ho = h + 2 * p - k + 1, wo = w + 2 * p - k + 1;
    expect_shape(dy.shape(), Shape{n, ho, wo, c}, "DepthwiseConv2dNHWC.backward dy");
    // dx is the "full" correlation of dy with the flipped kernel: the same
    // kernel with padding k - 1 - p.
    tensor dx = tensor::empty(input_.shape());
    depthwise_conv_nhwc(B{}, dy.data(), channels_last_weight(true).data(), static_cast<const T*>(nullptr),
                        dx.data(), n, ho, wo, c, k, k - 1 - p, h, w);
    tensor dw = tensor::zeros({k, k, c});
    depthwise_conv_nhwc_weight_grad(B{}, input_.data(), dy.data(), dw.data(), opt_.bias ? bias.grad.data() : nullptr,
                                    n, h, w, c, k, p, ho, wo);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < k * k; ++j) weight.grad[ch * k * k + j] += dw[j * c + ch];
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
    if (opt_.bias) f(prefix + "bias", bias);
  }
  const Options& options() const { return opt_; }

  Parameter<T, B> weight, bias;

 private:
  static std::array<int64_t, 4> dims(const tensor& x) { return {x.size(0), x.size(1), x.size(2), x.size(3)}; }

  void check_input(const tensor& x) const {
    STPAIN_CHECK(x.rank() == 4 && x.size(3) == opt_.channels, ShapeError, "DepthwiseConv2dNHWC(", opt_.channels,
                 ", k=", opt_.kernel_size, "): input ", x.shape().str(), " is not [N, H, W, ", opt_.channels, "]");
    STPAIN_CHECK(x.size(1) + 2 * opt_.padding >= opt_.kernel_size && x.size(2) + 2 * opt_.padding >= opt_.kernel_size,
                 ShapeError, "DepthwiseConv2dNHWC(k=", opt_.kernel_size, ", padding=", opt_.padding, "): input ",
                 x.shape().str(), " is smaller than the kernel");
  }

  // weight [C, 1, k, k] -> [k, k, C], optionally spatially flipped.
  const tensor& channels_last_weight(bool flipped) {
    const int64_t c = opt_.channels, kk = opt_.kernel_size * opt_.kernel_size;
    if (!weight_cl_.defined()) weight_cl_ = tensor::empty({opt_.kernel_size, opt_.kernel_size, c});
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < kk; ++j) weight_cl_[(flipped ? kk - 1 - j : j) * c + ch] = weight.value[ch * kk + j];
    return weight_cl_;
  }

  Options opt_;
  tensor input_, weight_cl_;
};

}  // namespace stpain
