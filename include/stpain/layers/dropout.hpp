#pragma once
// Dropout (torch.nn.Dropout) and DropPath (timm's drop_path: stochastic depth).
// Both are the identity in eval mode and when p == 0; their random draws come
// from default_generator(), so manual_seed() repeats them.
#include <cstdint>
#include <string>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain::backend {

// splitmix64's finaliser of key + i: a counter-based random stream, like
// torch's Philox. Element i of a dropout mask depends only on (key, i), so the
// mask is drawn in parallel, a device backend can reproduce it, and backward
// regenerates it instead of storing it.
inline uint64_t dropout_hash(uint64_t key, uint64_t i) {
  uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// dst[i] = src[i] / (1 - p) if element i is kept, else 0. Element i is kept
// when the top 53 bits of its hash, as a fraction of 2^53, are below 1 - p.
template <class T>
void dropout_apply(cpu, const T* src, T* dst, int64_t n, uint64_t key, double p) {
  const uint64_t keep_below = static_cast<uint64_t>((1.0 - p) * 0x1.0p53);
  const T scale = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  parallel_for(n, 1 << 15, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i)
      dst[i] = (dropout_hash(key, static_cast<uint64_t>(i)) >> 11) < keep_below ? src[i] * scale : T(0);
  });
}

// y[s, :] = x[s, :] * scale[s] over `samples` rows of `per_sample` values.
template <class T>
void scale_samples(cpu, const T* x, const T* scale, T* y, int64_t samples, int64_t per_sample) {
  parallel_for(samples * per_sample, 1 << 15, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end;) {
      const int64_t s = i / per_sample, row_end = std::min(end, (s + 1) * per_sample);
      const T k = scale[s];
#pragma omp simd
      for (int64_t j = i; j < row_end; ++j) y[j] = x[j] * k;
      i = row_end;
    }
  });
}

}  // namespace stpain::backend

namespace stpain {

// Zeroes each element with probability p in training mode and scales the kept
// ones by 1 / (1 - p), so eval mode (the identity) sees the same expectation.
template <class B = cpu, class T = float>
class Dropout : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    double p = 0.5;
  };

  explicit Dropout(double p = 0.5) : Dropout(Options{p}) {}
  explicit Dropout(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.p >= 0.0 && o.p <= 1.0, Error, "Dropout: p must be in [0, 1], got ", o.p);
  }

  tensor forward(const tensor& x) {
    forward_done_ = true;
    masked_ = this->training_ && opt_.p > 0.0;
    if (!masked_) return x;
    key_ = default_generator().next_u64();
    shape_ = x.shape();
    tensor y = tensor::empty(x.shape());
    dropout_apply(B{}, x.data(), y.data(), x.numel(), key_, opt_.p);
    return y;
  }

  // The same mask as the last forward (regenerated from its key).
  tensor backward(const tensor& dy) {
    STPAIN_CHECK(forward_done_, Error, "Dropout: backward() called before forward()");
    if (!masked_) return dy;
    expect_shape(dy.shape(), shape_, "Dropout.backward dy");
    tensor dx = tensor::empty(dy.shape());
    dropout_apply(B{}, dy.data(), dx.data(), dy.numel(), key_, opt_.p);
    return dx;
  }

  const Options& options() const { return opt_; }

 private:
  Options opt_;
  bool forward_done_ = false, masked_ = false;
  uint64_t key_ = 0;
  Shape shape_;
};

// Stochastic depth (timm.layers.DropPath): in training mode each sample (index
// of the leading dimension) is dropped whole with probability p; kept samples
// are scaled by 1 / (1 - p) when scale_by_keep. Used on a residual branch:
// Residual<Sequential<Block, DropPath<>>>.
template <class B = cpu, class T = float>
class DropPath : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    double p = 0.0;
    bool scale_by_keep = true;
  };

  explicit DropPath(double p = 0.0, bool scale_by_keep = true) : DropPath(Options{p, scale_by_keep}) {}
  explicit DropPath(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.p >= 0.0 && o.p <= 1.0, Error, "DropPath: p must be in [0, 1], got ", o.p);
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() >= 1, ShapeError, "DropPath(p=", opt_.p, "): input ", x.shape().str(),
                 " has no sample dimension");
    forward_done_ = true;
    sample_scales_ = tensor();
    if (!this->training_ || opt_.p == 0.0) return x;
    const int64_t samples = x.size(0);
    const double keep = 1.0 - opt_.p;
    const T kept_scale = static_cast<T>(opt_.scale_by_keep && keep > 0.0 ? 1.0 / keep : 1.0);
    std::vector<T> scales(static_cast<size_t>(samples));
    for (auto& s : scales) s = default_generator().bernoulli(keep) ? kept_scale : T(0);
    sample_scales_ = tensor::from({samples}, scales);
    shape_ = x.shape();
    tensor y = tensor::empty(x.shape());
    scale_samples(B{}, x.data(), sample_scales_.data(), y.data(), samples, x.shape().span(1, x.rank()));
    return y;
  }

  tensor backward(const tensor& dy) {
    STPAIN_CHECK(forward_done_, Error, "DropPath: backward() called before forward()");
    if (!sample_scales_.defined()) return dy;
    expect_shape(dy.shape(), shape_, "DropPath.backward dy");
    tensor dx = tensor::empty(dy.shape());
    scale_samples(B{}, dy.data(), sample_scales_.data(), dx.data(), dy.size(0), dy.shape().span(1, dy.rank()));
    return dx;
  }

  // Per-sample factors of the last training forward (0 or 1 / (1 - p)); empty
  // when it was the identity.
  const tensor& sample_scales() const { return sample_scales_; }
  const Options& options() const { return opt_; }

 private:
  Options opt_;
  bool forward_done_ = false;
  tensor sample_scales_;
  Shape shape_;
};

}  // namespace stpain
