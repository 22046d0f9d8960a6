#pragma once
// Layers that only move values around:
//   Flatten(start_dim = 1, end_dim = -1)  torch.nn.Flatten; a view, no copy.
//   Reshape({C, H, W})                    x.reshape(N, C, H, W): the batch
//                                         dimension is kept, one extent may be -1;
//                                         a view, no copy.
//   Permute({0, 2, 3, 1})                 x.permute(dims) into new memory
//                                         (NCHW -> NHWC; {0, 3, 1, 2} back).
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain::backend {

// dst[b, c, r] = src[b, r, c]: `batch` row-major [rows, cols] matrices
// transposed tile by tile, so reads and writes both stay in cache.
template <class T>
void transpose_batched(cpu, const T* src, T* dst, int64_t batch, int64_t rows, int64_t cols) {
  constexpr int64_t tile = 32;
  const int64_t row_tiles = (rows + tile - 1) / tile, col_tiles = (cols + tile - 1) / tile;
  const int64_t tiles = row_tiles * col_tiles;
  parallel_for(batch * tiles, 16, [=](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t b = u / tiles, r0 = (u % tiles) / col_tiles * tile, c0 = (u % tiles) % col_tiles * tile;
      const T* s = src + b * rows * cols;
      T* d = dst + b * rows * cols;
      const int64_t r1 = std::min(r0 + tile, rows), c1 = std::min(c0 + tile, cols);
      for (int64_t c = c0; c < c1; ++c) {
#pragma omp simd
        for (int64_t r = r0; r < r1; ++r) d[c * rows + r] = s[r * cols + c];
      }
    }
  });
}

// dst = src.permute(perm) for a row-major src of extents `dims`. Dimensions of
// extent 1 are dropped and runs of dimensions that stay adjacent are merged
// first, so NCHW <-> NHWC becomes a batched 2-D transpose ([N, C, HW] <->
// [N, HW, C]) and an identity becomes a copy.
template <class T>
void permute(cpu c, const T* src, T* dst, const std::vector<int64_t>& dims, const std::vector<int>& perm) {
  int64_t numel = 1;
  for (int64_t d : dims) numel *= d;
  if (numel == 0) return;
  // Axes of extent > 1, renumbered in input order, listed in output order.
  std::vector<int> renumbered(dims.size(), -1);
  std::vector<int64_t> kept_dims;
  for (size_t a = 0; a < dims.size(); ++a)
    if (dims[a] != 1) {
      renumbered[a] = static_cast<int>(kept_dims.size());
      kept_dims.push_back(dims[a]);
    }
  std::vector<int> order;
  for (int p : perm)
    if (renumbered[static_cast<size_t>(p)] >= 0) order.push_back(renumbered[static_cast<size_t>(p)]);
  // Groups of input axes that stay consecutive: group_first[g] in output order.
  std::vector<int> group_first;
  std::vector<int64_t> group_extent;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0 && order[i] == order[i - 1] + 1) {
      group_extent.back() *= kept_dims[static_cast<size_t>(order[i])];
    } else {
      group_first.push_back(order[i]);
      group_extent.push_back(kept_dims[static_cast<size_t>(order[i])]);
    }
  }
  const size_t k = group_first.size();
  // group_perm[i]: the input position of the i-th output group.
  std::vector<int> by_input(k);
  std::iota(by_input.begin(), by_input.end(), 0);
  std::sort(by_input.begin(), by_input.end(), [&](int a, int b) { return group_first[a] < group_first[b]; });
  std::vector<int> group_perm(k);
  std::vector<int64_t> in_dims(k);
  for (size_t pos = 0; pos < k; ++pos) {
    group_perm[static_cast<size_t>(by_input[pos])] = static_cast<int>(pos);
    in_dims[pos] = group_extent[static_cast<size_t>(by_input[pos])];
  }

  if (k <= 1) {
    cpu::copy_bytes(dst, src, sizeof(T) * static_cast<size_t>(numel));
  } else if (k == 2) {  // group_perm == {1, 0}
    transpose_batched(c, src, dst, int64_t{1}, in_dims[0], in_dims[1]);
  } else if (k == 3 && group_perm == std::vector<int>{0, 2, 1}) {
    transpose_batched(c, src, dst, in_dims[0], in_dims[1], in_dims[2]);
  } else {
    // General case: every output row (all but the last output dimension)
    // gathers from src with the stride of the input axis that lands last.
    std::vector<int64_t> in_stride(k, 1);
    for (size_t a = k - 1; a > 0; --a) in_stride[a - 1] = in_stride[a] * in_dims[a];
    std::vector<int64_t> out_dims(k), stride(k);
    for (size_t i = 0; i < k; ++i) {
      out_dims[i] = in_dims[static_cast<size_t>(group_perm[i])];
      stride[i] = in_stride[static_cast<size_t>(group_perm[i])];
    }
    const int64_t last = out_dims[k - 1], step = stride[k - 1];
    parallel_for(numel / last, std::max<int64_t>(1, (1 << 14) / last), [=](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        int64_t offset = 0;
        for (int64_t i = static_cast<int64_t>(k) - 2, rem = row; i >= 0; --i) {
          offset += rem % out_dims[static_cast<size_t>(i)] * stride[static_cast<size_t>(i)];
          rem /= out_dims[static_cast<size_t>(i)];
        }
        T* d = dst + row * last;
        for (int64_t j = 0; j < last; ++j) d[j] = src[offset + j * step];
      }
    });
  }
}

}  // namespace stpain::backend

