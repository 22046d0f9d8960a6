#pragma once
// Thrust kernels that move values between layouts: permute (Permute, NCHW <->
// NHWC), batched transposes and the [O, A, B, I] -> [O, B, A, I] swap of the
// graph layers. One item per output value, gathering from the input.
#include <vector>

#include "stpain/backend/thrust/policy.hpp"
#include "stpain/core/error.hpp"
#include "stpain/layers/reshape.hpp"

namespace stpain::backend {

template <thrust_backend P, class T>
void transpose_batched(P, const T* src, T* dst, int64_t batch, int64_t rows, int64_t cols) {
  thrust_detail::for_n<P>(batch * rows * cols, [=] STPAIN_HD(int64_t i) {
    // i indexes dst [b, c, r]
    const int64_t r = i % rows, c = (i / rows) % cols, b = i / (rows * cols);
    dst[i] = src[(b * rows + r) * cols + c];
  });
}

namespace thrust_detail {
// Extents and input strides of a permutation, passed by value to the kernel.
struct PermuteGeometry {
  static constexpr int kMaxRank = 8;
  int rank = 0;
  int64_t out_dims[kMaxRank] = {};
  int64_t in_stride[kMaxRank] = {};  // the input stride of each output axis
};
}  // namespace thrust_detail

// dst = src.permute(perm) for a row-major src of extents `dims`.
template <thrust_backend P, class T>
void permute(P, const T* src, T* dst, const std::vector<int64_t>& dims, const std::vector<int>& perm) {
  using thrust_detail::PermuteGeometry;
  const int rank = static_cast<int>(dims.size());
  STPAIN_CHECK(rank <= PermuteGeometry::kMaxRank && perm.size() == dims.size(), ShapeError, "permute: rank ", rank,
               " with ", perm.size(), " axes (at most ", PermuteGeometry::kMaxRank, ")");
  PermuteGeometry g;
  g.rank = rank;
  int64_t numel = 1;
  std::vector<int64_t> stride(static_cast<size_t>(rank), 1);
  for (int a = rank - 1; a >= 0; --a) {
    stride[static_cast<size_t>(a)] = numel;
    numel *= dims[static_cast<size_t>(a)];
  }
  for (int i = 0; i < rank; ++i) {
    g.out_dims[i] = dims[static_cast<size_t>(perm[static_cast<size_t>(i)])];
    g.in_stride[i] = stride[static_cast<size_t>(perm[static_cast<size_t>(i)])];
  }
  thrust_detail::for_n<P>(numel, [=] STPAIN_HD(int64_t i) {
    int64_t offset = 0, rem = i;
    for (int a = g.rank - 1; a >= 0; --a) {
      offset += rem % g.out_dims[a] * g.in_stride[a];
      rem /= g.out_dims[a];
    }
    dst[i] = src[offset];
  });
}

// y[o, j, i, :] = x[o, i, j, :] for x [outer, a, b, inner].
template <thrust_backend P, class T>
void swap_middle_axes(P, const T* x, T* y, int64_t outer, int64_t a, int64_t b, int64_t inner) {
  thrust_detail::for_n<P>(outer * a * b * inner, [=] STPAIN_HD(int64_t u) {
    // u indexes y [o, j, i, e]
    const int64_t e = u % inner, i = (u / inner) % a, j = (u / (inner * a)) % b, o = u / (inner * a * b);
    y[u] = x[((o * a + i) * b + j) * inner + e];
  });
}

// Convolution weights between PyTorch's layout and channels-last, per block
// of `blocks`: w [C, kk] -> out [kk, C] (taps reversed when flipped), and
// grad [C, kk] += dw [kk, C].
template <thrust_backend P, class T>
void taps_to_channels_last(P, const T* w, T* out, int64_t blocks, int64_t c, int64_t kk, bool flipped) {
  thrust_detail::for_n<P>(blocks * kk * c, [=] STPAIN_HD(int64_t i) {
    const int64_t b = i / (kk * c), j = i / c % kk, ch = i % c;
    out[b * kk * c + (flipped ? kk - 1 - j : j) * c + ch] = w[b * kk * c + ch * kk + j];
  });
}
template <thrust_backend P, class T>
void add_taps_from_channels_last(P, const T* dw, T* grad, int64_t blocks, int64_t c, int64_t kk) {
  thrust_detail::for_n<P>(blocks * c * kk, [=] STPAIN_HD(int64_t i) {
    const int64_t b = i / (c * kk), ch = i / kk % c, j = i % kk;
    grad[i] += dw[b * kk * c + j * c + ch];
  });
}

}  // namespace stpain::backend
