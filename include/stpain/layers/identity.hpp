#pragma once
// Identity: returns its input (a skip branch inside Concat, say).
#include "stpain/layers/module.hpp"

namespace stpain {

template <class B = cpu, class T = float>
class Identity : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  tensor forward(const tensor& x) { return x; }
  tensor backward(const tensor& dy) { return dy; }
};

}  // namespace stpain