namespace stpain {

namespace detail {
inline std::string dims_str(const std::vector<int>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}
}  // namespace detail

// Merges dimensions start_dim..end_dim into one (torch.nn.Flatten).
template <class B = cpu, class T = float>
class Flatten : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int start_dim = 1;
    int end_dim = -1;
  };

  explicit Flatten(int start_dim = 1, int end_dim = -1) : Flatten(Options{start_dim, end_dim}) {}
  explicit Flatten(const Options& o) : opt_(o) {}

  tensor forward(const tensor& x) {
    const Shape& s = x.shape();
    const int r = s.rank();
    STPAIN_CHECK(opt_.start_dim >= -r && opt_.start_dim < r && opt_.end_dim >= -r && opt_.end_dim < r, ShapeError,
                 name(), ": input ", s.str(), " has no dimension ", opt_.start_dim, " or ", opt_.end_dim);
    const int start = s.axis(opt_.start_dim), end = s.axis(opt_.end_dim);
    STPAIN_CHECK(start <= end, ShapeError, name(), ": on input ", s.str(), " start_dim comes after end_dim");
    std::vector<int64_t> out(s.begin(), s.begin() + start);
    out.push_back(s.span(start, end + 1));
    out.insert(out.end(), s.begin() + end + 1, s.end());
    input_shape_ = s;
    output_shape_ = Shape(std::move(out));
    return x.reshape(output_shape_);
  }

  tensor backward(const tensor& dy) {
    STPAIN_CHECK(output_shape_.rank() > 0, Error, "Flatten: backward() called before forward()");
    expect_shape(dy.shape(), output_shape_, name() + ".backward dy");
    return dy.reshape(input_shape_);
  }

  const Options& options() const { return opt_; }

 private:
  std::string name() const {
    return "Flatten(start_dim=" + std::to_string(opt_.start_dim) + ", end_dim=" + std::to_string(opt_.end_dim) + ")";
  }

  Options opt_;
  Shape input_shape_, output_shape_;
};

