#pragma once
// Activations with PyTorch's semantics: GELU, ReLU, LeakyReLU, Sigmoid, Tanh
// (elementwise) and Softmax (over one dimension).
//
// The elementwise layers are one template, Elementwise<Op>, where Op is a small
// struct with the value and the derivative at the input x. Every layer caches
// its *input*, never its output: Residual adds the skip into the block's output
// in place, which would corrupt a cached output (Sigmoid and Tanh recompute
// their value in backward instead; it is cheap next to the memory traffic).
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <string>

#include "stpain/backend/simd.hpp"
#include "stpain/layers/module.hpp"

namespace stpain::backend {

// Vectorisable float exp, erf and tanh. std::exp and friends are library calls
// that GCC does not vectorise without -ffast-math; these are straight-line
// code (polynomials, fma, selects) that `#pragma omp simd` turns into vector
// instructions. Accuracy, measured over every float against double precision:
// exp 1.01 ulp, erf 1.06 ulp, tanh 1.33 ulp. Doubles (the gradient checks) use
// the standard library.
namespace vmath {

inline double exp(double x) { return std::exp(x); }
inline double erf(double x) { return std::erf(x); }
inline double tanh(double x) { return std::tanh(x); }

// Cephes expf: exp(x) = 2^n exp(r), |r| <= ln2 / 2, with ln2 split in two so
// that r is exact; a degree-7 polynomial for exp(r).
[[gnu::always_inline]] inline float exp(float x) {
  const float xc = std::min(std::max(x, -87.33654f), 88.72283f);
  const float n = (xc * 1.44269504f + 12582912.f) - 12582912.f;  // round to nearest (|n| < 2^22)
  float r = std::fma(n, -0.693359375f, xc);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r) + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.33654f ? 0.0f : p * two_n;
}

// erf(x) = x + x P(x^2) for |x| < 0.921875, else sign(x) (1 - exp(Q(|x|))),
// with Q fitted to log(erfc) on [0.921875, 3.92] (erf rounds to 1 beyond).
// Minimax coefficients fitted for this code (relative error for P, error
// weighted by erfc for Q).
[[gnu::always_inline]] inline float erf(float x) {
  const float a = std::fabs(x), s = x * x;
  float p = 8.37011539e-05f;
  p = std::fma(p, s, -0.000814270868f);
  p = std::fma(p, s, 0.00520103285f);
  p = std::fma(p, s, -0.0268593989f);
  p = std::fma(p, s, 0.112836957f);
  p = std::fma(p, s, -0.376126349f);
  p = std::fma(p, s, 0.128379166f);
  const float near_zero = std::fma(p, x, x);
  const float t = std::min(a, 3.92f) - 0.921875f;
  float q = -4.37797809e-07f;
  q = std::fma(q, t, -1.87035475e-05f);
  q = std::fma(q, t, 0.0002933098f);
  q = std::fma(q, t, -0.00213926518f);
  q = std::fma(q, t, 0.0108507108f);
  q = std::fma(q, t, -0.04482501f);
  q = std::fma(q, t, -0.832988739f);
  q = std::fma(q, t, -2.50801253f);
  q = std::fma(q, t, -1.64856184f);
  const float tail = std::copysign(1.0f - vmath::exp(q), x);
  return a < 0.921875f ? near_zero : tail;
}

// Cephes tanhf: an odd polynomial near zero, 1 - 2 / (exp(2|x|) + 1) elsewhere.
[[gnu::always_inline]] inline float tanh(float x) {
  const float a = std::fabs(x), s = x * x;
  float p = -5.70498872745e-3f;
  p = std::fma(p, s, 2.06390887954e-2f);
  p = std::fma(p, s, -5.37397155531e-2f);
  p = std::fma(p, s, 1.33314422036e-1f);
  p = std::fma(p, s, -3.33332819422e-1f);
  const float near_zero = std::fma(p * s, x, x);
  const float e = vmath::exp(2.0f * std::min(a, 10.0f));  // tanh(10) rounds to 1
  const float tail = std::copysign(1.0f - 2.0f / (e + 1.0f), x);
  return a < 0.625f ? near_zero : tail;
}

}  // namespace vmath

