#pragma once
// Thrust kernel of the softmax cross-entropy (train/loss.hpp): one item per
// row computes the row's loss term and gradient row as the cpu kernel does.
// The labels and per-row scales arrive as host arrays: they are copied to the
// policy's memory first (one upload; labels as doubles, exact for any class
// count). The row terms come back to the host and are summed in row order.
#include "stpain/backend/thrust/policy.hpp"
#include "stpain/backend/transfer.hpp"
#include "stpain/train/loss.hpp"

namespace stpain::backend {

template <thrust_backend P, class T>
double softmax_cross_entropy_rows(P, const T* logits, const int64_t* labels, int64_t rows, int64_t classes,
                                  const double* onehot_scale, const double* smooth_scale, const double* class_scale,
                                  T* grad) {
  // [labels | onehot_scale | smooth_scale] per row, then the class scales (ones when null).
  Tensor<double, cpu> host = Tensor<double, cpu>::empty({3 * rows + classes});
  for (int64_t i = 0; i < rows; ++i) {
    host[i] = static_cast<double>(labels[i]);
    host[rows + i] = onehot_scale[i];
    host[2 * rows + i] = smooth_scale[i];
  }
  for (int64_t c = 0; c < classes; ++c) host[3 * rows + c] = class_scale ? class_scale[c] : 1.0;
  const Tensor<double, P> scales = to<P>(host);
  Tensor<double, P> terms = Tensor<double, P>::empty({rows});
  const double* s = scales.data();
  double* term = terms.data();
  thrust_detail::for_n<P>(rows, [=] STPAIN_HD(int64_t i) {
    using thrust_detail::exp_;
    const T* z = logits + i * classes;
    T* g = grad + i * classes;
    const int64_t label = static_cast<int64_t>(s[i]);
    auto q = [&](int64_t c) { return s[2 * rows + i] * s[3 * rows + c] + (c == label ? s[rows + i] : 0.0); };
    double zmax = z[0];
    for (int64_t c = 1; c < classes; ++c) zmax = thrust_detail::max_(zmax, static_cast<double>(z[c]));
    double sum_exp = 0.0;
    for (int64_t c = 0; c < classes; ++c) sum_exp += exp_(static_cast<double>(z[c]) - zmax);
    const double log_sum = thrust_detail::log_(sum_exp) + zmax;
    double loss = 0.0, q_total = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      loss -= q(c) * (static_cast<double>(z[c]) - log_sum);
      q_total += q(c);
    }
    for (int64_t c = 0; c < classes; ++c) g[c] = static_cast<T>(q_total * exp_(static_cast<double>(z[c]) - log_sum) - q(c));
    term[i] = loss;
  });
  const Tensor<double, cpu> row_terms = to_host(terms);
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) total += row_terms[i];
  return total;
}

}  // namespace stpain::backend
