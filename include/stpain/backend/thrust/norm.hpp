#pragma once
// Thrust kernels of LayerNorm (last dimension) and LayerNorm2d (channels of
// NCHW). Statistics: one item per normalised group (two passes, as the cpu
// kernels); weight/bias gradients: one item per channel, summing over groups
// in order, so no atomics and the same result on every system.
#include "stpain/backend/thrust/policy.hpp"
#include "stpain/layers/layer_norm.hpp"

namespace stpain::backend {

template <thrust_backend P, class T>
void layer_norm_forward(P, const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows,
                        int64_t cols, double eps) {
  thrust_detail::for_n<P>(rows, [=] STPAIN_HD(int64_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (int64_t c = 0; c < cols; ++c) s += xr[c];
    const T m = s / T(cols);
    T v = 0;
    for (int64_t c = 0; c < cols; ++c) v += (xr[c] - m) * (xr[c] - m);
    const T rs = T(1) / thrust_detail::sqrt_(v / T(cols) + T(eps));
    for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) * rs * weight[c] + bias[c];
    mean[r] = m;
    rstd[r] = rs;
  });
}

// dx overwritten; dweight and dbias accumulate.
template <thrust_backend P, class T>
void layer_norm_backward(P, const T* x, const T* weight, const T* mean, const T* rstd, const T* dy, T* dx,
                         T* dweight, T* dbias, int64_t rows, int64_t cols) {
  thrust_detail::for_n<P>(rows, [=] STPAIN_HD(int64_t r) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    T* dxr = dx + r * cols;
    const T m = mean[r], rs = rstd[r];
    T sum_g = 0, sum_g_xhat = 0;  // g = dy * weight, the gradient of xhat
    for (int64_t c = 0; c < cols; ++c) {
      const T g = dyr[c] * weight[c];
      sum_g += g;
      sum_g_xhat += g * (xr[c] - m) * rs;
    }
    const T mean_g = sum_g / T(cols), mean_g_xhat = sum_g_xhat / T(cols);
    for (int64_t c = 0; c < cols; ++c)
      dxr[c] = rs * (dyr[c] * weight[c] - mean_g - (xr[c] - m) * rs * mean_g_xhat);
  });
  thrust_detail::for_n<P>(cols, [=] STPAIN_HD(int64_t c) {
    T dw = 0, db = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const T g = dy[r * cols + c];
      dw += g * (x[r * cols + c] - mean[r]) * rstd[r];
      db += g;
    }
    dweight[c] += dw;
    dbias[c] += db;
  });
}

// x viewed as [outer, channels, inner]: every (outer, inner) position is
// normalised over the channels; mean/rstd are [outer, inner].
template <thrust_backend P, class T>
void layer_norm_channels_first_forward(P, const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                                       int64_t outer, int64_t channels, int64_t inner, double eps) {
  thrust_detail::for_n<P>(outer * inner, [=] STPAIN_HD(int64_t u) {
    const int64_t off = (u / inner) * channels * inner + u % inner;
    T s = 0;
    for (int64_t c = 0; c < channels; ++c) s += x[off + c * inner];
    const T m = s / T(channels);
    T v = 0;
    for (int64_t c = 0; c < channels; ++c) v += (x[off + c * inner] - m) * (x[off + c * inner] - m);
    const T rs = T(1) / thrust_detail::sqrt_(v / T(channels) + T(eps));
    for (int64_t c = 0; c < channels; ++c) y[off + c * inner] = (x[off + c * inner] - m) * rs * weight[c] + bias[c];
    mean[u] = m;
    rstd[u] = rs;
  });
}

template <thrust_backend P, class T>
void layer_norm_channels_first_backward(P, const T* x, const T* weight, const T* mean, const T* rstd, const T* dy,
                                        T* dx, T* dweight, T* dbias, int64_t outer, int64_t channels, int64_t inner) {
  thrust_detail::for_n<P>(outer * inner, [=] STPAIN_HD(int64_t u) {
    const int64_t off = (u / inner) * channels * inner + u % inner;
    const T m = mean[u], rs = rstd[u];
    T sum_g = 0, sum_g_xhat = 0;
    for (int64_t c = 0; c < channels; ++c) {
      const T g = dy[off + c * inner] * weight[c];
      sum_g += g;
      sum_g_xhat += g * (x[off + c * inner] - m) * rs;
    }
    const T inv_c = T(1) / T(channels);
    for (int64_t c = 0; c < channels; ++c) {
      const T xhat = (x[off + c * inner] - m) * rs;
      dx[off + c * inner] = rs * (dy[off + c * inner] * weight[c] - sum_g * inv_c - xhat * sum_g_xhat * inv_c);
    }
  });
  thrust_detail::for_n<P>(channels, [=] STPAIN_HD(int64_t c) {
    T dw = 0, db = 0;
    for (int64_t n = 0; n < outer; ++n)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t at = (n * channels + c) * inner + i;
        dw += dy[at] * (x[at] - mean[n * inner + i]) * rstd[n * inner + i];
        db += dy[at];
      }
    dweight[c] += dw;
    dbias[c] += db;
  });
}

}  // namespace stpain::backend
