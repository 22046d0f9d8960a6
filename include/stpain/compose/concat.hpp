#pragma once
// Concat<L...>: every layer sees the same input; their outputs are joined
// along the last dimension (all other dimensions must agree). backward splits
// dy between the layers and sums their input gradients.
#include <array>
#include <tuple>

#include "stpain/compose/named.hpp"
#include "stpain/layers/module.hpp"

namespace stpain {

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
    std::array<tensor, size> outs;
    for_each_indexed([&](auto& l, size_t i) { outs[i] = l.forward(x); });
    const Shape lead = outs[0].shape().without(-1);
    int64_t total = 0;
    for (size_t i = 0; i < size; ++i) {
      STPAIN_CHECK(outs[i].shape().without(-1) == lead, ShapeError, "Concat: output ", i, " has shape ",
                   outs[i].shape().str(), ", output 0 has ", outs[0].shape().str(),
                   "; all but the last dimension must agree");
      widths_[i] = outs[i].size(-1);
      total += widths_[i];
    }
    const int64_t rows = lead.numel();
    tensor y = tensor::empty(outs[0].shape().with(-1, total));
    y_width_ = total;
    int64_t col = 0;
    for (size_t i = 0; i < size; ++i) {
      y.matrix(rows, total).middleCols(col, widths_[i]) = outs[i].matrix(rows, widths_[i]);
      col += widths_[i];
    }
    return y;
  }

  tensor backward(const tensor& dy) {
    const int64_t rows = dy.numel() / y_width_;
    tensor dx;
    int64_t col = 0;
    for_each_indexed([&](auto& l, size_t i) {
      tensor part = tensor::empty(dy.shape().with(-1, widths_[i]));
      part.matrix(rows, widths_[i]) = dy.matrix(rows, y_width_).middleCols(col, widths_[i]);
      col += widths_[i];
      tensor d = l.backward(part);
      if (i == 0)
        dx = d;
      else
        dx.array() += d.array();
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
  int64_t y_width_ = 0;
};

}  // namespace stpain
