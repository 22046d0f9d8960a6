#pragma once
// Thrust kernels of the elementwise and small reduction layers: activations,
// softmax, bias, dropout, layer scale, mean pooling and optimiser updates.
// One work item per output value; reductions are one item per output
// (row or column) looping over the reduced extent.
#include <thrust/logical.h>

#include "stpain/backend/thrust/policy.hpp"
#include "stpain/layers/activations.hpp"
#include "stpain/layers/dropout.hpp"
#include "stpain/layers/layer_scale.hpp"
#include "stpain/layers/pooling.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/optim.hpp"

namespace stpain::backend {

namespace thrust_detail {

// Device-callable forms of the activation ops of layers/activations.hpp (whose
// vectorised float maths is host code). Same formulas; the C library's
// exp/erf/tanh differ from vmath's by an ulp or so.
struct relu_fn {
  template <class T>
  STPAIN_HD T value(T x) const {
    return x < T(0) ? T(0) : x;
  }
  template <class T>
  STPAIN_HD T derivative(T x) const {
    return x > T(0) ? T(1) : T(0);
  }
};
struct leaky_relu_fn {
  double slope;
  template <class T>
  STPAIN_HD T value(T x) const {
    return x > T(0) ? x : x * T(slope);
  }
  template <class T>
  STPAIN_HD T derivative(T x) const {
    return x > T(0) ? T(1) : T(slope);
  }
};
struct sigmoid_fn {
  template <class T>
  STPAIN_HD T value(T x) const {
    return T(1) / (T(1) + exp_(-x));
  }
  template <class T>
  STPAIN_HD T derivative(T x) const {
    const T s = value(x);
    return s * (T(1) - s);
  }
};
struct tanh_fn {
  template <class T>
  STPAIN_HD T value(T x) const {
    return tanh_(x);
  }
  template <class T>
  STPAIN_HD T derivative(T x) const {
    const T t = tanh_(x);
    return T(1) - t * t;
  }
};
struct gelu_fn {
  bool tanh_approximation;
  template <class T>
  STPAIN_HD T value(T x) const {
    if (tanh_approximation) {
      const T beta = T(0.79788456080286535588), kappa = T(0.044715);
      return T(0.5) * x * (T(1) + tanh_(beta * (x + kappa * x * x * x)));
    }
    return T(0.5) * x * (T(1) + erf_(x * T(0.70710678118654752440)));
  }
  template <class T>
  STPAIN_HD T derivative(T x) const {
    if (tanh_approximation) {
      const T beta = T(0.79788456080286535588), kappa = T(0.044715);
      const T t = tanh_(beta * (x + kappa * x * x * x));
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * beta * (T(1) + T(3) * kappa * x * x);
    }
    const T cdf = T(0.5) * (T(1) + erf_(x * T(0.70710678118654752440)));
    const T pdf = exp_(T(-0.5) * x * x) * T(0.39894228040143267794);
    return cdf + x * pdf;
  }
};

inline relu_fn device_op(const relu_op&) { return {}; }
inline leaky_relu_fn device_op(const leaky_relu_op& op) { return {op.negative_slope}; }
inline sigmoid_fn device_op(const sigmoid_op&) { return {}; }
inline tanh_fn device_op(const tanh_op&) { return {}; }
inline gelu_fn device_op(const gelu_op& op) { return {op.tanh_approximation}; }
inline gelu_fn device_op(const gelu_erf_op&) { return {false}; }
inline gelu_fn device_op(const gelu_tanh_op&) { return {true}; }

template <class Op>
concept has_device_op = requires(const Op& op) { thrust_detail::device_op(op); };

// dropout_hash of layers/dropout.hpp, callable on the device: the same mask.
STPAIN_HD inline uint64_t dropout_hash(uint64_t key, uint64_t i) {
  uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace thrust_detail

// ---- Activations ---------------------------------------------------------------

template <thrust_backend P, class Op, class T>
void elementwise_forward(P, const Op& op, const T* x, T* y, int64_t n) {
  if constexpr (thrust_detail::has_device_op<Op>) {
    const auto f = thrust_detail::device_op(op);
    thrust_detail::for_n<P>(n, [=] STPAIN_HD(int64_t i) { y[i] = f.value(x[i]); });
  } else {  // an op without a device form: the cpu kernel on the same memory
    P::synchronize();
    elementwise_forward(cpu{}, op, x, y, n);
  }
}

template <thrust_backend P, class Op, class T>
void elementwise_backward(P, const Op& op, const T* x, const T* dy, T* dx, int64_t n) {
  if constexpr (thrust_detail::has_device_op<Op>) {
    const auto f = thrust_detail::device_op(op);
    thrust_detail::for_n<P>(n, [=] STPAIN_HD(int64_t i) { dx[i] = dy[i] * f.derivative(x[i]); });
  } else {
    P::synchronize();
    elementwise_backward(cpu{}, op, x, dy, dx, n);
  }
}

// ---- Softmax over one dimension of [outer, dim, inner] -----------------------------

template <thrust_backend P, class T>
void softmax_forward(P, const T* x, T* y, int64_t outer, int64_t dim, int64_t inner) {
  if (dim == 0) return;
  thrust_detail::for_n<P>(outer * inner, [=] STPAIN_HD(int64_t u) {
    const int64_t off = (u / inner) * dim * inner + u % inner;
    T m = x[off];
    for (int64_t d = 1; d < dim; ++d) m = thrust_detail::max_(m, x[off + d * inner]);
    T sum = 0;
    for (int64_t d = 0; d < dim; ++d) {
      const T e = thrust_detail::exp_(x[off + d * inner] - m);
      y[off + d * inner] = e;
      sum += e;
    }
    const T inv = T(1) / sum;
    for (int64_t d = 0; d < dim; ++d) y[off + d * inner] *= inv;
  });
}

// dx = y * (dy - sum_dim(dy * y)), y = softmax(x) recomputed into dx.
template <thrust_backend P, class T>
void softmax_backward(P p, const T* x, const T* dy, T* dx, int64_t outer, int64_t dim, int64_t inner) {
  if (dim == 0) return;
  softmax_forward(p, x, dx, outer, dim, inner);
  thrust_detail::for_n<P>(outer * inner, [=] STPAIN_HD(int64_t u) {
    const int64_t off = (u / inner) * dim * inner + u % inner;
    T dot = 0;
    for (int64_t d = 0; d < dim; ++d) dot += dy[off + d * inner] * dx[off + d * inner];
    for (int64_t d = 0; d < dim; ++d) dx[off + d * inner] *= dy[off + d * inner] - dot;
  });
}

// Row-wise softmax / log-softmax in double precision, as the cpu kernel.
template <thrust_backend P, class T>
void softmax_rows(P, const T* x, T* y, int64_t rows, int64_t classes, bool log) {
  thrust_detail::for_n<P>(rows, [=] STPAIN_HD(int64_t i) {
    const T* z = x + i * classes;
    T* out = y + i * classes;
    double zmax = z[0];
    for (int64_t c = 1; c < classes; ++c) zmax = thrust_detail::max_(zmax, static_cast<double>(z[c]));
    double sum_exp = 0.0;
    for (int64_t c = 0; c < classes; ++c) sum_exp += thrust_detail::exp_(static_cast<double>(z[c]) - zmax);
    const double log_sum = thrust_detail::log_(sum_exp) + zmax;
    for (int64_t c = 0; c < classes; ++c) {
      const double lp = static_cast<double>(z[c]) - log_sum;
      out[c] = static_cast<T>(log ? lp : thrust_detail::exp_(lp));
    }
  });
}

// ---- Bias and column sums ------------------------------------------------------

// y[i] += x[i].
template <thrust_backend P, class T>
void add_into(P, const T* x, T* y, int64_t n) {
  thrust_detail::for_n<P>(n, [=] STPAIN_HD(int64_t i) { y[i] += x[i]; });
}

// True when no value of x[0, n) is NaN or infinite (x - x is 0 for every
// finite x and NaN otherwise): fit()'s gradient check, without reading the
// gradients back to the host.
template <thrust_backend P, class T>
bool all_finite(P, const T* x, int64_t n) {
  return thrust::all_of(P::exec(), x, x + n, [] STPAIN_HD(T v) { return v - v == T(0); });
}

template <thrust_backend P, class T>
void add_bias(P, T* y, const T* bias, int64_t rows, int64_t cols) {
  thrust_detail::for_n<P>(rows * cols, [=] STPAIN_HD(int64_t i) { y[i] += bias[i % cols]; });
}

// out[c] += sum over rows of x[r, c]: one item per column (coalesced reads on a GPU).
template <thrust_backend P, class T>
void accumulate_column_sums(P, const T* x, T* out, int64_t rows, int64_t cols) {
  thrust_detail::for_n<P>(cols, [=] STPAIN_HD(int64_t c) {
    T s = 0;
    for (int64_t r = 0; r < rows; ++r) s += x[r * cols + c];
    out[c] += s;
  });
}

// ---- Dropout and drop path ---------------------------------------------------------

template <thrust_backend P, class T>
void dropout_apply(P, const T* src, T* dst, int64_t n, uint64_t key, double p) {
  const uint64_t keep_below = static_cast<uint64_t>((1.0 - p) * 0x1.0p53);
  const T scale = p < 1.0 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
  thrust_detail::for_n<P>(n, [=] STPAIN_HD(int64_t i) {
    dst[i] = (thrust_detail::dropout_hash(key, static_cast<uint64_t>(i)) >> 11) < keep_below ? src[i] * scale : T(0);
  });
}

template <thrust_backend P, class T>
void scale_samples(P, const T* x, const T* scale, T* y, int64_t samples, int64_t per_sample) {
  thrust_detail::for_n<P>(samples * per_sample, [=] STPAIN_HD(int64_t i) { y[i] = x[i] * scale[i / per_sample]; });
}

// ---- Layer scale ---------------------------------------------------------------

template <thrust_backend P, class T>
void scale_channels_last(P, const T* x, const T* gamma, T* y, int64_t rows, int64_t channels) {
  thrust_detail::for_n<P>(rows * channels, [=] STPAIN_HD(int64_t i) { y[i] = x[i] * gamma[i % channels]; });
}

template <thrust_backend P, class T>
void scale_channels_first(P, const T* x, const T* gamma, T* y, int64_t batch, int64_t channels, int64_t plane) {
  thrust_detail::for_n<P>(batch * channels * plane,
                          [=] STPAIN_HD(int64_t i) { y[i] = x[i] * gamma[(i / plane) % channels]; });
}

template <thrust_backend P, class T>
void accumulate_channels_last_products(P, const T* dy, const T* x, T* dgamma, int64_t rows, int64_t channels) {
  thrust_detail::for_n<P>(channels, [=] STPAIN_HD(int64_t c) {
    T s = 0;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * channels + c] * x[r * channels + c];
    dgamma[c] += s;
  });
}

template <thrust_backend P, class T>
void accumulate_channels_first_products(P, const T* dy, const T* x, T* dgamma, int64_t batch, int64_t channels,
                                        int64_t plane) {
  thrust_detail::for_n<P>(channels, [=] STPAIN_HD(int64_t c) {
    T s = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t off = (n * channels + c) * plane;
      for (int64_t i = 0; i < plane; ++i) s += dy[off + i] * x[off + i];
    }
    dgamma[c] += s;
  });
}

// ---- Mean over one dimension of [outer, extent, inner] ------------------------------

template <thrust_backend P, class T>
void mean_forward(P, const T* x, T* y, int64_t outer, int64_t extent, int64_t inner) {
  const T inv = T(1) / static_cast<T>(extent);
  thrust_detail::for_n<P>(outer * inner, [=] STPAIN_HD(int64_t u) {
    const int64_t off = (u / inner) * extent * inner + u % inner;
    T s = 0;
    for (int64_t d = 0; d < extent; ++d) s += x[off + d * inner];
    y[u] = s * inv;
  });
}

template <thrust_backend P, class T>
void mean_backward(P, const T* dy, T* dx, int64_t outer, int64_t extent, int64_t inner) {
  const T inv = T(1) / static_cast<T>(extent);
  thrust_detail::for_n<P>(outer * extent * inner, [=] STPAIN_HD(int64_t i) {
    dx[i] = dy[(i / (extent * inner)) * inner + i % inner] * inv;
  });
}

// ---- Optimisers ------------------------------------------------------------------

template <thrust_backend P, class T>
void sgd_update(P, T* param, const T* grad, T* momentum_buffer, int64_t n, const SGDCoefficients& k) {
  const T lr = static_cast<T>(k.lr), wd = static_cast<T>(k.weight_decay), mu = static_cast<T>(k.momentum);
  const T keep = static_cast<T>(1.0 - k.dampening);
  const bool first = k.first_step, nesterov = k.nesterov;
  if (!momentum_buffer) {
    thrust_detail::for_n<P>(n, [=] STPAIN_HD(int64_t i) { param[i] -= lr * (grad[i] + wd * param[i]); });
    return;
  }
  thrust_detail::for_n<P>(n, [=] STPAIN_HD(int64_t i) {
    const T d = grad[i] + wd * param[i];
    const T buf = first ? d : mu * momentum_buffer[i] + keep * d;
    momentum_buffer[i] = buf;
    param[i] -= lr * (nesterov ? d + mu * buf : buf);
  });
}

template <thrust_backend P, class T>
void adam_update(P, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
                 const AdamCoefficients& k) {
  const T b1 = static_cast<T>(k.beta1), b2 = static_cast<T>(k.beta2);
  const T one_minus_b1 = static_cast<T>(1.0 - k.beta1), one_minus_b2 = static_cast<T>(1.0 - k.beta2);
  const T step_size = static_cast<T>(k.step_size), bc2_sqrt = static_cast<T>(k.bias_correction2_sqrt);
  const T eps = static_cast<T>(k.eps), l2 = static_cast<T>(k.l2), decay = static_cast<T>(k.decay);
  thrust_detail::for_n<P>(n, [=] STPAIN_HD(int64_t i) {
    const T p = param[i] * decay;
    const T g = grad[i] + l2 * p;
    const T m = b1 * exp_avg[i] + one_minus_b1 * g;
    const T v = b2 * exp_avg_sq[i] + one_minus_b2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    T v_used = v;
    if (max_exp_avg_sq) {
      v_used = thrust_detail::max_(max_exp_avg_sq[i], v);
      max_exp_avg_sq[i] = v_used;
    }
    param[i] = p - step_size * m / (thrust_detail::sqrt_(v_used) / bc2_sqrt + eps);
  });
}

}  // namespace stpain::backend
