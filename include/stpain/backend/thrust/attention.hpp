#pragma once
// Thrust kernels of the attention layers of the sequence heads: dot-product
// self-attention (per sequence: GEMMs through P::gemm, softmax rows as thrust)
// and additive attention pooling.
#include "stpain/backend/thrust/elementwise.hpp"
#include "stpain/rnn/attention.hpp"

namespace stpain::backend {

namespace thrust_detail {
// dx = y * (dy - sum(dy * y)) over each of `rows` rows of width `dim` (dx may be dy).
template <class P, class T>
void softmax_rows_backward(int64_t rows, int64_t dim, const T* y, const T* dy, T* dx) {
  for_n<P>(rows, [=] STPAIN_HD(int64_t r) {
    T dot = 0;
    for (int64_t d = 0; d < dim; ++d) dot += dy[r * dim + d] * y[r * dim + d];
    for (int64_t d = 0; d < dim; ++d) dx[r * dim + d] = y[r * dim + d] * (dy[r * dim + d] - dot);
  });
}

// Scratch memory of the policy for one call.
template <class P, class T>
struct Scratch {
  explicit Scratch(int64_t n) : bytes(sizeof(T) * static_cast<size_t>(n)), data(static_cast<T*>(P::allocate(bytes))) {}
  ~Scratch() { P::deallocate(data, bytes); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  size_t bytes;
  T* data;
};
}  // namespace thrust_detail

// weights[n] = softmax_rows(scale * x[n] x[n]^T), y[n] = weights[n] x[n].
template <thrust_backend P, class T>
void self_attention_forward(P p, const T* x, T* weights, T* y, int64_t batch, int64_t steps, int64_t features,
                            T scale) {
  const int64_t TT = steps * steps, TF = steps * features;
  for (int64_t n = 0; n < batch; ++n)
    P::gemm(false, true, steps, steps, features, scale, x + n * TF, features, x + n * TF, features, T(0),
            weights + n * TT, steps);
  softmax_forward(p, weights, weights, batch * steps, steps, int64_t{1});
  for (int64_t n = 0; n < batch; ++n)
    P::gemm(false, false, steps, features, steps, T(1), weights + n * TT, steps, x + n * TF, features, T(0),
            y + n * TF, features);
}

// dx = A^T dy + dS x + dS^T x with dS = scale * softmax'(dy x^T).
template <thrust_backend P, class T>
void self_attention_backward(P, const T* x, const T* weights, const T* dy, T* dx, int64_t batch, int64_t steps,
                             int64_t features, T scale) {
  const int64_t TT = steps * steps, TF = steps * features;
  thrust_detail::Scratch<P, T> ds(batch * TT);
  for (int64_t n = 0; n < batch; ++n)
    P::gemm(false, true, steps, steps, features, T(1), dy + n * TF, features, x + n * TF, features, T(0),
            ds.data + n * TT, steps);
  thrust_detail::softmax_rows_backward<P>(batch * steps, steps, weights, ds.data, ds.data);
  for (int64_t n = 0; n < batch; ++n) {
    const T *xn = x + n * TF, *a = weights + n * TT, *dyn = dy + n * TF, *dsn = ds.data + n * TT;
    T* dxn = dx + n * TF;
    P::gemm(true, false, steps, features, steps, T(1), a, steps, dyn, features, T(0), dxn, features);
    P::gemm(false, false, steps, features, steps, scale, dsn, steps, xn, features, T(1), dxn, features);
    P::gemm(true, false, steps, features, steps, scale, dsn, steps, xn, features, T(1), dxn, features);
  }
}

// weights[n] = softmax over t of scores[n]; y[n] = sum_t weights[n, t] x[n, t].
template <thrust_backend P, class T>
void attention_pool_forward(P p, const T* x, const T* scores, T* weights, T* y, int64_t batch, int64_t steps,
                            int64_t features) {
  softmax_forward(p, scores, weights, batch, steps, int64_t{1});
  thrust_detail::for_n<P>(batch * features, [=] STPAIN_HD(int64_t u) {
    const int64_t n = u / features, k = u % features;
    T s = 0;
    for (int64_t t = 0; t < steps; ++t) s += weights[n * steps + t] * x[(n * steps + t) * features + k];
    y[u] = s;
  });
}

// dx[n, t] = weights[n, t] dy[n]; dscores[n] = softmax'(dy[n] . x[n, t] over t).
template <thrust_backend P, class T>
void attention_pool_backward(P, const T* x, const T* weights, const T* dy, T* dx, T* dscores, int64_t batch,
                             int64_t steps, int64_t features) {
  thrust_detail::for_n<P>(batch * steps * features, [=] STPAIN_HD(int64_t i) {
    const int64_t k = i % features, nt = i / features, n = nt / steps;
    dx[i] = weights[nt] * dy[n * features + k];
  });
  thrust_detail::for_n<P>(batch * steps, [=] STPAIN_HD(int64_t nt) {
    const int64_t n = nt / steps;
    T dot = 0;
    for (int64_t k = 0; k < features; ++k) dot += dy[n * features + k] * x[nt * features + k];
    dscores[nt] = dot;
  });
  thrust_detail::softmax_rows_backward<P>(batch, steps, weights, dscores, dscores);
}

}  // namespace stpain::backend
