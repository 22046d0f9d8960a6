#pragma once
// Gradient clipping over every trainable parameter of a model, with
// torch.nn.utils semantics. Call between backward() and the optimiser's step().
#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "stpain/layers/module.hpp"

namespace stpain {

namespace detail {
// f(name, Parameter&) once per trainable parameter (tied weights once).
template <class M, class F>
void for_each_trainable(M& model, F&& f) {
  std::set<const void*> seen;
  model.visit_parameters([&](const std::string& name, auto& p) {
    if (p.trainable && seen.insert(&p).second) f(name, p);
  });
}
}  // namespace detail

// torch.nn.utils.clip_grad_norm_: the L2 norm of all gradients taken together;
// when it exceeds max_norm every gradient is scaled by max_norm / (norm + 1e-6).
// Returns the norm before clipping. A NaN/Inf norm throws NonFiniteError when
// error_if_nonfinite, and otherwise propagates into the gradients as in PyTorch.
template <class M>
double clip_grad_norm(M& model, double max_norm, bool error_if_nonfinite = false) {
  STPAIN_CHECK(max_norm >= 0.0, Error, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  double sum_sq = 0.0;
  detail::for_each_trainable(
      model, [&](const std::string&, auto& p) { sum_sq += p.grad.array().template cast<double>().square().sum(); });
  const double total = std::sqrt(sum_sq);
  STPAIN_CHECK(std::isfinite(total) || !error_if_nonfinite, NonFiniteError,
               "clip_grad_norm: the total gradient norm is ", total);
  const double coef = max_norm / (total + 1e-6);
  if (!(coef >= 1.0)) {  // also scales by NaN when the norm is NaN, as PyTorch does
    detail::for_each_trainable(model, [&](const std::string&, auto& p) {
      using T = typename std::decay_t<decltype(p.grad)>::value_type;
      p.grad.array() *= static_cast<T>(coef);
    });
  }
  return total;
}

// torch.nn.utils.clip_grad_value_: clamps every gradient to [-clip_value, clip_value].
template <class M>
void clip_grad_value(M& model, double clip_value) {
  STPAIN_CHECK(clip_value >= 0.0, Error, "clip_grad_value: clip_value must be >= 0, got ", clip_value);
  detail::for_each_trainable(model, [&](const std::string&, auto& p) {
    using T = typename std::decay_t<decltype(p.grad)>::value_type;
    const T hi = static_cast<T>(clip_value), lo = -hi;
    T* g = p.grad.data();
    const int64_t n = p.grad.numel();
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);
  });
}

}  // namespace stpain
