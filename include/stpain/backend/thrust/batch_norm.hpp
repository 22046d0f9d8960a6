#pragma once
// Thrust kernels of BatchNorm1d/2d on x viewed as [n, c, l]: statistics and
// gradients one item per channel (two passes, in order, as the cpu kernels),
// the normalisation one item per value.
#include "stpain/backend/thrust/policy.hpp"
#include "stpain/layers/batch_norm.hpp"

namespace stpain::backend {

template <thrust_backend P, class T>
void batch_norm_statistics(P, const T* x, T* mean, T* var, int64_t n, int64_t c, int64_t l) {
  thrust_detail::for_n<P>(c, [=] STPAIN_HD(int64_t ch) {
    T s = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < l; ++j) s += x[(i * c + ch) * l + j];
    const T m = s / T(n * l);
    T v = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < l; ++j) {
        const T d = x[(i * c + ch) * l + j] - m;
        v += d * d;
      }
    mean[ch] = m;
    var[ch] = v / T(n * l);
  });
}

template <thrust_backend P, class T>
void batch_norm_update_running(P, const T* mean, const T* var, T* running_mean, T* running_var,
                               T* num_batches_tracked, int64_t c, int64_t count, double momentum) {
  const T mom = T(momentum), unbias = T(count) / T(count - 1);
  thrust_detail::for_n<P>(c, [=] STPAIN_HD(int64_t ch) {
    running_mean[ch] = (T(1) - mom) * running_mean[ch] + mom * mean[ch];
    running_var[ch] = (T(1) - mom) * running_var[ch] + mom * var[ch] * unbias;
    if (ch == 0) num_batches_tracked[0] += T(1);
  });
}

template <thrust_backend P, class T>
void batch_norm_inverse_std(P, const T* var, T* rstd, int64_t c, double eps) {
  thrust_detail::for_n<P>(c, [=] STPAIN_HD(int64_t ch) { rstd[ch] = T(1) / thrust_detail::sqrt_(var[ch] + T(eps)); });
}

template <thrust_backend P, class T>
void batch_norm_forward(P, const T* x, const T* mean, const T* rstd, const T* weight, const T* bias, T* y, int64_t n,
                        int64_t c, int64_t l) {
  thrust_detail::for_n<P>(n * c * l, [=] STPAIN_HD(int64_t i) {
    const int64_t ch = (i / l) % c;
    const T scale = rstd[ch] * (weight ? weight[ch] : T(1));
    const T shift = (bias ? bias[ch] : T(0)) - mean[ch] * scale;
    y[i] = x[i] * scale + shift;
  });
}

// dx overwritten; dweight and dbias (null unless affine) accumulate.
template <thrust_backend P, class T>
void batch_norm_backward(P, const T* x, const T* mean, const T* rstd, const T* weight, const T* dy, T* dx,
                         T* dweight, T* dbias, int64_t n, int64_t c, int64_t l, bool batch_statistics) {
  thrust_detail::for_n<P>(c, [=] STPAIN_HD(int64_t ch) {
    const T m = mean[ch], rs = rstd[ch], w = weight ? weight[ch] : T(1);
    T sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < l; ++j) {
        const int64_t at = (i * c + ch) * l + j;
        sum_dy += dy[at];
        sum_dy_xhat += dy[at] * (x[at] - m) * rs;
      }
    if (dweight) dweight[ch] += sum_dy_xhat;
    if (dbias) dbias[ch] += sum_dy;
    const T count = T(n * l);
    const T mean_dy = batch_statistics ? sum_dy / count : T(0);
    const T mean_dy_xhat = batch_statistics ? sum_dy_xhat / count : T(0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < l; ++j) {
        const int64_t at = (i * c + ch) * l + j;
        dx[at] = w * rs * (dy[at] - mean_dy - (x[at] - m) * rs * mean_dy_xhat);
      }
  });
}

}  // namespace stpain::backend
