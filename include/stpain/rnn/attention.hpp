#pragma once
// Attention over the time axis of batch-first sequences [N, T, F]:
//   DotProductSelfAttention  the authors' Keras Attention()([x, x]): Q = K = V = x,
//                            weights = softmax over keys of Q K^T (optionally
//                            / sqrt(F)), output weights V: [N, T, F].
//   AdditiveAttention        Bahdanau pooling: score_t = v^T tanh(W x_t + b),
//                            weights = softmax over t, output sum_t weights_t x_t: [N, F].
// Both keep the weights of the last forward: attention_weights().
#include <cmath>
#include <memory>
#include <string>

#include "stpain/layers/activations.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/layers/module.hpp"

namespace stpain::backend {

namespace attention_detail {
// Sequences per parallel chunk when each costs `work` multiply-adds.
inline int64_t grain(int64_t work) { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, work)); }

// dx = y * (dy - sum(dy * y)) over one row of a softmax output y (dx may be dy).
template <class T>
void softmax_row_backward(const T* y, const T* dy, T* dx, int64_t dim) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t d = 0; d < dim; ++d) dot += dy[d] * y[d];
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) dx[d] = y[d] * (dy[d] - dot);
}
}  // namespace attention_detail

// Per sequence n of x [N, T, F]: weights[n] = softmax_rows(scale * x_n x_n^T)
// [T, T], y[n] = weights[n] x_n.
template <class T>
void self_attention_forward(cpu, const T* x, T* weights, T* y, int64_t batch, int64_t steps, int64_t features,
                            T scale) {
  const int64_t TT = steps * steps, TF = steps * features;
  parallel_for(batch, attention_detail::grain(2 * TT * features), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* xn = x + n * TF;
      T* a = weights + n * TT;
      cpu::gemm(false, true, steps, steps, features, scale, xn, features, xn, features, T(0), a, steps);
      for (int64_t t = 0; t < steps; ++t) detail::softmax_row(a + t * steps, a + t * steps, steps);
      cpu::gemm(false, false, steps, features, steps, T(1), a, steps, xn, features, T(0), y + n * TF, features);
    }
  });
}

// The gradient of self_attention_forward: with A = weights[n] and
// dS = scale * softmax'(dy x^T), dx = A^T dy + dS x + dS^T x (x is query,
// key and value at once).
template <class T>
void self_attention_backward(cpu, const T* x, const T* weights, const T* dy, T* dx, int64_t batch, int64_t steps,
                             int64_t features, T scale) {
  const int64_t TT = steps * steps, TF = steps * features;
  parallel_for(batch, attention_detail::grain(4 * TT * features), [=](int64_t n0, int64_t n1) {
    const auto ds = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(TT));
    for (int64_t n = n0; n < n1; ++n) {
      const T *xn = x + n * TF, *a = weights + n * TT, *dyn = dy + n * TF;
      T* dxn = dx + n * TF;
      // dA = dy x^T, then dS = scale * (softmax backward of dA), row by row.
      cpu::gemm(false, true, steps, steps, features, T(1), dyn, features, xn, features, T(0), ds.get(), steps);
      for (int64_t t = 0; t < steps; ++t)
        attention_detail::softmax_row_backward(a + t * steps, ds.get() + t * steps, ds.get() + t * steps, steps);
      cpu::gemm(true, false, steps, features, steps, T(1), a, steps, dyn, features, T(0), dxn, features);
      cpu::gemm(false, false, steps, features, steps, scale, ds.get(), steps, xn, features, T(1), dxn, features);
      cpu::gemm(true, false, steps, features, steps, scale, ds.get(), steps, xn, features, T(1), dxn, features);
    }
  });
}

// Per sequence n: weights[n] = softmax over t of scores[n] [T], and
// y[n] = sum_t weights[n, t] x[n, t] [F].
template <class T>
void attention_pool_forward(cpu, const T* x, const T* scores, T* weights, T* y, int64_t batch, int64_t steps,
                            int64_t features) {
  parallel_for(batch, attention_detail::grain(steps * features), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      T* w = weights + n * steps;
      detail::softmax_row(scores + n * steps, w, steps);
      T* yn = y + n * features;
      std::fill(yn, yn + features, T(0));
      for (int64_t t = 0; t < steps; ++t) {
        const T* xt = x + (n * steps + t) * features;
        const T wt = w[t];
#pragma omp simd
        for (int64_t k = 0; k < features; ++k) yn[k] += wt * xt[k];
      }
    }
  });
}

// The gradient of attention_pool_forward: dx[n, t] = weights[n, t] dy[n]
// (overwritten) and dscores[n] = softmax'(dy[n] . x[n, t] over t).
template <class T>
void attention_pool_backward(cpu, const T* x, const T* weights, const T* dy, T* dx, T* dscores, int64_t batch,
                             int64_t steps, int64_t features) {
  parallel_for(batch, attention_detail::grain(2 * steps * features), [=](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* w = weights + n * steps;
      const T* dyn = dy + n * features;
      T* ds = dscores + n * steps;
      for (int64_t t = 0; t < steps; ++t) {
        const T* xt = x + (n * steps + t) * features;
        T* dxt = dx + (n * steps + t) * features;
        const T wt = w[t];
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t k = 0; k < features; ++k) {
          dot += dyn[k] * xt[k];
          dxt[k] = wt * dyn[k];
        }
        ds[t] = dot;
      }
      attention_detail::softmax_row_backward(w, ds, ds, steps);
    }
  });
}

}  // namespace stpain::backend

