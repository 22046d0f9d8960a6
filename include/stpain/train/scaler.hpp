#pragma once
// StandardScaler as scikit-learn's: per feature column, subtract the mean and
// divide by the population standard deviation (ddof = 0); a constant column
// is only centred (scale 1). Fit on training folds only.
#include <cmath>
#include <vector>

#include "stpain/core/error.hpp"
#include "stpain/core/tensor.hpp"

namespace stpain {

class StandardScaler {
 public:
  StandardScaler() = default;
  // A scaler fitted elsewhere (read back from a checkpoint's model card).
  StandardScaler(std::vector<double> mean, std::vector<double> scale) : mean_(std::move(mean)), scale_(std::move(scale)) {
    STPAIN_CHECK(mean_.size() == scale_.size(), ShapeError, "StandardScaler: ", mean_.size(), " means but ",
                 scale_.size(), " scales");
  }

  // x [rows, features]; statistics accumulated in double.
  StandardScaler& fit(const Tensor<float>& x) {
    STPAIN_CHECK(x.rank() == 2 && x.size(0) > 0, ShapeError, "StandardScaler.fit: x ", x.shape().str(),
                 " is not a non-empty [rows, features] matrix");
    const int64_t n = x.size(0), f = x.size(1);
    mean_.assign(static_cast<size_t>(f), 0.0);
    scale_.assign(static_cast<size_t>(f), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < f; ++c) mean_[static_cast<size_t>(c)] += x(i, c);
    for (auto& m : mean_) m /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < f; ++c) {
        const double d = x(i, c) - mean_[static_cast<size_t>(c)];
        scale_[static_cast<size_t>(c)] += d * d;
      }
    for (auto& s : scale_) {
      s = std::sqrt(s / static_cast<double>(n));
      if (s == 0) s = 1;  // sklearn's handling of constant features
    }
    return *this;
  }

  Tensor<float> transform(const Tensor<float>& x) const {
    STPAIN_CHECK(!mean_.empty(), Error, "StandardScaler.transform called before fit");
    STPAIN_CHECK(x.rank() == 2 && x.size(1) == static_cast<int64_t>(mean_.size()), ShapeError,
                 "StandardScaler.transform: x ", x.shape().str(), " does not have the ", mean_.size(),
                 " features it was fitted on");
    Tensor<float> y = Tensor<float>::empty(x.shape());
    for (int64_t i = 0; i < x.size(0); ++i)
      for (int64_t c = 0; c < x.size(1); ++c)
        y(i, c) = static_cast<float>((x(i, c) - mean_[static_cast<size_t>(c)]) / scale_[static_cast<size_t>(c)]);
    return y;
  }
  Tensor<float> fit_transform(const Tensor<float>& x) { return fit(x).transform(x); }

  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& scale() const { return scale_; }

 private:
  std::vector<double> mean_, scale_;
};

}  // namespace stpain
