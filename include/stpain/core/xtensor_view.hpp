#pragma once
// xtensor views of stpain tensors (host backends): xt::adapt over the same
// memory, no copies, so xtensor's expressions read and write the tensor.
//   auto v = stpain::xt_view(t);   // xt::xtensor_adaptor with t's shape
//   v = xt::exp(v);                // writes t
// Bazel: depend on //:stpain_xtensor.
#include <xtensor/xadapt.hpp>

#include <vector>

#include "stpain/core/tensor.hpp"

namespace stpain {

template <class T, class B>
auto xt_view(Tensor<T, B>& t) {
  static_assert(B::host_accessible, "xtensor views need host memory");
  const std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  return xt::adapt(t.data(), static_cast<size_t>(t.numel()), xt::no_ownership(), shape);
}

template <class T, class B>
auto xt_view(const Tensor<T, B>& t) {
  static_assert(B::host_accessible, "xtensor views need host memory");
  const std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  return xt::adapt(t.data(), static_cast<size_t>(t.numel()), xt::no_ownership(), shape);
}

}  // namespace stpain
