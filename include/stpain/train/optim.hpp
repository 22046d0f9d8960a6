#pragma once
// Optimisers with torch.optim semantics: SGD, Adam, AdamW.
//
//   Adam opt(model, AdamOptions{.lr = 1e-3});   // Adam<cpu, float>, deduced from the model
//   zero_grad(model); model.forward(x); model.backward(dlogits); opt.step();
//
// An optimiser keeps pointers to the model's trainable parameters (collected
// once, through visit_parameters), so the model must outlive it and stay put.
// Its state (step count, moments, momentum buffers) is reachable by name
// through visit_state(f), f(name, Tensor&), for checkpoints:
//   "step", "<param>.momentum_buffer", "<param>.exp_avg", "<param>.exp_avg_sq",
//   "<param>.max_exp_avg_sq" (the names of torch.optim's state_dict).
// Writing into the visited tensors restores the state, "step" included.
#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "stpain/layers/module.hpp"

namespace stpain {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;  // L2: weight_decay * param added to the gradient
};

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas{0.9, 0.999};
  double eps = 1e-8;          // PyTorch's default; Keras uses 1e-7
  double weight_decay = 0.0;  // L2 added to the gradient (torch.optim.Adam), not decoupled
  bool amsgrad = false;
  // Keras / TensorFlow put eps inside the bias correction ("epsilon hat"):
  // lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps). Set this, with
  // eps = 1e-7, to match a Keras model step for step.
  bool epsilon_hat = false;
};

// torch.optim.AdamW: the weight decay is decoupled (param *= 1 - lr * weight_decay).
struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.01;
  bool amsgrad = false;
  bool epsilon_hat = false;
};

namespace backend {

// Below this many elements an update runs on one thread.
inline constexpr int64_t kOptimizerGrain = int64_t{1} << 15;

struct SGDCoefficients {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first_step;  // the momentum buffer starts as the first gradient (PyTorch)
};

template <class T>
void sgd_update(cpu, T* param, const T* grad, T* momentum_buffer, int64_t n, const SGDCoefficients& k) {
  const T lr = static_cast<T>(k.lr), wd = static_cast<T>(k.weight_decay), mu = static_cast<T>(k.momentum);
  const T keep = static_cast<T>(1.0 - k.dampening);
  const bool first = k.first_step, nesterov = k.nesterov;
  parallel_for(n, kOptimizerGrain, [&](int64_t lo, int64_t hi) {
    if (!momentum_buffer) {
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) param[i] -= lr * (grad[i] + wd * param[i]);
      return;
    }
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      const T d = grad[i] + wd * param[i];
      const T buf = first ? d : mu * momentum_buffer[i] + keep * d;
      momentum_buffer[i] = buf;
      param[i] -= lr * (nesterov ? d + mu * buf : buf);
    }
  });
}

struct AdamCoefficients {
  double beta1, beta2;
  double step_size;              // lr / (1 - beta1^t)
  double bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  double eps;                    // added to sqrt(v) / bias_correction2_sqrt
  double l2;                     // Adam: added to the gradient as l2 * param
  double decay;                  // AdamW: param *= decay first (1 when not decoupled)
};

// One Adam / AdamW step; max_exp_avg_sq is null unless amsgrad.
template <class T>
void adam_update(cpu, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n,
                 const AdamCoefficients& k) {
  const T b1 = static_cast<T>(k.beta1), b2 = static_cast<T>(k.beta2);
  const T one_minus_b1 = static_cast<T>(1.0 - k.beta1), one_minus_b2 = static_cast<T>(1.0 - k.beta2);
  const T step_size = static_cast<T>(k.step_size), bc2_sqrt = static_cast<T>(k.bias_correction2_sqrt);
  const T eps = static_cast<T>(k.eps), l2 = static_cast<T>(k.l2), decay = static_cast<T>(k.decay);
  auto run = [&](int64_t lo, int64_t hi, auto amsgrad) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      const T p = param[i] * decay;
      const T g = grad[i] + l2 * p;
      const T m = b1 * exp_avg[i] + one_minus_b1 * g;
      const T v = b2 * exp_avg_sq[i] + one_minus_b2 * g * g;
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      T v_used = v;
      if constexpr (decltype(amsgrad)::value) {
        v_used = std::max(max_exp_avg_sq[i], v);
        max_exp_avg_sq[i] = v_used;
      }
      param[i] = p - step_size * m / (std::sqrt(v_used) / bc2_sqrt + eps);
    }
  };
  parallel_for(n, kOptimizerGrain, [&](int64_t lo, int64_t hi) {
    if (max_exp_avg_sq)
      run(lo, hi, std::true_type{});
    else
      run(lo, hi, std::false_type{});
  });
}

}  // namespace backend

