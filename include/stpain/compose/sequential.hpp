#pragma once
// Sequential<L...>: layers applied in order (torch.nn.Sequential). The types
// fix the structure; each layer's sizes come from its constructor.
//   Sequential<Named<"fc1", Linear<>>, GELU<>, Named<"fc2", Linear<>>> mlp(
//       Linear<>(96, 384), GELU<>(), Linear<>(384, 96));
#include <tuple>
#include <utility>

#include "stpain/compose/named.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

template <class First, class... Rest>
class Sequential {
 public:
  using backend = typename First::backend;
  using scalar = typename First::scalar;
  using tensor = Tensor<scalar, backend>;
  static constexpr size_t size = 1 + sizeof...(Rest);

  Sequential() = default;
  explicit Sequential(First first, Rest... rest) : layers_(std::move(first), std::move(rest)...) {}

  tensor forward(const tensor& x) {
    return std::apply([&](auto&... l) { return chain_forward(x, l...); }, layers_);
  }
  tensor backward(const tensor& dy) { return backward_from<size - 1>(dy); }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    for_each_indexed([&](auto& layer, size_t i) {
      using L = std::decay_t<decltype(layer)>;
      layer.visit_parameters(f, detail::child_prefix<L>(prefix, i));
    });
  }
  void train(bool on = true) {
    for_each_indexed([&](auto& layer, size_t) { layer.train(on); });
  }
  void eval() { train(false); }
  bool is_training() const { return std::get<0>(layers_).is_training(); }

  template <size_t I>
  auto& get() {
    return std::get<I>(layers_);
  }
  template <size_t I>
  const auto& get() const {
    return std::get<I>(layers_);
  }

 private:
  static tensor chain_forward(const tensor& x) { return x; }
  template <class L, class... Ls>
  static tensor chain_forward(const tensor& x, L& l, Ls&... ls) {
    return chain_forward(l.forward(x), ls...);
  }
  template <size_t I>
  tensor backward_from(const tensor& dy) {
    tensor d = std::get<I>(layers_).backward(dy);
    if constexpr (I == 0)
      return d;
    else
      return backward_from<I - 1>(d);
  }
  template <class F>
  void for_each_indexed(F&& f) {
    [&]<size_t... I>(std::index_sequence<I...>) { (f(std::get<I>(layers_), I), ...); }
    (std::make_index_sequence<size>{});
  }

  std::tuple<First, Rest...> layers_;
};

}  // namespace stpain
