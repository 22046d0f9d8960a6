#pragma once
// Mean pooling:
//   GlobalAvgPool2d  [N, C, H, W] -> [N, C] (or [N, C, 1, 1] with keepdim), as
//                    torch.nn.AdaptiveAvgPool2d(1) followed by flatten(1).
//   MeanPool(dim)    the mean over one dimension, x.mean(dim, keepdim), e.g.
//                    over time: [N, T, F] -> [N, F].
#include <algorithm>
#include <array>

#include "stpain/layers/module.hpp"

namespace stpain::backend {

// y[o, i] = mean over d of x[o, d, i], x viewed as [outer, extent, inner].
template <class T>
void mean_forward(cpu, const T* x, T* y, int64_t outer, int64_t extent, int64_t inner) {
  const T inv = T(1) / static_cast<T>(extent);
  parallel_for(outer, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(extent * inner, 1)), [=](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const T* src = x + o * extent * inner;
      T* dst = y + o * inner;
      if (inner == 1) {
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t d = 0; d < extent; ++d) s += src[d];
        *dst = s * inv;
        continue;
      }
      std::fill(dst, dst + inner, T(0));
      for (int64_t d = 0; d < extent; ++d) {
#pragma omp simd
        for (int64_t i = 0; i < inner; ++i) dst[i] += src[d * inner + i];
      }
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) dst[i] *= inv;
    }
  });
}

// dx[o, d, i] = dy[o, i] / extent
template <class T>
void mean_backward(cpu, const T* dy, T* dx, int64_t outer, int64_t extent, int64_t inner) {
  const T inv = T(1) / static_cast<T>(extent);
  parallel_for(outer, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(extent * inner, 1)), [=](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const T* src = dy + o * inner;
      T* dst = dx + o * extent * inner;
      for (int64_t d = 0; d < extent; ++d) {
#pragma omp simd
        for (int64_t i = 0; i < inner; ++i) dst[d * inner + i] = src[i] * inv;
      }
    }
  });
}

}  // namespace stpain::backend

namespace stpain {

template <class B = cpu, class T = float>
class GlobalAvgPool2d : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    bool keepdim = false;  // [N, C, 1, 1] instead of [N, C]
  };

  explicit GlobalAvgPool2d(bool keepdim = false) : GlobalAvgPool2d(Options{keepdim}) {}
  explicit GlobalAvgPool2d(const Options& o) : opt_(o) {}

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == 4, ShapeError, "GlobalAvgPool2d: input ", x.shape().str(), " is not [N, C, H, W]");
    input_shape_ = x.shape();
    const int64_t n = x.size(0), c = x.size(1);
    tensor y = tensor::empty(opt_.keepdim ? Shape{n, c, 1, 1} : Shape{n, c});
    mean_forward(B{}, x.data(), y.data(), n * c, x.size(2) * x.size(3), int64_t{1});
    return y;
  }

  tensor backward(const tensor& dy) {
    STPAIN_CHECK(input_shape_.rank() == 4, Error, "GlobalAvgPool2d: backward() called before forward()");
    const Shape& s = input_shape_;
    expect_shape(dy.shape(), opt_.keepdim ? Shape{s[0], s[1], 1, 1} : Shape{s[0], s[1]}, "GlobalAvgPool2d.backward dy");
    tensor dx = tensor::empty(s);
    mean_backward(B{}, dy.data(), dx.data(), s[0] * s[1], s[2] * s[3], int64_t{1});
    return dx;
  }

  const Options& options() const { return opt_; }

 private:
  Options opt_;
  Shape input_shape_;
};

template <class B = cpu, class T = float>
class MeanPool : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int dim = 1;
    bool keepdim = false;  // keep `dim` with extent 1
  };

  explicit MeanPool(int dim = 1, bool keepdim = false) : MeanPool(Options{dim, keepdim}) {}
  explicit MeanPool(const Options& o) : opt_(o) {}

  tensor forward(const tensor& x) {
    const int r = x.rank();
    STPAIN_CHECK(opt_.dim >= -r && opt_.dim < r, ShapeError, "MeanPool(dim=", opt_.dim, "): input ",
                 x.shape().str(), " has no dimension ", opt_.dim);
    input_shape_ = x.shape();
    forward_done_ = true;
    const auto [outer, extent, inner] = extents(x.shape());
    tensor y = tensor::empty(output_shape());
    mean_forward(B{}, x.data(), y.data(), outer, extent, inner);
    return y;
  }

  tensor backward(const tensor& dy) {
    STPAIN_CHECK(forward_done_, Error, "MeanPool: backward() called before forward()");
    expect_shape(dy.shape(), output_shape(), "MeanPool.backward dy");
    const auto [outer, extent, inner] = extents(input_shape_);
    tensor dx = tensor::empty(input_shape_);
    mean_backward(B{}, dy.data(), dx.data(), outer, extent, inner);
    return dx;
  }

  const Options& options() const { return opt_; }

 private:
  Shape output_shape() const {
    return opt_.keepdim ? input_shape_.with(opt_.dim, 1) : input_shape_.without(opt_.dim);
  }
  std::array<int64_t, 3> extents(const Shape& s) const {
    const int a = s.axis(opt_.dim);
    return {s.span(0, a), s[a], s.span(a + 1, s.rank())};
  }

  Options opt_;
  Shape input_shape_;
  bool forward_done_ = false;
};

}  // namespace stpain