// What every optimiser shares: the parameters, the learning rate, the step
// count, zero_grad() and state access. step() is virtual so a trainer can
// hold any optimiser as Optimizer<B, T>&.
template <class B = cpu, class T = float>
class Optimizer {
 public:
  using backend = B;
  using scalar = T;
  using tensor = Tensor<T, B>;
  using StateVisitor = std::function<void(const std::string&, tensor&)>;

  virtual ~Optimizer() = default;

  // One update of every parameter from its gradient.
  virtual void step() = 0;

  // Clears the gradients of the optimised parameters.
  void zero_grad() {
    for (auto& s : params_) s.param->grad.zero();
  }

  double lr() const { return lr_; }
  void set_lr(double lr) {
    STPAIN_CHECK(lr >= 0.0 && std::isfinite(lr), Error, "optimizer: invalid learning rate ", lr);
    lr_ = lr;
  }
  // Number of step() calls so far (Keras: optimizer.iterations).
  int64_t step_count() const { return steps_; }

  // f(name, tensor&) for "step" and every state tensor; writes restore state.
  template <class F>
  void visit_state(F&& f) {
    const StateVisitor visit = std::ref(f);
    tensor step = tensor::from(Shape(), {static_cast<T>(steps_)});
    visit("step", step);
    T restored{};
    B::copy_bytes(&restored, step.data(), sizeof(T));
    STPAIN_CHECK(restored >= 0, Error, "optimizer: state \"step\" must be >= 0, got ", restored);
    steps_ = std::llround(static_cast<double>(restored));
    visit_parameter_state(visit);
  }

  // Names of the optimised parameters, in visit order.
  std::vector<std::string> parameter_names() const {
    std::vector<std::string> names;
    for (const auto& s : params_) names.push_back(s.name);
    return names;
  }

 protected:
  struct Slot {
    std::string name;
    Parameter<T, B>* param;
  };

  template <class Model>
  Optimizer(Model& model, double lr, const char* kind) {
    set_lr(lr);
    std::set<const Parameter<T, B>*> seen;  // tied weights are updated once
    model.visit_parameters([&](const std::string& name, Parameter<T, B>& p) {
      if (!p.trainable || !seen.insert(&p).second) return;
      STPAIN_CHECK(p.grad.shape() == p.value.shape(), ShapeError, kind, ": parameter ", name, " ",
                   p.value.shape().str(), " has a gradient of shape ", p.grad.shape().str());
      params_.push_back({name, &p});
    });
  }

  // A zero tensor per parameter, shaped like it (moments, buffers).
  std::vector<tensor> zeros_like_parameters() const {
    std::vector<tensor> out;
    for (const auto& s : params_) out.emplace_back(s.param->value.shape());
    return out;
  }
  void visit_named(const StateVisitor& visit, std::vector<tensor>& state, const char* what) {
    for (size_t i = 0; i < state.size(); ++i) {
      const Shape shape = state[i].shape();
      visit(params_[i].name + "." + what, state[i]);
      expect_shape(state[i].shape(), shape, "optimizer state " + params_[i].name + "." + what);
    }
  }
  virtual void visit_parameter_state(const StateVisitor& visit) = 0;

  std::vector<Slot> params_;
  double lr_ = 0.0;
  int64_t steps_ = 0;
};

// torch.optim.SGD: d = g + wd * p; with momentum buf = mu * buf + (1 - dampening) * d
// (buf = d on the first step) and d = buf, or d + mu * buf when nesterov; p -= lr * d.
template <class B = cpu, class T = float>
class SGD : public Optimizer<B, T> {
 public:
  using typename Optimizer<B, T>::tensor;

  template <class Model>
  explicit SGD(Model& model, const SGDOptions& o = {}) : Optimizer<B, T>(model, o.lr, "SGD"), opt_(o) {
    STPAIN_CHECK(o.momentum >= 0.0 && o.weight_decay >= 0.0, Error, "SGD: momentum (", o.momentum,
                 ") and weight_decay (", o.weight_decay, ") must be >= 0");
    STPAIN_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0), Error,
                 "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ", o.momentum, ", dampening ",
                 o.dampening);
    if (o.momentum != 0.0) momentum_buffer_ = this->zeros_like_parameters();
  }

  void step() override {
    const backend::SGDCoefficients k{this->lr_,         opt_.momentum, opt_.dampening,
                                     opt_.weight_decay, opt_.nesterov, this->steps_ == 0};
    for (size_t i = 0; i < this->params_.size(); ++i) {
      auto& p = *this->params_[i].param;
      sgd_update(B{}, p.value.data(), p.grad.data(), momentum_buffer_.empty() ? nullptr : momentum_buffer_[i].data(),
                 p.value.numel(), k);
    }
    ++this->steps_;
  }

  // The options it was made with (lr: the initial learning rate).
  const SGDOptions& options() const { return opt_; }

 protected:
  void visit_parameter_state(const typename Optimizer<B, T>::StateVisitor& visit) override {
    this->visit_named(visit, momentum_buffer_, "momentum_buffer");
  }

 private:
  SGDOptions opt_;
  std::vector<tensor> momentum_buffer_;
};

