#include "stpain/train/optim.hpp"

#include <map>
#include <type_traits>

#include "stpain/compose/sequential.hpp"
#include "stpain/layers/linear.hpp"
#include "stpain/train/clip.hpp"
#include "stpain/train/finite.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/metrics.hpp"
#include "stpain/train/schedule.hpp"
#include "support/fixtures.hpp"

using namespace stpain;
using namespace stpain::testing;

namespace {

constexpr int kSteps = 5;

const safetensors::File& fixture() {
  static const safetensors::File f(fixture_path("training.safetensors"));
  return f;
}

// A Linear(4, 3) holding the fixture's start parameters.
Linear<cpu> start_model() {
  Linear<cpu> model(4, 3);
  load_case_parameters(model, fixture(), "optim");
  return model;
}

void set_fixture_gradients(Linear<cpu>& model, int step) {
  model.visit_parameters([&](const std::string& name, auto& p) {
    p.grad.copy_from(fixture().load("optim.grad." + std::to_string(step) + "." + name));
  });
}

void expect_parameters(Linear<cpu>& model, const std::string& case_name, int step) {
  model.visit_parameters([&](const std::string& name, auto& p) {
    expect_close(p.value, fixture().load(case_name + ".param." + name + "." + std::to_string(step)),
                 case_name + " " + name + " after step " + std::to_string(step));
  });
}

// Runs the fixture's five gradient steps and compares the parameters after
// each, then the optimiser state with torch's (when the fixture has it).
// `lr_at(step)` sets the learning rate before each step when given.
template <class Optimizer>
void expect_matches_fixture(Linear<cpu>& model, Optimizer& opt, const std::string& case_name,
                            const LearningRateSchedule* schedule = nullptr) {
  for (int k = 1; k <= kSteps; ++k) {
    if (schedule) opt.set_lr(schedule->lr(opt.step_count()));
    set_fixture_gradients(model, k);
    opt.step();
    CHECK(opt.step_count() == k);
    expect_parameters(model, case_name, k);
  }
  opt.visit_state([&](const std::string& name, Tensor<float>& t) {
    if (name == "step") {
      CHECK(t[0] == kSteps);
      return;
    }
    const std::string key = case_name + ".state." + name;
    if (fixture().contains(key)) expect_close(t, fixture().load(key), key);
  });
}

// A model that shares one parameter under two names (tied weights).
struct TiedModel {
  using backend = cpu;
  using scalar = float;
  Parameter<float> shared = Parameter<float>::make({2});
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "encoder.weight", shared);
    f(prefix + "decoder.weight", shared);
  }
};

// One large parameter: its updates run in parallel chunks.
struct LargeModel {
  using backend = cpu;
  using scalar = float;
  Parameter<float> weight = Parameter<float>::make({1000, 301});
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix = "") {
    f(prefix + "weight", weight);
  }
};

}  // namespace

TEST_CASE("SGD matches torch.optim.SGD (momentum, dampening, nesterov, weight decay)") {
  {
    Linear<cpu> model = start_model();
    SGD opt(model, SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01});
    expect_matches_fixture(model, opt, "sgd_nesterov");
  }
  {
    Linear<cpu> model = start_model();
    SGD opt(model, {.lr = 0.05, .momentum = 0.8, .dampening = 0.3});
    expect_matches_fixture(model, opt, "sgd_dampening");
  }
  {
    Linear<cpu> model = start_model();
    SGD opt(model, {.lr = 0.2});
    expect_matches_fixture(model, opt, "sgd_plain");
    int states = 0;
    opt.visit_state([&](const std::string&, Tensor<float>&) { ++states; });
    CHECK(states == 1);  // "step" only: no momentum buffers without momentum
  }
}

TEST_CASE("Adam matches torch.optim.Adam (eps 1e-8 and 1e-7, betas, weight decay, amsgrad)") {
  struct Case {
    const char* name;
    AdamOptions options;
  };
  for (const Case& c : {Case{"adam", {.lr = 1e-2}}, Case{"adam_eps7", {.lr = 1e-2, .betas = {0.8, 0.99}, .eps = 1e-7}},
                        Case{"adam_weight_decay", {.lr = 1e-2, .weight_decay = 0.1}},
                        Case{"adam_amsgrad", {.lr = 1e-2, .weight_decay = 0.01, .amsgrad = true}}}) {
    INFO(c.name);
    Linear<cpu> model = start_model();
    Adam opt(model, c.options);
    expect_matches_fixture(model, opt, c.name);
  }
}

