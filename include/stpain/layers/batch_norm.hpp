#pragma once
// Batch normalisation over every dimension but the channels (dim 1):
//   BatchNorm1d: [N, C] or [N, C, L]   (torch.nn.BatchNorm1d)
//   BatchNorm2d: [N, C, H, W]          (torch.nn.BatchNorm2d)
// Both are BatchNormBase, which views its input as [N, C, L].
// Training normalises with the batch's mean and biased variance and moves the
// running statistics towards the batch's mean and unbiased variance:
//   running = (1 - momentum) * running + momentum * batch.
// Evaluation normalises with the running statistics.
// Parameters weight [C] (ones), bias [C] (zeros) when affine; buffers
// running_mean [C] (zeros), running_var [C] (ones), num_batches_tracked [].
#include <algorithm>
#include <cmath>
#include <string>

#include "stpain/layers/module.hpp"

namespace stpain::backend {

// Per-channel mean and biased variance of x [n, c, l], two-pass.
template <class T>
void batch_norm_statistics(cpu, const T* x, T* mean, T* var, int64_t n, int64_t c, int64_t l) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n * l));
  parallel_for(c, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      T s = 0;
      for (int64_t i = 0; i < n; ++i) {
        const T* xr = x + (i * c + ch) * l;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < l; ++j) s += xr[j];
      }
      const T m = s / T(n * l);
      T v = 0;
      for (int64_t i = 0; i < n; ++i) {
        const T* xr = x + (i * c + ch) * l;
#pragma omp simd reduction(+ : v)
        for (int64_t j = 0; j < l; ++j) v += (xr[j] - m) * (xr[j] - m);
      }
      mean[ch] = m;
      var[ch] = v / T(n * l);
    }
  });
}

// running = (1 - momentum) * running + momentum * batch, with the unbiased
// variance of `count` values per channel; one more batch tracked.
template <class T>
void batch_norm_update_running(cpu, const T* mean, const T* var, T* running_mean, T* running_var,
                               T* num_batches_tracked, int64_t c, int64_t count, double momentum) {
  const T mom = T(momentum), unbias = T(count) / T(count - 1);
  for (int64_t ch = 0; ch < c; ++ch) {
    running_mean[ch] = (T(1) - mom) * running_mean[ch] + mom * mean[ch];
    running_var[ch] = (T(1) - mom) * running_var[ch] + mom * var[ch] * unbias;
  }
  num_batches_tracked[0] += T(1);
}

// rstd = 1 / sqrt(var + eps)
template <class T>
void batch_norm_inverse_std(cpu, const T* var, T* rstd, int64_t c, double eps) {
  for (int64_t ch = 0; ch < c; ++ch) rstd[ch] = T(1) / std::sqrt(var[ch] + T(eps));
}

// y = (x - mean) * rstd * weight + bias per channel; weight and bias may be null.
template <class T>
void batch_norm_forward(cpu, const T* x, const T* mean, const T* rstd, const T* weight, const T* bias, T* y,
                        int64_t n, int64_t c, int64_t l) {
  parallel_for(n * c, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, l)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t ch = p % c;
      const T scale = rstd[ch] * (weight ? weight[ch] : T(1));
      const T shift = (bias ? bias[ch] : T(0)) - mean[ch] * scale;
      const T* xr = x + p * l;
      T* yr = y + p * l;
#pragma omp simd
      for (int64_t j = 0; j < l; ++j) yr[j] = xr[j] * scale + shift;
    }
  });
}

// dx overwritten; dweight and dbias (null unless affine) accumulate. With
// batch statistics the mean and variance depend on x; with running ones they
// are constants.
template <class T>
void batch_norm_backward(cpu, const T* x, const T* mean, const T* rstd, const T* weight, const T* dy, T* dx,
                         T* dweight, T* dbias, int64_t n, int64_t c, int64_t l, bool batch_statistics) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n * l));
  parallel_for(c, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      const T m = mean[ch], rs = rstd[ch], w = weight ? weight[ch] : T(1);
      T sum_dy = 0, sum_dy_xhat = 0;
      for (int64_t i = 0; i < n; ++i) {
        const T* xr = x + (i * c + ch) * l;
        const T* dyr = dy + (i * c + ch) * l;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
        for (int64_t j = 0; j < l; ++j) {
          sum_dy += dyr[j];
          sum_dy_xhat += dyr[j] * (xr[j] - m) * rs;
        }
      }
      if (dweight) dweight[ch] += sum_dy_xhat;
      if (dbias) dbias[ch] += sum_dy;
      const T count = T(n * l);
      const T mean_dy = batch_statistics ? sum_dy / count : T(0);
      const T mean_dy_xhat = batch_statistics ? sum_dy_xhat / count : T(0);
      for (int64_t i = 0; i < n; ++i) {
        const T* xr = x + (i * c + ch) * l;
        const T* dyr = dy + (i * c + ch) * l;
        T* dxr = dx + (i * c + ch) * l;
#pragma omp simd
        for (int64_t j = 0; j < l; ++j) dxr[j] = w * rs * (dyr[j] - mean_dy - (xr[j] - m) * rs * mean_dy_xhat);
      }
    }
  });
}

}  // namespace stpain::backend