// The float functions above on one SIMD register (backend/simd.hpp), for the
// GELU kernels below: GCC's vectoriser turns the scalar code's selects into
// mask-register sequences that run ~1.4x slower. Same operations in the same
// order (fma where the scalar code calls std::fma; min/max with std::min/max's
// NaN behaviour): GELU's forward is bit-identical to the scalar code over all
// floats tried; its derivative differs by at most an ulp where the compiler
// contracts a product differently.
namespace vmath_simd {

using V = simd::Vector<float>::type;
typedef int32_t VI __attribute__((vector_size(simd::kVectorBytes)));

[[gnu::always_inline]] inline V splat(float v) { return V{} + v; }
[[gnu::always_inline]] inline V fma(V a, V b, V c) { return a * b + c; }  // contracted to one FMA
[[gnu::always_inline]] inline V min(V a, V b) { return b < a ? b : a; }   // std::min
[[gnu::always_inline]] inline V max(V a, V b) { return a < b ? b : a; }   // std::max
[[gnu::always_inline]] inline V abs(V x) { return (V)((VI)x & 0x7fffffff); }
[[gnu::always_inline]] inline V copysign(V magnitude, V sign) {
  return (V)(((VI)magnitude & 0x7fffffff) | ((VI)sign & static_cast<int32_t>(0x80000000u)));
}

[[gnu::always_inline]] inline V exp(V x) {
  const V xc = min(max(x, splat(-87.33654f)), splat(88.72283f));
  const V n = fma(xc, splat(1.44269504f), splat(12582912.f)) - 12582912.f;
  V r = fma(n, splat(-0.693359375f), xc);
  r = fma(n, splat(2.12194440e-4f), r);
  V p = splat(1.9875691500e-4f);
  p = fma(p, r, splat(1.3981999507e-3f));
  p = fma(p, r, splat(8.3334519073e-3f));
  p = fma(p, r, splat(4.1665795894e-2f));
  p = fma(p, r, splat(1.6666665459e-1f));
  p = fma(p, r, splat(5.0000001201e-1f));
  p = fma(p, r * r, r) + 1.0f;
  const V two_n = (V)((__builtin_convertvector(n, VI) + 127) << 23);
  return x < -87.33654f ? V{} : p * two_n;
}

[[gnu::always_inline]] inline V erf(V x) {
  const V a = abs(x), s = x * x;
  V p = splat(8.37011539e-05f);
  p = fma(p, s, splat(-0.000814270868f));
  p = fma(p, s, splat(0.00520103285f));
  p = fma(p, s, splat(-0.0268593989f));
  p = fma(p, s, splat(0.112836957f));
  p = fma(p, s, splat(-0.376126349f));
  p = fma(p, s, splat(0.128379166f));
  const V near_zero = fma(p, x, x);
  const V t = min(a, splat(3.92f)) - 0.921875f;
  V q = splat(-4.37797809e-07f);
  q = fma(q, t, splat(-1.87035475e-05f));
  q = fma(q, t, splat(0.0002933098f));
  q = fma(q, t, splat(-0.00213926518f));
  q = fma(q, t, splat(0.0108507108f));
  q = fma(q, t, splat(-0.04482501f));
  q = fma(q, t, splat(-0.832988739f));
  q = fma(q, t, splat(-2.50801253f));
  q = fma(q, t, splat(-1.64856184f));
  const V tail = copysign(1.0f - exp(q), x);
  return a < 0.921875f ? near_zero : tail;
}

}  // namespace vmath_simd

// ---- Elementwise ops: value(x) and derivative(x) -------------------------
// [[gnu::always_inline]] here and on vmath's float functions: GCC's inliner
// gives up on bodies the size of erf, and a loop with a call in it stays
// scalar (GELU was 8x slower).

struct relu_op {
  static constexpr const char* name = "ReLU";
  template <class T>
  [[gnu::always_inline]] T value(T x) const {
    return x < T(0) ? T(0) : x;  // NaN passes through, as in torch.relu
  }
  template <class T>
  [[gnu::always_inline]] T derivative(T x) const {
    return x > T(0) ? T(1) : T(0);
  }
};

struct leaky_relu_op {
  static constexpr const char* name = "LeakyReLU";
  double negative_slope = 0.01;
  template <class T>
  [[gnu::always_inline]] T value(T x) const {
    const T slope = static_cast<T>(negative_slope);  // loaded unconditionally, so the select vectorises
    return x > T(0) ? x : x * slope;
  }
  template <class T>
  [[gnu::always_inline]] T derivative(T x) const {
    const T slope = static_cast<T>(negative_slope);
    return x > T(0) ? T(1) : slope;
  }
};

