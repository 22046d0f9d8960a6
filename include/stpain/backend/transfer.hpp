#pragma once
// Moving tensors and layer parameters between backends:
//   to<cuda>(x), to<cpu>(y)     a copy of a tensor on another backend;
//   copy_parameters(dst, src)   every parameter and buffer of a layer into the
//                               same layer type built for another backend.
// The copy goes through the policy that can reach both memories: a device
// backend's copy_bytes (cudaMemcpyDefault) when one side is a device.
#include <string>
#include <utility>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain {

namespace detail {
template <class B1, class B2>
void copy_between(void* dst, const void* src, size_t bytes) {
  if constexpr (!B1::host_accessible)
    B1::copy_bytes(dst, src, bytes);
  else
    B2::copy_bytes(dst, src, bytes);
}
}  // namespace detail

// A copy of x on backend B2 (a fresh tensor, even when B2 is x's backend).
template <class B2, class T, class B1>
Tensor<T, B2> to(const Tensor<T, B1>& x) {
  Tensor<T, B2> y = Tensor<T, B2>::empty(x.shape());
  detail::copy_between<B1, B2>(y.data(), x.data(), sizeof(T) * static_cast<size_t>(x.numel()));
  return y;
}

// A copy of x in host memory as a cpu tensor.
template <class T, class B>
Tensor<T, cpu> to_host(const Tensor<T, B>& x) {
  return to<cpu>(x);
}

// Copies every parameter value (and buffer) of src into dst, matched by name;
// gradients are copied too where both have them. Throws when the names or
// shapes differ.
template <class Dst, class Src>
void copy_parameters(Dst& dst, Src& src) {
  using SrcB = typename Src::backend;
  using DstB = typename Dst::backend;
  std::vector<std::pair<std::string, Parameter<typename Src::scalar, SrcB>*>> from;
  src.visit_parameters([&](const std::string& name, auto& p) { from.emplace_back(name, &p); });
  size_t i = 0;
  dst.visit_parameters([&](const std::string& name, auto& p) {
    STPAIN_CHECK(i < from.size() && from[i].first == name, Error, "copy_parameters: destination parameter ", name,
                 " has no match at position ", i, " of the source");
    auto& s = *from[i++].second;
    expect_shape(p.value.shape(), s.value.shape(), "copy_parameters " + name);
    detail::copy_between<SrcB, DstB>(p.value.data(), s.value.data(), sizeof(typename Src::scalar) * p.value.numel());
    if (p.grad.defined() && s.grad.defined() && p.grad.numel() == s.grad.numel())
      detail::copy_between<SrcB, DstB>(p.grad.data(), s.grad.data(), sizeof(typename Src::scalar) * p.grad.numel());
  });
  STPAIN_CHECK(i == from.size(), Error, "copy_parameters: the source has ", from.size(), " parameters, the destination ", i);
}

}  // namespace stpain