namespace stpain {

namespace detail {
inline void expect_sequence(const Shape& s, int64_t features, const std::string& layer) {
  STPAIN_CHECK(s.rank() == 3 && s[1] > 0 && (features < 0 || s[2] == features), ShapeError, layer, ": input ",
               s.str(), " is not [batch, time >= 1, ", features < 0 ? std::string("features") : std::to_string(features),
               "]");
}
}  // namespace detail

// Self-attention with the sequence as query, key and value (no parameters):
// x [N, T, F] -> softmax(x x^T [/ sqrt(F)]) x [N, T, F]. The softmax runs over
// the keys (last axis). Unscaled by default, as the authors' Keras code
// (keras.layers.Attention(use_scale=False)); scaled gives scaled dot-product
// attention.
template <class B = cpu, class T = float>
class DotProductSelfAttention : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    bool scaled = false;  // divide the scores by sqrt(F)
  };

  explicit DotProductSelfAttention(bool scaled = false) : DotProductSelfAttention(Options{scaled}) {}
  explicit DotProductSelfAttention(const Options& o) : opt_(o) {}

  tensor forward(const tensor& x) {
    detail::expect_sequence(x.shape(), -1, describe());
    input_ = x;
    const int64_t N = x.size(0), S = x.size(1), F = x.size(2);
    weights_ = tensor::empty({N, S, S});
    tensor y = tensor::empty(x.shape());
    self_attention_forward(B{}, x.data(), weights_.data(), y.data(), N, S, F, scale(F));
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "DotProductSelfAttention");
    expect_shape(dy.shape(), input_.shape(), describe() + ".backward dy");
    tensor dx = tensor::empty(input_.shape());
    self_attention_backward(B{}, input_.data(), weights_.data(), dy.data(), dx.data(), input_.size(0),
                            input_.size(1), input_.size(2), scale(input_.size(2)));
    return dx;
  }

  // [N, T, T] of the last forward: row t holds query t's weights over the keys.
  const tensor& attention_weights() const { return weights_; }
  const Options& options() const { return opt_; }
  std::string describe() const { return opt_.scaled ? "DotProductSelfAttention(scaled)" : "DotProductSelfAttention"; }

 private:
  T scale(int64_t features) const { return opt_.scaled ? T(1) / std::sqrt(T(features)) : T(1); }

  Options opt_;
  tensor input_, weights_;
};

// Additive (Bahdanau) attention pooling over time: x [N, T, F] -> [N, F],
//   score[n, t] = v . tanh(proj(x[n, t])), weights[n] = softmax_t(score[n]),
//   y[n] = sum_t weights[n, t] x[n, t].
// Parameters as a torch module with proj = nn.Linear(F, units) and
// v = nn.Linear(units, 1, bias=False): "proj.weight" [units, F],
// "proj.bias" [units], "v.weight" [1, units].
template <class B = cpu, class T = float>
class AdditiveAttention : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t features = 0;
    int64_t units = 0;  // width of the scoring layer
  };

  AdditiveAttention(int64_t features, int64_t units) : AdditiveAttention(Options{features, units}) {}
  explicit AdditiveAttention(const Options& o)
      : proj(o.features, o.units), v(o.units, 1, /*bias=*/false), opt_(o) {
    STPAIN_CHECK(o.features > 0 && o.units > 0, ShapeError, describe(), ": sizes must be positive");
  }

  tensor forward(const tensor& x) {
    detail::expect_sequence(x.shape(), opt_.features, describe());
    input_ = x;
    const int64_t N = x.size(0), S = x.size(1), F = opt_.features;
    const tensor scores = v.forward(tanh_.forward(proj.forward(x)));  // [N, T, 1]
    weights_ = tensor::empty({N, S});
    tensor y = tensor::empty({N, F});
    attention_pool_forward(B{}, x.data(), scores.data(), weights_.data(), y.data(), N, S, F);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "AdditiveAttention");
    const int64_t N = input_.size(0), S = input_.size(1), F = opt_.features;
    expect_shape(dy.shape(), Shape{N, F}, describe() + ".backward dy");
    tensor dx = tensor::empty(input_.shape());
    tensor dscores = tensor::empty({N, S, 1});
    attention_pool_backward(B{}, input_.data(), weights_.data(), dy.data(), dx.data(), dscores.data(), N, S, F);
    const tensor dx_scores = proj.backward(tanh_.backward(v.backward(dscores)));
    add_to(dx, dx_scores);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    proj.visit_parameters(f, prefix + "proj.");
    v.visit_parameters(f, prefix + "v.");
  }

  // [N, T] of the last forward.
  const tensor& attention_weights() const { return weights_; }
  const Options& options() const { return opt_; }
  std::string describe() const {
    return "AdditiveAttention(features=" + std::to_string(opt_.features) + ", units=" + std::to_string(opt_.units) + ")";
  }

  Linear<B, T> proj;  // W x + b
  Linear<B, T> v;     // v . p, no bias

 private:
  Options opt_;
  Tanh<B, T> tanh_;
  tensor input_, weights_;
};

}  // namespace stpain