struct sigmoid_op {
  static constexpr const char* name = "Sigmoid";
  template <class T>
  [[gnu::always_inline]] T value(T x) const {
    return T(1) / (T(1) + vmath::exp(-x));
  }
  template <class T>
  [[gnu::always_inline]] T derivative(T x) const {
    const T s = value(x);
    return s * (T(1) - s);
  }
};

struct tanh_op {
  static constexpr const char* name = "Tanh";
  template <class T>
  [[gnu::always_inline]] T value(T x) const {
    return vmath::tanh(x);
  }
  template <class T>
  [[gnu::always_inline]] T derivative(T x) const {
    const T t = vmath::tanh(x);
    return T(1) - t * t;
  }
};

// GELU, exact: x Phi(x) = x/2 (1 + erf(x / sqrt 2)).
struct gelu_erf_op {
  static constexpr const char* name = "GELU";
  template <class T>
  [[gnu::always_inline]] T value(T x) const {
    return T(0.5) * x * (T(1) + vmath::erf(x * T(0.70710678118654752440)));
  }
  template <class T>
  [[gnu::always_inline]] T derivative(T x) const {  // Phi(x) + x phi(x)
    const T cdf = T(0.5) * (T(1) + vmath::erf(x * T(0.70710678118654752440)));
    const T pdf = vmath::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
    return cdf + x * pdf;
  }
};

// GELU, tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
struct gelu_tanh_op {
  static constexpr const char* name = "GELU(approximate='tanh')";
  static constexpr double beta = 0.79788456080286535588, kappa = 0.044715;
  template <class T>
  [[gnu::always_inline]] T value(T x) const {
    return T(0.5) * x * (T(1) + vmath::tanh(T(beta) * (x + T(kappa) * x * x * x)));
  }
  template <class T>
  [[gnu::always_inline]] T derivative(T x) const {
    const T t = vmath::tanh(T(beta) * (x + T(kappa) * x * x * x));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(beta) * (T(1) + T(3 * kappa) * x * x);
  }
};

// The GELU layer's op: which form is a runtime option, chosen once per call
// below, outside the loops, so each loop stays branch-free.
struct gelu_op {
  static constexpr const char* name = "GELU";
  bool tanh_approximation = false;
};

// ---- Elementwise kernels ----------------------------------------------------

inline constexpr int64_t elementwise_grain = 1 << 15;

// y = op(x). The lambdas capture by value: pointers held by reference are
// reloaded every iteration and the loop does not vectorise.
template <class Op, class T>
void elementwise_forward(cpu, const Op& op, const T* x, T* y, int64_t n) {
  parallel_for(n, elementwise_grain, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = op.value(x[i]);
  });
}

// dx = dy * op'(x)
template <class Op, class T>
void elementwise_backward(cpu, const Op& op, const T* x, const T* dy, T* dx, int64_t n) {
  parallel_for(n, elementwise_grain, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * op.derivative(x[i]);
  });
}

// Exact GELU on floats, one register at a time (see vmath_simd); the tail
// of each chunk takes the scalar path, which rounds the same.
inline void elementwise_forward(cpu, const gelu_erf_op& op, const float* x, float* y, int64_t n) {
  using namespace vmath_simd;
  constexpr int64_t lanes = simd::Vector<float>::lanes;
  parallel_for(n, elementwise_grain, [=](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + lanes <= end; i += lanes) {
      const V v = simd::load<V>(x + i);
      simd::store(y + i, 0.5f * v * (1.0f + erf(v * 0.70710678118654752440f)));
    }
    for (; i < end; ++i) y[i] = op.value(x[i]);
  });
}

inline void elementwise_backward(cpu, const gelu_erf_op& op, const float* x, const float* dy, float* dx, int64_t n) {
  using namespace vmath_simd;
  constexpr int64_t lanes = simd::Vector<float>::lanes;
  parallel_for(n, elementwise_grain, [=](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + lanes <= end; i += lanes) {
      const V v = simd::load<V>(x + i);
      const V cdf = 0.5f * (1.0f + erf(v * 0.70710678118654752440f));
      const V pdf = exp(-0.5f * v * v) * 0.39894228040143267794f;
      simd::store(dx + i, simd::load<V>(dy + i) * (cdf + v * pdf));
    }
    for (; i < end; ++i) dx[i] = dy[i] * op.derivative(x[i]);
  });
}

