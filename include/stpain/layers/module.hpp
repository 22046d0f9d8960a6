#pragma once
// What every layer is: the Layer concept, parameters, and a small base class.
//
// A layer of backend B and scalar T
//   - forward(x) returns the output and caches what backward needs;
//   - backward(dy) returns dL/dx for the last forward and *accumulates* the
//     gradients of its parameters (zero them with zero_grad());
//   - visit_parameters(f, prefix) calls f(name, Parameter&) for every
//     parameter and buffer, named as PyTorch's state_dict names them
//     ("stages.0.blocks.1.conv_dw.weight");
//   - train(bool) switches dropout / batch statistics on or off.
#include <concepts>
#include <functional>
#include <string>

#include "stpain/core/random.hpp"
#include "stpain/core/tensor.hpp"

namespace stpain {

template <class T = float, class B = cpu>
struct Parameter {
  Tensor<T, B> value;
  Tensor<T, B> grad;  // same shape as value; left empty for buffers
  // false for buffers such as BatchNorm's running statistics: saved and
  // loaded with the weights, never touched by an optimiser.
  bool trainable = true;

  static Parameter make(const Shape& shape) { return {Tensor<T, B>(shape), Tensor<T, B>(shape), true}; }
  static Parameter buffer(const Shape& shape) { return {Tensor<T, B>(shape), Tensor<T, B>(), false}; }
};

template <class T, class B>
using ParameterVisitor = std::function<void(const std::string&, Parameter<T, B>&)>;

template <class L>
concept Layer = requires(L& layer, const typename L::tensor& x, const std::string& prefix,
                         ParameterVisitor<typename L::scalar, typename L::backend> visit) {
  typename L::scalar;
  typename L::backend;
  { layer.forward(x) } -> std::convertible_to<typename L::tensor>;
  { layer.backward(x) } -> std::convertible_to<typename L::tensor>;
  layer.visit_parameters(visit, prefix);
  layer.train(true);
  { layer.is_training() } -> std::convertible_to<bool>;
};

// Base of the layers: types, the training flag, and no parameters.
template <class B, class T>
class Module {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;
  using parameter = Parameter<T, B>;

  void train(bool on = true) { training_ = on; }
  void eval() { train(false); }
  bool is_training() const { return training_; }
  template <class F>
  void visit_parameters(F&&, const std::string& = "") {}

 protected:
  bool training_ = true;
};

// Throws when backward runs without a forward whose input it needs.
template <class T, class B>
void expect_forward_cache(const Tensor<T, B>& cached, const char* layer) {
  STPAIN_CHECK(cached.defined(), Error, layer, ": backward() called before forward()");
}

// y += x elementwise, on the tensors' backend (the residual and branch sums
// of the layers; a kernel on a GPU, not a host loop).
template <class T, class B>
void add_to(Tensor<T, B>& y, const Tensor<T, B>& x) {
  STPAIN_CHECK(x.numel() == y.numel(), ShapeError, "add_to: ", x.shape().str(), " into ", y.shape().str());
  add_into(B{}, x.data(), y.data(), y.numel());
}

// Parameter utilities that work on any layer.
template <class L>
void zero_grad(L& layer) {
  layer.visit_parameters([](const std::string&, auto& p) {
    if (p.trainable) p.grad.zero();
  });
}

template <class L>
int64_t parameter_count(L& layer) {
  int64_t n = 0;
  layer.visit_parameters([&](const std::string&, auto& p) {
    if (p.trainable) n += p.value.numel();
  });
  return n;
}

// U(-bound, bound) with bound = 1/sqrt(fan_in): PyTorch's default for Linear
// and Conv weights (kaiming_uniform with a = sqrt(5)) and their biases.
template <class T, class B>
void init_uniform_fan_in(Tensor<T, B>& t, int64_t fan_in, Generator& gen = default_generator()) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  for (auto& v : t) v = static_cast<T>(gen.uniform(-bound, bound));
}

}  // namespace stpain
