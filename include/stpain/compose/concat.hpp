#pragma once
// Concat<L...>: every layer sees the same input; their outputs are joined
// along the last dimension (all other dimensions must agree). backward splits
// dy between the layers and sums their input gradients.
#include <array>
#include <tuple>
#include <vector>

#include "stpain/compose/named.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

// Joins tensors along the last dimension (all others must agree).
template <class T, class B>
Tensor<T, B> concat_last_dim(const std::vector<Tensor<T, B>>& parts) {
  STPAIN_CHECK(!parts.empty(), ShapeError, "concat_last_dim: nothing to join");
  const Shape lead = parts[0].shape().without(-1);
  int64_t total = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    STPAIN_CHECK(parts[i].shape().without(-1) == lead, ShapeError, "concat_last_dim: part ", i, " has shape ",
                 parts[i].shape().str(), ", part 0 has ", parts[0].shape().str(), "; all but the last dimension must agree");
    total += parts[i].size(-1);
  }
  const int64_t rows = lead.numel();
  Tensor<T, B> y = Tensor<T, B>::empty(parts[0].shape().with(-1, total));
  int64_t col = 0;
  for (const auto& p : parts) {
    y.matrix(rows, total).middleCols(col, p.size(-1)) = p.matrix(rows, p.size(-1));
    col += p.size(-1);
  }
  return y;
}

// Columns [begin, begin + width) of the last dimension, as a new tensor.
template <class T, class B>
Tensor<T, B> slice_last_dim(const Tensor<T, B>& x, int64_t begin, int64_t width) {
  STPAIN_CHECK(begin >= 0 && width >= 0 && begin + width <= x.size(-1), ShapeError, "slice_last_dim: [", begin, ", ",
               begin + width, ") of ", x.shape().str());
  const int64_t rows = x.numel() / std::max<int64_t>(x.size(-1), 1);
  Tensor<T, B> y = Tensor<T, B>::empty(x.shape().with(-1, width));
  y.matrix(rows, width) = x.matrix(rows, x.size(-1)).middleCols(begin, width);
  return y;
}

template <class First, class... Rest>
class Concat {
 public:
  using backend = typename First::backend;
  using scalar = typename First::scalar;
  using tensor = Tensor<scalar, backend>;
  static constexpr size_t size = 1 + sizeof...(Rest);

  Concat() = default;
  explicit Concat(First first, Rest... rest) : layers_(std::move(first), std::move(rest)...) {}

  tensor forward(const tensor& x) {
    std::vector<tensor> outs(size);
    for_each_indexed([&](auto& l, size_t i) {
      outs[i] = l.forward(x);
      widths_[i] = outs[i].size(-1);
    });
    return concat_last_dim(outs);
  }

  tensor backward(const tensor& dy) {
    tensor dx;
    int64_t col = 0;
    for_each_indexed([&](auto& l, size_t i) {
      tensor d = l.backward(slice_last_dim(dy, col, widths_[i]));
      col += widths_[i];
      if (i == 0)
        dx = d;
      else
        add_to(dx, d);
    });
    return dx;
  }

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

 private:
  template <class F>
  void for_each_indexed(F&& f) {
    [&]<size_t... I>(std::index_sequence<I...>) { (f(std::get<I>(layers_), I), ...); }
    (std::make_index_sequence<size>{});
  }

  std::tuple<First, Rest...> layers_;
  std::array<int64_t, size> widths_{};
};

}  // namespace stpain
