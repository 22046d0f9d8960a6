#pragma once
// PatchConv2d: a convolution whose stride equals its kernel ("patchify"), as
// ConvNeXt's stem (4x4 / 4) and downsampling layers (2x2 / 2). Patches do not
// overlap, so it is one GEMM of the patch matrix [N*Ho*Wo, C*s*s] with the
// weight; the output is channels-last [N, Ho, Wo, out_channels].
// Input is NCHW (images) or NHWC (between ConvNeXt stages). Like PyTorch, rows
// and columns that do not fill a patch are dropped.
// Parameters keep PyTorch's layout and names: weight [out, in, s, s], bias [out].
#include "stpain/layers/linear.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

enum class Layout { NCHW, NHWC };

namespace backend {

// Copies patches of x into p [N*Ho*Wo, K]: K ordered (c, kh, kw) for NCHW input
// (PyTorch's weight order) and (kh, kw, c) for NHWC input (contiguous copies).
// With `scatter`, the reverse: p is added back into x (x must be zeroed).
template <class T, bool Scatter>
void patch_copy(cpu, Layout layout, std::conditional_t<Scatter, T*, const T*> x,
                std::conditional_t<Scatter, const T*, T*> p, int64_t n, int64_t c, int64_t h, int64_t w, int64_t s,
                int64_t ho, int64_t wo) {
  const int64_t k = c * s * s;
  parallel_for(n * ho, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / ho, oh = r % ho;
      for (int64_t ow = 0; ow < wo; ++ow) {
        auto* row = p + (r * wo + ow) * k;
        if (layout == Layout::NCHW) {
          for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t kh = 0; kh < s; ++kh) {
              auto* px = x + ((b * c + ch) * h + oh * s + kh) * w + ow * s;
              auto* pr = row + (ch * s + kh) * s;
              for (int64_t kw = 0; kw < s; ++kw) {
                if constexpr (Scatter) px[kw] += pr[kw]; else pr[kw] = px[kw];
              }
            }
        } else {
          for (int64_t kh = 0; kh < s; ++kh) {
            auto* px = x + ((b * h + oh * s + kh) * w + ow * s) * c;
            auto* pr = row + kh * s * c;
#pragma omp simd
            for (int64_t j = 0; j < s * c; ++j) {
              if constexpr (Scatter) px[j] += pr[j]; else pr[j] = px[j];
            }
          }
        }
      }
    }
  });
}

}  // namespace backend

template <class B = cpu, class T = float>
class PatchConv2d : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t patch_size = 2;  // kernel size and stride
    Layout input_layout = Layout::NHWC;
    bool bias = true;
  };

  PatchConv2d(int64_t in_channels, int64_t out_channels, int64_t patch_size, Layout input_layout = Layout::NHWC,
              bool bias = true)
      : PatchConv2d(Options{in_channels, out_channels, patch_size, input_layout, bias}) {}
  explicit PatchConv2d(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.patch_size > 0, ShapeError,
                 "PatchConv2d: channels and patch size must be positive");
    const int64_t fan_in = o.in_channels * o.patch_size * o.patch_size;
    weight = Parameter<T, B>::make({o.out_channels, o.in_channels, o.patch_size, o.patch_size});
    init_uniform_fan_in(weight.value, fan_in);
    if (o.bias) {
      this->bias = Parameter<T, B>::make({o.out_channels});
      init_uniform_fan_in(this->bias.value, fan_in);
    }
  }

  tensor forward(const tensor& x) {
    const bool nchw = opt_.input_layout == Layout::NCHW;
    STPAIN_CHECK(x.rank() == 4 && x.size(nchw ? 1 : 3) == opt_.in_channels, ShapeError, "PatchConv2d(",
                 opt_.in_channels, " -> ", opt_.out_channels, ", ", opt_.patch_size, "x", opt_.patch_size, "): input ",
                 x.shape().str(), " is not ", nchw ? "[N, " : "[N, H, W, ", opt_.in_channels, nchw ? ", H, W]" : "]");
    const int64_t s = opt_.patch_size, n = x.size(0), h = x.size(nchw ? 2 : 1), w = x.size(nchw ? 3 : 2);
    STPAIN_CHECK(h >= s && w >= s, ShapeError, "PatchConv2d: input ", x.shape().str(), " is smaller than a ", s, "x",
                 s, " patch");
    input_shape_ = x.shape();
    ho_ = h / s;
    wo_ = w / s;
    const int64_t k = opt_.in_channels * s * s, rows = n * ho_ * wo_;
    patches_ = tensor::empty({rows, k});
    backend::patch_copy<T, false>(B{}, opt_.input_layout, x.data(), patches_.data(), n, opt_.in_channels, h, w, s,
                                  ho_, wo_);
    tensor y = tensor::empty({n, ho_, wo_, opt_.out_channels});
    linear_forward(B{}, patches_.data(), patch_weight().data(), opt_.bias ? bias.value.data() : nullptr, y.data(),
                   rows, k, opt_.out_channels);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(patches_, "PatchConv2d");
    const bool nchw = opt_.input_layout == Layout::NCHW;
    const int64_t s = opt_.patch_size, n = input_shape_[0], k = opt_.in_channels * s * s, rows = n * ho_ * wo_;
    expect_shape(dy.shape(), Shape{n, ho_, wo_, opt_.out_channels}, "PatchConv2d.backward dy");
    // dW (patch order) = dy^T P, then back to PyTorch's order.
    tensor dw = tensor::zeros({opt_.out_channels, k});
    B::gemm(true, false, opt_.out_channels, k, rows, T(1), dy.data(), opt_.out_channels, patches_.data(), k, T(0),
            dw.data(), k);
    if (nchw)
      add_to(weight.grad, dw);
    else
      add_taps_from_channels_last(B{}, dw.data(), weight.grad.data(), opt_.out_channels, opt_.in_channels, s * s);
    if (opt_.bias) accumulate_column_sums(B{}, dy.data(), bias.grad.data(), rows, opt_.out_channels);
    tensor dp = tensor::empty({rows, k});
    B::gemm(false, false, rows, k, opt_.out_channels, T(1), dy.data(), opt_.out_channels, patch_weight().data(), k,
            T(0), dp.data(), k);
    tensor dx = tensor::zeros(input_shape_);
    backend::patch_copy<T, true>(B{}, opt_.input_layout, dx.data(), dp.data(), n, opt_.in_channels,
                                 input_shape_[nchw ? 2 : 1], input_shape_[nchw ? 3 : 2], s, ho_, wo_);
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
  // The weight as [out, K] in the patch order of the input layout.
  const tensor& patch_weight() {
    if (opt_.input_layout == Layout::NCHW) {
      weight_patch_ = weight.value;
      return weight_patch_;
    }
    const int64_t c = opt_.in_channels, ss = opt_.patch_size * opt_.patch_size, k = c * ss;
    if (!weight_patch_.defined() || weight_patch_.shares_storage_with(weight.value))
      weight_patch_ = tensor::empty({opt_.out_channels, k});
    taps_to_channels_last(B{}, weight.value.data(), weight_patch_.data(), opt_.out_channels, c, ss, false);
    return weight_patch_;
  }

  Options opt_;
  tensor patches_, weight_patch_;
  Shape input_shape_;
  int64_t ho_ = 0, wo_ = 0;
};

}  // namespace stpain
