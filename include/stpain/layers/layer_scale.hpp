#pragma once
// Layer scale: multiplies each channel by a learnable factor `gamma`, which
// starts small (1e-6) so a residual branch starts close to zero (CaiT,
// ConvNeXt).
//   LayerScale<>(C)    channels last, [..., C]; gamma [C], state-dict name
//                      "gamma" (timm's ConvNeXt block and timm's LayerScale).
//   LayerScale2d<>(C)  channels first, [N, C, H, W]; gamma [C, 1, 1] named
//                      "layer_scale" (torchvision's CNBlock). timm's
//                      LayerScale2d (gamma [C]) is
//                      LayerScale2d<>({.channels = C, .name = "gamma", .trailing_unit_dims = false}).
// The name is the parameter's own name; the containers add their prefix
// ("stages.0.blocks.1."). Where a checkpoint's prefix differs from the
// model's (timm keeps gamma on the block itself: "blocks.1.gamma"), load it
// with LoadOptions::rename (io/state_dict.hpp).
#include <algorithm>
#include <string>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain::backend {

// y[r, c] = x[r, c] * gamma[c]
template <class T>
void scale_channels_last(cpu, const T* x, const T* gamma, T* y, int64_t rows, int64_t channels) {
  parallel_for(rows, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(channels, 1)), [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) y[r * channels + c] = x[r * channels + c] * gamma[c];
    }
  });
}

// y[n, c, :] = x[n, c, :] * gamma[c]
template <class T>
void scale_channels_first(cpu, const T* x, const T* gamma, T* y, int64_t batch, int64_t channels, int64_t plane) {
  parallel_for(batch * channels, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(plane, 1)),
               [=](int64_t p0, int64_t p1) {
                 for (int64_t p = p0; p < p1; ++p) {
                   const T g = gamma[p % channels];
#pragma omp simd
                   for (int64_t i = 0; i < plane; ++i) y[p * plane + i] = x[p * plane + i] * g;
                 }
               });
}

// dgamma[c] += sum over rows of dy[r, c] * x[r, c]. The rows are cut into a
// fixed number of blocks summed in parallel and then in order, so the result
// does not depend on the thread count.
template <class T>
void accumulate_channels_last_products(cpu, const T* dy, const T* x, T* dgamma, int64_t rows, int64_t channels) {
  const int64_t blocks = std::clamp<int64_t>(rows / 64, 1, 64);
  std::vector<T> partial(static_cast<size_t>(blocks * channels), T(0));
  T* const partial_data = partial.data();
  parallel_for(blocks, 1, [=](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* acc = partial_data + b * channels;
      for (int64_t r = rows * b / blocks; r < rows * (b + 1) / blocks; ++r) {
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) acc[c] += dy[r * channels + c] * x[r * channels + c];
      }
    }
  });
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t c = 0; c < channels; ++c) dgamma[c] += partial[b * channels + c];
}

// dgamma[c] += sum over n and the plane of dy[n, c, :] * x[n, c, :]
template <class T>
void accumulate_channels_first_products(cpu, const T* dy, const T* x, T* dgamma, int64_t batch, int64_t channels,
                                        int64_t plane) {
  std::vector<T> per_plane(static_cast<size_t>(batch * channels));
  T* const sums = per_plane.data();
  parallel_for(batch * channels, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(plane, 1)),
               [=](int64_t p0, int64_t p1) {
                 for (int64_t p = p0; p < p1; ++p) {
                   T s = 0;
#pragma omp simd reduction(+ : s)
                   for (int64_t i = 0; i < plane; ++i) s += dy[p * plane + i] * x[p * plane + i];
                   sums[p] = s;
                 }
               });
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) dgamma[c] += per_plane[n * channels + c];
}

}  // namespace stpain::backend

namespace stpain {

// y = x * gamma over the last dimension.
template <class B = cpu, class T = float>
class LayerScale : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t dim = 0;
    double init_value = 1e-6;
    std::string name = "gamma";  // the parameter's state-dict name
  };

  explicit LayerScale(int64_t dim, double init_value = 1e-6) : LayerScale(Options{dim, init_value}) {}
  explicit LayerScale(Options o) : opt_(std::move(o)) {
    STPAIN_CHECK(opt_.dim > 0, ShapeError, "LayerScale: dim must be positive, got ", opt_.dim);
    gamma = Parameter<T, B>::make({opt_.dim});
    gamma.value.fill(static_cast<T>(opt_.init_value));
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() >= 1 && x.size(-1) == opt_.dim, ShapeError, "LayerScale(", opt_.dim, "): input ",
                 x.shape().str(), " does not end in ", opt_.dim);
    input_ = x;
    tensor y = tensor::empty(x.shape());
    scale_channels_last(B{}, x.data(), gamma.value.data(), y.data(), x.numel() / opt_.dim, opt_.dim);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "LayerScale");
    expect_shape(dy.shape(), input_.shape(), "LayerScale.backward dy");
    const int64_t rows = dy.numel() / opt_.dim;
    accumulate_channels_last_products(B{}, dy.data(), input_.data(), gamma.grad.data(), rows, opt_.dim);
    tensor dx = tensor::empty(dy.shape());
    scale_channels_last(B{}, dy.data(), gamma.value.data(), dx.data(), rows, opt_.dim);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + opt_.name, gamma);
  }

  const Options& options() const { return opt_; }

  Parameter<T, B> gamma;

 private:
  Options opt_;
  tensor input_;
};

// y[n, c, h, w] = x[n, c, h, w] * gamma[c] on NCHW input.
template <class B = cpu, class T = float>
class LayerScale2d : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t channels = 0;
    double init_value = 1e-6;
    std::string name = "layer_scale";  // the parameter's state-dict name
    // gamma's shape: [C, 1, 1] as torchvision stores it, or [C] when false.
    bool trailing_unit_dims = true;
  };

  explicit LayerScale2d(int64_t channels, double init_value = 1e-6) : LayerScale2d(Options{channels, init_value}) {}
  explicit LayerScale2d(Options o) : opt_(std::move(o)) {
    STPAIN_CHECK(opt_.channels > 0, ShapeError, "LayerScale2d: channels must be positive, got ", opt_.channels);
    gamma = Parameter<T, B>::make(opt_.trailing_unit_dims ? Shape{opt_.channels, 1, 1} : Shape{opt_.channels});
    gamma.value.fill(static_cast<T>(opt_.init_value));
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4 && x.size(1) == opt_.channels, ShapeError, "LayerScale2d(", opt_.channels,
                 "): input ", x.shape().str(), " is not [N, ", opt_.channels, ", H, W]");
    input_ = x;
    tensor y = tensor::empty(x.shape());
    scale_channels_first(B{}, x.data(), gamma.value.data(), y.data(), x.size(0), opt_.channels, plane(x));
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "LayerScale2d");
    expect_shape(dy.shape(), input_.shape(), "LayerScale2d.backward dy");
    accumulate_channels_first_products(B{}, dy.data(), input_.data(), gamma.grad.data(), dy.size(0),
                                       opt_.channels, plane(dy));
    tensor dx = tensor::empty(dy.shape());
    scale_channels_first(B{}, dy.data(), gamma.value.data(), dx.data(), dy.size(0), opt_.channels, plane(dy));
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + opt_.name, gamma);
  }

  const Options& options() const { return opt_; }

  Parameter<T, B> gamma;

 private:
  static int64_t plane(const tensor& x) { return x.size(2) * x.size(3); }

  Options opt_;
  tensor input_;
};

}  // namespace stpain