TEST_CASE("AdamW matches torch.optim.AdamW (decoupled weight decay, default 0.01)") {
  CHECK(AdamWOptions{}.weight_decay == 0.01);
  {
    Linear<cpu> model = start_model();
    AdamW opt(model, {.lr = 1e-2});
    expect_matches_fixture(model, opt, "adamw");
  }
  {
    Linear<cpu> model = start_model();
    AdamW opt(model, {.lr = 3e-2, .weight_decay = 0.1, .amsgrad = true});
    expect_matches_fixture(model, opt, "adamw_amsgrad");
  }
}

TEST_CASE("Adam with epsilon_hat matches the Keras update") {
  for (bool amsgrad : {false, true}) {
    const std::string name = amsgrad ? "keras_adam_amsgrad" : "keras_adam";
    INFO(name);
    Linear<cpu> model = start_model();
    Adam opt(model, {.lr = 1e-2, .eps = 1e-7, .amsgrad = amsgrad, .epsilon_hat = true});
    expect_matches_fixture(model, opt, name);
  }
}

TEST_CASE("Adam follows a learning-rate schedule set before each step") {
  Linear<cpu> model = start_model();
  Adam opt(model, {.lr = 1.0});
  const ExponentialDecay decay(1e-2, 2, 0.5);
  expect_matches_fixture(model, opt, "adam_decay", &decay);
  CHECK(opt.lr() == Approx(decay.lr(kSteps - 1)));
}

TEST_CASE("optimisers deduce their types from the model and expose lr, steps and zero_grad") {
  Linear<cpu> model(4, 3);
  Linear<cpu, double> model64(2, 2);
  Adam adam(model);
  AdamW adamw(model64, {.lr = 1e-3});
  SGD sgd(model64);
  STATIC_REQUIRE(std::is_same_v<decltype(adam), Adam<cpu, float>>);
  STATIC_REQUIRE(std::is_same_v<decltype(adamw), AdamW<cpu, double>>);
  STATIC_REQUIRE(std::is_same_v<decltype(sgd), SGD<cpu, double>>);
  Optimizer<cpu, float>& base = adam;  // trainers can hold any optimiser

  CHECK(base.lr() == 1e-3);
  base.set_lr(5e-4);
  CHECK(adam.lr() == 5e-4);
  CHECK(adam.options().lr == 1e-3);
  CHECK_THROWS_WITH(base.set_lr(-1.0), Catch::Contains("learning rate"));
  CHECK(adam.parameter_names() == std::vector<std::string>{"weight", "bias"});

  model.weight.grad.fill(1.0f);
  model.bias.grad.fill(2.0f);
  base.step();
  CHECK(base.step_count() == 1);
  base.zero_grad();
  for (float g : model.weight.grad) CHECK(g == 0.0f);
  for (float g : model.bias.grad) CHECK(g == 0.0f);

  // Buffers are not optimised; tied weights are updated once.
  TiedModel tied;
  tied.shared.grad.fill(1.0f);
  SGD tied_sgd(tied, {.lr = 0.5});
  CHECK(tied_sgd.parameter_names() == std::vector<std::string>{"encoder.weight"});
  tied_sgd.step();
  CHECK(tied.shared.value[0] == -0.5f);
}

