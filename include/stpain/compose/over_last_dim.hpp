#pragma once
// OverLastDim<L>: runs a layer that expects [rows, C] (BatchNorm1d, say) on a
// channels-last tensor [..., C] by folding the leading dimensions into rows.
// Transparent for names.
#include "stpain/layers/module.hpp"

namespace stpain {

template <class L>
class OverLastDim : public L {
 public:
  using typename L::tensor;
  using L::L;
  OverLastDim(L layer) : L(std::move(layer)) {}

  tensor forward(const tensor& x) {
    shape_ = x.shape();
    const tensor y = L::forward(x.reshape({-1, x.size(-1)}));
    return y.reshape(x.shape().with(-1, y.size(-1)));
  }
  tensor backward(const tensor& dy) {
    return L::backward(dy.reshape({-1, dy.size(-1)})).reshape(shape_);
  }

 private:
  Shape shape_;
};

}  // namespace stpain
