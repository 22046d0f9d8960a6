#pragma once
// Learning-rate schedules: the learning rate as a function of the optimiser's
// step count (0-based, per batch), as Keras evaluates them:
//   opt.set_lr(schedule.lr(opt.step_count())); opt.step();
#include <cmath>
#include <cstdint>

#include "stpain/core/error.hpp"

namespace stpain {

struct LearningRateSchedule {
  virtual ~LearningRateSchedule() = default;
  virtual double lr(int64_t step) const = 0;
};

// The same learning rate at every step.
class ConstantSchedule : public LearningRateSchedule {
 public:
  explicit ConstantSchedule(double lr) : lr_(lr) {
    STPAIN_CHECK(lr >= 0.0 && std::isfinite(lr), Error, "ConstantSchedule: invalid learning rate ", lr);
  }
  double lr(int64_t) const override { return lr_; }

 private:
  double lr_;
};

// keras.optimizers.schedules.ExponentialDecay:
//   lr = initial_learning_rate * decay_rate ^ (step / decay_steps),
// the exponent floored when staircase (torch: StepLR(decay_steps, decay_rate);
// without staircase, ExponentialLR(decay_rate ^ (1 / decay_steps))).
class ExponentialDecay : public LearningRateSchedule {
 public:
  struct Options {
    double initial_learning_rate = 1e-3;
    int64_t decay_steps = 1;
    double decay_rate = 1.0;
    bool staircase = false;
  };

  ExponentialDecay(double initial_learning_rate, int64_t decay_steps, double decay_rate, bool staircase = false)
      : ExponentialDecay(Options{initial_learning_rate, decay_steps, decay_rate, staircase}) {}
  explicit ExponentialDecay(const Options& o) : opt_(o) {
    STPAIN_CHECK(o.decay_steps > 0, Error, "ExponentialDecay: decay_steps must be positive, got ", o.decay_steps);
    STPAIN_CHECK(o.initial_learning_rate >= 0.0 && o.decay_rate > 0.0, Error,
                 "ExponentialDecay: initial_learning_rate (", o.initial_learning_rate,
                 ") must be >= 0 and decay_rate (", o.decay_rate, ") > 0");
  }

  double lr(int64_t step) const override {
    double p = static_cast<double>(step) / static_cast<double>(opt_.decay_steps);
    if (opt_.staircase) p = std::floor(p);
    return opt_.initial_learning_rate * std::pow(opt_.decay_rate, p);
  }

  const Options& options() const { return opt_; }

 private:
  Options opt_;
};

}  // namespace stpain