// Views each sample as `shape` (the batch dimension is kept): Reshape({3, -1})
// maps [N, 12] to [N, 3, 4].
template <class B = cpu, class T = float>
class Reshape : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    std::vector<int64_t> shape;  // per sample; one extent may be -1
  };

  explicit Reshape(std::vector<int64_t> shape) : Reshape(Options{std::move(shape)}) {}
  explicit Reshape(Options o) : opt_(std::move(o)) {
    const auto inferred = std::count(opt_.shape.begin(), opt_.shape.end(), int64_t{-1});
    const bool valid = std::all_of(opt_.shape.begin(), opt_.shape.end(), [](int64_t d) { return d >= -1; });
    STPAIN_CHECK(inferred <= 1 && valid, ShapeError, name(), ": extents must be >= 0, with at most one -1");
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() >= 1, ShapeError, name(), ": input ", x.shape().str(), " has no batch dimension");
    const int64_t per_sample = x.shape().span(1, x.rank());
    std::vector<int64_t> out{x.size(0)};
    int64_t known = 1;
    for (int64_t d : opt_.shape) {
      out.push_back(d);
      if (d != -1) known *= d;
    }
    const bool infer = std::find(opt_.shape.begin(), opt_.shape.end(), int64_t{-1}) != opt_.shape.end();
    const bool fits = infer ? known > 0 && per_sample % known == 0 : known == per_sample;
    STPAIN_CHECK(fits, ShapeError, name(), ": input ", x.shape().str(), " has ", per_sample,
                 " values per sample, which do not fill a shape ", extents_str());
    if (infer) *std::find(out.begin() + 1, out.end(), int64_t{-1}) = per_sample / known;
    input_shape_ = x.shape();
    output_shape_ = Shape(std::move(out));
    return x.reshape(output_shape_);
  }

  tensor backward(const tensor& dy) {
    STPAIN_CHECK(output_shape_.rank() > 0, Error, "Reshape: backward() called before forward()");
    expect_shape(dy.shape(), output_shape_, name() + ".backward dy");
    return dy.reshape(input_shape_);
  }

  const Options& options() const { return opt_; }

 private:
  std::string extents_str() const {
    std::string s = "[";
    for (size_t i = 0; i < opt_.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(opt_.shape[i]);
    return s + "]";
  }
  std::string name() const { return "Reshape(" + extents_str() + ")"; }

  Options opt_;
  Shape input_shape_, output_shape_;
};

// Reorders dimensions: output dimension i is input dimension dims[i]
// (x.permute(dims)); backward applies the inverse permutation.
template <class B = cpu, class T = float>
class Permute : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    std::vector<int> dims;  // negative values count from the end
  };

  explicit Permute(std::vector<int> dims) : Permute(Options{std::move(dims)}) {}
  explicit Permute(Options o) : opt_(std::move(o)) {
    const int n = static_cast<int>(opt_.dims.size());
    perm_.resize(opt_.dims.size());
    inverse_.assign(opt_.dims.size(), -1);
    for (int i = 0; i < n; ++i) {
      const int d = opt_.dims[static_cast<size_t>(i)];
      const int a = d < 0 ? d + n : d;
      STPAIN_CHECK(a >= 0 && a < n && inverse_[static_cast<size_t>(a)] < 0, ShapeError, name(),
                   ": not a permutation of the dimensions of a rank-", n, " tensor");
      perm_[static_cast<size_t>(i)] = a;
      inverse_[static_cast<size_t>(a)] = i;
    }
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() == static_cast<int>(perm_.size()), ShapeError, name(), ": input ", x.shape().str(),
                 " has rank ", x.rank(), ", expected ", perm_.size());
    input_shape_ = x.shape();
    return apply(x, perm_);
  }

  tensor backward(const tensor& dy) {
    STPAIN_CHECK(input_shape_.rank() == static_cast<int>(perm_.size()), Error, name(),
                 ": backward() called before forward()");
    expect_shape(dy.shape(), permuted(input_shape_, perm_), name() + ".backward dy");
    return apply(dy, inverse_);
  }

  const Options& options() const { return opt_; }

 private:
  static Shape permuted(const Shape& s, const std::vector<int>& perm) {
    std::vector<int64_t> out;
    for (int p : perm) out.push_back(s[p]);
    return Shape(std::move(out));
  }
  static tensor apply(const tensor& x, const std::vector<int>& perm) {
    tensor y = tensor::empty(permuted(x.shape(), perm));
    permute(B{}, x.data(), y.data(), x.shape().dims(), perm);
    return y;
  }
  std::string name() const { return "Permute(" + detail::dims_str(opt_.dims) + ")"; }

  Options opt_;
  std::vector<int> perm_, inverse_;
  Shape input_shape_;
};

}  // namespace stpain
