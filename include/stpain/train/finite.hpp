#pragma once
// Guards that stop training at the first NaN or Inf, with a message saying
// where: check_finite(loss, "loss at epoch 3, batch 12").
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "stpain/core/tensor.hpp"

namespace stpain {

// Throws NonFiniteError "<what> is nan" when value is NaN or infinite.
inline void check_finite(double value, const std::string& what) {
  STPAIN_CHECK(std::isfinite(value), NonFiniteError, what, " is ", value);
}

namespace detail {
// Flat index -> "[i, j, k]".
inline std::string multi_index(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(static_cast<size_t>(shape.rank()));
  for (int d = shape.rank() - 1; d >= 0; --d) {
    const int64_t extent = std::max<int64_t>(shape[d], 1);
    idx[static_cast<size_t>(d)] = flat % extent;
    flat /= extent;
  }
  return Shape(idx).str();
}

// Index of the first NaN/Inf element, or -1. The common case is checked on
// the tensor's backend; only a tensor with a bad value is read on the host.
template <class T, class B>
int64_t first_non_finite(const Tensor<T, B>& t) {
  if (all_finite(B{}, t.data(), t.numel())) return -1;
  static_assert(B::host_accessible, "check_finite reads tensors on the host");
  const T* x = t.data();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(static_cast<double>(x[i]))) return i;
  return -1;
}

template <class T, class B>
void throw_non_finite(const Tensor<T, B>& t, int64_t i, const std::string& what) {
  int64_t count = 0;
  for (const T& v : t) count += !std::isfinite(static_cast<double>(v));
  throw NonFiniteError(detail::concat(what, " ", t.shape().str(), ": element ", i, " ", multi_index(t.shape(), i),
                                      " is ", t[i], " (", count, " of ", t.numel(), " elements are not finite)"));
}
}  // namespace detail

// Throws NonFiniteError naming what, the shape, and the first bad element.
template <class T, class B>
void check_finite(const Tensor<T, B>& t, const std::string& what) {
  const int64_t i = detail::first_non_finite(t);
  if (i >= 0) detail::throw_non_finite(t, i, what);
}

// Throws NonFiniteError naming what and the first parameter (in visit order)
// whose gradient holds a NaN or Inf.
template <class M>
void check_gradients_finite(M& model, const std::string& what) {
  model.visit_parameters([&](const std::string& name, auto& p) {
    if (!p.trainable) return;
    const int64_t i = detail::first_non_finite(p.grad);
    if (i >= 0) detail::throw_non_finite(p.grad, i, what + ": gradient of " + name);
  });
}

}  // namespace stpain
