#pragma once
// Central-difference gradient checks for any layer, in double precision.
//
// The scalar checked is L = sum(g * layer.forward(x)) for a fixed random g, so
// layer.backward(g) must return dL/dx and accumulate dL/dparam. Layers that
// draw random numbers (dropout, drop path) see the same seed on every forward.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "stpain/layers/module.hpp"

namespace stpain::testing {

struct GradCheckOptions {
  double eps = 1e-6;
  double rtol = 1e-5;   // relative to max(|analytic|, |numeric|)
  double atol = 1e-7;
  int max_entries = 120;  // entries checked per tensor (spread over the tensor)
  uint64_t seed = 1234;
};

inline Tensor<double> random_tensor(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  Tensor<double> t = Tensor<double>::empty(shape);
  for (auto& v : t) v = scale * g.normal();
  return t;
}

namespace detail {
template <class L>
double objective(L& layer, const Tensor<double>& x, const Tensor<double>& g, uint64_t seed) {
  manual_seed(seed);
  const Tensor<double> y = layer.forward(x);
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += g[i] * y[i];
  return s;
}

// Compares an analytic gradient with central differences of `value`.
template <class L>
void compare(L& layer, Tensor<double>& value, const Tensor<double>& analytic, const Tensor<double>& x,
             const Tensor<double>& g, const std::string& what, const GradCheckOptions& o) {
  const int64_t n = value.numel();
  const int64_t step = std::max<int64_t>(1, n / o.max_entries);
  double worst = 0;
  int64_t worst_i = -1;
  double worst_a = 0, worst_n = 0;
  for (int64_t i = 0; i < n; i += step) {
    const double saved = value[i];
    value[i] = saved + o.eps;
    const double up = objective(layer, x, g, o.seed);
    value[i] = saved - o.eps;
    const double down = objective(layer, x, g, o.seed);
    value[i] = saved;
    const double numeric = (up - down) / (2 * o.eps);
    const double a = analytic[i];
    const double err = std::fabs(a - numeric) / (o.atol + o.rtol * std::max({std::fabs(a), std::fabs(numeric), 1e-3}));
    if (err > worst) {
      worst = err;
      worst_i = i;
      worst_a = a;
      worst_n = numeric;
    }
  }
  INFO("gradient of " << what << " " << value.shape().str() << ": worst entry " << worst_i << " analytic "
                      << worst_a << " numeric " << worst_n);
  CHECK(worst <= 1.0);
}
}  // namespace detail

// Checks dL/dx and every trainable parameter's gradient.
template <class L>
void check_gradients(L& layer, Tensor<double> x, const GradCheckOptions& o = {}) {
  manual_seed(o.seed);
  const Tensor<double> y0 = layer.forward(x);
  const Tensor<double> g = random_tensor(y0.shape(), o.seed + 1);
  zero_grad(layer);
  manual_seed(o.seed);
  layer.forward(x);
  const Tensor<double> dx = layer.backward(g).clone();
  REQUIRE(dx.shape() == x.shape());
  std::vector<std::pair<std::string, Tensor<double>>> grads;
  layer.visit_parameters([&](const std::string& name, auto& p) {
    if (p.trainable) grads.emplace_back(name, p.grad.clone());
  });
  detail::compare(layer, x, dx, x, g, "input", o);
  size_t k = 0;
  layer.visit_parameters([&](const std::string& name, auto& p) {
    if (!p.trainable) return;
    detail::compare(layer, p.value, grads[k++].second, x, g, name, o);
  });
}

}  // namespace stpain::testing