namespace detail {

// Adam and AdamW: the same moments, the weight decay applied differently.
template <class B, class T>
class AdamFamily : public Optimizer<B, T> {
 public:
  using typename Optimizer<B, T>::tensor;

  void step() override {
    ++this->steps_;  // bias corrections use the 1-based step, as torch.optim
    const double t = static_cast<double>(this->steps_);
    const auto [beta1, beta2] = opt_.betas;
    const double bc1 = 1.0 - std::pow(beta1, t), bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, t));
    const backend::AdamCoefficients k{beta1,
                                      beta2,
                                      this->lr_ / bc1,
                                      bc2_sqrt,
                                      opt_.epsilon_hat ? opt_.eps / bc2_sqrt : opt_.eps,
                                      decoupled_ ? 0.0 : opt_.weight_decay,
                                      decoupled_ ? 1.0 - this->lr_ * opt_.weight_decay : 1.0};
    for (size_t i = 0; i < this->params_.size(); ++i) {
      auto& p = *this->params_[i].param;
      adam_update(B{}, p.value.data(), p.grad.data(), exp_avg_[i].data(), exp_avg_sq_[i].data(),
                  opt_.amsgrad ? max_exp_avg_sq_[i].data() : nullptr, p.value.numel(), k);
    }
  }

  // The options it was made with (lr: the initial learning rate).
  const AdamOptions& options() const { return opt_; }

 protected:
  template <class Model>
  AdamFamily(Model& model, const AdamOptions& o, bool decoupled, const char* kind)
      : Optimizer<B, T>(model, o.lr, kind), opt_(o), decoupled_(decoupled) {
    const auto [beta1, beta2] = o.betas;
    STPAIN_CHECK(beta1 >= 0.0 && beta1 < 1.0 && beta2 >= 0.0 && beta2 < 1.0, Error, kind,
                 ": betas must be in [0, 1), got (", beta1, ", ", beta2, ")");
    STPAIN_CHECK(o.eps >= 0.0 && o.weight_decay >= 0.0, Error, kind, ": eps (", o.eps, ") and weight_decay (",
                 o.weight_decay, ") must be >= 0");
    exp_avg_ = this->zeros_like_parameters();
    exp_avg_sq_ = this->zeros_like_parameters();
    if (o.amsgrad) max_exp_avg_sq_ = this->zeros_like_parameters();
  }

  void visit_parameter_state(const typename Optimizer<B, T>::StateVisitor& visit) override {
    this->visit_named(visit, exp_avg_, "exp_avg");
    this->visit_named(visit, exp_avg_sq_, "exp_avg_sq");
    this->visit_named(visit, max_exp_avg_sq_, "max_exp_avg_sq");
  }

 private:
  AdamOptions opt_;
  bool decoupled_;
  std::vector<tensor> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;
};

}  // namespace detail

// torch.optim.Adam: weight_decay is L2 (added to the gradient).
template <class B = cpu, class T = float>
class Adam : public detail::AdamFamily<B, T> {
 public:
  template <class Model>
  explicit Adam(Model& model, const AdamOptions& o = {}) : detail::AdamFamily<B, T>(model, o, false, "Adam") {}
};

// torch.optim.AdamW: decoupled weight decay, param *= 1 - lr * weight_decay.
template <class B = cpu, class T = float>
class AdamW : public detail::AdamFamily<B, T> {
 public:
  template <class Model>
  explicit AdamW(Model& model, const AdamWOptions& o = {})
      : detail::AdamFamily<B, T>(model, as_adam(o), true, "AdamW") {}

 private:
  static AdamOptions as_adam(const AdamWOptions& o) {
    return {o.lr, o.betas, o.eps, o.weight_decay, o.amsgrad, o.epsilon_hat};
  }
};

// Deduction from the model: Adam opt(model) is Adam<Model::backend, Model::scalar>.
template <class M>
concept OptimizableModel = requires {
  typename M::backend;
  typename M::scalar;
};
template <OptimizableModel M>
SGD(M&) -> SGD<typename M::backend, typename M::scalar>;
template <OptimizableModel M>
SGD(M&, const SGDOptions&) -> SGD<typename M::backend, typename M::scalar>;
template <OptimizableModel M>
Adam(M&) -> Adam<typename M::backend, typename M::scalar>;
template <OptimizableModel M>
Adam(M&, const AdamOptions&) -> Adam<typename M::backend, typename M::scalar>;
template <OptimizableModel M>
AdamW(M&) -> AdamW<typename M::backend, typename M::scalar>;
template <OptimizableModel M>
AdamW(M&, const AdamWOptions&) -> AdamW<typename M::backend, typename M::scalar>;

}  // namespace stpain