template <class T>
void elementwise_forward(cpu c, const gelu_op& op, const T* x, T* y, int64_t n) {
  if (op.tanh_approximation)
    elementwise_forward(c, gelu_tanh_op{}, x, y, n);
  else
    elementwise_forward(c, gelu_erf_op{}, x, y, n);
}

template <class T>
void elementwise_backward(cpu c, const gelu_op& op, const T* x, const T* dy, T* dx, int64_t n) {
  if (op.tanh_approximation)
    elementwise_backward(c, gelu_tanh_op{}, x, dy, dx, n);
  else
    elementwise_backward(c, gelu_erf_op{}, x, dy, dx, n);
}

// ---- Softmax kernels ----------------------------------------------------------
// The tensor is viewed as [outer, dim, inner]; softmax runs over `dim`.

namespace detail {

// One contiguous row (softmax over the last dimension).
template <class T>
void softmax_row(const T* x, T* y, int64_t dim) {
  T max = x[0];
#pragma omp simd reduction(max : max)
  for (int64_t d = 0; d < dim; ++d) max = x[d] > max ? x[d] : max;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t d = 0; d < dim; ++d) {
    y[d] = vmath::exp(x[d] - max);
    sum += y[d];
  }
  const T inv = T(1) / sum;
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) y[d] *= inv;
}

// Columns [j, j + width) of one [dim, inner] block: the loops run along the
// contiguous inner dimension so they vectorise.
inline constexpr int64_t softmax_tile = 128;

template <class T>
void softmax_columns(const T* x, T* y, int64_t dim, int64_t inner, int64_t width) {
  std::array<T, softmax_tile> max, inv;
  std::copy_n(x, width, max.begin());
  for (int64_t d = 1; d < dim; ++d) {
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) max[j] = std::max(max[j], x[d * inner + j]);
  }
  inv.fill(T(0));
  for (int64_t d = 0; d < dim; ++d) {
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) {
      y[d * inner + j] = vmath::exp(x[d * inner + j] - max[j]);
      inv[j] += y[d * inner + j];
    }
  }
  for (int64_t j = 0; j < width; ++j) inv[j] = T(1) / inv[j];
  for (int64_t d = 0; d < dim; ++d) {
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) y[d * inner + j] *= inv[j];
  }
}

// Calls f(offset, width) for every row (inner == 1) or column tile, in parallel.
template <class F>
void for_each_softmax_slice(int64_t outer, int64_t dim, int64_t inner, F&& f) {
  const int64_t tiles = (inner + softmax_tile - 1) / softmax_tile;
  const int64_t grain = std::max<int64_t>(1, elementwise_grain / std::max<int64_t>(1, dim * std::min(inner, softmax_tile)));
  parallel_for(outer * tiles, grain, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t o = u / tiles, j = (u % tiles) * softmax_tile;
      f(o * dim * inner + j, std::min(softmax_tile, inner - j));
    }
  });
}

}  // namespace detail

template <class T>
void softmax_forward(cpu, const T* x, T* y, int64_t outer, int64_t dim, int64_t inner) {
  if (dim == 0) return;
  detail::for_each_softmax_slice(outer, dim, inner, [&](int64_t off, int64_t width) {
    if (inner == 1)
      detail::softmax_row(x + off, y + off, dim);
    else
      detail::softmax_columns(x + off, y + off, dim, inner, width);
  });
}

// dx = y * (dy - sum_dim(dy * y)), with y = softmax(x) recomputed into dx.
template <class T>
void softmax_backward(cpu, const T* x, const T* dy, T* dx, int64_t outer, int64_t dim, int64_t inner) {
  if (dim == 0) return;
  detail::for_each_softmax_slice(outer, dim, inner, [&](int64_t off, int64_t width) {
    const T* g = dy + off;
    T* y = dx + off;
    if (inner == 1) {
      detail::softmax_row(x + off, y, dim);
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < dim; ++d) dot += g[d] * y[d];
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) y[d] *= g[d] - dot;
      return;
    }
    detail::softmax_columns(x + off, y, dim, inner, width);
    std::array<T, detail::softmax_tile> dot{};
    for (int64_t d = 0; d < dim; ++d) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) dot[j] += g[d * inner + j] * y[d * inner + j];
    }
    for (int64_t d = 0; d < dim; ++d) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) y[d * inner + j] *= g[d * inner + j] - dot[j];
    }
  });
}

}  // namespace stpain::backend

