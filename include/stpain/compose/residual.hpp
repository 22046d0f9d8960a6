#pragma once
// Residual<Block>: y = x + block(x). Transparent for names: the block's
// parameters keep the names they would have without the skip connection.
#include <utility>

#include "stpain/layers/module.hpp"

namespace stpain {

template <class Block>
class Residual {
 public:
  using backend = typename Block::backend;
  using scalar = typename Block::scalar;
  using tensor = Tensor<scalar, backend>;
  using block_type = Block;

  Residual() = default;
  explicit Residual(Block block) : block_(std::move(block)) {}

  tensor forward(const tensor& x) {
    tensor y = block_.forward(x);
    expect_shape(y.shape(), x.shape(), "Residual: block output");
    if (y.shares_storage_with(x)) y = y.clone();  // never add into the caller's input
    add_to(y, x);
    return y;
  }
  tensor backward(const tensor& dy) {
    tensor dx = block_.backward(dy);
    if (dx.shares_storage_with(dy)) dx = dx.clone();
    add_to(dx, dy);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    block_.visit_parameters(f, prefix);
  }
  void train(bool on = true) { block_.train(on); }
  void eval() { train(false); }
  bool is_training() const { return block_.is_training(); }

  Block& block() { return block_; }

 private:
  Block block_;
};

}  // namespace stpain
