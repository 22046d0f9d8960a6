// The CUDA timings behind gpu/cuda_bench.hpp. nvcc only.
#include "stpain/backend/cuda.hpp"  // first: the backend before any layer header

#include <algorithm>
#include <chrono>

#include "bench/stgcn_models.hpp"
#include "gpu/cuda_bench.hpp"
#include "stpain/models/convnext.hpp"
#include "stpain/models/sequence_heads.hpp"
#include "stpain/train/loss.hpp"
#include "stpain/train/optim.hpp"

namespace stpain::cuda_backend {

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double best_seconds(int repeats, F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto t0 = Clock::now();
    f();
    stpain::cuda::synchronize();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

Tensor<float, stpain::cuda> random_input(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (float& x : v) x = static_cast<float>(g.normal());
  return Tensor<float, stpain::cuda>::from(shape, v);
}

// fit()'s step: forward (train mode), cross-entropy, zero_grad, backward, Keras' Adam.
template <class Model>
double training_step_seconds(Model& model, const Tensor<float, stpain::cuda>& x, int repeats) {
  model.train(true);
  std::vector<int64_t> labels(static_cast<size_t>(x.size(0)));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 2);
  Adam opt(model, AdamOptions{.lr = 1e-4, .eps = 1e-7, .epsilon_hat = true});
  return best_seconds(repeats, [&] {
    const auto logits = model.forward(x);
    const auto loss = softmax_cross_entropy(logits, labels);
    opt.zero_grad();
    model.backward(loss.grad);
    opt.step();
  });
}

}  // namespace

double convnext_forward_seconds(const std::string& arch, int64_t batch, int64_t size, int repeats) {
  backend::cuda_detail::require_device();
  ConvNeXt<stpain::cuda> net(ConvNeXtConfig::variant(arch, 1000));
  net.eval();
  const auto x = random_input({batch, 3, size, size}, 1);
  return best_seconds(repeats, [&] { net.forward(x); });
}

double sequence_head_step_seconds(const std::string& head, int64_t batch, int64_t frames, int64_t features, int repeats) {
  backend::cuda_detail::require_device();
  const auto x = random_input({batch, frames, features}, 2);
  return with_sequence_head<stpain::cuda>(head, {.input_size = features},
                                          [&](auto&& model) { return training_step_seconds(model, x, repeats); });
}

double stgcn_step_seconds(const std::string& model, int64_t batch, int64_t frames, int repeats) {
  backend::cuda_detail::require_device();
  const auto x = random_input({batch, frames, 68, 2}, 3);
  return bench::with_model<stpain::cuda>(model, [&](auto& net) { return training_step_seconds(net, x, repeats); });
}

}  // namespace stpain::cuda_backend
