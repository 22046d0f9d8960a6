#pragma once
// Keras' default initialisation, for models the paper's authors built in
// Keras: kernels glorot-uniform, LSTM recurrent kernels orthogonal, biases
// zero with the LSTM forget gate's set to 1 (unit_forget_bias). Deep stacks
// of small layers train much faster from it than from PyTorch's defaults
// (uniform within 1/sqrt(fan_in), which shrinks activations layer by layer).
// Parameters are recognised by name: "*weight" of rank >= 2 (Linear, conv),
// "weight_ih_l*" / "weight_hh_l*" / "bias_*_l*" (LSTM); others are left alone.
#include <Eigen/QR>
#include <cmath>
#include <string>

#include "stpain/core/random.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

namespace detail {
inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
inline std::string leaf_name(const std::string& name) { return name.substr(name.rfind('.') + 1); }
}  // namespace detail

template <class Model>
void keras_init(Model& model, Generator& g = default_generator()) {
  model.visit_parameters([&](const std::string& name, auto& p) {
    if (!p.trainable) return;
    using T = typename std::decay_t<decltype(p.value)>::value_type;
    const std::string leaf = detail::leaf_name(name);
    const Shape& s = p.value.shape();
    auto glorot = [&](int64_t fan_in, int64_t fan_out) {
      const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
      for (auto& v : p.value) v = static_cast<T>(g.uniform(-limit, limit));
    };
    if (leaf.rfind("weight_ih_l", 0) == 0) {  // [4H, in]: Keras kernel [in, 4H]
      glorot(s[1], s[0]);
    } else if (leaf.rfind("weight_hh_l", 0) == 0) {  // [4H, H]: Keras orthogonal recurrent kernel [H, 4H]
      const int64_t rows = s[0], cols = s[1];
      Eigen::MatrixXd a(rows, cols);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) a(i, j) = g.normal();
      const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ() * Eigen::MatrixXd::Identity(rows, cols);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) p.value[i * cols + j] = static_cast<T>(q(i, j));
    } else if (leaf.rfind("bias_ih_l", 0) == 0) {  // gates i, f, g, o: forget gate bias 1
      p.value.zero();
      const int64_t h = s[0] / 4;
      for (int64_t i = h; i < 2 * h; ++i) p.value[i] = T(1);
    } else if (leaf.rfind("bias_hh_l", 0) == 0) {
      p.value.zero();
    } else if (leaf == "weight" && s.rank() >= 2) {
      const int64_t receptive = s.span(2, s.rank());
      glorot(s[1] * receptive, s[0] * receptive);
    } else if (leaf == "bias") {
      p.value.zero();
    }
  });
}

}  // namespace stpain
