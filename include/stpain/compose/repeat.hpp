#pragma once
// Repeat<Block>: a runtime number of blocks of one type applied in order,
// named "0", "1", ... (a torch.nn.Sequential of identical modules).
#include <functional>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain {

template <class Block>
class Repeat {
 public:
  using backend = typename Block::backend;
  using scalar = typename Block::scalar;
  using tensor = Tensor<scalar, backend>;

  Repeat() = default;
  explicit Repeat(std::vector<Block> blocks) : blocks_(std::move(blocks)) {}
  // count blocks, the i-th made by make(i) (so sizes or drop rates may vary).
  Repeat(size_t count, const std::function<Block(size_t)>& make) {
    blocks_.reserve(count);
    for (size_t i = 0; i < count; ++i) blocks_.push_back(make(i));
  }

  tensor forward(const tensor& x) {
    tensor y = x;
    for (auto& b : blocks_) y = b.forward(y);
    return y;
  }
  tensor backward(const tensor& dy) {
    tensor d = dy;
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) d = it->backward(d);
    return d;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    for (size_t i = 0; i < blocks_.size(); ++i) blocks_[i].visit_parameters(f, prefix + std::to_string(i) + ".");
  }
  void train(bool on = true) {
    training_ = on;
    for (auto& b : blocks_) b.train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  size_t size() const { return blocks_.size(); }
  Block& operator[](size_t i) { return blocks_[i]; }
  auto begin() { return blocks_.begin(); }
  auto end() { return blocks_.end(); }

 private:
  std::vector<Block> blocks_;
  bool training_ = true;
};

}  // namespace stpain
