#pragma once
// Layer normalisation with a learned per-channel scale and shift.
//   LayerNorm:   over the last dimension (torch.nn.LayerNorm(C, eps)).
//   LayerNorm2d: NCHW input normalised over C at every (n, h, w) position
//                (timm's LayerNorm2d, ConvNeXt's channels_first LayerNorm).
// weight [C] (ones), bias [C] (zeros). Each group of C values gets its mean,
// then its variance around that mean (two passes: no cancellation for large
// means); mean and rstd = 1/sqrt(var + eps) are kept for backward.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain::backend {

namespace layer_norm_detail {
// Parts a reduction over `items` splits into: one per chunk of `grain` items,
// at most one per thread.
inline int64_t parts(int64_t items, int64_t grain) {
  return std::max<int64_t>(1, std::min<int64_t>(num_threads(), (items + grain - 1) / grain));
}
// Items per parallel chunk so that a chunk holds about 16k values: below
// that, starting and joining the threads costs more than it saves.
inline int64_t grain_for(int64_t values_per_item) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, values_per_item));
}
// Positions per block of the channels-first kernels: the block's statistics
// stay in L1 and its values in L2 over the passes across the channels.
// (Measured: 256 is about 1.3x faster than 64 on [8, 96, 56, 56].)
constexpr int64_t kChannelsFirstBlock = 256;
}  // namespace layer_norm_detail

// Rows of a [rows, cols] matrix: y = (x - mean) * rstd * weight + bias.
template <class T>
void layer_norm_forward(cpu, const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows,
                        int64_t cols, double eps) {
  parallel_for(rows, layer_norm_detail::grain_for(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < cols; ++c) s += xr[c];
      const T m = s / T(cols);
      T v = 0;
#pragma omp simd reduction(+ : v)
      for (int64_t c = 0; c < cols; ++c) v += (xr[c] - m) * (xr[c] - m);
      const T rs = T(1) / std::sqrt(v / T(cols) + T(eps));
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * rs * weight[c] + bias[c];
      mean[r] = m;
      rstd[r] = rs;
    }
  });
}

// dx overwritten; dweight and dbias accumulate.
template <class T>
void layer_norm_backward(cpu, const T* x, const T* weight, const T* mean, const T* rstd, const T* dy, T* dx,
                         T* dweight, T* dbias, int64_t rows, int64_t cols) {
  // Each part sums its weight/bias gradients apart (part 0 straight into the
  // outputs); the parts are added in order afterwards.
  const int64_t parts = layer_norm_detail::parts(rows, layer_norm_detail::grain_for(cols));
  std::vector<T> partial(static_cast<size_t>((parts - 1) * 2 * cols), T(0));
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* dw = p == 0 ? dweight : partial.data() + (p - 1) * 2 * cols;
      T* db = p == 0 ? dbias : partial.data() + (p - 1) * 2 * cols + cols;
      for (int64_t r = rows * p / parts; r < rows * (p + 1) / parts; ++r) {
        const T* xr = x + r * cols;
        const T* dyr = dy + r * cols;
        T* dxr = dx + r * cols;
        const T m = mean[r], rs = rstd[r];
        T sum_g = 0, sum_g_xhat = 0;  // g = dy * weight, the gradient of xhat
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
        for (int64_t c = 0; c < cols; ++c) {
          const T xhat = (xr[c] - m) * rs;
          const T g = dyr[c] * weight[c];
          sum_g += g;
          sum_g_xhat += g * xhat;
          dw[c] += dyr[c] * xhat;
          db[c] += dyr[c];
        }
        const T mean_g = sum_g / T(cols), mean_g_xhat = sum_g_xhat / T(cols);
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) {
          const T xhat = (xr[c] - m) * rs;
          dxr[c] = rs * (dyr[c] * weight[c] - mean_g - xhat * mean_g_xhat);
        }
      }
    }
  });
  for (int64_t p = 1; p < parts; ++p) {
    const T* part = partial.data() + (p - 1) * 2 * cols;
    for (int64_t c = 0; c < cols; ++c) {
      dweight[c] += part[c];
      dbias[c] += part[cols + c];
    }
  }
}