TEST_CASE("optimiser options are validated") {
  Linear<cpu> model(2, 2);
  CHECK_THROWS_WITH(SGD(model, {.lr = 0.1, .nesterov = true}), Catch::Contains("nesterov"));
  CHECK_THROWS_WITH(SGD(model, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    Catch::Contains("dampening"));
  CHECK_THROWS_WITH(Adam(model, {.betas = {0.9, 1.0}}), Catch::Contains("betas") && Catch::Contains("Adam"));
  CHECK_THROWS_WITH(AdamW(model, {.eps = -1.0}), Catch::Contains("AdamW") && Catch::Contains("eps"));
  CHECK_THROWS_WITH(Adam(model, {.lr = -1e-3}), Catch::Contains("learning rate"));
}

TEST_CASE("visit_state checkpoints and resumes an optimiser exactly") {
  // Two steps, checkpoint, then three more steps in a fresh model and optimiser.
  Linear<cpu> model = start_model();
  Adam opt(model, {.lr = 1e-2, .weight_decay = 0.01, .amsgrad = true});
  for (int k = 1; k <= 2; ++k) {
    set_fixture_gradients(model, k);
    opt.step();
  }
  std::map<std::string, Tensor<float>> checkpoint;
  std::vector<std::string> names;
  opt.visit_state([&](const std::string& name, Tensor<float>& t) {
    names.push_back(name);
    checkpoint[name] = t.clone();
  });
  CHECK(names == std::vector<std::string>{"step", "weight.exp_avg", "bias.exp_avg", "weight.exp_avg_sq",
                                          "bias.exp_avg_sq", "weight.max_exp_avg_sq", "bias.max_exp_avg_sq"});
  CHECK(checkpoint["step"].shape() == Shape());
  CHECK(checkpoint["step"][0] == 2.0f);

  Linear<cpu> resumed(4, 3);
  resumed.weight.value.copy_from(model.weight.value);
  resumed.bias.value.copy_from(model.bias.value);
  Adam opt2(resumed, {.lr = 1e-2, .weight_decay = 0.01, .amsgrad = true});
  opt2.visit_state([&](const std::string& name, Tensor<float>& t) { t.copy_from(checkpoint.at(name)); });
  CHECK(opt2.step_count() == 2);
  for (int k = 3; k <= kSteps; ++k) {
    set_fixture_gradients(resumed, k);
    opt2.step();
    expect_parameters(resumed, "adam_amsgrad", k);
  }

  // Replacing a state tensor by one of another shape is caught.
  CHECK_THROWS_AS(opt2.visit_state([](const std::string& name, Tensor<float>& t) {
    if (name == "weight.exp_avg") t = Tensor<float>({2});
  }),
                  ShapeError);
}

TEST_CASE("ExponentialDecay matches Keras (torch ExponentialLR / StepLR)") {
  const Tensor<float> continuous = fixture().load("schedule.continuous");
  const Tensor<float> staircase = fixture().load("schedule.staircase");
  const ExponentialDecay smooth(0.01, 7, 0.5);
  const ExponentialDecay stairs(
      {.initial_learning_rate = 0.01, .decay_steps = 7, .decay_rate = 0.5, .staircase = true});
  Tensor<double> a = Tensor<double>::empty(continuous.shape()), b = Tensor<double>::empty(staircase.shape());
  for (int64_t s = 0; s < a.numel(); ++s) {
    a[s] = smooth.lr(s);
    b[s] = stairs.lr(s);
  }
  expect_close(a, continuous, "ExponentialDecay");
  expect_close(b, staircase, "ExponentialDecay staircase");
  CHECK(stairs.lr(6) == 0.01);
  CHECK(stairs.lr(7) == 0.005);

  const ConstantSchedule constant(3e-4);
  const LearningRateSchedule& schedule = constant;
  CHECK(schedule.lr(0) == 3e-4);
  CHECK(schedule.lr(100000) == 3e-4);
  CHECK_THROWS_WITH(ExponentialDecay(0.01, 0, 0.5), Catch::Contains("decay_steps"));
}

TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_") {
  for (auto [name, max_norm] : {std::pair{"clip_large", 0.5}, std::pair{"clip_small", 100.0}}) {
    INFO(name);
    Linear<cpu> model(4, 3);
    model.visit_parameters([&](const std::string& p_name, auto& p) {
      p.grad.copy_from(fixture().load(std::string(name) + ".grad." + p_name));
    });
    const double norm = clip_grad_norm(model, max_norm);
    expect_close(Tensor<double>::from({1}, {norm}), fixture().load(std::string(name) + ".norm"), "norm");
    model.visit_parameters([&](const std::string& p_name, auto& p) {
      expect_close(p.grad, fixture().load(std::string(name) + ".clipped." + p_name), "clipped " + p_name);
    });
  }
  // After clipping, the norm is max_norm (up to the 1e-6 guard).
  Linear<cpu, double> model(3, 2);
  model.weight.grad.fill(3.0);
  model.bias.grad.fill(-4.0);
  CHECK(clip_grad_norm(model, 1.0) == Approx(std::sqrt(6 * 9.0 + 2 * 16.0)));
  CHECK(clip_grad_norm(model, 1.0) == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("clip_grad_value clamps every gradient; a NaN norm is reported when asked") {
  Linear<cpu> model(2, 2);
  model.weight.grad = Tensor<float>::from({2, 2}, {-3.0f, 0.5f, 2.0f, -0.25f});
  model.bias.grad = Tensor<float>::from({2}, {1.5f, -1.0f});
  clip_grad_value(model, 1.0);
  CHECK(model.weight.grad.to_vector() == std::vector<float>{-1.0f, 0.5f, 1.0f, -0.25f});
  CHECK(model.bias.grad.to_vector() == std::vector<float>{1.0f, -1.0f});

  model.bias.grad[1] = std::nanf("");
  CHECK_THROWS_AS(clip_grad_norm(model, 1.0, /*error_if_nonfinite=*/true), NonFiniteError);
  CHECK(std::isnan(clip_grad_norm(model, 1.0)));
}

TEST_CASE("a NaN gradient gives a NonFiniteError naming the parameter") {
  Sequential<Linear<cpu>, Linear<cpu>> model(Linear<cpu>(3, 4), Linear<cpu>(4, 2));
  zero_grad(model);
  CHECK_NOTHROW(check_gradients_finite(model, "epoch 1, batch 2"));
  model.get<1>().bias.grad[1] = INFINITY;
  model.get<0>().weight.grad(2, 1) = std::nanf("");
  CHECK_THROWS_AS(check_gradients_finite(model, "epoch 3, batch 12"), NonFiniteError);
  CHECK_THROWS_WITH(check_gradients_finite(model, "epoch 3, batch 12"),
                    Catch::Contains("epoch 3, batch 12") && Catch::Contains("gradient of 0.weight") &&
                        Catch::Contains("[4, 3]") && Catch::Contains("element 7 [2, 1]") && Catch::Contains("nan"));
  model.get<0>().weight.grad.zero();
  CHECK_THROWS_WITH(check_gradients_finite(model, "step 9"),
                    Catch::Contains("gradient of 1.bias") && Catch::Contains("inf"));
}

TEST_CASE("training a tiny model on separable data makes the loss fall") {
  // Two Gaussian blobs in 2-D, labels 0 and 1.
  constexpr int64_t n = 64;
  Generator gen(3);
  Tensor<float> x = Tensor<float>::empty({n, 2});
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) {
    y[i] = i % 2;
    const double centre = y[i] ? 1.5 : -1.5;
    x(i, 0) = static_cast<float>(centre + 0.5 * gen.normal());
    x(i, 1) = static_cast<float>(-centre + 0.5 * gen.normal());
  }

  auto train = [&](auto make_optimizer, int epochs) {
    manual_seed(5);
    Sequential<Linear<cpu>, Linear<cpu>> model(Linear<cpu>(2, 8), Linear<cpu>(8, 2));
    auto opt = make_optimizer(model);
    const ExponentialDecay schedule(opt.lr(), 20, 0.9);
    std::vector<double> losses;
    for (int epoch = 0; epoch < epochs; ++epoch) {
      // Two batches of 32 per epoch.
      for (int64_t b = 0; b < 2; ++b) {
        const std::vector<int64_t> labels(y.begin() + b * 32, y.begin() + (b + 1) * 32);
        opt.set_lr(schedule.lr(opt.step_count()));
        opt.zero_grad();
        const auto [loss, dlogits] = softmax_cross_entropy(model.forward(x.slice(b * 32, (b + 1) * 32)), labels);
        check_finite(loss, "loss at epoch " + std::to_string(epoch) + ", batch " + std::to_string(b));
        model.backward(dlogits);
        check_gradients_finite(model, "epoch " + std::to_string(epoch));
        clip_grad_norm(model, 5.0);
        opt.step();
        if (b == 0) losses.push_back(loss);
      }
    }
    model.eval();
    const double acc = accuracy(y, argmax(model.forward(x)));
    return std::pair{losses, acc};
  };

  for (auto [name, result] :
       {std::pair{"Adam", train([](auto& m) { return Adam(m, {.lr = 0.05}); }, 40)},
        std::pair{"AdamW", train([](auto& m) { return AdamW(m, {.lr = 0.05}); }, 40)},
        std::pair{"SGD", train([](auto& m) { return SGD(m, {.lr = 0.1, .momentum = 0.9, .nesterov = true}); }, 40)}}) {
    INFO(name << ": first loss " << result.first.front() << ", last loss " << result.first.back());
    CHECK(result.first.back() < 0.1 * result.first.front());
    CHECK(result.first.back() < 0.05);
    CHECK(result.second == 1.0);
  }
}

TEST_CASE("updates of large tensors run in parallel and match the single-threaded result") {
  auto run = [](int threads, auto make_optimizer) {
    const int saved = num_threads();
    set_num_threads(threads);
    LargeModel model;
    Generator gen(9);
    for (auto& v : model.weight.value) v = static_cast<float>(gen.normal());
    auto opt = make_optimizer(model);
    for (int k = 0; k < 3; ++k) {
      for (auto& g : model.weight.grad) g = static_cast<float>(gen.normal());
      opt.step();
    }
    set_num_threads(saved);
    return model.weight.value.clone();
  };
  auto adam = [](LargeModel& m) { return AdamW(m, {.lr = 1e-2, .amsgrad = true}); };
  auto sgd = [](LargeModel& m) {
    return SGD(m, {.lr = 1e-2, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-4});
  };
  CHECK(run(1, adam).to_vector() == run(2, adam).to_vector());
  CHECK(run(1, sgd).to_vector() == run(2, sgd).to_vector());
}
