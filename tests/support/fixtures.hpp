#pragma once
// PyTorch reference fixtures (written by tools/fixtures/*.py) and the
// tolerance test used against them.
//
// A fixture file holds, per case: "<case>.x" inputs, "<case>.param.<name>"
// weights under the layer's own parameter names, "<case>.y" outputs,
// "<case>.dy" the upstream gradient, "<case>.dx" and "<case>.grad.<name>"
// the gradients PyTorch computed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "stpain/io/state_dict.hpp"
#include "stpain/layers/module.hpp"

namespace stpain::testing {

inline std::string fixture_path(const std::string& file) { return "tests/fixtures/" + file; }

// max|actual - expected| <= rtol * max|expected|: relative to the tensor's
// scale, which is how float32 rounding of sums behaves.
template <class T>
void expect_close(const Tensor<T>& actual, const Tensor<float>& expected, const std::string& what,
                  double rtol = 1e-5) {
  INFO(what << ": actual " << actual.shape().str() << ", expected " << expected.shape().str());
  REQUIRE(same_up_to_unit_dims(actual.shape(), expected.shape()));  // e.g. a Linear for a 1x1 conv
  double diff = 0, scale = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double d = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    if (d > diff || std::isnan(d)) {
      diff = std::isnan(d) ? INFINITY : d;
      worst = i;
    }
    scale = std::max(scale, std::fabs(static_cast<double>(expected[i])));
  }
  INFO("max abs difference " << diff << " at " << worst << " (actual " << actual[worst] << ", expected "
                             << expected[worst] << "), max |expected| " << scale << ", rtol " << rtol);
  CHECK(diff <= rtol * std::max(scale, 1e-30));
}

// Copies "<case>.param.<name>" into every parameter of the layer. Buffers the
// fixture leaves out (num_batches_tracked, an integer in PyTorch) keep their values.
template <class L>
void load_case_parameters(L& layer, const safetensors::File& f, const std::string& case_name) {
  layer.visit_parameters([&](const std::string& name, auto& p) {
    const std::string key = case_name + ".param." + name;
    if (!p.trainable && !f.contains(key)) return;
    INFO("fixture tensor " << key);
    REQUIRE(f.contains(key));
    const Tensor<float> v = f.load(key);
    REQUIRE(same_up_to_unit_dims(v.shape(), p.value.shape()));
    std::copy(v.begin(), v.end(), p.value.begin());
  });
}

// How closely a case must match: rtol for every tensor, with two exceptions.
// Gradients that are zero in exact arithmetic (the bias of a layer followed by
// training-mode BatchNorm) are rounding noise in both implementations: those
// in `vanishing` are only checked to be negligible (|g| <= 1e-4). Tensors in
// `loose` get their own rtol (tiny gradients reached through several softmax
// layers, where float32 rounding upstream is a visible share of them).
struct CaseTolerance {
  double rtol = 1e-5;
  std::vector<std::string> vanishing;
  std::map<std::string, double> loose;
};

// Checks every trainable parameter's gradient against "<case>.grad.<name>".
template <class L>
void expect_case_gradients(L& layer, const safetensors::File& f, const std::string& case_name,
                           const CaseTolerance& tol = {}) {
  layer.visit_parameters([&](const std::string& name, auto& p) {
    if (!p.trainable) return;
    if (std::find(tol.vanishing.begin(), tol.vanishing.end(), name) != tol.vanishing.end()) {
      INFO(case_name << " grad " << name << " should vanish");
      for (const auto& g : {Tensor<double>::from(p.grad.shape(), std::vector<double>(p.grad.begin(), p.grad.end())),
                            f.load<double>(case_name + ".grad." + name)})
        for (double v : g) CHECK(std::fabs(v) <= 1e-4);
      return;
    }
    const auto loose = tol.loose.find(name);
    expect_close(p.grad, f.load(case_name + ".grad." + name), case_name + " grad " + name,
                 loose == tol.loose.end() ? tol.rtol : loose->second);
  });
}

// Loads the case's weights, then checks forward, backward and every
// parameter gradient of a float layer against it.
template <class L>
void expect_matches_case(L& layer, const safetensors::File& f, const std::string& case_name,
                         const CaseTolerance& tol = {}) {
  INFO("case " << case_name);
  load_case_parameters(layer, f, case_name);
  expect_close(layer.forward(f.load(case_name + ".x")), f.load(case_name + ".y"), case_name + ".y", tol.rtol);
  expect_close(layer.backward(f.load(case_name + ".dy")), f.load(case_name + ".dx"), case_name + ".dx", tol.rtol);
  expect_case_gradients(layer, f, case_name, tol);
}

// The dotted names visit_parameters gives, in order.
template <class L>
std::vector<std::string> parameter_names(L& layer, const std::string& prefix = "") {
  std::vector<std::string> names;
  layer.visit_parameters([&](const std::string& n, auto&) { names.push_back(n); }, prefix);
  return names;
}

}  // namespace stpain::testing