namespace stpain {

// The shared implementation; use BatchNorm1d or BatchNorm2d.
template <class B = cpu, class T = float>
class BatchNormBase : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t num_features = 0;  // C
    double eps = 1e-5;
    double momentum = 0.1;
    bool affine = true;  // learn weight and bias
  };

  tensor forward(const tensor& x) {
    const int64_t c = opt_.num_features;
    STPAIN_CHECK(x.rank() >= min_rank_ && x.rank() <= max_rank_ && x.size(1) == c, ShapeError, describe(),
                 ": input ", x.shape().str(), " is not ", expected_layout_, " with C = ", c);
    const int64_t n = x.size(0), l = x.numel() / std::max<int64_t>(1, n * c);
    input_ = x;
    used_batch_statistics_ = this->training_;
    if (used_batch_statistics_) {
      STPAIN_CHECK(n * l > 1, ShapeError, describe(), ": input ", x.shape().str(),
                   " has one value per channel; training needs more than one");
      mean_ = tensor::empty({c});
      tensor var = tensor::empty({c});
      batch_norm_statistics(B{}, x.data(), mean_.data(), var.data(), n, c, l);
      batch_norm_update_running(B{}, mean_.data(), var.data(), running_mean.value.data(), running_var.value.data(),
                                num_batches_tracked.value.data(), c, n * l, opt_.momentum);
      rstd_ = tensor::empty({c});
      batch_norm_inverse_std(B{}, var.data(), rstd_.data(), c, opt_.eps);
    } else {
      mean_ = running_mean.value.clone();  // a later training step must not change what backward uses
      rstd_ = tensor::empty({c});
      batch_norm_inverse_std(B{}, running_var.value.data(), rstd_.data(), c, opt_.eps);
    }
    tensor y = tensor::empty(x.shape());
    batch_norm_forward(B{}, x.data(), mean_.data(), rstd_.data(), affine_data(weight.value),
                       affine_data(bias.value), y.data(), n, c, l);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "BatchNorm");
    expect_shape(dy.shape(), input_.shape(), describe() + ".backward dy");
    const int64_t c = opt_.num_features, n = dy.size(0), l = dy.numel() / std::max<int64_t>(1, n * c);
    tensor dx = tensor::empty(dy.shape());
    batch_norm_backward(B{}, input_.data(), mean_.data(), rstd_.data(), affine_data(weight.value), dy.data(),
                        dx.data(), affine_data(weight.grad), affine_data(bias.grad), n, c, l,
                        used_batch_statistics_);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    if (opt_.affine) {
      f(prefix + "weight", weight);
      f(prefix + "bias", bias);
    }
    f(prefix + "running_mean", running_mean);
    f(prefix + "running_var", running_var);
    f(prefix + "num_batches_tracked", num_batches_tracked);
  }

  const Options& options() const { return opt_; }
  // "BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=true)"
  std::string describe() const {
    return detail::concat(name_, "(", opt_.num_features, ", eps=", opt_.eps, ", momentum=", opt_.momentum,
                          ", affine=", opt_.affine ? "true" : "false", ")");
  }

  Parameter<T, B> weight, bias;  // empty unless affine
  Parameter<T, B> running_mean, running_var, num_batches_tracked;

 protected:
  // name and accepted ranks come from BatchNorm1d / BatchNorm2d.
  BatchNormBase(const Options& o, const char* name, int min_rank, int max_rank, const char* expected_layout)
      : opt_(o), name_(name), min_rank_(min_rank), max_rank_(max_rank), expected_layout_(expected_layout) {
    STPAIN_CHECK(o.num_features > 0, ShapeError, describe(), ": num_features must be positive");
    if (o.affine) {
      weight = Parameter<T, B>::make({o.num_features});
      weight.value.fill(T(1));
      bias = Parameter<T, B>::make({o.num_features});
    }
    running_mean = Parameter<T, B>::buffer({o.num_features});
    running_mean.value.zero();
    running_var = Parameter<T, B>::buffer({o.num_features});
    running_var.value.fill(T(1));
    num_batches_tracked = Parameter<T, B>::buffer(Shape{});
    num_batches_tracked.value.zero();
  }

 private:
  T* affine_data(tensor& t) { return opt_.affine ? t.data() : nullptr; }

  Options opt_;
  const char* name_;
  int min_rank_, max_rank_;
  const char* expected_layout_;
  tensor input_, mean_, rstd_;
  bool used_batch_statistics_ = true;
};

// [N, C] or [N, C, L] input.
template <class B = cpu, class T = float>
class BatchNorm1d : public BatchNormBase<B, T> {
 public:
  using typename BatchNormBase<B, T>::Options;
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true)
      : BatchNorm1d(Options{num_features, eps, momentum, affine}) {}
  explicit BatchNorm1d(const Options& o) : BatchNormBase<B, T>(o, "BatchNorm1d", 2, 3, "[N, C] or [N, C, L]") {}
};

// [N, C, H, W] input.
template <class B = cpu, class T = float>
class BatchNorm2d : public BatchNormBase<B, T> {
 public:
  using typename BatchNormBase<B, T>::Options;
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true)
      : BatchNorm2d(Options{num_features, eps, momentum, affine}) {}
  explicit BatchNorm2d(const Options& o) : BatchNormBase<B, T>(o, "BatchNorm2d", 4, 4, "[N, C, H, W]") {}
};

}  // namespace stpain