// x viewed as [outer, channels, inner]: every (outer, inner) position is
// normalised over the channels. Vectorised over blocks of inner positions.
template <class T>
void layer_norm_channels_first_forward(cpu, const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                                       int64_t outer, int64_t channels, int64_t inner, double eps) {
  constexpr int64_t block = layer_norm_detail::kChannelsFirstBlock;
  const int64_t blocks = (inner + block - 1) / block;
  parallel_for(outer * blocks, layer_norm_detail::grain_for(channels * block), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, i0 = (t % blocks) * block, len = std::min(block, inner - i0);
      const T* xb = x + n * channels * inner + i0;
      T* yb = y + n * channels * inner + i0;
      T m[block] = {}, v[block] = {};
      for (int64_t c = 0; c < channels; ++c) {
        const T* xc = xb + c * inner;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) m[i] += xc[i];
      }
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) m[i] /= T(channels);
      for (int64_t c = 0; c < channels; ++c) {
        const T* xc = xb + c * inner;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) v[i] += (xc[i] - m[i]) * (xc[i] - m[i]);
      }
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) v[i] = T(1) / std::sqrt(v[i] / T(channels) + T(eps));
      for (int64_t c = 0; c < channels; ++c) {
        const T* xc = xb + c * inner;
        T* yc = yb + c * inner;
        const T w = weight[c], b = bias[c];
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) yc[i] = (xc[i] - m[i]) * v[i] * w + b;
      }
      std::copy(m, m + len, mean + n * inner + i0);
      std::copy(v, v + len, rstd + n * inner + i0);
    }
  });
}

// dx overwritten; dweight and dbias accumulate.
template <class T>
void layer_norm_channels_first_backward(cpu, const T* x, const T* weight, const T* mean, const T* rstd, const T* dy,
                                        T* dx, T* dweight, T* dbias, int64_t outer, int64_t channels, int64_t inner) {
  constexpr int64_t block = layer_norm_detail::kChannelsFirstBlock;
  const int64_t blocks = (inner + block - 1) / block, tasks = outer * blocks;
  const int64_t parts = layer_norm_detail::parts(tasks, layer_norm_detail::grain_for(channels * block));
  std::vector<T> partial(static_cast<size_t>((parts - 1) * 2 * channels), T(0));
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      T* dw = p == 0 ? dweight : partial.data() + (p - 1) * 2 * channels;
      T* db = p == 0 ? dbias : partial.data() + (p - 1) * 2 * channels + channels;
      for (int64_t t = tasks * p / parts; t < tasks * (p + 1) / parts; ++t) {
        const int64_t n = t / blocks, i0 = (t % blocks) * block, len = std::min(block, inner - i0);
        const int64_t offset = n * channels * inner + i0;
        const T* m = mean + n * inner + i0;
        const T* rs = rstd + n * inner + i0;
        T sum_g[block] = {}, sum_g_xhat[block] = {};
        for (int64_t c = 0; c < channels; ++c) {
          const T* xc = x + offset + c * inner;
          const T* dyc = dy + offset + c * inner;
          const T w = weight[c];
          T dwc = 0, dbc = 0;
#pragma omp simd reduction(+ : dwc, dbc)
          for (int64_t i = 0; i < len; ++i) {
            const T xhat = (xc[i] - m[i]) * rs[i];
            sum_g[i] += dyc[i] * w;
            sum_g_xhat[i] += dyc[i] * w * xhat;
            dwc += dyc[i] * xhat;
            dbc += dyc[i];
          }
          dw[c] += dwc;
          db[c] += dbc;
        }
        const T inv_c = T(1) / T(channels);
        for (int64_t c = 0; c < channels; ++c) {
          const T* xc = x + offset + c * inner;
          const T* dyc = dy + offset + c * inner;
          T* dxc = dx + offset + c * inner;
          const T w = weight[c];
#pragma omp simd
          for (int64_t i = 0; i < len; ++i) {
            const T xhat = (xc[i] - m[i]) * rs[i];
            dxc[i] = rs[i] * (dyc[i] * w - sum_g[i] * inv_c - xhat * sum_g_xhat[i] * inv_c);
          }
        }
      }
    }
  });
  for (int64_t p = 1; p < parts; ++p) {
    const T* part = partial.data() + (p - 1) * 2 * channels;
    for (int64_t c = 0; c < channels; ++c) {
      dweight[c] += part[c];
      dbias[c] += part[channels + c];
    }
  }
}

}  // namespace stpain::backend

namespace stpain {

namespace detail {
// What LayerNorm and LayerNorm2d share: options, weight and bias.
template <class B, class T>
class LayerNormParameters : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t normalized_shape = 0;  // C, the size of the normalised dimension
    double eps = 1e-5;             // ConvNeXt uses 1e-6
  };