namespace stpain {

// A layer applying Op elementwise; any input shape.
template <class Op, class B = cpu, class T = float>
class Elementwise : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;

  Elementwise() = default;
  explicit Elementwise(const Op& op) : op_(op) {}

  tensor forward(const tensor& x) {
    input_ = x;
    tensor y = tensor::empty(x.shape());
    elementwise_forward(B{}, op_, x.data(), y.data(), x.numel());
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, Op::name);
    expect_shape(dy.shape(), input_.shape(), std::string(Op::name) + ".backward dy");
    tensor dx = tensor::empty(dy.shape());
    elementwise_backward(B{}, op_, input_.data(), dy.data(), dx.data(), dx.numel());
    return dx;
  }

  const Op& op() const { return op_; }

 private:
  Op op_{};
  tensor input_;
};

template <class B = cpu, class T = float>
using ReLU = Elementwise<backend::relu_op, B, T>;
template <class B = cpu, class T = float>
using Sigmoid = Elementwise<backend::sigmoid_op, B, T>;
template <class B = cpu, class T = float>
using Tanh = Elementwise<backend::tanh_op, B, T>;

// torch.nn.LeakyReLU(negative_slope=0.01)
template <class B = cpu, class T = float>
class LeakyReLU : public Elementwise<backend::leaky_relu_op, B, T> {
 public:
  struct Options {
    double negative_slope = 0.01;
  };
  explicit LeakyReLU(double negative_slope = 0.01) : LeakyReLU(Options{negative_slope}) {}
  explicit LeakyReLU(const Options& o) : Elementwise<backend::leaky_relu_op, B, T>(backend::leaky_relu_op{o.negative_slope}) {}
  double negative_slope() const { return this->op().negative_slope; }
};

// torch.nn.GELU(approximate='none' | 'tanh'); 'none' (the exact erf form) by default.
enum class GeluApproximation { none, tanh };

template <class B = cpu, class T = float>
class GELU : public Elementwise<backend::gelu_op, B, T> {
 public:
  struct Options {
    GeluApproximation approximate = GeluApproximation::none;
  };
  explicit GELU(GeluApproximation approximate = GeluApproximation::none) : GELU(Options{approximate}) {}
  explicit GELU(const Options& o)
      : Elementwise<backend::gelu_op, B, T>(backend::gelu_op{o.approximate == GeluApproximation::tanh}) {}
  GeluApproximation approximate() const {
    return this->op().tanh_approximation ? GeluApproximation::tanh : GeluApproximation::none;
  }
};

// torch.nn.Softmax(dim): exp(x - max) / sum over `dim` (default the last).
template <class B = cpu, class T = float>
class Softmax : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int dim = -1;
  };

  explicit Softmax(int dim = -1) : Softmax(Options{dim}) {}
  explicit Softmax(const Options& o) : opt_(o) {}

  tensor forward(const tensor& x) {
    const int r = x.rank();
    STPAIN_CHECK(opt_.dim >= -r && opt_.dim < r, ShapeError, "Softmax(dim=", opt_.dim, "): input ",
                 x.shape().str(), " has no dimension ", opt_.dim);
    input_ = x;
    tensor y = tensor::empty(x.shape());
    const auto [outer, dim, inner] = extents(x.shape());
    softmax_forward(B{}, x.data(), y.data(), outer, dim, inner);
    return y;
  }

  // Recomputes softmax(x) from the cached input (see the note at the top).
  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "Softmax");
    expect_shape(dy.shape(), input_.shape(), "Softmax.backward dy");
    tensor dx = tensor::empty(dy.shape());
    const auto [outer, dim, inner] = extents(dy.shape());
    softmax_backward(B{}, input_.data(), dy.data(), dx.data(), outer, dim, inner);
    return dx;
  }

  const Options& options() const { return opt_; }

 private:
  std::array<int64_t, 3> extents(const Shape& s) const {
    const int a = s.axis(opt_.dim);
    return {s.span(0, a), s[a], s.span(a + 1, s.rank())};
  }

  Options opt_;
  tensor input_;
};

}  // namespace stpain
