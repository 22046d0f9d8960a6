#pragma once
// Linear: y = x W^T + b over the last dimension (torch.nn.Linear).
// weight [out_features, in_features], bias [out_features].
#include "stpain/backend/cpu_gemm.hpp"
#include "stpain/layers/module.hpp"

namespace stpain::backend {

// y[r, :] = x[r, :] W^T + bias for `rows` rows: W [out, in], bias [out] or
// null. The register-tiled GEMM of cpu_gemm.hpp, which adds the bias while
// each output tile is in registers.
template <class T>
void linear_forward(cpu, const T* x, const T* w, const T* bias, T* y, int64_t rows, int64_t in, int64_t out) {
  gemm_nt(rows, out, in, x, in, w, in, bias, y, out);
}

}  // namespace stpain::backend

namespace stpain {

template <class B = cpu, class T = float>
class Linear : public Module<B, T> {
 public:
  using typename Module<B, T>::tensor;
  struct Options {
    int64_t in_features = 0;
    int64_t out_features = 0;
    bool bias = true;
  };

  Linear(int64_t in_features, int64_t out_features, bool bias = true)
      : Linear(Options{in_features, out_features, bias}) {}
  explicit Linear(const Options& o) : opt_(o) {
    weight = Parameter<T, B>::make({o.out_features, o.in_features});
    init_uniform_fan_in(weight.value, o.in_features);
    if (o.bias) {
      this->bias = Parameter<T, B>::make({o.out_features});
      init_uniform_fan_in(this->bias.value, o.in_features);
    }
  }

  tensor forward(const tensor& x) {
    STPAIN_CHECK(x.rank() >= 1 && x.size(-1) == opt_.in_features, ShapeError, "Linear(", opt_.in_features,
                 " -> ", opt_.out_features, "): input ", x.shape().str(), " does not end in ",
                 opt_.in_features);
    input_ = x;
    const int64_t rows = x.numel() / opt_.in_features;
    tensor y = tensor::empty(x.shape().with(-1, opt_.out_features));
    linear_forward(B{}, x.data(), weight.value.data(), opt_.bias ? bias.value.data() : nullptr, y.data(), rows,
                   opt_.in_features, opt_.out_features);
    return y;
  }

  tensor backward(const tensor& dy) {
    expect_forward_cache(input_, "Linear");
    expect_shape(dy.shape(), input_.shape().with(-1, opt_.out_features), "Linear.backward dy");
    const int64_t rows = input_.numel() / opt_.in_features;
    // dW += dy^T x ; db += sum_rows dy ; dx = dy W
    B::gemm(true, false, opt_.out_features, opt_.in_features, rows, T(1), dy.data(), opt_.out_features,
            input_.data(), opt_.in_features, T(1), weight.grad.data(), opt_.in_features);
    if (opt_.bias) accumulate_column_sums(B{}, dy.data(), bias.grad.data(), rows, opt_.out_features);
    tensor dx = tensor::empty(input_.shape());
    B::gemm(false, false, rows, opt_.in_features, opt_.out_features, T(1), dy.data(), opt_.out_features,
            weight.value.data(), opt_.in_features, T(0), dx.data(), opt_.in_features);
    return dx;
  }

  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
    if (opt_.bias) f(prefix + "bias", bias);
  }

  const Options& options() const { return opt_; }

  Parameter<T, B> weight, bias;

 private:
  Options opt_;
  tensor input_;
};

}  // namespace stpain