  explicit LayerNormParameters(const Options& o, const char* name) : opt_(o), name_(name) {
    STPAIN_CHECK(o.normalized_shape > 0, ShapeError, describe(), ": normalized_shape must be positive");
    weight = Parameter<T, B>::make({o.normalized_shape});
    weight.value.fill(T(1));
    bias = Parameter<T, B>::make({o.normalized_shape});
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
    f(prefix + "bias", bias);
  }

  const Options& options() const { return opt_; }
  // "LayerNorm2d(96, eps=1e-06)"
  std::string describe() const { return detail::concat(name_, "(", opt_.normalized_shape, ", eps=", opt_.eps, ")"); }

  Parameter<T, B> weight, bias;

 protected:
  Options opt_;
  const char* name_;
  tensor input_, mean_, rstd_;
};
}  // namespace detail

template <class B = cpu, class T = float>
class LayerNorm : public detail::LayerNormParameters<B, T> {
  using Base = detail::LayerNormParameters<B, T>;

 public:
  using typename Base::Options;
  using typename Base::tensor;

  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5) : LayerNorm(Options{normalized_shape, eps}) {}
  explicit LayerNorm(const Options& o) : Base(o, "LayerNorm") {}

  tensor forward(const tensor& x) {
    const int64_t c = this->opt_.normalized_shape;
    STPAIN_CHECK(x.rank() >= 1 && x.size(-1) == c, ShapeError, this->describe(), ": input ", x.shape().str(),
                 " does not end in ", c);
    const int64_t rows = x.numel() / c;
    this->input_ = x;
    this->mean_ = tensor::empty({rows});
    this->rstd_ = tensor::empty({rows});
    tensor y = tensor::empty(x.shape());
    layer_norm_forward(B{}, x.data(), this->weight.value.data(), this->bias.value.data(), y.data(),
                       this->mean_.data(), this->rstd_.data(), rows, c, this->opt_.eps);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(this->input_, "LayerNorm");
    expect_shape(dy.shape(), this->input_.shape(), this->describe() + ".backward dy");
    const int64_t c = this->opt_.normalized_shape;
    tensor dx = tensor::empty(dy.shape());
    layer_norm_backward(B{}, this->input_.data(), this->weight.value.data(), this->mean_.data(), this->rstd_.data(),
                        dy.data(), dx.data(), this->weight.grad.data(), this->bias.grad.data(), dy.numel() / c, c);
    return dx;
  }
};

template <class B = cpu, class T = float>
class LayerNorm2d : public detail::LayerNormParameters<B, T> {
  using Base = detail::LayerNormParameters<B, T>;

 public:
  using typename Base::Options;
  using typename Base::tensor;

  explicit LayerNorm2d(int64_t num_channels, double eps = 1e-5) : LayerNorm2d(Options{num_channels, eps}) {}
  explicit LayerNorm2d(const Options& o) : Base(o, "LayerNorm2d") {}

  tensor forward(const tensor& x) {
    const int64_t c = this->opt_.normalized_shape;
    STPAIN_CHECK(x.rank() == 4 && x.size(1) == c, ShapeError, this->describe(), ": input ", x.shape().str(),
                 " is not NCHW with ", c, " channels");
    const int64_t n = x.size(0), inner = x.size(2) * x.size(3);
    this->input_ = x;
    this->mean_ = tensor::empty({n, inner});
    this->rstd_ = tensor::empty({n, inner});
    tensor y = tensor::empty(x.shape());
    layer_norm_channels_first_forward(B{}, x.data(), this->weight.value.data(), this->bias.value.data(), y.data(),
                                      this->mean_.data(), this->rstd_.data(), n, c, inner, this->opt_.eps);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(this->input_, "LayerNorm2d");
    expect_shape(dy.shape(), this->input_.shape(), this->describe() + ".backward dy");
    const int64_t c = this->opt_.normalized_shape, n = dy.size(0), inner = dy.size(2) * dy.size(3);
    tensor dx = tensor::empty(dy.shape());
    layer_norm_channels_first_backward(B{}, this->input_.data(), this->weight.value.data(), this->mean_.data(),
                                       this->rstd_.data(), dy.data(), dx.data(), this->weight.grad.data(),
                                       this->bias.grad.data(), n, c, inner);
    return dx;
  }
};

}  // namespace stpain
